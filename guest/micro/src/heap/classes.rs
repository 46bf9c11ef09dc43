//! The allocator behind the global heap: power-of-two size classes in front
//! of a first-fit linked-list heap.
//!
//! Under PVM every instruction is emulated (~1 µs each), and a first-fit
//! linked-list allocation measured ~170 µs for a 44-byte box. So sizes up to
//! [`MAX_CLASS`] come from power-of-two size classes with O(1) free lists
//! (blocks of class 2^k are 2^k-aligned, carved from 4 KiB pages or allocated
//! whole from the large heap). Freed class blocks wait in their class for
//! reuse; when the large heap cannot serve a request, every idle class block
//! goes back to it (where neighbours merge) and the request is tried again, so
//! a burst of small allocations cannot keep memory from a later large one.
//! Reallocation within a class keeps the block.
//!
//! No globals here: `mod.rs` wraps this in the `#[global_allocator]`, and the
//! host-side tests in guest/micro/host-tests run this very file.

use core::alloc::Layout;
use core::ptr::{null_mut, NonNull};

/// Smallest block (room for the free-list link and then some).
const MIN_SHIFT: u32 = 4;
/// Largest class: 128 KiB.
const MAX_SHIFT: u32 = 17;
/// Largest size served from the classes.
pub const MAX_CLASS: usize = 1 << MAX_SHIFT;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Classes below this are carved out of pages of this size.
const PAGE: usize = 4096;

/// The allocator's state.
pub struct Heap {
    free: [*mut u8; CLASSES],
    /// Bytes in idle class blocks (on the free lists).
    idle: usize,
    large: linked_list_allocator::Heap,
}

/// The class index of a layout, or `None` for the large heap.
fn class_of(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    if size > MAX_CLASS {
        return None;
    }
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift.max(MIN_SHIFT) - MIN_SHIFT) as usize)
}

fn class_size(class: usize) -> usize {
    1usize << (class as u32 + MIN_SHIFT)
}

impl Heap {
    /// A heap with no memory (every allocation fails until [`Heap::init`]).
    pub const fn empty() -> Self {
        Heap {
            free: [null_mut(); CLASSES],
            idle: 0,
            large: linked_list_allocator::Heap::empty(),
        }
    }

    /// Hands the heap `size` bytes at `start`.
    ///
    /// # Safety
    /// The range is unused memory that outlives the heap; called once.
    pub unsafe fn init(&mut self, start: *mut u8, size: usize) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { self.large.init(start, size) }
    }

    /// Free bytes: the large heap's and the idle class blocks' (which go back
    /// to the large heap when it runs short). O(1): counting them must not
    /// mean giving them back, which costs a walk of the large heap's free
    /// list per block (tens of ms for a few thousand blocks under PVM).
    pub fn free_bytes(&self) -> usize {
        self.large.free() + self.idle
    }

    /// Gives every idle class block back to the large heap.
    pub fn reclaim(&mut self) {
        for class in 0..CLASSES {
            let size = class_size(class);
            // Cannot fail: class sizes are powers of two no larger than MAX_CLASS.
            let Ok(layout) = Layout::from_size_align(size, size) else {
                continue;
            };
            while let Some(block) = NonNull::new(self.free[class]) {
                // SAFETY: `block` is an idle block of this class: its first word
                // is the free-list link, and it came from the large heap as part
                // of a chunk (merging on deallocation makes part-by-part returns
                // of a chunk valid).
                unsafe {
                    self.free[class] = block.as_ptr().cast::<*mut u8>().read();
                    self.large.deallocate(block, layout);
                }
                self.idle -= size;
            }
        }
    }

    fn large_alloc(&mut self, layout: Layout) -> *mut u8 {
        if let Ok(p) = self.large.allocate_first_fit(layout) {
            return p.as_ptr();
        }
        self.reclaim();
        self.large
            .allocate_first_fit(layout)
            .map_or(null_mut(), NonNull::as_ptr)
    }

    fn refill(&mut self, class: usize) -> bool {
        let size = class_size(class);
        let chunk = size.max(PAGE);
        let Ok(layout) = Layout::from_size_align(chunk, size) else {
            return false;
        };
        let base = self.large_alloc(layout);
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
        self.idle += chunk / size * size;
        true
    }

    /// A block for `layout`, or null.
    pub fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            return self.large_alloc(layout);
        };
        if self.free[class].is_null() && !self.refill(class) {
            return null_mut();
        }
        let b = self.free[class];
        // SAFETY: `b` is a free block of this class; its first word is the link
        // written by `refill` or `dealloc`.
        self.free[class] = unsafe { b.cast::<*mut u8>().read() };
        self.idle -= class_size(class);
        b
    }

    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` came from `alloc` with this `layout` and is not used any more.
    pub unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some(class) => {
                // SAFETY: the block is ours again and at least 16 bytes, 16-aligned.
                unsafe { ptr.cast::<*mut u8>().write(self.free[class]) };
                self.free[class] = ptr;
                self.idle += class_size(class);
            }
            None => {
                if let Some(p) = NonNull::new(ptr) {
                    // SAFETY: large blocks are returned with their layout.
                    unsafe { self.large.deallocate(p, layout) };
                }
            }
        }
    }

    /// Resizes a block (`GlobalAlloc::realloc` semantics).
    ///
    /// # Safety
    /// `ptr` came from `alloc` with `layout`; `new_size` is non-zero.
    pub unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return null_mut();
        };
        if let (Some(a), Some(b)) = (class_of(layout), class_of(new_layout)) {
            if a == b {
                return ptr; // the block already has room
            }
        }
        let new = self.alloc(new_layout);
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
