//! virtio-blk: malformed and hostile requests. Each must end in the used ring with
//! the right status byte (or length 0 when no status byte can be written), leave
//! the disk untouched, and never panic or hang.

use vm_memory::{Bytes, GuestAddress};

use super::tests::*;
use crate::devices::virtio::block::device::VIRTIO_BLK_F_RO;
use crate::devices::virtio::block::request::{
    VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN,
    VIRTIO_BLK_T_OUT,
};
use crate::devices::virtio::device::{ActivateContext, Interrupt, VirtioDevice};
use crate::devices::virtio::test_utils::memory;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

#[test]
fn header_too_short() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_IN, 0);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 8, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)],
    ));
}

#[test]
fn header_write_only() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_IN, 0);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[
            d(HDR, 16, F_WRITE),
            d(DATA, 512, F_WRITE),
            d(STATUS, 1, F_WRITE),
        ],
    ));
}

#[test]
fn missing_status_descriptor() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_FLUSH, 0);
    // Header alone.
    dropped(&submit(&mut dev, &mem, &[d(HDR, 16, 0)]));
    // OUT whose last descriptor is its read-only data: nothing written, file unchanged.
    header(&mem, VIRTIO_BLK_T_OUT, 0);
    mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    dropped(&submit(&mut dev, &mem, &[d(HDR, 16, 0), d(DATA, 512, 0)]));
    assert_eq!(disk.bytes(), TempDisk::patterned().bytes());
}

#[test]
fn read_only_status_descriptor() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_FLUSH, 0);
    dropped(&submit(&mut dev, &mem, &[d(HDR, 16, 0), d(STATUS, 1, 0)]));
}

#[test]
fn zero_length_status_descriptor() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_FLUSH, 0);
    dropped(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(STATUS, 0, F_WRITE)],
    ));
}

#[test]
fn in_into_read_only_buffer() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    mem.write_slice(&[0xee; 512], GuestAddress(DATA)).unwrap();
    header(&mem, VIRTIO_BLK_T_IN, 1);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 512, 0), d(STATUS, 1, F_WRITE)],
    ));
    let mut buf = [0u8; 512];
    mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert!(buf.iter().all(|&b| b == 0xee), "guest buffer untouched");
}

#[test]
fn out_from_write_only_buffer() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    header(&mem, VIRTIO_BLK_T_OUT, 1);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)],
    ));
    assert_eq!(disk.bytes(), TempDisk::patterned().bytes());
}

#[test]
fn zero_length_data() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_IN, 0);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 0, F_WRITE), d(STATUS, 1, F_WRITE)],
    ));
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(STATUS, 1, F_WRITE)],
    ));
    header(&mem, VIRTIO_BLK_T_GET_ID, 0);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(STATUS, 1, F_WRITE)],
    ));
}

#[test]
fn length_not_multiple_of_512() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_IN, 0);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 100, F_WRITE), d(STATUS, 1, F_WRITE)],
    ));
    header(&mem, VIRTIO_BLK_T_OUT, 0);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[
            d(HDR, 16, 0),
            d(DATA, 512, 0),
            d(DATA + 512, 10, 0),
            d(STATUS, 1, F_WRITE),
        ],
    ));
    assert_eq!(disk.bytes(), TempDisk::patterned().bytes());
}

#[test]
fn sector_past_the_end() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_IN, SECTORS);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)],
    ));
    // Starts inside, ends outside.
    header(&mem, VIRTIO_BLK_T_OUT, SECTORS - 1);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 1024, 0), d(STATUS, 1, F_WRITE)],
    ));
    assert_eq!(
        disk.bytes().len() as u64,
        SECTORS * 512,
        "file not extended"
    );
    // The last sector exactly is fine.
    header(&mem, VIRTIO_BLK_T_IN, SECTORS - 1);
    let o = submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)],
    );
    assert_status(&o, VIRTIO_BLK_S_OK, 513);
}

#[test]
fn sector_plus_length_overflow() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    for sector in [u64::MAX, u64::MAX / 512, u64::MAX - 1] {
        header(&mem, VIRTIO_BLK_T_IN, sector);
        ioerr(&submit(
            &mut dev,
            &mem,
            &[d(HDR, 16, 0), d(DATA, 1024, F_WRITE), d(STATUS, 1, F_WRITE)],
        ));
    }
}

#[test]
fn write_to_read_only_disk_leaves_file_unchanged() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, true, None);
    assert_ne!(dev.avail_features() & VIRTIO_BLK_F_RO, 0);
    let mem = memory();
    mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    header(&mem, VIRTIO_BLK_T_OUT, 0);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 512, 0), d(STATUS, 1, F_WRITE)],
    ));
    assert_eq!(disk.bytes(), TempDisk::patterned().bytes());
    // Reads still work.
    header(&mem, VIRTIO_BLK_T_IN, 3);
    let o = submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)],
    );
    assert_status(&o, VIRTIO_BLK_S_OK, 513);
}

#[test]
fn unknown_request_type_is_unsupported() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    for t in [2u32, 11, 13, 0xdead_beef] {
        header(&mem, t, 0);
        let o = submit(
            &mut dev,
            &mem,
            &[d(HDR, 16, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)],
        );
        assert_status(&o, VIRTIO_BLK_S_UNSUPP, 1);
    }
}

