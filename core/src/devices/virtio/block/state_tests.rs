//! Snapshot state of a blk device behind its transport, over mock guest memory:
//! a capture applied to a fresh transport reads back equal, the restored device
//! continues from the saved ring positions (no request served twice, no spurious
//! interrupt, every ready queue signalled once), mismatches change nothing, and
//! work the state cannot carry refuses a capture.

use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::tests::{d, header, open, TempDisk, DATA, F_WRITE, HDR, STATUS};
use super::*;
use crate::devices::virtio::block::request::VIRTIO_BLK_T_IN;
use crate::devices::virtio::device::VIRTIO_MMIO_INT_VRING;
use crate::devices::virtio::mmio::{status, MmioTransport};
use crate::devices::virtio::state::{DeviceKindState, DeviceStateError};
use crate::devices::virtio::test_utils::{memory, negotiate, write32};

const QUEUE_AT: u64 = 0x8000;

fn transport(mem: &GuestMemoryMmap<()>, disk: &TempDisk, read_only: bool) -> MmioTransport {
    MmioTransport::new(
        mem.clone(),
        Box::new(open(disk, read_only, Some("snap"))),
        EventFd::new(EFD_NONBLOCK).unwrap(),
    )
    .unwrap()
}

/// Drives `t` to DRIVER_OK on `vq` and applies it.
fn activate(t: &mut MmioTransport, vq: &MockSplitQueue<GuestMemoryMmap<()>>) {
    let st = negotiate(t, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH);
    write32(t, 0x30, 0);
    write32(t, 0x38, 16);
    write32(t, 0x80, vq.desc_table_addr().0 as u32);
    write32(t, 0x90, vq.avail_addr().0 as u32);
    write32(t, 0xa0, vq.used_addr().0 as u32);
    write32(t, 0x44, 1);
    write32(t, 0x70, st | status::DRIVER_OK);
    t.apply_pending();
    assert!(t.is_activated());
}

fn read_sector(mem: &GuestMemoryMmap<()>, vq: &MockSplitQueue<GuestMemoryMmap<()>>, sector: u64) {
    header(mem, VIRTIO_BLK_T_IN, sector);
    vq.build_desc_chain(&[d(HDR, 16, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)])
        .unwrap();
}

#[test]
fn transport_state_round_trips_and_the_restored_device_continues_from_it() {
    let disk = TempDisk::patterned();
    let mem = memory();
    let mut t = transport(&mem, &disk, false);
    let vq = MockSplitQueue::create(&mem, GuestAddress(QUEUE_AT), 16);
    activate(&mut t, &vq);
    // One request served: the device's ring positions move to 1, and the
    // driver has not acknowledged the interrupt yet.
    read_sector(&mem, &vq, 3);
    t.queue_event(0);
    assert_eq!(vq.used().idx().load(), 1);
    let _ = t.interrupt().eventfd().read();
    let saved = t.save_state().unwrap();
    let q = saved.transport.queues[0];
    assert_eq!(
        (q.next_avail, q.next_used, q.size, q.ready),
        (1, 1, 16, true)
    );
    assert!(saved.transport.activated);
    assert_eq!(saved.transport.interrupt_status, VIRTIO_MMIO_INT_VRING);
    assert_ne!(saved.transport.status & status::DRIVER_OK, 0);
    match &saved.device {
        DeviceKindState::Block(b) => {
            assert_eq!(
                (b.capacity, b.read_only, b.id.as_slice()),
                (8, false, &b"snap"[..])
            )
        }
        other => panic!("blk state expected, got {other:?}"),
    }

    // Plain data: it survives serialization unchanged (the Sandbox layer writes files).
    let json = serde_json::to_string(&saved).unwrap();
    assert_eq!(
        serde_json::from_str::<crate::devices::virtio::DeviceState>(&json).unwrap(),
        saved
    );

    // A fresh transport, as the guest's driver never set it up, becomes the saved one.
    let mut fresh = transport(&mem, &disk, false);
    fresh.restore_state(&saved).unwrap();
    assert_eq!(fresh.save_state().unwrap(), saved);
    assert!(fresh.is_activated());
    assert_eq!(fresh.status(), saved.transport.status);
    assert_eq!(fresh.interrupt().status(), VIRTIO_MMIO_INT_VRING);
    // Every ready queue is signalled once for the event loop; no interrupt is raised.
    assert_eq!(fresh.queue_evts()[0].read().unwrap(), 1);
    assert!(
        fresh.interrupt().eventfd().read().is_err(),
        "spurious interrupt"
    );

    // The loop serves the queue: nothing new, so nothing happens…
    fresh.queue_event(0);
    assert_eq!(vq.used().idx().load(), 1);
    assert!(
        fresh.interrupt().eventfd().read().is_err(),
        "spurious interrupt"
    );
    // …and the next request lands in used slot 1: request 0 is not served again.
    read_sector(&mem, &vq, 5);
    fresh.queue_event(0);
    // One more used entry: request 0 was not served again.
    assert_eq!(vq.used().idx().load(), 2);
    assert_eq!(vq.used().ring().ref_at(1).unwrap().load().len(), 513);
    let mut buf = [0u8; 512];
    mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert!(buf.iter().all(|&b| b == 5));
}

