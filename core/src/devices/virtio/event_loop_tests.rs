//! Tests for the device event loop: real threads, real eventfds, a mock device.
//! What the loop did is observed without touching its fds (`readable` polls, it
//! never reads), so "the loop drained it" really means the loop did.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use crate::devices::bus::BusDevice;
use crate::devices::virtio::test_utils::*;

fn activated_mock() -> (
    Arc<Mutex<MmioTransport>>,
    Arc<Mutex<Log>>,
    mpsc::Receiver<&'static str>,
) {
    let (mut dev, log) = MockDevice::new();
    let (tx, rx) = mpsc::channel();
    dev.notify_tx = Some(tx);
    let mut t =
        MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap();
    full_init(&mut t, &[16, 8]);
    assert!(t.is_activated());
    // The activation served each queue once; start the tests from a clean log.
    log.lock().unwrap().notified.clear();
    while rx.try_recv().is_ok() {}
    (Arc::new(Mutex::new(t)), log, rx)
}

const WAIT: Duration = Duration::from_secs(5);

fn spawn(t: Vec<Arc<Mutex<MmioTransport>>>, name: &str) -> EventLoopHandle {
    DeviceEventLoop::spawn(t, name, || Ok(()), |_| {}).unwrap()
}

/// Waits (bounded) until `cond` holds; returns whether it did.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn queue_eventfd_reaches_device_on_loop_thread_and_is_drained_by_it() {
    let (t, log, rx) = activated_mock();
    let handle = spawn(vec![t.clone()], "virtio-test");
    // What KVM's ioeventfd does on a guest write to QueueNotify with value 1.
    lock(&t).queue_evts()[1].write(1).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "queue");
    // The loop reads the counter before calling the device: it is empty now,
    // and nobody but the loop read it.
    assert!(!readable(&lock(&t).queue_evts()[1]));
    // And the transport path (no ioeventfd) arrives the same way.
    lock(&t).write(0x50, &0u32.to_le_bytes());
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "queue");
    assert!(!readable(&lock(&t).queue_evts()[0]));
    handle.stop().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(
        log.notified,
        vec![
            (1, "virtio-test".to_string()),
            (0, "virtio-test".to_string())
        ]
    );
}

#[test]
fn backend_fd_registered_by_device_reaches_fd_ready() {
    let (t, log, rx) = activated_mock();
    let handle = spawn(vec![t.clone()], "virtio-fd");
    // attach_event_loop runs on the loop thread; wait until the device registered.
    assert!(eventually(|| log.lock().unwrap().backend_evt.is_some()));
    let (evt, fd) = {
        let l = log.lock().unwrap();
        (
            l.backend_evt.as_ref().unwrap().try_clone().unwrap(),
            l.registered_fd.unwrap(),
        )
    };
    evt.write(1).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "fd");
    handle.stop().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(
        log.fd_events.len(),
        1,
        "level-triggered fd drained by the device fires once"
    );
    assert_eq!(log.fd_events[0].0, fd);
    assert_ne!(
        log.fd_events[0].1 & crate::devices::virtio::device::EPOLLIN,
        0
    );
}

#[test]
fn notification_before_activation_is_drained_by_the_loop_and_dropped() {
    let (mut dev, log) = MockDevice::new();
    let (tx, _rx) = mpsc::channel();
    dev.notify_tx = Some(tx);
    let t = Arc::new(Mutex::new(
        MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap(),
    ));
    let handle = spawn(vec![t.clone()], "virtio-pre");
    lock(&t).queue_evts()[0].write(1).unwrap();
    // Only the loop reads the eventfd; it becomes empty once the loop ran.
    assert!(eventually(|| !readable(&lock(&t).queue_evts()[0])));
    handle.stop().unwrap();
    assert!(log.lock().unwrap().notified.is_empty());
}