#[test]
fn descriptor_outside_guest_memory() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_IN, 0);
    // Data far outside the 2 MiB of RAM, and straddling its end.
    ioerr(&submit(
        &mut dev,
        &mem,
        &[
            d(HDR, 16, 0),
            d(0x1000_0000, 512, F_WRITE),
            d(STATUS, 1, F_WRITE),
        ],
    ));
    ioerr(&submit(
        &mut dev,
        &mem,
        &[
            d(HDR, 16, 0),
            d(0x1f_ff00, 512, F_WRITE),
            d(STATUS, 1, F_WRITE),
        ],
    ));
    ioerr(&submit(
        &mut dev,
        &mem,
        &[
            d(HDR, 16, 0),
            d(u64::MAX - 100, 512, F_WRITE),
            d(STATUS, 1, F_WRITE),
        ],
    ));
    // Header outside: status still reportable.
    ioerr(&submit(
        &mut dev,
        &mem,
        &[
            d(0x1000_0000, 16, 0),
            d(DATA, 512, F_WRITE),
            d(STATUS, 1, F_WRITE),
        ],
    ));
    // Status outside: nothing can be reported.
    let o = submit(
        &mut dev,
        &mem,
        &[
            d(HDR, 16, 0),
            d(DATA, 512, F_WRITE),
            d(0x1000_0000, 1, F_WRITE),
        ],
    );
    dropped(&o);
}

#[test]
fn descriptor_loop_is_dropped_not_hung() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_FLUSH, 0);
    mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    let vq = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    const NEXT: u16 = 1;
    // 0 -> 1 -> 0 -> ...
    vq.add_desc_chains(
        &[
            RawDescriptor::from(Descriptor::new(HDR, 16, NEXT, 1)),
            RawDescriptor::from(Descriptor::new(STATUS, 1, NEXT | F_WRITE, 0)),
        ],
        0,
    )
    .unwrap();
    dropped(&run(&mut dev, &mem, &vq));
}

#[test]
fn avail_index_jump_sets_needs_reset_instead_of_going_silent() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    let vq = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    let irq = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
    dev.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![vq.create_queue().unwrap()],
        interrupt: irq.clone(),
    })
    .unwrap();
    // The guest claims 60000 new requests in a 16-entry queue.
    vq.avail().idx().store(60000);
    dev.queue_notified(0);
    assert_eq!(vq.used().idx().load(), 0, "nothing is consumed");
    assert!(irq.needs_reset(), "the device reports DEVICE_NEEDS_RESET");
    assert_ne!(
        irq.status() & crate::devices::virtio::device::VIRTIO_MMIO_INT_CONFIG,
        0,
        "and interrupts the driver"
    );
    // A device reset clears it.
    irq.clear();
    assert!(!irq.needs_reset());
}

/// INDIRECT is never offered: a chain using it comes back unserved (length 0,
/// status byte untouched) and its table is not followed: the buffers it names are
/// neither read nor written, the disk is unchanged.
#[test]
fn indirect_descriptors_are_refused_not_followed() {
    use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT};
    const TABLE: u64 = 0x18_0000;
    let (next, indirect) = (VRING_DESC_F_NEXT as u16, VRING_DESC_F_INDIRECT as u16);
    let disk = TempDisk::patterned();
    let before = disk.bytes();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    let table = |entries: &[Descriptor]| {
        for (k, e) in entries.iter().enumerate() {
            mem.write_obj(RawDescriptor::from(*e), GuestAddress(TABLE + 16 * k as u64))
                .unwrap();
        }
        d(TABLE, 16 * entries.len() as u32, indirect)
    };
    let data_and_status = [
        Descriptor::new(DATA, 512, F_WRITE | next, 1),
        Descriptor::new(STATUS, 1, F_WRITE, 0),
    ];
    let untouched = |fill: u8| {
        let mut b = [0u8; 512];
        mem.read_slice(&mut b, GuestAddress(DATA)).unwrap();
        assert!(b.iter().all(|&x| x == fill), "data buffer written");
    };

    // A read whose data and status buffers are only in the table.
    header(&mem, VIRTIO_BLK_T_IN, 0);
    mem.write_slice(&[0xa5; 512], GuestAddress(DATA)).unwrap();
    let t = table(&data_and_status);
    dropped(&submit(&mut dev, &mem, &[d(HDR, 16, 0), t]));
    untouched(0xa5);

    // A write whose data is only in the table.
    header(&mem, VIRTIO_BLK_T_OUT, 1);
    mem.write_slice(&[0x77; 512], GuestAddress(DATA)).unwrap();
    let t = table(&[
        Descriptor::new(DATA, 512, next, 1),
        Descriptor::new(STATUS, 1, F_WRITE, 0),
    ]);
    dropped(&submit(&mut dev, &mem, &[d(HDR, 16, 0), t]));
    assert!(
        disk.bytes() == before,
        "disk written through an indirect table"
    );

    // The whole request in the table (the head itself is indirect).
    header(&mem, VIRTIO_BLK_T_IN, 0);
    mem.write_slice(&[0xa5; 512], GuestAddress(DATA)).unwrap();
    let t = table(&[
        Descriptor::new(HDR, 16, next, 1),
        Descriptor::new(DATA, 512, F_WRITE | next, 2),
        Descriptor::new(STATUS, 1, F_WRITE, 0),
    ]);
    dropped(&submit(&mut dev, &mem, &[t]));
    untouched(0xa5);

    // The device still serves a plain request afterwards.
    header(&mem, VIRTIO_BLK_T_IN, 2);
    let o = submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)],
    );
    assert_status(&o, VIRTIO_BLK_S_OK, 513);
    untouched(2);
}
