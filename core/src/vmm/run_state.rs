//! State shared by the VM handle, its vCPU threads and its devices: the console
//! log, the boot timings and why the VM stopped. The first reason to stop wins;
//! setting it kicks every vCPU out of the guest. It is also the vCPUs' start gate
//! (they enter the guest once the VM releases them, or leave if it stops first)
//! and counts the vCPU threads still running, so stopping can wait for them with
//! a bound instead of joining blindly. Last, it is the pause gate: a snapshot or
//! restore asks the vCPUs to park at a safe point (between two KVM_RUNs) and hands
//! each parked thread a job to run on its own vCPU fd.

use super::console::ConsoleLog;
use super::timings::BootTimings;
use kvm_ioctls::VcpuFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Why a VM stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote `status` to the exit port (micro guest).
    GuestExit(u32),
    /// The guest asked for a reset or power-off (i8042, ACPI-less reboot, triple
    /// fault of a Linux guest): a clean end for Linux.
    Reset,
    /// A triple fault in a guest that never resets on purpose (micro guest).
    TripleFault {
        /// Guest RIP when it happened.
        rip: u64,
    },
    /// KVM could not emulate an instruction or hit an internal error.
    InternalError {
        /// Guest RIP.
        rip: u64,
        /// KVM's suberror code.
        suberror: u32,
    },
    /// KVM failed to enter the guest.
    FailEntry {
        /// Hardware failure reason.
        reason: u64,
    },
    /// The guest console showed a panic (Linux "Kernel panic").
    ConsolePanic(String),
    /// A vCPU exit we do not handle, or a failing KVM_RUN.
    VcpuError(String),
    /// The device event loop ended on its own (a device panicked, epoll failed):
    /// the guest's devices are dead.
    DeviceLoop(String),
    /// The host stopped it (`kill()`, drop, timeout).
    Killed,
}

/// VM exits that reached the VMM, by kind (ioeventfd/irqfd traffic never does).
#[derive(Default)]
pub struct ExitCounters {
    /// Port I/O exits.
    pub pio: AtomicU64,
    /// MMIO exits per virtio device window (index = device slot).
    pub mmio_device: [AtomicU64; 16],
    /// MMIO exits outside any device window.
    pub mmio_other: AtomicU64,
}

/// A snapshot of [`ExitCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    /// Port I/O exits (serial, exit port, ...).
    pub pio: u64,
    /// MMIO exits per virtio device, in device order (disks, then vsock).
    pub mmio_device: Vec<u64>,
    /// MMIO exits outside device windows.
    pub mmio_other: u64,
}

