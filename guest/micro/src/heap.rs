//! The global allocator: every byte of RAM above the guest image belongs to the
//! heap (the VMM's structures all live below 1 MiB, the image at 1 MiB).
//!
//! Under PVM every instruction is emulated (~1 µs each), and a first-fit
//! linked-list allocation measured ~170 µs for a 44-byte box. So sizes up to
//! [`MAX_CLASS`] come from power-of-two size classes with O(1) free lists
//! (blocks of class 2^k are 2^k-aligned, carved from 4 KiB pages or allocated
//! whole from the fallback); bigger ones go to the linked-list heap. Freed class
//! blocks stay in their class (an agent's working set is steady, so this costs
//! little memory). Reallocation within a class keeps the block. Interrupt
//! handlers never allocate; the spin lock only orders the vCPUs.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::Heap;

/// Smallest block (room for the free-list link and then some).
const MIN_SHIFT: u32 = 4;
/// Largest class: 128 KiB.
const MAX_SHIFT: u32 = 17;
/// Largest size served from the classes.
pub const MAX_CLASS: usize = 1 << MAX_SHIFT;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Classes below this are carved out of pages of this size.
const PAGE: usize = 4096;

struct Inner {
    free: [*mut u8; CLASSES],
    fallback: Heap,
}

struct SizeClassHeap {
    lock: AtomicBool,
    inner: core::cell::UnsafeCell<Inner>,
}

// SAFETY: every access to `inner` happens with `lock` held.
unsafe impl Sync for SizeClassHeap {}

#[global_allocator]
static HEAP: SizeClassHeap = SizeClassHeap {
    lock: AtomicBool::new(false),
    inner: core::cell::UnsafeCell::new(Inner { free: [null_mut(); CLASSES], fallback: Heap::empty() }),
};

/// The class index of a layout, or `None` for the fallback heap.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    if size > MAX_CLASS {
        return None;
    }
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift.max(MIN_SHIFT) - MIN_SHIFT) as usize)
}

impl SizeClassHeap {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        while self.lock.swap(true, Ordering::Acquire) {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to `inner`.
        let r = f(unsafe { &mut *self.inner.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

impl Inner {
    fn fallback_alloc(&mut self, layout: Layout) -> *mut u8 {
        self.fallback.allocate_first_fit(layout).map_or(null_mut(), NonNull::as_ptr)
    }

    fn refill(&mut self, class: usize) -> bool {
        let size = 1usize << (class as u32 + MIN_SHIFT);
        let chunk = size.max(PAGE);
        let Ok(layout) = Layout::from_size_align(chunk, size) else { return false };
        let base = self.fallback_alloc(layout);
        if base.is_null() {
            return false;
        }
        // Thread the new blocks onto the free list.
        for i in (0..chunk / size).rev() {
            // SAFETY: block i lies inside the `chunk` bytes just allocated, is
            // `size`-aligned (base is aligned to `size`) and at least 16 bytes.
            unsafe {
                let b = base.add(i * size);
                b.cast::<*mut u8>().write(self.free[class]);
                self.free[class] = b;
            }
        }
        true
    }

    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else { return self.fallback_alloc(layout) };
        if self.free[class].is_null() && !self.refill(class) {
            return null_mut();
        }
        let b = self.free[class];
        // SAFETY: `b` is a free block of this class; its first word is the link
        // written by `refill` or `dealloc`.
        self.free[class] = unsafe { b.cast::<*mut u8>().read() };
        b
    }

    /// # Safety
    /// `ptr` came from `alloc` with this `layout` and is not used any more.
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some(class) => {
                // SAFETY: the block is ours again and at least 16 bytes, 16-aligned.
                unsafe { ptr.cast::<*mut u8>().write(self.free[class]) };
                self.free[class] = ptr;
            }
            None => {
                if let Some(p) = NonNull::new(ptr) {
                    // SAFETY: fallback blocks are returned with their layout.
                    unsafe { self.fallback.deallocate(p, layout) };
                }
            }
        }
    }
}

// SAFETY: blocks are handed out at most once until freed, are at least
// `layout.size()` bytes and aligned to `layout.align()` (class blocks are
// aligned to their power-of-two size, which is at least the alignment).
unsafe impl GlobalAlloc for SizeClassHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|h| h.alloc(layout))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller's contract.
        self.with(|h| unsafe { h.dealloc(ptr, layout) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else { return null_mut() };
        if let (Some(a), Some(b)) = (class_of(layout), class_of(new_layout)) {
            if a == b {
                return ptr; // the block already has room
            }
        }
        // SAFETY: new_layout has a non-zero size (new_size > 0 per the contract).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and distinct.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
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
    HEAP.with(|h| unsafe { h.fallback.init(start as *mut u8, size) });
    size
}
