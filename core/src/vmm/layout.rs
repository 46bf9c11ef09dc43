//! Guest physical memory map, shared by both guest kinds.
//!
//! Everything the VMM writes before the first instruction lives below 1 MiB, where
//! neither the micro guest (linked at 1 MiB) nor Linux (loaded at 16 MiB for the
//! ELF, 1 MiB for bzImage) puts code. Device MMIO windows sit in a hole below
//! 4 GiB, as on Firecracker, and RAM never reaches into it.

/// GDT used at entry (flat 64-bit code and data).
pub const GDT_START: u64 = 0x500;
/// Linux boot_params ("zero page").
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Micro guest boot-info structure.
pub const BOOT_INFO_START: u64 = 0x6000;
/// Identity-map page tables: PML4, PDPT, then four page directories (4 GiB of 2 MiB pages).
pub const PML4_START: u64 = 0x9000;
/// Page-directory-pointer table.
pub const PDPT_START: u64 = 0xa000;
/// First of four page directories.
pub const PD_START: u64 = 0xb000;
/// Kernel / micro guest command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Largest command line we accept (bytes, including the NUL).
pub const CMDLINE_MAX_SIZE: usize = 0x10000;
/// Boot stacks: vCPU `i` starts with RSP = BOOT_STACKS_TOP - i * BOOT_STACK_SIZE.
pub const BOOT_STACKS_TOP: u64 = 0x80000;
/// Size of each boot stack.
pub const BOOT_STACK_SIZE: u64 = 0x4000;
/// Where the EBDA / legacy area starts; RAM below this is usable by Linux.
pub const EBDA_START: u64 = 0x9fc00;
/// Start of high memory (where kernels are loaded).
pub const HIMEM_START: u64 = 0x10_0000;
/// First virtio-mmio window.
pub const MMIO_START: u64 = 0xd000_0000;
/// Size of each virtio-mmio window.
pub const MMIO_SIZE: u64 = 0x1000;
/// First IRQ (GSI) handed to virtio devices; 4 is the serial port.
pub const IRQ_BASE: u32 = 5;
/// Highest IRQ (GSI) we hand out; the legacy PIC has 16 lines and the micro guest uses it.
pub const IRQ_MAX: u32 = 15;
/// Port of the 16550 serial console (COM1) and its IRQ.
pub const SERIAL_PORT: u16 = 0x3f8;
/// IRQ line of COM1.
pub const SERIAL_IRQ: u32 = 4;
/// The micro guest's exit port: a 32-bit write ends the VM with that status.
pub const EXIT_PORT: u16 = 0x501;
/// Most RAM a VM may have: everything must fit below the MMIO hole.
pub const MAX_MEM_SIZE: u64 = MMIO_START;
/// Fewest bytes of RAM a VM may have (the micro guest and its boot structures).
pub const MIN_MEM_SIZE: u64 = 2 << 20;
/// Most vCPUs per VM (bounded by the boot stacks below 1 MiB).
pub const MAX_VCPUS: u8 = 16;
