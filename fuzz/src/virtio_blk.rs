//! `virtio_blk`: a guest-written request queue served by the real `Block` device
//! (virtio-queue chain walking, `request::parse`, `execute`, status writes) over an
//! in-memory disk that checks the parser's promises.
//!
//! Input: flags byte, the 16-entry descriptor table, the avail ring, then bytes
//! copied into guest memory at `DATA_START` (request headers, data).

use std::io;
use std::path::Path;
use std::sync::Mutex;

use kvmsandbox::devices::virtio::block::request::SECTOR_SIZE;
use kvmsandbox::devices::virtio::block::{Block, BlockBackend};
use kvmsandbox::devices::virtio::{ActivateContext, Interrupt, VirtioDevice};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::input::Input;
use crate::mem::{self, DATA_START};
use crate::ring::{self, Layout};

/// Disk size: 16 sectors.
pub const DISK_LEN: u64 = 16 * SECTOR_SIZE;

/// An in-memory disk that panics if the device breaks the `BlockBackend` contract
/// ("offsets and lengths were already checked against `len`") or writes to a
/// read-only disk.
pub struct CheckedDisk {
    bytes: Mutex<Vec<u8>>,
    read_only: bool,
    fail_io: bool,
}

impl CheckedDisk {
    /// A zeroed disk of [`DISK_LEN`] bytes; `fail_io` makes every call an EIO.
    pub fn new(read_only: bool, fail_io: bool) -> Self {
        Self {
            bytes: Mutex::new(vec![0; DISK_LEN as usize]),
            read_only,
            fail_io,
        }
    }

    fn range(&self, offset: u64, len: usize) -> std::ops::Range<usize> {
        let end = offset.checked_add(len as u64);
        assert!(
            end.is_some_and(|e| e <= DISK_LEN),
            "backend access {offset}+{len} past the disk end {DISK_LEN}: the parser let it through"
        );
        offset as usize..offset as usize + len
    }

    fn io(&self) -> io::Result<()> {
        if self.fail_io {
            Err(io::Error::from_raw_os_error(libc::EIO))
        } else {
            Ok(())
        }
    }
}

impl BlockBackend for CheckedDisk {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len());
        self.io()?;
        let disk = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        buf.copy_from_slice(&disk[r]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let r = self.range(offset, buf.len());
        assert!(
            !self.read_only,
            "write of {} bytes at {offset} to a read-only disk",
            buf.len()
        );
        self.io()?;
        let mut disk = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        disk[r].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.io()
    }

    fn len(&self) -> u64 {
        DISK_LEN
    }
}

/// Queue size the guest sets up.
const QSIZE: u16 = 16;

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let read_only = flags & 1 != 0;
    let fail_io = flags & 2 != 0;

    let m = mem::guest_memory();
    let l = Layout::packed(0, QSIZE);
    ring::fill_table(&m, &l, &mut inp);
    let chains = inp.u8() % (QSIZE as u8 + 2);
    for slot in 0..u16::from(chains) {
        ring::set_avail_slot(&m, &l, slot, u16::from(inp.u8()) % (QSIZE + 2));
    }
    // Sometimes an absurd idx (more chains than the ring holds).
    let idx = if flags & 4 != 0 {
        inp.u16()
    } else {
        u16::from(chains)
    };
    ring::set_avail_idx(&m, &l, idx);
    let payload = inp.rest();
    let _ = m.write_slice(
        &payload[..payload.len().min(0x7000)],
        GuestAddress(DATA_START),
    );

    let disk = CheckedDisk::new(read_only, fail_io);
    let mut blk = Block::with_backend(
        Box::new(disk),
        Path::new("fuzz-disk"),
        read_only,
        Some("fuzz-disk-id"),
    )
    .expect("fuzz harness: 16-sector disk and a short id are valid");
    let Some(q) = ring::queue(&m, &l, 256) else {
        return;
    };
    let interrupt = Interrupt::new(EventFd::new(EFD_NONBLOCK).expect("fuzz harness: eventfd"));
    blk.activate(ActivateContext {
        mem: m.clone(),
        queues: vec![q],
        interrupt: interrupt.clone(),
    })
    .expect("fuzz harness: one queue is what virtio-blk needs");
    blk.queue_notified(0);
    if crate::trace_enabled() {
        let status: u8 = m
            .read_obj(GuestAddress(DATA_START + 0x1400))
            .unwrap_or(0xff);
        let (id, len) = ring::used_elem(&m, &l, 0);
        eprintln!(
            "virtio_blk: used idx {} first ({id}, {len}), status at +0x1400: {status}",
            ring::used_idx(&m, &l)
        );
    }

    // A second kick with nothing new, and a kick after reset, are no-ops.
    blk.queue_notified(0);
    blk.reset();
    blk.queue_notified(0);
}
