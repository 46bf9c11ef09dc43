//! The device event-loop thread: turns queue eventfds (KVM ioeventfds) and device
//! backend fds into [`VirtioDevice`](super::VirtioDevice) calls.
//!
//! One thread serves every virtio device of a VM. It blocks in `epoll_wait` (never
//! polls), and for each ready fd locks the owning transport (the same mutex the
//! vCPUs take on MMIO accesses) and calls into the device. Device activation and
//! reset happen here too: a guest Status write only records them and writes the
//! transport's control eventfd (a vCPU thread may not do device I/O).
//!
//! Stopping sets a flag and writes a stop eventfd, then joins; the flag is checked
//! between events, and devices bound their work per call, so a stop waits for at
//! most one bounded call. The thread runs the caller's `on_start` hook first (where
//! the seccomp filter goes), reports its result to `spawn`, and catches panics so a
//! buggy device ends the loop with an error instead of taking the process down; the
//! caller's `on_exit` hook hears how the loop ended, so a VM whose devices died can
//! stop instead of running on without them.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::device::{decode, encode, FdRegistrar, Served, TAG_DEVICE_FD};
use super::mmio::MmioTransport;
use crate::devices::bus::lock;

const TAG_STOP: u64 = 0;
const TAG_QUEUE: u64 = 1;
/// A transport's control eventfd: Status work to apply (value unused).
const TAG_CTL: u64 = 3;
/// Device indexes are packed in 24 bits of the epoll data.
const MAX_DEVICES: usize = 1 << 24;
const EVENTS_PER_WAIT: usize = 32;

/// Errors starting, running or stopping the loop.
#[derive(Debug, thiserror::Error)]
pub enum EventLoopError {
    /// epoll or eventfd setup failed.
    #[error("event loop setup failed: {0}")]
    Setup(#[source] io::Error),
    /// Registering a queue eventfd (or the control eventfd) failed.
    #[error(
        "cannot watch queue {queue} of device {device} (queue count = control eventfd): {source}"
    )]
    Register {
        /// Device index in the list given to `spawn`.
        device: usize,
        /// Queue index (the queue count for the control eventfd).
        queue: usize,
        /// The epoll_ctl error.
        #[source]
        source: io::Error,
    },
    /// More devices than the loop can index.
    #[error("{0} devices is more than one event loop serves")]
    TooManyDevices(usize),
    /// The thread could not be created.
    #[error("cannot spawn event loop thread {name:?}: {source}")]
    Spawn {
        /// Thread name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The `on_start` hook (seccomp) failed; the loop did not run.
    #[error("event loop start hook failed: {0}")]
    Start(String),
    /// `epoll_wait` failed.
    #[error("epoll_wait failed: {0}")]
    Wait(#[source] io::Error),
    /// A device panicked on the loop thread.
    #[error("event loop thread panicked")]
    Panicked,
}

/// Spawns device event loops.
pub struct DeviceEventLoop;

/// A running loop. `stop` (or dropping it) signals the thread and joins it.
pub struct EventLoopHandle {
    stop: Arc<EventFd>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), EventLoopError>>>,
}

impl DeviceEventLoop {
    /// Starts a thread named `name` serving `devices`. The thread runs `on_start`
    /// first (install the seccomp filter there); if it fails, `spawn` returns
    /// [`EventLoopError::Start`]. Then it calls `attach_event_loop` on every device
    /// (device index = position in `devices`), applies Status work recorded before
    /// it started, and waits for events.
    ///
    /// `on_exit` runs on the loop thread when the loop ends after a successful
    /// start, with how it ended: `Ok` after a stop request, an error if
    /// `epoll_wait` failed or a device panicked. It runs under the loop's seccomp
    /// filter: keep it to signalling (an eventfd write, a condvar).
    pub fn spawn<F, X>(
        devices: Vec<Arc<Mutex<MmioTransport>>>,
        name: &str,
        on_start: F,
        on_exit: X,
    ) -> Result<EventLoopHandle, EventLoopError>
    where
        F: FnOnce() -> Result<(), String> + Send + 'static,
        X: FnOnce(&Result<(), EventLoopError>) + Send + 'static,
    {
        if devices.len() >= MAX_DEVICES {
            return Err(EventLoopError::TooManyDevices(devices.len()));
        }
        let epoll = Arc::new(Epoll::new().map_err(EventLoopError::Setup)?);
        let stop = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(EventLoopError::Setup)?);
        epoll
            .ctl(
                ControlOperation::Add,
                stop_fd(&stop),
                EpollEvent::new(EventSet::IN, encode(TAG_STOP, 0, 0)),
            )
            .map_err(EventLoopError::Setup)?;
        for (d, dev) in devices.iter().enumerate() {
            let t = lock(dev);
            for (q, evt) in t.queue_evts().iter().enumerate() {
                let data = encode(TAG_QUEUE, d as u32, q as u32);
                epoll
                    .ctl(
                        ControlOperation::Add,
                        stop_fd(evt),
                        EpollEvent::new(EventSet::IN, data),
                    )
                    .map_err(|source| EventLoopError::Register {
                        device: d,
                        queue: q,
                        source,
                    })?;
            }
            epoll
                .ctl(
                    ControlOperation::Add,
                    stop_fd(t.ctl_evt()),
                    EpollEvent::new(EventSet::IN, encode(TAG_CTL, d as u32, 0)),
                )
                .map_err(|source| EventLoopError::Register {
                    device: d,
                    queue: t.queue_evts().len(),
                    source,
                })?;
        }

