//! A split virtqueue written byte by byte into guest memory, the way a guest
//! driver does it, so the devices' whole path runs: virtio-queue's chain walking
//! (indices, `next` links, loops, indirect tables) and then the device's parsing.
//! Nothing here validates what the fuzzer asks for: that is the device's job.

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::input::Input;
use crate::mem;

/// `VRING_DESC_F_NEXT`.
pub const F_NEXT: u16 = 1;
/// `VRING_DESC_F_WRITE`.
pub const F_WRITE: u16 = 2;
/// `VRING_DESC_F_INDIRECT`.
pub const F_INDIRECT: u16 = 4;

/// Where one queue lives in guest memory.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Descriptor table.
    pub desc: u64,
    /// Available ring.
    pub avail: u64,
    /// Used ring.
    pub used: u64,
    /// Queue size (entries).
    pub size: u16,
}

impl Layout {
    /// A queue of `size` entries whose three parts are packed from `base`
    /// (16 bytes per descriptor, then avail, then used; all 0x100-aligned).
    pub fn packed(base: u64, size: u16) -> Self {
        let n = u64::from(size);
        let desc = base;
        let avail = desc + ((16 * n + 0xff) & !0xff);
        let used = avail + ((6 + 2 * n + 0xff) & !0xff);
        Self {
            desc,
            avail,
            used,
            size,
        }
    }

    /// Whether all three parts end at or below `limit` (a layout the fuzzer chose
    /// may hold any addresses).
    pub fn below(&self, limit: u64) -> bool {
        let n = u64::from(self.size);
        [
            (self.desc, 16 * n),
            (self.avail, 6 + 2 * n),
            (self.used, 6 + 8 * n),
        ]
        .iter()
        .all(|&(start, len)| start.checked_add(len).is_some_and(|end| end <= limit))
    }
}

/// Writes descriptor `index` (ignores writes outside memory, like a buggy guest).
pub fn write_desc(
    m: &GuestMemoryMmap<()>,
    l: &Layout,
    index: u16,
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
) {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    let _ = m.write_slice(&raw, GuestAddress(l.desc + 16 * u64::from(index)));
}

/// Puts `head` in avail slot `slot % size` (does not publish it).
pub fn set_avail_slot(m: &GuestMemoryMmap<()>, l: &Layout, slot: u16, head: u16) {
    let off = 4 + 2 * u64::from(slot % l.size);
    let _ = m.write_obj(head, GuestAddress(l.avail + off));
}

/// Sets the avail ring's `idx` (what the guest publishes).
pub fn set_avail_idx(m: &GuestMemoryMmap<()>, l: &Layout, idx: u16) {
    let _ = m.write_obj(idx, GuestAddress(l.avail + 2));
}

/// The used ring's `idx` (what the device published).
pub fn used_idx(m: &GuestMemoryMmap<()>, l: &Layout) -> u16 {
    m.read_obj(GuestAddress(l.used + 2)).unwrap_or(0)
}

/// `(id, len)` of used slot `slot % size`.
pub fn used_elem(m: &GuestMemoryMmap<()>, l: &Layout, slot: u16) -> (u32, u32) {
    let off = l.used + 4 + 8 * u64::from(slot % l.size);
    let id = m.read_obj(GuestAddress(off)).unwrap_or(0);
    let len = m.read_obj(GuestAddress(off + 4)).unwrap_or(0);
    (id, len)
}

/// A ready queue at `l` for a device whose maximum is `max_size`, or `None` if
/// virtio-queue (as the mmio transport does on DRIVER_OK) finds it invalid.
pub fn queue(m: &GuestMemoryMmap<()>, l: &Layout, max_size: u16) -> Option<Queue> {
    let mut q = Queue::new(max_size).ok()?;
    q.try_set_size(l.size).ok()?;
    q.set_desc_table_address(Some(l.desc as u32), Some((l.desc >> 32) as u32));
    q.set_avail_ring_address(Some(l.avail as u32), Some((l.avail >> 32) as u32));
    q.set_used_ring_address(Some(l.used as u32), Some((l.used >> 32) as u32));
    q.set_ready(true);
    q.is_valid(m).then_some(q)
}

/// Fills the whole descriptor table of `l` from the input: mostly plausible
/// addresses/lengths, every flag combination, `next` sometimes out of range.
pub fn fill_table(m: &GuestMemoryMmap<()>, l: &Layout, inp: &mut Input) {
    for i in 0..l.size {
        let addr = mem::address(inp);
        let len = mem::length(inp);
        let flags = u16::from(inp.u8() & 0x0f);
        let next = u16::from(inp.u8()) % (l.size + 4);
        write_desc(m, l, i, addr, len, flags, next);
    }
}