impl ExitCounters {
    /// Counts an MMIO exit at `addr`.
    pub fn mmio(&self, addr: u64) {
        let slot = addr.wrapping_sub(super::layout::MMIO_START) / super::layout::MMIO_SIZE;
        match self.mmio_device.get(slot as usize) {
            Some(c) if addr >= super::layout::MMIO_START => c.fetch_add(1, Ordering::Relaxed),
            _ => self.mmio_other.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// A snapshot covering the first `devices` device slots.
    pub fn snapshot(&self, devices: usize) -> ExitStats {
        ExitStats {
            pio: self.pio.load(Ordering::Relaxed),
            mmio_device: self
                .mmio_device
                .iter()
                .take(devices)
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            mmio_other: self.mmio_other.load(Ordering::Relaxed),
        }
    }
}

/// The mutable part, behind one lock.
pub struct Inner {
    /// Console output.
    pub console: ConsoleLog,
    /// Boot timings.
    pub timings: BootTimings,
    /// Why the VM stopped, once it has.
    pub stop: Option<StopReason>,
    /// The VM released its vCPUs into the guest.
    pub released: bool,
    /// vCPU threads spawned (or about to be) that have not ended yet.
    pub live_vcpus: usize,
    /// A pause is requested: vCPUs park before their next KVM_RUN.
    pub pause: bool,
    /// vCPU threads parked at the pause gate.
    pub parked: usize,
    /// Work for parked vCPUs, by vCPU index (run on the vCPU's own thread).
    pub jobs: Vec<Option<VcpuJob>>,
}

/// Work a parked vCPU thread runs on its own vCPU fd.
pub type VcpuJob = Box<dyn FnOnce(&VcpuFd) + Send>;

/// Counts one vCPU thread as live until dropped: moved into the thread's closure,
/// it is dropped when the thread body ends, or with the closure if the spawn failed.
pub struct LiveVcpu(Arc<RunState>);

impl Drop for LiveVcpu {
    fn drop(&mut self) {
        self.0.lock().live_vcpus -= 1;
        self.0.cond.notify_all();
    }
}

/// Shared VM run state.
pub struct RunState {
    inner: Mutex<Inner>,
    cond: Condvar,
    stopping: AtomicBool,
    pausing: AtomicBool,
    start: Instant,
    kicker: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
    /// Exit counters, bumped by the vCPU threads.
    pub exits: ExitCounters,
}

impl RunState {
    /// New state; timings are measured from `start`.
    pub fn new(console: ConsoleLog, start: Instant) -> Self {
        RunState {
            inner: Mutex::new(Inner {
                console,
                timings: BootTimings::default(),
                stop: None,
                released: false,
                live_vcpus: 0,
                pause: false,
                parked: 0,
                jobs: Vec::new(),
            }),
            cond: Condvar::new(),
            stopping: AtomicBool::new(false),
            pausing: AtomicBool::new(false),
            start,
            kicker: Mutex::new(None),
            exits: ExitCounters::default(),
        }
    }

    /// Locks the state (poison-tolerant: a panicking thread must not wedge the VM).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::devices::bus::lock(&self.inner)
    }

    /// Time since creation started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records a boot phase (first time only).
    pub fn mark(&self, f: impl FnOnce(&mut BootTimings) -> &mut Option<Duration>) {
        let now = self.elapsed();
        let mut g = self.lock();
        let slot = f(&mut g.timings);
        if slot.is_none() {
            *slot = Some(now);
        }
        drop(g);
        self.cond.notify_all();
    }

    /// Installs the function that kicks every vCPU out of KVM_RUN.
    pub fn set_kicker(&self, k: Box<dyn Fn() + Send + Sync>) {
        *crate::devices::bus::lock(&self.kicker) = Some(k);
    }

    /// Removes the kicker (before its threads are joined: their ids die with them).
    /// Waits for a kick in progress on another thread to finish.
    pub fn take_kicker(&self) -> Option<Box<dyn Fn() + Send + Sync>> {
        crate::devices::bus::lock(&self.kicker).take()
    }

    /// Counts a vCPU thread as live; see [`LiveVcpu`].
    pub fn live_vcpu(self: &Arc<Self>) -> LiveVcpu {
        self.lock().live_vcpus += 1;
        LiveVcpu(self.clone())
    }

    /// Lets the vCPUs enter the guest.
    pub fn release_vcpus(&self) {
        self.lock().released = true;
        self.cond.notify_all();
    }

    /// Blocks a vCPU thread until the VM releases it (`true`) or stops (`false`).
    pub fn wait_release(&self) -> bool {
        let (g, _) = self.wait_until(None, |s| s.released || s.stop.is_some());
        g.stop.is_none()
    }

    /// Waits up to `timeout` for every vCPU thread to end; returns how many are left.
    pub fn wait_vcpus_gone(&self, timeout: Duration) -> usize {
        self.wait_until(Some(timeout), |s| s.live_vcpus == 0)
            .0
            .live_vcpus
    }

    /// True once the VM is stopping: vCPU loops must return.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// True while a pause is requested (the vCPU loop's cheap check).
    pub fn pausing(&self) -> bool {
        self.pausing.load(Ordering::Acquire)
    }

    /// Asks every vCPU to park and kicks them out of the guest; returns at once.
    pub fn request_pause(&self) {
        {
            let mut g = self.lock();
            // As for `stopping`: set before the kick, so a kicked vCPU sees it.
            self.pausing.store(true, Ordering::Release);
            g.pause = true;
        }
        if let Some(k) = crate::devices::bus::lock(&self.kicker).as_ref() {
            k();
        }
    }

    /// Waits up to `timeout` until `vcpus` threads are parked; `false` if the VM
    /// stopped or the time passed first.
    pub fn wait_parked(&self, vcpus: usize, timeout: Duration) -> bool {
        let (g, ok) = self.wait_until(Some(timeout), |s| s.parked >= vcpus || s.stop.is_some());
        ok && g.stop.is_none()
    }

    /// Gives parked vCPU `index` a job (the caller paused the VM first).
    pub fn give_job(&self, index: u8, job: VcpuJob) {
        let mut g = self.lock();
        let i = usize::from(index);
        if g.jobs.len() <= i {
            g.jobs.resize_with(i + 1, || None);
        }
        g.jobs[i] = Some(job);
        drop(g);
        self.cond.notify_all();
    }

    /// Lets parked vCPUs go back into the guest.
    pub fn resume(&self) {
        {
            let mut g = self.lock();
            g.pause = false;
            self.pausing.store(false, Ordering::Release);
        }
        self.cond.notify_all();
    }

    /// vCPU side of the pause gate: counts this thread as parked, runs the jobs
    /// given to vCPU `index` on `fd`, and returns when the pause ends or the VM stops.
    pub fn park(&self, index: u8, fd: &VcpuFd) {
        let mut g = self.lock();
        g.parked += 1;
        self.cond.notify_all();
        loop {
            if let Some(job) = g.jobs.get_mut(usize::from(index)).and_then(Option::take) {
                drop(g);
                job(fd);
                g = self.lock();
                continue;
            }
            if !g.pause || g.stop.is_some() {
                break;
            }
            g = self.cond.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.parked -= 1;
        drop(g);
        self.cond.notify_all();
    }

    /// Stops the VM for `reason` unless it already stopped; kicks the vCPUs.
    pub fn request_stop(&self, reason: StopReason) {
        {
            let mut g = self.lock();
            // Set before `stop` becomes visible: whoever sees `stop` and then kicks
            // a vCPU must find the flag set when that vCPU leaves KVM_RUN.
            self.stopping.store(true, Ordering::Release);
            if g.stop.is_none() {
                g.stop = Some(reason);
            }
        }
        self.cond.notify_all();
        if let Some(k) = crate::devices::bus::lock(&self.kicker).as_ref() {
            k();
        }
    }

    /// Feeds console bytes, recording first-byte/ready times and notifying waiters.
    pub fn console_output(&self, data: &[u8]) {
        let now = self.elapsed();
        let mut g = self.lock();
        let ev = g.console.push(data);
        if ev.first_byte && g.timings.first_serial_byte.is_none() {
            g.timings.first_serial_byte = Some(now);
        }
        if ev.ready && g.timings.ready.is_none() {
            g.timings.ready = Some(now);
        }
        let panic = if ev.panic {
            g.console.panic_line.clone()
        } else {
            None
        };
        drop(g);
        if ev.ready || ev.panic {
            self.cond.notify_all();
        }
        if let Some(line) = panic {
            self.request_stop(StopReason::ConsolePanic(line));
        }
    }

    /// Waits until `done(inner)` holds or `timeout` passes; returns the guard and
    /// whether the condition held.
    pub fn wait_until(
        &self,
        timeout: Option<Duration>,
        mut done: impl FnMut(&Inner) -> bool,
    ) -> (MutexGuard<'_, Inner>, bool) {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut g = self.lock();
        loop {
            if done(&g) {
                return (g, true);
            }
            match deadline {
                None => g = self.cond.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return (g, false);
                    }
                    g = self
                        .cond
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}
