//! The guest's own GDT with a 64-bit TSS whose IST 1 is a separate stack:
//! #PF and #DF switch to it (see `idt.rs`), so a fault on an exhausted stack
//! can still push its frame and be reported (`stack.rs`). The code and data
//! descriptors are the ones the VMM and the PVH stub enter with, at the same
//! selectors, so CS and the data segments need no reload.

use core::ptr::addr_of_mut;

/// Selector of the TSS descriptor.
const TSS_SELECTOR: u16 = 0x18;
/// Size of a 64-bit TSS.
const TSS_SIZE: usize = 104;

/// A 64-bit TSS as 32-bit words (its 64-bit fields are only 4-byte aligned).
#[repr(C, align(16))]
struct Tss([u32; TSS_SIZE / 4]);

static mut TSS: Tss = Tss([0; TSS_SIZE / 4]);
/// Null, 64-bit code (0x08), data (0x10), then the 16-byte TSS descriptor (0x18).
static mut GDT: [u64; 5] = [0, 0x00af_9b00_0000_ffff, 0x00cf_9300_0000_ffff, 0, 0];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Loads the GDT and the TSS with IST 1 = `ist_top`. Call once, on the BSP,
/// with interrupts off.
pub fn init(ist_top: u64) {
    // SAFETY: single-threaded early boot with interrupts off: nothing else
    // reads or writes TSS or GDT; the CPU only uses them after lgdt/ltr below.
    unsafe {
        let tss = &mut *addr_of_mut!(TSS);
        // IST 1 at byte 36; the I/O map base at byte 102 points past the end
        // (no I/O permission bitmap).
        tss.0[9] = ist_top as u32;
        tss.0[10] = (ist_top >> 32) as u32;
        tss.0[25] = (TSS_SIZE as u32) << 16;
        let base = tss.0.as_ptr() as u64;
        let limit = (TSS_SIZE - 1) as u64;
        let gdt = &mut *addr_of_mut!(GDT);
        // Present, DPL 0, type 9 (available 64-bit TSS).
        gdt[3] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        gdt[4] = base >> 32;
        let ptr = Pointer {
            limit: (core::mem::size_of_val(gdt) - 1) as u16,
            base: gdt.as_ptr() as u64,
        };
        core::arch::asm!("lgdt [{0}]", in(reg) &ptr, options(readonly, nostack, preserves_flags));
        core::arch::asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack, preserves_flags));
    }
}
