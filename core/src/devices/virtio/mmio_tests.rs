//! Tests for the virtio-mmio register state machine, driven like a guest driver.

use super::*;
use crate::devices::virtio::device::VIRTIO_MMIO_INT_VRING;
use crate::devices::virtio::test_utils::*;

const ALL_BUT_OK: u32 = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;

#[test]
fn identification_registers() {
    let (mut t, _) = mock_transport();
    assert_eq!(read32(&mut t, 0x00), 0x7472_6976);
    assert_eq!(read32(&mut t, 0x04), 2);
    assert_eq!(read32(&mut t, 0x08), MOCK_TYPE);
    assert_eq!(read32(&mut t, 0x0c), VENDOR_ID);
    assert_eq!(read32(&mut t, 0x70), 0);
    assert_eq!(read32(&mut t, 0xfc), 0);
}

#[test]
fn device_features_by_selector() {
    let (mut t, _) = mock_transport();
    write32(&mut t, 0x14, 0);
    assert_eq!(read32(&mut t, 0x10), MOCK_FEATURES as u32);
    write32(&mut t, 0x14, 1);
    assert_eq!(read32(&mut t, 0x10), (MOCK_FEATURES >> 32) as u32);
    assert_eq!(
        read32(&mut t, 0x10),
        1,
        "VERSION_1 is bit 0 of the high word"
    );
    write32(&mut t, 0x14, 2);
    assert_eq!(read32(&mut t, 0x10), 0);
    write32(&mut t, 0x14, u32::MAX);
    assert_eq!(read32(&mut t, 0x10), 0);
}

#[test]
fn queue_num_max_by_selector_and_out_of_range() {
    let (mut t, _) = mock_transport();
    assert_eq!(read32(&mut t, 0x34), 16);
    write32(&mut t, 0x30, 1);
    assert_eq!(read32(&mut t, 0x34), 8);
    write32(&mut t, 0x30, 2);
    assert_eq!(read32(&mut t, 0x34), 0, "a missing queue reads max 0");
    assert_eq!(read32(&mut t, 0x44), 0);
    write32(&mut t, 0x30, u32::MAX);
    assert_eq!(read32(&mut t, 0x34), 0);
}

#[test]
fn full_init_sequence_activates_device() {
    let (mut t, log) = mock_transport();
    let st = negotiate(&mut t, MOCK_FEATURES | (1 << 40));
    assert_eq!(st, ALL_BUT_OK);
    setup_queue(&mut t, 0, 16);
    setup_queue(&mut t, 1, 4);
    write32(&mut t, 0x30, 1);
    assert_eq!(read32(&mut t, 0x44), 1);
    assert!(!t.is_activated());
    write32(&mut t, 0x70, ALL_BUT_OK | status::DRIVER_OK);
    // The register write only recorded it: nothing reached the device yet.
    assert!(!t.is_activated());
    assert_eq!(read32(&mut t, 0x70), ALL_BUT_OK | status::DRIVER_OK);
    assert!(log.lock().unwrap().activations.is_empty());
    assert_eq!(log.lock().unwrap().acked, None);
    assert_eq!(
        t.ctl_evt().read().unwrap(),
        1,
        "the event loop was signalled"
    );
    t.apply_pending();
    assert!(t.is_activated());
    assert_eq!(read32(&mut t, 0x70), ALL_BUT_OK | status::DRIVER_OK);
    let log = log.lock().unwrap();
    assert_eq!(
        log.acked,
        Some(MOCK_FEATURES),
        "unoffered bit 40 masked off"
    );
    assert_eq!(log.activations.len(), 1);
    let (d0, a0, u0) = queue_addrs(0);
    let (d1, a1, u1) = queue_addrs(1);
    assert_eq!(
        log.activations[0],
        vec![
            QueueSeen {
                size: 16,
                desc: d0,
                avail: a0,
                used: u0
            },
            QueueSeen {
                size: 4,
                desc: d1,
                avail: a1,
                used: u1
            },
        ]
    );
}

