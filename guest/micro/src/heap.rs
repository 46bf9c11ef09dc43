//! The global allocator: every byte of RAM above the guest image belongs to the
//! heap (the VMM's structures all live below 1 MiB, the image at 1 MiB).

use linked_list_allocator::LockedHeap;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

extern "C" {
    static __image_end: u8;
}

/// Gives the allocator all RAM from the end of the image to `mem_size`.
pub fn init(mem_size: u64) -> usize {
    // SAFETY: only the address of the linker symbol is taken.
    let start = unsafe { core::ptr::addr_of!(__image_end) } as usize;
    let start = (start + 0xfff) & !0xfff;
    let end = mem_size as usize;
    if end <= start + 0x1000 {
        return 0;
    }
    let size = end - start;
    // SAFETY: [start, end) is RAM the VMM gave us (mem_size from the boot info)
    // that nothing else uses; init is called once, before any allocation.
    unsafe { HEAP.lock().init(start as *mut u8, size) };
    size
}