#[test]
fn status_writes_are_applied_on_the_loop_thread() {
    let (mut dev, log) = MockDevice::new();
    let (tx, rx) = mpsc::channel();
    dev.notify_tx = Some(tx);
    let t = Arc::new(Mutex::new(
        MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap(),
    ));
    // Status work recorded before the loop starts is applied when it starts.
    full_init_pending(&mut lock(&t), &[16, 8]);
    let handle = spawn(vec![t.clone()], "virtio-life");
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        "queue",
        "activation serves the queues"
    );
    assert!(eventually(|| lock(&t).is_activated()));
    // A "vCPU" (this thread) resets and re-initialises while the loop runs.
    write32(&mut lock(&t), 0x70, 0);
    full_init_pending(&mut lock(&t), &[16, 8]);
    assert!(eventually(|| log.lock().unwrap().activations.len() == 2));
    assert!(eventually(|| lock(&t).is_activated()));
    assert!(
        !readable(lock(&t).ctl_evt()),
        "the loop drained its control eventfd"
    );
    handle.stop().unwrap();
    let l = log.lock().unwrap();
    assert_eq!(l.resets, 1);
    assert_eq!(
        l.lifecycle_threads,
        vec!["virtio-life", "virtio-life", "virtio-life"],
        "activate, reset, activate: all on the loop thread"
    );
}

#[test]
fn stop_joins_idle_loop_and_drop_stops_too() {
    let (t, _, _) = activated_mock();
    let handle = spawn(vec![t.clone()], "virtio-idle");
    std::thread::sleep(Duration::from_millis(20));
    assert!(handle.is_running());
    handle.stop().unwrap();
    let handle = spawn(vec![t.clone()], "virtio-drop");
    drop(handle);
    // Both loops ended, so the transport's only owner is us again.
    assert_eq!(Arc::strong_count(&t), 1);
}

#[test]
fn failing_start_hook_is_reported() {
    let (t, log, _) = activated_mock();
    let (tx, rx) = mpsc::channel();
    let r = DeviceEventLoop::spawn(
        vec![t.clone()],
        "virtio-fail",
        || Err("no seccomp".into()),
        move |_| {
            let _ = tx.send(());
        },
    );
    assert!(matches!(r, Err(EventLoopError::Start(ref m)) if m == "no seccomp"));
    assert!(rx.try_recv().is_err(), "on_exit is only for loops that ran");
    lock(&t).queue_evts()[0].write(1).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(log.lock().unwrap().notified.is_empty());
    assert!(readable(&lock(&t).queue_evts()[0]), "no loop read it");
}

#[test]
fn serves_several_devices() {
    let (a, log_a, rx_a) = activated_mock();
    let (b, log_b, rx_b) = activated_mock();
    let handle = spawn(vec![a.clone(), b.clone()], "virtio-two");
    lock(&b).queue_evts()[0].write(1).unwrap();
    assert_eq!(rx_b.recv_timeout(WAIT).unwrap(), "queue");
    lock(&a).queue_evts()[1].write(1).unwrap();
    assert_eq!(rx_a.recv_timeout(WAIT).unwrap(), "queue");
    handle.stop().unwrap();
    let queues = |l: &Arc<Mutex<Log>>| -> Vec<usize> {
        l.lock().unwrap().notified.iter().map(|n| n.0).collect()
    };
    assert_eq!(queues(&log_a), vec![1]);
    assert_eq!(queues(&log_b), vec![0]);
}

#[test]
fn device_panic_ends_loop_with_error_not_process_and_on_exit_hears_it() {
    let (mut dev, _) = MockDevice::new();
    dev.panic_on_notify = true;
    let mut t =
        MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap();
    // Activate without the loop's serve-every-queue step (it would panic here).
    full_init_pending(&mut t, &[16, 8]);
    let t = Arc::new(Mutex::new(t));
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    let handle = DeviceEventLoop::spawn(
        vec![t.clone()],
        "virtio-panic",
        || Ok(()),
        move |r| {
            let _ = tx.send(matches!(r, Err(EventLoopError::Panicked)));
        },
    )
    .unwrap();
    // The loop applies the activation, serves queue 0, and the device panics.
    assert!(rx.recv_timeout(WAIT).unwrap(), "on_exit got Err(Panicked)");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    assert!(eventually(|| !handle.is_running()));
    assert!(matches!(handle.stop(), Err(EventLoopError::Panicked)));
    // The poisoned transport lock is still usable by vCPUs.
    assert_eq!(read32(&mut lock(&t), 0x00), 0x7472_6976);
}

#[test]
fn on_exit_hears_a_clean_stop_as_ok() {
    let (t, _, _) = activated_mock();
    let (tx, rx) = mpsc::channel();
    let handle = DeviceEventLoop::spawn(
        vec![t],
        "virtio-exit",
        || Ok(()),
        move |r| {
            let _ = tx.send(r.is_ok());
        },
    )
    .unwrap();
    handle.stop().unwrap();
    assert!(rx.recv_timeout(WAIT).unwrap());
}

#[path = "event_loop_blk_tests.rs"]
mod blk;