#[test]
fn a_mismatched_state_is_refused_and_changes_nothing() {
    let disk = TempDisk::patterned();
    let mem = memory();
    let mut t = transport(&mem, &disk, false);
    let vq = MockSplitQueue::create(&mem, GuestAddress(QUEUE_AT), 16);
    activate(&mut t, &vq);
    let saved = t.save_state().unwrap();

    let bigger = TempDisk::new(&[0u8; 16 * 512]);
    let mut other = transport(&mem, &bigger, false);
    let before = other.save_state().unwrap();
    match other.restore_state(&saved) {
        Err(DeviceStateError::DiskSize {
            snapshot: 8,
            device: 16,
        }) => {}
        r => panic!("expected DiskSize, got {r:?}"),
    }
    assert_eq!(other.save_state().unwrap(), before);

    let mut ro = transport(&mem, &disk, true);
    assert!(matches!(
        ro.restore_state(&saved),
        Err(DeviceStateError::DiskReadOnly {
            snapshot: false,
            device: true
        })
    ));
    let mut wrong = saved.clone();
    wrong.transport.version += 1;
    assert!(matches!(
        t.check_state(&wrong),
        Err(DeviceStateError::Version { .. })
    ));
    let mut wrong = saved.clone();
    wrong.transport.queues[0].size = 3;
    assert!(matches!(
        t.check_state(&wrong),
        Err(DeviceStateError::InvalidQueue { index: 0, .. })
    ));
    let mut wrong = saved.clone();
    wrong.transport.queues[0].used_ring = 0x1000_0000;
    assert!(matches!(
        t.check_state(&wrong),
        Err(DeviceStateError::InvalidQueue { index: 0, .. })
    ));
    let mut wrong = saved;
    wrong.transport.queues.push(wrong.transport.queues[0]);
    assert!(matches!(
        t.check_state(&wrong),
        Err(DeviceStateError::QueueLayout { .. })
    ));
}

#[test]
fn unfinished_work_refuses_a_capture() {
    let disk = TempDisk::patterned();
    let mem = memory();
    let mut t = transport(&mem, &disk, false);
    let st = negotiate(&mut t, VIRTIO_F_VERSION_1);
    let vq = MockSplitQueue::create(&mem, GuestAddress(QUEUE_AT), 16);
    write32(&mut t, 0x38, 16);
    write32(&mut t, 0x80, vq.desc_table_addr().0 as u32);
    write32(&mut t, 0x90, vq.avail_addr().0 as u32);
    write32(&mut t, 0xa0, vq.used_addr().0 as u32);
    write32(&mut t, 0x44, 1);
    // DRIVER_OK written, not yet applied by the event loop.
    write32(&mut t, 0x70, st | status::DRIVER_OK);
    assert!(matches!(
        t.save_state(),
        Err(DeviceStateError::NotQuiescent { device_type: 2, .. })
    ));
    t.apply_pending();
    assert!(t.save_state().is_ok());
}
