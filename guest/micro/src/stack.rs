//! The bootstrap processor's stack: [`STACK_SIZE`] bytes in the image's .bss,
//! with an unmapped guard page below it, so an overflow faults instead of
//! silently overwriting whatever lies below (the VMM's boot stack is only
//! 16 KiB, and wasmi, the agent and the interrupt handlers all run on this one).
//! The fault is taken on an IST stack (`tss.rs`), so it is reported as a guest
//! panic naming the overflow rather than ending in a triple fault.
//!
//! The VMM (and the PVH stub) map the first 4 GiB with 2 MiB pages; the one
//! 2 MiB page holding the guard is re-mapped here with 4 KiB pages, all
//! identical but the guard's. The APs keep their VMM boot stacks: they only
//! report in and halt.
//!
//! With `stack=report` on the command line the stack is painted at boot and
//! every WASM run ends with a `stack: deepest use` line (the high-water mark),
//! which is how the figure in docs/platform.md was measured.

use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

/// Bytes of stack for the bootstrap processor.
pub const STACK_SIZE: usize = 128 * 1024;
/// Bytes of the stack #PF and #DF run on (IST 1).
pub const IST_SIZE: usize = 16 * 1024;
const PAGE: u64 = 4096;
/// What an untouched stack word holds when painting is on.
const PAINT: u64 = 0x5354_4143_4b21_5354;

core::arch::global_asm!(
    ".pushsection .bss.stack, \"aw\", @nobits",
    ".balign 4096",
    ".global stack_guard",
    "stack_guard: .skip 4096",
    ".global stack_bottom",
    "stack_bottom: .skip {size}",
    ".global stack_top",
    "stack_top:",
    ".global ist_bottom",
    "ist_bottom: .skip {ist}",
    ".global ist_top",
    "ist_top:",
    ".popsection",
    size = const STACK_SIZE,
    ist = const IST_SIZE,
);

extern "C" {
    static stack_guard: u8;
    static stack_bottom: u8;
    static stack_top: u8;
    static ist_top: u8;
}

/// A page table for the 2 MiB page that holds the guard.
#[repr(C, align(4096))]
struct PageTable([u64; 512]);

static mut GUARD_PT: PageTable = PageTable([0; 512]);
static PAINTED: AtomicBool = AtomicBool::new(false);

/// Address of the guard page.
pub fn guard() -> u64 {
    addr_of!(stack_guard) as u64
}

fn bottom() -> u64 {
    addr_of!(stack_bottom) as u64
}

/// Top of the BSP stack (the boot code loads it into rsp).
pub fn top() -> u64 {
    addr_of!(stack_top) as u64
}

/// Top of the IST stack for #PF and #DF.
pub fn ist() -> u64 {
    addr_of!(ist_top) as u64
}

/// Whether `addr` (a faulting address or a stack pointer) lies in the guard page
/// or just below the stack, where an overflowing push or frame lands.
pub fn is_overflow(addr: u64) -> bool {
    (guard()..bottom()).contains(&addr)
}

fn rsp() -> u64 {
    let rsp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe {
        core::arch::asm!("mov {0}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    rsp
}

/// Unmaps the guard page: splits the 2 MiB page holding it into 4 KiB pages.
/// Call once, on the BSP, before anything deep runs.
pub fn protect() {
    const PRESENT: u64 = 1;
    const HUGE: u64 = 1 << 7;
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let guard = guard();
    let cr3: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe {
        core::arch::asm!("mov {0}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags))
    };
    let index = |level: u32| ((guard >> (12 + 9 * level)) & 511) as usize;
    // SAFETY: the page tables the VMM or the PVH stub built are identity-mapped
    // RAM; each entry is checked present (and not a huge page above the PD)
    // before it is followed, and nothing else touches them during boot.
    unsafe {
        let pml4 = (cr3 & ADDR) as *const u64;
        let e4 = read_volatile(pml4.add(index(3)));
        if e4 & PRESENT == 0 {
            return;
        }
        let pdpt = (e4 & ADDR) as *const u64;
        let e3 = read_volatile(pdpt.add(index(2)));
        if e3 & PRESENT == 0 || e3 & HUGE != 0 {
            return;
        }
        let pde = ((e3 & ADDR) as *mut u64).add(index(1));
        let e2 = read_volatile(pde);
        if e2 & PRESENT == 0 || e2 & HUGE == 0 {
            return;
        }
        // The same flags, without PS (bit 7 means PAT in a 4 KiB entry).
        let flags = e2 & 0xfff & !HUGE;
        let base = e2 & ADDR & !((2 << 20) - 1);
        let pt = &mut *addr_of_mut!(GUARD_PT);
        for (i, e) in pt.0.iter_mut().enumerate() {
            let page = base + i as u64 * PAGE;
            *e = if page == guard { 0 } else { page | flags };
        }
        write_volatile(pde, (pt.0.as_ptr() as u64) | (e2 & 0x3f & !HUGE));
        // Reloading CR3 flushes the old 2 MiB translation.
        core::arch::asm!("mov cr3, {0}", in(reg) cr3, options(nostack, preserves_flags));
    }
}

/// Fills the unused part of the stack with a pattern, for [`deepest_use`].
pub fn paint() {
    let end = rsp().saturating_sub(256) & !7;
    let mut p = bottom();
    while p < end {
        // SAFETY: [bottom, rsp - 256) is this CPU's stack below anything live.
        unsafe { write_volatile(p as *mut u64, PAINT) };
        p += 8;
    }
    PAINTED.store(true, Ordering::Relaxed);
}

/// The most stack used since [`paint`]: bytes from the top down to the deepest
/// word that no longer holds the pattern; `None` if the stack was not painted.
pub fn deepest_use() -> Option<usize> {
    if !PAINTED.load(Ordering::Relaxed) {
        return None;
    }
    let mut p = bottom();
    // SAFETY: reads stay inside [bottom, top), this CPU's own stack.
    while p < top() && unsafe { read_volatile(p as *const u64) } == PAINT {
        p += 8;
    }
    Some((top() - p) as usize)
}

/// Prints the high-water mark if the stack was painted (`stack=report`).
pub fn report() {
    if let Some(used) = deepest_use() {
        crate::println!("stack: deepest use {} of {} bytes", used, STACK_SIZE);
    }
}

/// `test=stack-overflow`: recurses until the guard page stops it.
pub fn overflow() -> ! {
    #[inline(never)]
    fn deeper(n: u64) -> u64 {
        let frame = core::hint::black_box([n; 32]);
        if n == u64::MAX {
            return frame[0];
        }
        deeper(n + 1).wrapping_add(core::hint::black_box(frame)[1])
    }
    let n = deeper(0);
    panic!("stack-overflow test: recursion returned {n}")
}
