//! virtio-blk tests over mock guest memory and a real temporary file, through the
//! same `activate` + `queue_notified` path the event loop uses.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::*;
use crate::devices::virtio::block::request::{
    VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use crate::devices::virtio::device::VIRTIO_MMIO_INT_VRING;
use crate::devices::virtio::test_utils::memory;

pub(super) const F_WRITE: u16 = 2; // VIRTQ_DESC_F_WRITE
pub(super) const HDR: u64 = 0x10_0000;
pub(super) const DATA: u64 = 0x10_1000;
pub(super) const STATUS: u64 = 0x1f_0000;
pub(super) const SECTORS: u64 = 8;

/// A temporary disk image removed on drop.
pub(super) struct TempDisk(pub(super) PathBuf);

impl TempDisk {
    pub(super) fn new(content: &[u8]) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "kvmsandbox-blk-{}-{}.img",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }
    /// 8 sectors, each filled with its sector number.
    pub(super) fn patterned() -> Self {
        let mut v = Vec::new();
        for s in 0..SECTORS {
            v.extend(std::iter::repeat_n(s as u8, 512));
        }
        Self::new(&v)
    }
    pub(super) fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap()
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn open(disk: &TempDisk, read_only: bool, id: Option<&str>) -> Block {
    Block::open(&BlockConfig {
        path: disk.0.clone(),
        read_only,
        id: id.map(String::from),
    })
    .unwrap()
}

pub(super) fn d(addr: u64, len: u32, flags: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags, 0))
}

pub(super) fn header(mem: &GuestMemoryMmap<()>, t: u32, sector: u64) {
    mem.write_obj(t, GuestAddress(HDR)).unwrap();
    mem.write_obj(0u32, GuestAddress(HDR + 4)).unwrap();
    mem.write_obj(sector, GuestAddress(HDR + 8)).unwrap();
}

/// Result of one notify: used idx, the first used element, interrupt status.
#[derive(Debug)]
pub(super) struct Outcome {
    used_idx: u16,
    id: u32,
    len: u32,
    irq: u32,
    status: u8,
}

/// Puts `descs` on a fresh queue as one chain (NEXT links added), activates the
/// device on it, notifies, and reads back the result. The status byte is pre-set
/// to 0xff so "not written" is visible.
pub(super) fn submit(
    dev: &mut Block,
    mem: &GuestMemoryMmap<()>,
    descs: &[RawDescriptor],
) -> Outcome {
    mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    // Forget earlier submissions: the mock appends at the avail index in memory.
    mem.write_slice(&[0u8; 0x1000], GuestAddress(0)).unwrap();
    let vq = MockSplitQueue::create(mem, GuestAddress(0), 16);
    vq.build_desc_chain(descs).unwrap();
    run(dev, mem, &vq)
}

pub(super) fn run(
    dev: &mut Block,
    mem: &GuestMemoryMmap<()>,
    vq: &MockSplitQueue<GuestMemoryMmap<()>>,
) -> Outcome {
    let irq = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
    let queue = vq.create_queue().unwrap();
    dev.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![queue],
        interrupt: irq.clone(),
    })
    .unwrap();
    dev.queue_notified(0);
    let used = vq.used().ring().ref_at(0).unwrap().load();
    Outcome {
        used_idx: vq.used().idx().load(),
        id: used.id(),
        len: used.len(),
        irq: irq.status(),
        status: mem.read_obj(GuestAddress(STATUS)).unwrap(),
    }
}

pub(super) fn assert_status(o: &Outcome, status: u8, len: u32) {
    assert_eq!(o.used_idx, 1, "{o:?}");
    assert_eq!(o.id, 0, "{o:?}");
    assert_eq!(o.status, status, "{o:?}");
    assert_eq!(o.len, len, "{o:?}");
    assert_eq!(o.irq, VIRTIO_MMIO_INT_VRING, "{o:?}");
}

pub(super) fn ioerr(o: &Outcome) {
    assert_status(o, VIRTIO_BLK_S_IOERR, 1);
}

/// Malformed beyond reporting: in the used ring with length 0, status untouched.
pub(super) fn dropped(o: &Outcome) {
    assert_status(o, 0xff, 0);
}