        let (started_tx, started_rx) = mpsc::channel::<Result<(), String>>();
        let thread_stop = stop.clone();
        let stopping = Arc::new(AtomicBool::new(false));
        let thread_stopping = stopping.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let started = on_start();
                let ok = started.is_ok();
                let _ = started_tx.send(started);
                if !ok {
                    return Ok(());
                }
                let ended = catch_unwind(AssertUnwindSafe(|| {
                    run(&epoll, &devices, &thread_stop, &thread_stopping)
                }))
                .unwrap_or(Err(EventLoopError::Panicked));
                // A panicking hook must not hide how the loop ended.
                let _ = catch_unwind(AssertUnwindSafe(|| on_exit(&ended)));
                ended
            })
            .map_err(|source| EventLoopError::Spawn {
                name: name.to_string(),
                source,
            })?;

        match started_rx.recv() {
            Ok(Ok(())) => Ok(EventLoopHandle {
                stop,
                stopping,
                thread: Some(thread),
            }),
            Ok(Err(msg)) => {
                let _ = thread.join();
                Err(EventLoopError::Start(msg))
            }
            // The hook panicked before reporting.
            Err(_) => {
                let _ = thread.join();
                Err(EventLoopError::Panicked)
            }
        }
    }
}

fn stop_fd(evt: &EventFd) -> i32 {
    use std::os::fd::AsRawFd;
    evt.as_raw_fd()
}

fn run(
    epoll: &Arc<Epoll>,
    devices: &[Arc<Mutex<MmioTransport>>],
    stop: &EventFd,
    stopping: &AtomicBool,
) -> Result<(), EventLoopError> {
    for (d, dev) in devices.iter().enumerate() {
        let mut t = lock(dev);
        t.device_mut()
            .attach_event_loop(FdRegistrar::new(epoll.clone(), d as u32));
        // A guest may have written Status before the loop ran.
        let _ = t.ctl_evt().read();
        t.apply_pending();
    }
    let mut events = [EpollEvent::default(); EVENTS_PER_WAIT];
    loop {
        let n = match epoll.wait(-1, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(EventLoopError::Wait(e)),
        };
        for ev in &events[..n] {
            let (tag, d, value) = decode(ev.data());
            if tag == TAG_STOP || stopping.load(Ordering::Acquire) {
                let _ = stop.read();
                return Ok(());
            }
            let Some(dev) = devices.get(d as usize) else {
                continue;
            };
            match tag {
                TAG_CTL => {
                    let mut t = lock(dev);
                    // Drain first: a Status write after this wakes us again.
                    let _ = t.ctl_evt().read();
                    t.apply_pending();
                }
                TAG_QUEUE => {
                    let served = {
                        let mut t = lock(dev);
                        if let Some(evt) = t.queue_evts().get(value as usize) {
                            // Drain the counter (EAGAIN if a stale wakeup: harmless).
                            let _ = evt.read();
                        }
                        t.queue_event(value as usize)
                    };
                    if served == Served::More {
                        // std's mutex lets this thread take the lock straight
                        // back: give a vCPU (or the host) waiting for the
                        // transport its turn between two budgets of work.
                        std::thread::yield_now();
                    }
                }
                TAG_DEVICE_FD => lock(dev).fd_event(value as i32, ev.events()),
                _ => {}
            }
        }
    }
}

impl EventLoopHandle {
    /// Signals the loop to stop and joins it; returns how the loop ended.
    pub fn stop(mut self) -> Result<(), EventLoopError> {
        self.stop_and_join()
    }

    /// Whether the loop thread is still running (false after a device panicked or
    /// `epoll_wait` failed; `stop` then returns that error).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn stop_and_join(&mut self) -> Result<(), EventLoopError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        self.stopping.store(true, Ordering::Release);
        // A full counter still wakes the loop, so a write error cannot strand it.
        let _ = self.stop.write(1);
        thread.join().unwrap_or(Err(EventLoopError::Panicked))
    }
}

impl Drop for EventLoopHandle {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

#[cfg(test)]
#[path = "event_loop_tests.rs"]
mod tests;
