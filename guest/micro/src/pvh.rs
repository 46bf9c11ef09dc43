//! PVH entry, so that other VMMs (QEMU `-M microvm`, Firecracker, cloud-hypervisor)
//! can boot the micro guest ELF directly: used by `make bench-compare` to boot the
//! very same guest under QEMU and under kvmsandbox.
//!
//! The PVH boot protocol (Xen's `arch-x86/hvm/start_info.h`): the loader finds the
//! `XEN_ELFNOTE_PHYS32_ENTRY` note (type 18) in `.note.Xen` and enters its address
//! in 32-bit protected mode, paging off, flat CS/DS/SS, interrupts off, no stack,
//! with `ebx` = guest-physical address of a `hvm_start_info`. The stub below builds
//! what kvmsandbox gives the guest at its normal entry (identity page tables for
//! the first 4 GiB in 2 MiB pages, a flat GDT with code 0x08 and data 0x10, the
//! BSP's stack), switches to long mode and calls [`pvh_main`], which turns the start
//! info into a [`BootInfo`] and continues on the normal path (`boot::rust_entry`).
//! kvmsandbox itself ignores the note and keeps entering at `_start` in long mode.
//!
//! Only instructions PVM's emulator covers are used (mov, or, add/adc, dec/jnz,
//! rep stos, rdmsr/wrmsr, lgdt, far jump: docs/platform.md).

use kvmsandbox_proto::bootinfo::{BootInfo, EXIT_PANIC};

/// `hvm_start_info.magic`.
const HVM_START_MAGIC: u32 = 0x336e_c578;
/// E820 type of usable RAM in the PVH memory map.
const E820_RAM: u32 = 1;
/// Where the guest image is linked (link.ld): the heap grows from its end.
const IMAGE_BASE: u64 = 0x10_0000;
/// Longest command line read from the start info.
const MAX_CMDLINE: usize = 4096;

core::arch::global_asm!(
    // The PVH entry note: name "Xen", type XEN_ELFNOTE_PHYS32_ENTRY, 64-bit address.
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    ".long 4",
    ".long 8",
    ".long 18",
    ".asciz \"Xen\"",
    ".balign 4",
    ".quad pvh_start32",
    ".balign 4",
    ".popsection",
    // Page tables (zeroed by the loader, cleared again below); the stack is the
    // BSP's guarded one (stack.rs).
    ".pushsection .bss.pvh, \"aw\", @nobits",
    ".balign 4096",
    "pvh_pml4: .skip 4096",
    "pvh_pdpt: .skip 4096",
    "pvh_pd: .skip 4096 * 4",
    ".popsection",
    // The GDT the rest of the guest relies on: 0x08 = 64-bit code, 0x10 = data.
    ".pushsection .rodata.pvh, \"a\"",
    ".balign 16",
    "pvh_gdt:",
    ".quad 0",
    ".quad 0x00af9a000000ffff",
    ".quad 0x00cf92000000ffff",
    "pvh_gdt_end:",
    ".balign 4",
    "pvh_gdt_ptr:",
    ".word pvh_gdt_end - pvh_gdt - 1",
    ".long pvh_gdt",
    ".popsection",
    ".pushsection .text.pvh, \"ax\"",
    ".code32",
    ".global pvh_start32",
    "pvh_start32:",
    "cli",
    "cld",
    "mov %ebx, %esi", // start info, kept in esi (becomes rdi)
    // Clear PML4 and PDPT (2 pages = 2048 dwords).
    "mov $pvh_pml4, %edi",
    "xor %eax, %eax",
    "mov $2048, %ecx",
    "rep stosl",
    // PML4[0] -> PDPT.
    "mov $pvh_pdpt, %eax",
    "or $0x3, %eax",
    "mov %eax, pvh_pml4",
    // PDPT[0..4] -> the four page directories.
    "mov $pvh_pd, %eax",
    "or $0x3, %eax",
    "mov $pvh_pdpt, %edi",
    "mov $4, %ecx",
    "1:",
    "mov %eax, (%edi)",
    "add $0x1000, %eax",
    "add $8, %edi",
    "dec %ecx",
    "jnz 1b",
    // 2048 PD entries: 2 MiB pages (present, writable, PS) covering 0..4 GiB.
    "mov $pvh_pd, %edi",
    "mov $0x83, %eax",
    "xor %edx, %edx",
    "mov $2048, %ecx",
    "2:",
    "mov %eax, (%edi)",
    "mov %edx, 4(%edi)",
    "add $0x200000, %eax",
    "adc $0, %edx",
    "add $8, %edi",
    "dec %ecx",
    "jnz 2b",
    // PAE, page tables, EFER.LME, GDT, then paging (PG | WP | NE | MP | PE).
    "mov %cr4, %eax",
    "or $0x20, %eax",
    "mov %eax, %cr4",
    "mov $pvh_pml4, %eax",
    "mov %eax, %cr3",
    "mov $0xc0000080, %ecx",
    "rdmsr",
    "or $0x100, %eax",
    "wrmsr",
    "lgdt pvh_gdt_ptr",
    "mov %cr0, %eax",
    "or $0x80010023, %eax",
    "mov %eax, %cr0",
    "ljmp $0x08, $pvh_start64",
    ".code64",
    "pvh_start64:",
    "mov $0x10, %eax",
    "mov %eax, %ds",
    "mov %eax, %es",
    "mov %eax, %ss",
    "mov %eax, %fs",
    "mov %eax, %gs",
    "lea stack_top(%rip), %rsp",
    "xor %ebp, %ebp",
    "mov %esi, %edi", // zero-extends: rdi = start info address
    "call {main}",
    "3: hlt",
    "jmp 3b",
    ".popsection",
    main = sym pvh_main,
    options(att_syntax),
);

