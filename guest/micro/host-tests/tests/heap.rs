//! The micro guest's allocator (guest/micro/src/heap/classes.rs) over a
//! region of host memory.

use std::alloc::Layout;

use kvmsandbox_micro_host_tests::heap_classes::Heap;

const REGION: usize = 1 << 20;

/// A heap over a fresh, page-aligned `size`-byte region (leaked: the heap's
/// blocks must outlive it).
fn heap(size: usize) -> Heap {
    let region = Box::leak(vec![0u8; size + 4096].into_boxed_slice());
    let start = (region.as_mut_ptr() as usize + 4095) & !4095;
    let mut heap = Heap::empty();
    // SAFETY: the leaked region is unused by anything else and lives for ever.
    unsafe { heap.init(start as *mut u8, size) };
    heap
}

#[test]
fn freed_small_blocks_serve_a_later_large_allocation() {
    let mut heap = heap(REGION);
    for round in 0..3 {
        // Fill the whole heap with small blocks of several classes...
        let mut blocks = Vec::new();
        for size in [16usize, 48, 200, 1000].iter().cycle() {
            let layout = Layout::from_size_align(*size, 8).unwrap();
            let p = heap.alloc(layout);
            if p.is_null() {
                break;
            }
            blocks.push((p, layout));
        }
        assert!(
            blocks.len() > 1000,
            "round {round}: only {} blocks",
            blocks.len()
        );
        // ...free them all...
        for (p, layout) in blocks {
            // SAFETY: allocated above with this layout, freed once.
            unsafe { heap.dealloc(p, layout) };
        }
        // ...then most of the heap must be available in one piece again.
        let big = Layout::from_size_align(REGION * 3 / 4, 8).unwrap();
        let p = heap.alloc(big);
        assert!(
            !p.is_null(),
            "round {round}: large allocation failed after small ones were freed"
        );
        // SAFETY: just allocated with this layout.
        unsafe { heap.dealloc(p, big) };
    }
}

#[test]
fn idle_class_blocks_count_as_free_before_and_after_a_reclaim() {
    let mut heap = heap(REGION);
    let before = heap.free_bytes();
    let layout = Layout::from_size_align(64, 8).unwrap();
    let blocks: Vec<_> = (0..5000).map(|_| heap.alloc(layout)).collect();
    assert!(blocks.iter().all(|p| !p.is_null()));
    for p in blocks {
        // SAFETY: allocated above with this layout.
        unsafe { heap.dealloc(p, layout) };
    }
    assert_eq!(heap.free_bytes(), before);
    heap.reclaim();
    assert_eq!(heap.free_bytes(), before);
    // And blocks in use are not free.
    let p = heap.alloc(layout);
    assert_eq!(heap.free_bytes(), before - 64);
    // SAFETY: allocated just above with this layout.
    unsafe { heap.dealloc(p, layout) };
    assert_eq!(heap.free_bytes(), before);
}

#[test]
fn blocks_are_aligned_distinct_and_reused() {
    let mut heap = heap(REGION);
    let mut seen = std::collections::HashSet::new();
    for size in [1usize, 16, 17, 100, 4096, 5000, 200_000] {
        for align in [1usize, 8, 64, 4096] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let p = heap.alloc(layout);
            assert!(!p.is_null(), "{layout:?}");
            assert_eq!(p as usize % align, 0, "{layout:?}");
            assert!(seen.insert(p as usize), "block handed out twice");
            // SAFETY: a fresh block of at least `size` bytes.
            unsafe { std::ptr::write_bytes(p, 0xa5, size) };
            // SAFETY: allocated above with this layout.
            unsafe { heap.dealloc(p, layout) };
            seen.remove(&(p as usize));
        }
    }
}