#[test]
fn in_reads_sectors() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_IN, 2);
    let o = submit(
        &mut dev,
        &mem,
        &[
            d(HDR, 16, 0),
            d(DATA, 512, F_WRITE),
            d(DATA + 512, 512, F_WRITE),
            d(STATUS, 1, F_WRITE),
        ],
    );
    assert_status(&o, VIRTIO_BLK_S_OK, 1025);
    let mut buf = vec![0u8; 1024];
    mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert!(buf[..512].iter().all(|&b| b == 2));
    assert!(buf[512..].iter().all(|&b| b == 3));
}

#[test]
fn in_reads_large_buffer_in_chunks() {
    // 256 KiB image, one 128 KiB descriptor: more than one bounce chunk.
    let content: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let disk = TempDisk::new(&content);
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_IN, 128);
    let o = submit(
        &mut dev,
        &mem,
        &[
            d(HDR, 16, 0),
            d(DATA, 128 * 1024, F_WRITE),
            d(STATUS, 1, F_WRITE),
        ],
    );
    assert_status(&o, VIRTIO_BLK_S_OK, 128 * 1024 + 1);
    let mut buf = vec![0u8; 128 * 1024];
    mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert_eq!(buf, content[64 * 1024..192 * 1024]);
}

#[test]
fn out_writes_sectors() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_OUT, 5);
    mem.write_slice(&[0xab; 512], GuestAddress(DATA)).unwrap();
    let o = submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 512, 0), d(STATUS, 1, F_WRITE)],
    );
    assert_status(&o, VIRTIO_BLK_S_OK, 1);
    let bytes = disk.bytes();
    assert_eq!(bytes.len(), 4096);
    assert!(bytes[5 * 512..6 * 512].iter().all(|&b| b == 0xab));
    assert!(bytes[4 * 512..5 * 512].iter().all(|&b| b == 4));
    assert!(bytes[6 * 512..7 * 512].iter().all(|&b| b == 6));
}

#[test]
fn flush_succeeds() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_FLUSH, 0);
    let o = submit(&mut dev, &mem, &[d(HDR, 16, 0), d(STATUS, 1, F_WRITE)]);
    assert_status(&o, VIRTIO_BLK_S_OK, 1);
}

#[test]
fn flush_on_read_only_disk_succeeds() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, true, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_FLUSH, 0);
    let o = submit(&mut dev, &mem, &[d(HDR, 16, 0), d(STATUS, 1, F_WRITE)]);
    assert_status(&o, VIRTIO_BLK_S_OK, 1);
}

#[test]
fn get_id_pads_to_20_bytes() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, Some("disk-7"));
    let mem = memory();
    mem.write_slice(&[0xee; 32], GuestAddress(DATA)).unwrap();
    header(&mem, VIRTIO_BLK_T_GET_ID, 0);
    let o = submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 32, F_WRITE), d(STATUS, 1, F_WRITE)],
    );
    assert_status(&o, VIRTIO_BLK_S_OK, 21);
    let mut buf = [0u8; 32];
    mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert_eq!(&buf[..6], b"disk-7");
    assert!(buf[6..20].iter().all(|&b| b == 0));
    assert!(
        buf[20..].iter().all(|&b| b == 0xee),
        "nothing past 20 bytes"
    );
}

#[test]
fn get_id_into_short_buffer_truncates() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, Some("abcdefghij"));
    let mem = memory();
    mem.write_slice(&[0xee; 8], GuestAddress(DATA)).unwrap();
    header(&mem, VIRTIO_BLK_T_GET_ID, 0);
    let o = submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 4, F_WRITE), d(STATUS, 1, F_WRITE)],
    );
    assert_status(&o, VIRTIO_BLK_S_OK, 5);
    let mut buf = [0u8; 8];
    mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert_eq!(&buf, b"abcd\xee\xee\xee\xee");
}

#[test]
fn get_id_into_read_only_buffer_fails() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, Some("x"));
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_GET_ID, 0);
    ioerr(&submit(
        &mut dev,
        &mem,
        &[d(HDR, 16, 0), d(DATA, 20, 0), d(STATUS, 1, F_WRITE)],
    ));
}