#[test]
fn features_ok_refused_without_version_1() {
    let (mut t, log) = mock_transport();
    let st = negotiate(&mut t, 0b101);
    assert_eq!(st & status::FEATURES_OK, 0);
    assert_eq!(log.lock().unwrap().acked, None);
    // Without FEATURES_OK, queue setup and DRIVER_OK are ignored.
    setup_queue(&mut t, 0, 16);
    assert_eq!(read32(&mut t, 0x44), 0);
    write32(&mut t, 0x70, ALL_BUT_OK | status::DRIVER_OK);
    assert!(!t.is_activated());
}

#[test]
fn out_of_order_status_writes_are_ignored() {
    let (mut t, log) = mock_transport();
    write32(&mut t, 0x70, ALL_BUT_OK | status::DRIVER_OK);
    assert_eq!(read32(&mut t, 0x70), 0);
    write32(&mut t, 0x70, status::DRIVER);
    assert_eq!(read32(&mut t, 0x70), 0);
    write32(&mut t, 0x70, status::ACKNOWLEDGE);
    write32(&mut t, 0x70, status::ACKNOWLEDGE | status::FEATURES_OK);
    assert_eq!(read32(&mut t, 0x70), status::ACKNOWLEDGE);
    assert!(log.lock().unwrap().activations.is_empty());
    write32(&mut t, 0x70, status::ACKNOWLEDGE | status::FAILED);
    assert_eq!(read32(&mut t, 0x70), status::ACKNOWLEDGE | status::FAILED);
}

