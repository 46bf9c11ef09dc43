//! The global allocator: every byte of RAM above the guest image belongs to the
//! heap (the VMM's structures all live below 1 MiB, the image at 1 MiB). The
//! allocator itself is in `classes.rs`, free of globals so host-side tests can
//! exercise it (guest/micro/host-tests); this file only makes it global.
//!
//! Interrupt handlers never allocate; the spin lock only orders the vCPUs.

mod classes;

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, Ordering};

use classes::Heap;

struct LockedHeap {
    lock: AtomicBool,
    inner: core::cell::UnsafeCell<Heap>,
}

// SAFETY: every access to `inner` happens with `lock` held.
unsafe impl Sync for LockedHeap {}

#[global_allocator]
static HEAP: LockedHeap = LockedHeap {
    lock: AtomicBool::new(false),
    inner: core::cell::UnsafeCell::new(Heap::empty()),
};

impl LockedHeap {
    fn with<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        while self.lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to `inner`.
        let r = f(unsafe { &mut *self.inner.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

// SAFETY: forwarded to `Heap`, whose blocks are handed out at most once until
// freed, are at least `layout.size()` bytes and aligned to `layout.align()`.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|h| h.alloc(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller's contract.
        self.with(|h| unsafe { h.dealloc(ptr, layout) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller's contract.
        self.with(|h| unsafe { h.realloc(ptr, layout, new_size) })
    }
}

extern "C" {
    static __image_end: u8;
}

/// Gives the allocator all RAM from the end of the image to `mem_size`.
pub fn init(mem_size: u64) -> usize {
    // Only the address of the linker symbol is taken (safe since Rust 1.82).
    let start = core::ptr::addr_of!(__image_end) as usize;
    let start = (start + 0xfff) & !0xfff;
    let end = mem_size as usize;
    if end <= start + 0x1000 {
        return 0;
    }
    let size = end - start;
    // SAFETY: [start, end) is RAM the VMM gave us (mem_size from the boot info)
    // that nothing else uses; init is called once, before any allocation.
    HEAP.with(|h| unsafe { h.init(start as *mut u8, size) });
    size
}

/// Bytes the heap could hand out now, idle size-class blocks included.
pub fn free_bytes() -> usize {
    HEAP.with(|h| h.free_bytes())
}