#[test]
fn several_chains_one_interrupt() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_FLUSH, 0);
    let vq = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    // Two flush chains (descriptors 0-1 and 2-3) sharing the header.
    vq.add_desc_chains(
        &[
            RawDescriptor::from(Descriptor::new(HDR, 16, 1, 1)),
            RawDescriptor::from(Descriptor::new(STATUS, 1, F_WRITE, 0)),
            RawDescriptor::from(Descriptor::new(HDR, 16, 1, 3)),
            RawDescriptor::from(Descriptor::new(STATUS + 1, 1, F_WRITE, 0)),
        ],
        0,
    )
    .unwrap();
    let irq = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
    let queue = vq.create_queue().unwrap();
    dev.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![queue],
        interrupt: irq.clone(),
    })
    .unwrap();
    dev.queue_notified(0);
    assert_eq!(vq.used().idx().load(), 2);
    assert_eq!(vq.used().ring().ref_at(0).unwrap().load().id(), 0);
    assert_eq!(vq.used().ring().ref_at(1).unwrap().load().id(), 2);
    assert_eq!(
        irq.eventfd().read().unwrap(),
        1,
        "one interrupt for the batch"
    );
    // Nothing new: a second notify neither adds used entries nor interrupts.
    dev.queue_notified(0);
    assert_eq!(vq.used().idx().load(), 2);
    assert!(irq.eventfd().read().is_err());
}

#[test]
fn reset_device_ignores_notifications() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let mem = memory();
    header(&mem, VIRTIO_BLK_T_FLUSH, 0);
    let vq = MockSplitQueue::create(&mem, GuestAddress(0), 16);
    vq.build_desc_chain(&[d(HDR, 16, 0), d(STATUS, 1, F_WRITE)])
        .unwrap();
    let queue = vq.create_queue().unwrap();
    let irq = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
    dev.activate(ActivateContext {
        mem: mem.clone(),
        queues: vec![queue],
        interrupt: irq,
    })
    .unwrap();
    dev.reset();
    dev.queue_notified(0);
    assert_eq!(vq.used().idx().load(), 0);
    assert_eq!(dev.acked_features(), 0);
}

#[test]
fn activate_needs_exactly_one_queue() {
    let disk = TempDisk::patterned();
    let mut dev = open(&disk, false, None);
    let irq = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
    let r = dev.activate(ActivateContext {
        mem: memory(),
        queues: vec![],
        interrupt: irq,
    });
    assert!(matches!(
        r,
        Err(ActivateError::QueueCount {
            expected: 1,
            got: 0
        })
    ));
}

#[test]
fn config_space_layout() {
    let disk = TempDisk::patterned();
    let dev = open(&disk, false, None);
    let mut c = [0u8; CONFIG_LEN];
    dev.read_config(0, &mut c);
    assert_eq!(u64::from_le_bytes(c[0..8].try_into().unwrap()), SECTORS);
    assert_eq!(u32::from_le_bytes(c[12..16].try_into().unwrap()), SEG_MAX);
    assert_eq!(u32::from_le_bytes(c[20..24].try_into().unwrap()), 512);
    // Piecewise 4-byte reads, as a driver does.
    let mut lo = [0u8; 4];
    dev.read_config(0, &mut lo);
    assert_eq!(u32::from_le_bytes(lo), SECTORS as u32);
    let mut tail = [0xaau8; 8];
    dev.read_config(20, &mut tail);
    assert_eq!(
        tail,
        [0, 2, 0, 0, 0xaa, 0xaa, 0xaa, 0xaa],
        "past the end left as is"
    );
    let mut far = [0xaau8; 4];
    dev.read_config(u64::MAX, &mut far);
    assert_eq!(far, [0xaa; 4]);
    let f = dev.avail_features();
    assert_ne!(f & VIRTIO_F_VERSION_1, 0);
    assert_ne!(f & VIRTIO_BLK_F_FLUSH, 0);
    assert_ne!(f & VIRTIO_BLK_F_BLK_SIZE, 0);
    assert_ne!(f & VIRTIO_BLK_F_SEG_MAX, 0);
    assert_eq!(f & VIRTIO_BLK_F_RO, 0);
    assert_eq!(f & (1 << 29), 0, "EVENT_IDX not offered");
}