#[test]
fn driver_features_only_writable_in_driver_state() {
    let (mut t, log) = mock_transport();
    // Before DRIVER: ignored.
    write32(&mut t, 0x24, 1);
    write32(&mut t, 0x20, 1);
    write32(&mut t, 0x70, status::ACKNOWLEDGE);
    write32(&mut t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    write32(&mut t, 0x70, ALL_BUT_OK);
    assert_eq!(read32(&mut t, 0x70) & status::FEATURES_OK, 0);
    assert_eq!(log.lock().unwrap().acked, None);
}

#[test]
fn reset_returns_to_initial_state_and_allows_reinit() {
    let (mut t, log) = mock_transport();
    full_init(&mut t, &[16, 8]);
    assert!(t.is_activated());
    t.interrupt().signal_used_queue().unwrap();
    log.lock().unwrap().notified.clear();
    write32(&mut t, 0x70, 0);
    assert!(!t.is_activated());
    assert_eq!(read32(&mut t, 0x70), 0);
    assert_eq!(read32(&mut t, 0x60), 0);
    for q in 0..2 {
        write32(&mut t, 0x30, q);
        assert_eq!(read32(&mut t, 0x44), 0, "queue {q} not ready after reset");
    }
    assert_eq!(
        log.lock().unwrap().resets,
        0,
        "vCPU thread only records the reset"
    );
    // Queue events after reset do not reach the device; the loop applies the reset first.
    t.queue_event(0);
    assert_eq!(log.lock().unwrap().resets, 1);
    assert!(log.lock().unwrap().notified.is_empty());
    // A second init works and starts from default queue sizes.
    full_init(&mut t, &[16, 8]);
    assert!(t.is_activated());
    assert_eq!(log.lock().unwrap().activations.len(), 2);
}

#[test]
fn invalid_queue_sizes_are_ignored() {
    let (mut t, log) = mock_transport();
    negotiate(&mut t, VIRTIO_F_VERSION_1);
    setup_queue(&mut t, 0, 4);
    setup_queue(&mut t, 1, 8);
    write32(&mut t, 0x30, 0);
    for bad in [0, 3, 12, 32, 0x1_0000, u32::MAX] {
        write32(&mut t, 0x38, bad);
    }
    write32(&mut t, 0x70, ALL_BUT_OK | status::DRIVER_OK);
    loop_applies(&mut t);
    assert!(t.is_activated());
    assert_eq!(log.lock().unwrap().activations[0][0].size, 4);
}

#[test]
fn queue_outside_guest_memory_sets_needs_reset() {
    let (mut t, log) = mock_transport();
    negotiate(&mut t, VIRTIO_F_VERSION_1);
    setup_queue(&mut t, 0, 16);
    setup_queue(&mut t, 1, 8);
    write32(&mut t, 0x30, 1);
    write32(&mut t, 0x84, 0x10); // descriptor table far above the 2 MiB of RAM
    write32(&mut t, 0x70, ALL_BUT_OK | status::DRIVER_OK);
    assert!(!t.is_activated());
    assert_ne!(read32(&mut t, 0x70) & status::DEVICE_NEEDS_RESET, 0);
    assert!(log.lock().unwrap().activations.is_empty());
    t.queue_event(0);
    assert!(log.lock().unwrap().notified.is_empty());
}

#[test]
fn queue_not_ready_at_driver_ok_sets_needs_reset() {
    let (mut t, _) = mock_transport();
    negotiate(&mut t, VIRTIO_F_VERSION_1);
    setup_queue(&mut t, 0, 16);
    write32(&mut t, 0x70, ALL_BUT_OK | status::DRIVER_OK);
    assert!(!t.is_activated());
    assert_ne!(read32(&mut t, 0x70) & status::DEVICE_NEEDS_RESET, 0);
}

#[test]
fn activation_failure_sets_needs_reset_and_config_interrupt() {
    let (mut dev, _) = MockDevice::new();
    dev.fail_activate = true;
    let mut t =
        MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap();
    full_init(&mut t, &[16, 8]);
    assert!(!t.is_activated());
    assert_ne!(read32(&mut t, 0x70) & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(
        read32(&mut t, 0x60),
        super::super::device::VIRTIO_MMIO_INT_CONFIG
    );
}

#[test]
fn queue_registers_locked_after_driver_ok() {
    let (mut t, log) = mock_transport();
    full_init(&mut t, &[16, 8]);
    write32(&mut t, 0x30, 0);
    write32(&mut t, 0x44, 0);
    assert_eq!(
        read32(&mut t, 0x44),
        1,
        "QueueReady cannot be cleared while running"
    );
    assert_eq!(log.lock().unwrap().activations.len(), 1);
}

#[test]
fn notification_before_driver_ok_is_harmless() {
    let (mut t, log) = mock_transport();
    write32(&mut t, 0x50, 0);
    assert!(
        t.queue_evts()[0].read().is_err(),
        "eventfd not written before DRIVER_OK"
    );
    t.queue_event(0);
    negotiate(&mut t, VIRTIO_F_VERSION_1);
    write32(&mut t, 0x50, 1);
    assert!(t.queue_evts()[1].read().is_err());
    assert!(log.lock().unwrap().notified.is_empty());
}

#[test]
fn notification_after_driver_ok_writes_queue_eventfd() {
    let (mut t, log) = mock_transport();
    full_init(&mut t, &[16, 8]);
    log.lock().unwrap().notified.clear(); // the activation served each queue once
    write32(&mut t, 0x50, 1);
    assert_eq!(t.queue_evts()[1].read().unwrap(), 1);
    assert!(t.queue_evts()[0].read().is_err());
    write32(&mut t, 0x50, 7); // no such queue
    write32(&mut t, 0x50, u32::MAX);
    assert!(t.queue_evts()[0].read().is_err());
    t.queue_event(1);
    t.queue_event(9);
    let names: Vec<usize> = log.lock().unwrap().notified.iter().map(|n| n.0).collect();
    assert_eq!(names, vec![1]);
}

#[test]
fn interrupt_status_and_ack() {
    let (mut t, _) = mock_transport();
    full_init(&mut t, &[16, 8]);
    assert_eq!(read32(&mut t, 0x60), 0);
    t.interrupt().signal_used_queue().unwrap();
    assert_eq!(read32(&mut t, 0x60), VIRTIO_MMIO_INT_VRING);
    assert_eq!(t.interrupt().eventfd().read().unwrap(), 1);
    write32(&mut t, 0x64, VIRTIO_MMIO_INT_VRING);
    assert_eq!(read32(&mut t, 0x60), 0);
    // InterruptStatus is read-only.
    write32(&mut t, 0x60, 3);
    assert_eq!(read32(&mut t, 0x60), 0);
}

#[test]
fn odd_widths_and_unknown_offsets_are_harmless() {
    let (mut t, log) = mock_transport();
    let mut b2 = [0xaau8; 2];
    t.read(0x00, &mut b2);
    assert_eq!(b2, [0, 0], "registers are 32-bit only");
    let mut b8 = [0xaau8; 8];
    t.read(0x00, &mut b8);
    assert_eq!(b8, [0; 8]);
    let mut b4 = [0xaau8; 4];
    t.read(0x02, &mut b4);
    assert_eq!(b4, [0; 4], "unaligned register read");
    t.read(0x3c, &mut b4);
    assert_eq!(b4, [0; 4], "unknown register");
    // Narrow or unaligned status writes are ignored.
    t.write(0x70, &[1]);
    t.write(0x71, &1u32.to_le_bytes());
    assert_eq!(read32(&mut t, 0x70), 0);
    // Read-only registers ignore writes.
    write32(&mut t, 0x00, 0);
    write32(&mut t, 0x34, 1);
    assert_eq!(read32(&mut t, 0x00), MMIO_MAGIC_VALUE);
    assert_eq!(read32(&mut t, 0x34), 16);
    // Empty accesses.
    t.read(0x70, &mut []);
    t.write(0x70, &[]);
    assert!(log.lock().unwrap().activations.is_empty());
}

#[test]
fn config_space_reads_and_writes_reach_device_and_bounds_hold() {
    let (mut t, log) = mock_transport();
    let mut b = [0u8; 4];
    t.read(0x104, &mut b);
    assert_eq!(b, [5, 6, 7, 8]);
    let mut b1 = [0u8; 1];
    t.read(0x101, &mut b1);
    assert_eq!(b1, [2]);
    // Partly and wholly past the device's 8 bytes: the rest reads as zero.
    t.read(0x106, &mut b);
    assert_eq!(b, [7, 8, 0, 0]);
    b = [0xff; 4];
    t.read(0x800, &mut b);
    assert_eq!(b, [0; 4]);
    b = [0xff; 4];
    t.read(u64::MAX, &mut b);
    assert_eq!(b, [0; 4]);
    t.write(0x102, &[9, 9]);
    assert_eq!(log.lock().unwrap().config_writes, vec![(2, vec![9, 9])]);
}

#[test]
fn shared_memory_regions_are_absent() {
    let (mut t, _) = mock_transport();
    assert_eq!(read32(&mut t, 0xb0), u32::MAX);
    assert_eq!(read32(&mut t, 0xb4), u32::MAX);
}

#[test]
fn construction_rejects_bad_devices() {
    struct NoQueues;
    impl VirtioDevice for NoQueues {
        fn device_type(&self) -> u32 {
            7
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[]
        }
        fn avail_features(&self) -> u64 {
            VIRTIO_F_VERSION_1
        }
        fn ack_features(&mut self, _: u64) {}
        fn read_config(&self, _: u64, _: &mut [u8]) {}
        fn write_config(&mut self, _: u64, _: &[u8]) {}
        fn activate(
            &mut self,
            _: ActivateContext,
        ) -> Result<(), super::super::device::ActivateError> {
            Ok(())
        }
        fn reset(&mut self) {}
        fn queue_notified(&mut self, _: usize) -> Served {
            Served::Done
        }
    }
    let r = MmioTransport::new(
        memory(),
        Box::new(NoQueues),
        EventFd::new(EFD_NONBLOCK).unwrap(),
    );
    assert!(matches!(r, Err(MmioError::NoQueues(7))));
}

#[test]
fn linux_cmdline_fragment_formats() {
    assert_eq!(
        linux_cmdline_fragment(0xd000_0000, 0x1000, 5),
        "virtio_mmio.device=4K@0xd0000000:5"
    );
    assert_eq!(
        linux_cmdline_fragment(0xd000_1000, 0x20_0000, 12),
        "virtio_mmio.device=2M@0xd0001000:12"
    );
    assert_eq!(
        linux_cmdline_fragment(0x1000, 0x200, 6),
        "virtio_mmio.device=512@0x1000:6"
    );
}

#[test]
fn status_writes_never_call_the_device_on_the_writing_thread() {
    let (mut t, log) = mock_transport();
    full_init_pending(&mut t, &[16, 8]);
    write32(&mut t, 0x70, 0);
    full_init_pending(&mut t, &[16, 8]);
    write32(&mut t, 0x70, 0);
    write32(&mut t, 0x70, status::FAILED);
    {
        let l = log.lock().unwrap();
        assert_eq!((l.resets, l.activations.len(), l.acked), (0, 0, None));
        assert!(l.notified.is_empty());
    }
    assert!(t.has_pending());
    loop_applies(&mut t);
    let l = log.lock().unwrap();
    assert_eq!(l.resets, 1, "a burst collapses to one reset");
    assert!(l.activations.is_empty(), "the last write was a reset");
}

#[test]
fn reset_then_reactivate_before_the_loop_runs_ends_active() {
    let (mut t, log) = mock_transport();
    full_init(&mut t, &[16, 8]);
    log.lock().unwrap().notified.clear();
    // The guest resets and re-initialises twice before the loop gets a turn.
    for _ in 0..2 {
        write32(&mut t, 0x70, 0);
        full_init_pending(&mut t, &[8, 4]);
    }
    assert!(!t.is_activated(), "not live until the loop applied it");
    assert_eq!(read32(&mut t, 0x70), ALL_BUT_OK | status::DRIVER_OK);
    loop_applies(&mut t);
    assert!(t.is_activated());
    let l = log.lock().unwrap();
    assert_eq!(l.resets, 1);
    assert_eq!(
        l.activations.len(),
        2,
        "the first at full_init, then one more"
    );
    assert_eq!(l.activations[1][0].size, 8);
    assert_eq!(l.acked, Some(VIRTIO_F_VERSION_1));
    // Notifications that came before the activation was applied are not lost:
    // every queue is served once right after it.
    assert_eq!(
        l.notified.iter().map(|n| n.0).collect::<Vec<_>>(),
        vec![0, 1]
    );
}

#[test]
fn notify_between_driver_ok_and_the_loop_is_kept() {
    let (mut t, _) = mock_transport();
    full_init_pending(&mut t, &[16, 8]);
    write32(&mut t, 0x50, 1);
    assert_eq!(t.queue_evts()[1].read().unwrap(), 1);
}

#[test]
fn failed_activation_shows_needs_reset_once_the_loop_ran_it() {
    let (mut dev, _) = MockDevice::new();
    dev.fail_activate = true;
    let mut t =
        MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap();
    full_init_pending(&mut t, &[16, 8]);
    assert_eq!(read32(&mut t, 0x70), ALL_BUT_OK | status::DRIVER_OK);
    loop_applies(&mut t);
    assert_eq!(
        read32(&mut t, 0x70),
        ALL_BUT_OK | status::DRIVER_OK | status::DEVICE_NEEDS_RESET
    );
    assert!(!t.is_activated());
}