/// `struct hvm_start_info` (version 1).
#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

/// `struct hvm_memmap_table_entry`.
#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// The boot info we build for the normal entry path (read-only once built).
struct BootInfoCell(core::cell::UnsafeCell<core::mem::MaybeUninit<BootInfo>>);

// SAFETY: written once by the bootstrap processor before anything else runs
// (no other vCPU is started by a PVH loader), read-only afterwards.
unsafe impl Sync for BootInfoCell {}

static BOOT_INFO: BootInfoCell =
    BootInfoCell(core::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit()));

/// End of the RAM region that holds the image: the heap's upper bound.
fn ram_end(map: &[MemmapEntry]) -> Option<u64> {
    map.iter()
        .filter(|e| e.kind == E820_RAM && e.addr <= IMAGE_BASE)
        .map(|e| e.addr.saturating_add(e.size))
        .find(|&end| end > IMAGE_BASE)
}

/// Length of the NUL-terminated command line at `addr` (at most [`MAX_CMDLINE`]).
///
/// # Safety
/// `addr` must be 0 or point at readable guest memory holding a NUL-terminated
/// string or at least `MAX_CMDLINE` readable bytes.
unsafe fn cmdline_len(addr: u64) -> u64 {
    if addr == 0 {
        return 0;
    }
    let p = addr as *const u8;
    let mut n = 0;
    // SAFETY: the caller guarantees the bytes up to the NUL (or the cap) are readable.
    while n < MAX_CMDLINE && unsafe { core::ptr::read_volatile(p.add(n)) } != 0 {
        n += 1;
    }
    n as u64
}

/// Long-mode Rust entry from the PVH stub: `start` is the `hvm_start_info`.
extern "sysv64" fn pvh_main(start: u64) -> ! {
    // SAFETY: the PVH loader passes the address of a start info in RAM, which the
    // identity map covers; the magic is checked before any other field is used.
    let si: &StartInfo = unsafe { &*(start as *const StartInfo) };
    if si.magic != HVM_START_MAGIC {
        crate::println!("pvh: bad start info magic {:#x} at {:#x}", si.magic, start);
        crate::io::exit(EXIT_PANIC);
    }
    let map: &[MemmapEntry] = if si.version >= 1 && si.memmap_paddr != 0 {
        // SAFETY: a version-1 start info describes `memmap_entries` entries at
        // `memmap_paddr`, in RAM the loader wrote and nothing else uses yet.
        unsafe {
            core::slice::from_raw_parts(
                si.memmap_paddr as *const MemmapEntry,
                si.memmap_entries as usize,
            )
        }
    } else {
        &[]
    };
    let Some(mem_size) = ram_end(map) else {
        crate::println!(
            "pvh: no RAM region holds the image (start info version {}, {} map entries)",
            si.version,
            map.len()
        );
        crate::io::exit(EXIT_PANIC);
    };
    let mut info = BootInfo::new(mem_size, 1);
    info.cmdline_addr = si.cmdline_paddr;
    // SAFETY: the loader's command line is a NUL-terminated string in RAM.
    info.cmdline_len = unsafe { cmdline_len(si.cmdline_paddr) };
    let cell = BOOT_INFO.0.get();
    // SAFETY: only this function, once, on the only running vCPU, writes the cell.
    let info: *const BootInfo = unsafe { (*cell).write(info) };
    crate::boot::rust_entry(info, 0)
}