#[test]
fn open_errors_name_the_problem() {
    let missing =
        std::env::temp_dir().join(format!("kvmsandbox-blk-missing-{}", std::process::id()));
    let cfg = |path: PathBuf| BlockConfig {
        path,
        read_only: false,
        id: None,
    };
    let e = Block::open(&cfg(missing.clone())).err().unwrap();
    assert!(
        matches!(e, BlockError::NotFound(ref p) if *p == missing),
        "{e}"
    );

    let e = Block::open(&cfg(std::env::temp_dir())).err().unwrap();
    assert!(matches!(e, BlockError::IsDirectory(_)), "{e}");

    let odd = TempDisk::new(&[0u8; 1000]);
    let e = Block::open(&cfg(odd.0.clone())).err().unwrap();
    assert!(
        matches!(e, BlockError::UnalignedSize { size: 1000, .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("1000") && msg.contains(&odd.0.display().to_string()),
        "{msg}"
    );

    let ok = TempDisk::patterned();
    let e = Block::open(&BlockConfig {
        path: ok.0.clone(),
        read_only: false,
        id: Some("x".repeat(21)),
    })
    .err()
    .unwrap();
    assert!(matches!(e, BlockError::IdTooLong { len: 21, .. }), "{e}");
    assert!(Block::open(&BlockConfig {
        path: ok.0.clone(),
        read_only: false,
        id: Some("y".repeat(20))
    })
    .is_ok());
}

#[test]
fn open_without_permission() {
    use std::os::unix::fs::PermissionsExt;
    let disk = TempDisk::patterned();
    std::fs::set_permissions(&disk.0, std::fs::Permissions::from_mode(0o400)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let rw = Block::open(&BlockConfig {
        path: disk.0.clone(),
        read_only: false,
        id: None,
    });
    if root {
        // Root bypasses file modes; the read-write open legitimately succeeds.
        assert!(rw.is_ok());
    } else {
        assert!(matches!(
            rw,
            Err(BlockError::PermissionDenied {
                mode: "read-write",
                ..
            })
        ));
    }
    // Read-only access to a 0400 file works for its owner.
    let ro = Block::open(&BlockConfig {
        path: disk.0.clone(),
        read_only: true,
        id: None,
    })
    .unwrap();
    assert_eq!(ro.capacity(), SECTORS);
}

#[test]
fn read_through_mmio_transport_end_to_end() {
    use crate::devices::bus::BusDevice;
    use crate::devices::virtio::mmio::{status, MmioTransport};
    use crate::devices::virtio::test_utils::{negotiate, read32, write32};

    let disk = TempDisk::patterned();
    let dev = open(&disk, false, Some("e2e"));
    let mem = memory();
    let mut t = MmioTransport::new(
        mem.clone(),
        Box::new(dev),
        EventFd::new(EFD_NONBLOCK).unwrap(),
    )
    .unwrap();
    assert_eq!(read32(&mut t, 0x08), 2, "device id: block");
    assert_eq!(read32(&mut t, 0x34), u32::from(QUEUE_SIZE));
    let mut cap = [0u8; 8];
    t.read(0x100, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), SECTORS);

    let st = negotiate(&mut t, VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH);
    assert_ne!(st & status::FEATURES_OK, 0);
    let vq = MockSplitQueue::create(&mem, GuestAddress(0x8000), 16);
    write32(&mut t, 0x30, 0);
    write32(&mut t, 0x38, 16);
    write32(&mut t, 0x80, vq.desc_table_addr().0 as u32);
    write32(&mut t, 0x90, vq.avail_addr().0 as u32);
    write32(&mut t, 0xa0, vq.used_addr().0 as u32);
    write32(&mut t, 0x44, 1);
    write32(&mut t, 0x70, st | status::DRIVER_OK);
    t.apply_pending(); // what the event loop does when the control eventfd fires
    assert!(t.is_activated());

    header(&mem, VIRTIO_BLK_T_IN, 6);
    vq.build_desc_chain(&[d(HDR, 16, 0), d(DATA, 512, F_WRITE), d(STATUS, 1, F_WRITE)])
        .unwrap();
    // The guest's QueueNotify (no ioeventfd): lands in the queue eventfd...
    write32(&mut t, 0x50, 0);
    assert_eq!(t.queue_evts()[0].read().unwrap(), 1);
    // ...and the event loop then calls this.
    t.queue_event(0);
    assert_eq!(vq.used().idx().load(), 1);
    assert_eq!(vq.used().ring().ref_at(0).unwrap().load().len(), 513);
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        VIRTIO_BLK_S_OK
    );
    let mut buf = [0u8; 512];
    mem.read_slice(&mut buf, GuestAddress(DATA)).unwrap();
    assert!(buf.iter().all(|&b| b == 6));
    assert_eq!(read32(&mut t, 0x60), VIRTIO_MMIO_INT_VRING);
    assert_eq!(t.interrupt().eventfd().read().unwrap(), 1);
    write32(&mut t, 0x64, VIRTIO_MMIO_INT_VRING);
    assert_eq!(read32(&mut t, 0x60), 0);
}
