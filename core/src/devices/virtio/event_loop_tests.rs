//! Tests for the device event loop: real threads, real eventfds, a mock device.

use std::sync::mpsc;
use std::time::Duration;

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
    (Arc::new(Mutex::new(t)), log, rx)
}

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn queue_eventfd_reaches_device_on_loop_thread() {
    let (t, log, rx) = activated_mock();
    let handle = DeviceEventLoop::spawn(vec![t.clone()], "virtio-test", || Ok(())).unwrap();
    // What KVM's ioeventfd does on a guest write to QueueNotify with value 1.
    lock(&t).queue_evts()[1].write(1).unwrap();
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "queue");
    // And the transport path (no ioeventfd) arrives the same way.
    lock(&t).write(0x50, &0u32.to_le_bytes());
    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "queue");
    handle.stop().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(
        log.notified,
        vec![
            (1, "virtio-test".to_string()),
            (0, "virtio-test".to_string())
        ]
    );
    // The eventfd was drained by the loop.
    assert!(lock(&t).queue_evts()[1].read().is_err());
}

#[test]
fn backend_fd_registered_by_device_reaches_fd_ready() {
    let (t, log, rx) = activated_mock();
    let handle = DeviceEventLoop::spawn(vec![t.clone()], "virtio-fd", || Ok(())).unwrap();
    // attach_event_loop runs on the loop thread; wait until the device registered.
    let mut fd = None;
    for _ in 0..500 {
        {
            let l = log.lock().unwrap();
            if let Some(evt) = &l.backend_evt {
                evt.write(1).unwrap();
                fd = l.registered_fd;
            }
        }
        if fd.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let fd = fd.expect("device attached to the loop");
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
fn notification_before_activation_is_drained_and_dropped() {
    let (mut dev, log) = MockDevice::new();
    let (tx, _rx) = mpsc::channel();
    dev.notify_tx = Some(tx);
    let t = Arc::new(Mutex::new(
        MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap(),
    ));
    let handle = DeviceEventLoop::spawn(vec![t.clone()], "virtio-pre", || Ok(())).unwrap();
    lock(&t).queue_evts()[0].write(1).unwrap();
    // Give the loop a moment, then check it drained the fd without calling the device.
    for _ in 0..500 {
        if lock(&t).queue_evts()[0].read().is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    handle.stop().unwrap();
    assert!(log.lock().unwrap().notified.is_empty());
}

#[test]
fn stop_joins_idle_loop_and_drop_stops_too() {
    let (t, _, _) = activated_mock();
    let handle = DeviceEventLoop::spawn(vec![t.clone()], "virtio-idle", || Ok(())).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(handle.is_running());
    handle.stop().unwrap();
    let handle = DeviceEventLoop::spawn(vec![t.clone()], "virtio-drop", || Ok(())).unwrap();
    drop(handle);
    // Both loops ended, so the transport's only owner is us again.
    assert_eq!(Arc::strong_count(&t), 1);
}

#[test]
fn failing_start_hook_is_reported() {
    let (t, log, _) = activated_mock();
    let r = DeviceEventLoop::spawn(vec![t.clone()], "virtio-fail", || Err("no seccomp".into()));
    assert!(matches!(r, Err(EventLoopError::Start(ref m)) if m == "no seccomp"));
    lock(&t).queue_evts()[0].write(1).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(log.lock().unwrap().notified.is_empty());
}

#[test]
fn serves_several_devices() {
    let (a, log_a, rx_a) = activated_mock();
    let (b, log_b, rx_b) = activated_mock();
    let handle =
        DeviceEventLoop::spawn(vec![a.clone(), b.clone()], "virtio-two", || Ok(())).unwrap();
    lock(&b).queue_evts()[0].write(1).unwrap();
    assert_eq!(rx_b.recv_timeout(WAIT).unwrap(), "queue");
    lock(&a).queue_evts()[1].write(1).unwrap();
    assert_eq!(rx_a.recv_timeout(WAIT).unwrap(), "queue");
    handle.stop().unwrap();
    assert_eq!(
        log_a
            .lock()
            .unwrap()
            .notified
            .iter()
            .map(|n| n.0)
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(
        log_b
            .lock()
            .unwrap()
            .notified
            .iter()
            .map(|n| n.0)
            .collect::<Vec<_>>(),
        vec![0]
    );
}

#[test]
fn device_panic_ends_loop_with_error_not_process() {
    let (mut dev, _) = MockDevice::new();
    dev.panic_on_notify = true;
    let mut t = MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap();
    full_init(&mut t, &[16, 8]);
    let t = Arc::new(Mutex::new(t));
    let handle = DeviceEventLoop::spawn(vec![t.clone()], "virtio-panic", || Ok(())).unwrap();
    lock(&t).queue_evts()[0].write(1).unwrap();
    for _ in 0..500 {
        if !handle.is_running() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!handle.is_running());
    assert!(matches!(handle.stop(), Err(EventLoopError::Panicked)));
    // The poisoned transport lock is still usable by vCPUs.
    assert_eq!(read32(&mut lock(&t), 0x00), 0x7472_6976);
}
