//! A split virtqueue, driver side (virtio 1.x §2.7): descriptor table, available
//! ring and used ring, each in its own zeroed page-aligned allocation that lives
//! as long as the guest (queues are never torn down). Descriptors are handed out
//! from a free stack; a used element gives its whole chain back.
//!
//! Ordering: descriptor and ring-slot writes happen before the `idx` store
//! (release fence); the used `idx` is read before the element (acquire fence). On
//! x86 those are compiler barriers; the doorbell itself is fenced in `mmio.rs`.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::vec::Vec;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
/// Longest chain [`Virtqueue::push`] accepts.
pub const MAX_CHAIN: usize = 8;

#[repr(C)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// One buffer of a chain: address, length, and whether the device writes it.
#[derive(Clone, Copy, Debug)]
pub struct Buf {
    pub addr: u64,
    pub len: u32,
    pub device_writes: bool,
}

impl Buf {
    /// A buffer the device reads.
    pub fn readable(data: &[u8]) -> Self {
        Buf {
            addr: data.as_ptr() as u64,
            len: data.len() as u32,
            device_writes: false,
        }
    }
    /// A buffer the device writes.
    pub fn writable(data: &mut [u8]) -> Self {
        Buf {
            addr: data.as_mut_ptr() as u64,
            len: data.len() as u32,
            device_writes: true,
        }
    }
}

/// A split virtqueue.
pub struct Virtqueue {
    index: u32,
    size: u16,
    desc: *mut Desc,
    avail: *mut u16,
    used: *mut u8,
    free: Vec<u16>,
    avail_idx: u16,
    last_used: u16,
}

fn page_alloc(bytes: usize) -> *mut u8 {
    let layout = match Layout::from_size_align(bytes.max(1), 4096) {
        Ok(l) => l,
        Err(_) => panic!("virtqueue layout of {bytes} bytes"),
    };
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        panic!("out of memory allocating a virtqueue ring of {bytes} bytes");
    }
    p
}

impl Virtqueue {
    /// Allocates the rings for a queue of `size` entries (a power of two).
    pub fn new(size: u16, index: u32) -> Self {
        let n = usize::from(size);
        let desc = page_alloc(16 * n).cast::<Desc>();
        let avail = page_alloc(6 + 2 * n).cast::<u16>();
        let used = page_alloc(6 + 8 * n);
        Virtqueue {
            index,
            size,
            desc,
            avail,
            used,
            free: (0..size).rev().collect(),
            avail_idx: 0,
            last_used: 0,
        }
    }

    /// Guest-physical addresses of the descriptor table, avail ring and used ring.
    pub fn addresses(&self) -> (u64, u64, u64) {
        (self.desc as u64, self.avail as u64, self.used as u64)
    }

    /// The queue's index on its device (for QueueNotify).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Descriptors not currently owned by the device.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Number of entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Puts a chain made of `bufs` on the available ring. Returns its head
    /// descriptor id, or `None` when too few descriptors are free (or the chain is
    /// longer than [`MAX_CHAIN`]). The buffers must
    /// stay valid until the chain comes back from [`Virtqueue::pop_used`].
    pub fn push(&mut self, bufs: &[Buf]) -> Option<u16> {
        if bufs.is_empty() || bufs.len() > MAX_CHAIN || bufs.len() > self.free.len() {
            return None;
        }
        // A fixed array, not a Vec: this runs per packet and allocation is slow here.
        let mut ids = [0u16; MAX_CHAIN];
        for id in ids.iter_mut().take(bufs.len()) {
            *id = self.free.pop()?;
        }
        let ids = &ids[..bufs.len()];
        for (i, (b, &id)) in bufs.iter().zip(ids.iter()).enumerate() {
            let next = ids.get(i + 1).copied();
            let mut flags = if b.device_writes { DESC_F_WRITE } else { 0 };
            if next.is_some() {
                flags |= DESC_F_NEXT;
            }
            // SAFETY: id < size (the free stack only holds indices below size), so
            // the descriptor is inside the table allocated in `new`.
            unsafe {
                write_volatile(
                    self.desc.add(usize::from(id)),
                    Desc {
                        addr: b.addr,
                        len: b.len,
                        flags,
                        next: next.unwrap_or(0),
                    },
                );
            }
        }
        let head = ids[0];
        let slot = usize::from(self.avail_idx % self.size);
        // SAFETY: ring slot `slot` < size lies inside the avail allocation (flags,
        // idx, then `size` entries).
        unsafe { write_volatile(self.avail.add(2 + slot), head) };
        fence(Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // SAFETY: `idx` is the second u16 of the avail ring.
        unsafe { write_volatile(self.avail.add(1), self.avail_idx) };
        Some(head)
    }

    /// The next used chain, as (head id, bytes the device wrote), giving its
    /// descriptors back to the free stack.
    pub fn pop_used(&mut self) -> Option<(u16, u32)> {
        // SAFETY: `idx` is the u16 at offset 2 of the used ring allocation.
        let used_idx = unsafe { read_volatile(self.used.add(2).cast::<u16>()) };
        if used_idx == self.last_used {
            return None;
        }
        fence(Ordering::Acquire);
        let slot = usize::from(self.last_used % self.size);
        // SAFETY: element `slot` < size lies inside the used ring (4-byte header,
        // then `size` 8-byte elements); the allocation is 4096-aligned.
        let (id, len) = unsafe {
            let elem = self.used.add(4 + 8 * slot).cast::<u32>();
            (read_volatile(elem), read_volatile(elem.add(1)))
        };
        self.last_used = self.last_used.wrapping_add(1);
        let id = id as u16;
        if id >= self.size {
            // A broken device; drop the element rather than corrupt the free stack.
            return None;
        }
        let mut cur = id;
        for _ in 0..self.size {
            // SAFETY: cur < size (checked above and below).
            let d = unsafe { read_volatile(self.desc.add(usize::from(cur))) };
            self.free.push(cur);
            if d.flags & DESC_F_NEXT == 0 || d.next >= self.size {
                break;
            }
            cur = d.next;
        }
        Some((id, len))
    }
}
