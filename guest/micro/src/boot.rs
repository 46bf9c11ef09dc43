//! Entry point: the VMM enters here on every vCPU (contract in
//! `kvmsandbox_proto::bootinfo`): rdi = boot info, rsi = vCPU index, rsp = a boot
//! stack. The BSP moves to its own guarded stack (`stack.rs`), the APs keep the
//! VMM's; then we branch to the BSP or AP path in Rust.

use kvmsandbox_proto::bootinfo::{BootInfo, BOOT_MAGIC, BOOT_VERSION};

core::arch::global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    "_start:",
    "test rsi, rsi",
    "jnz 1f",
    "lea rsp, [rip + stack_top]",
    "1:",
    "and rsp, -16",
    "xor rbp, rbp",
    "call {entry}",
    "2: hlt",
    "jmp 2b",
    entry = sym rust_entry,
);

pub(crate) extern "sysv64" fn rust_entry(info: *const BootInfo, cpu: u64) -> ! {
    if cpu != 0 {
        crate::smp::ap_main(cpu)
    }
    // SAFETY: the VMM passes the guest-physical (= virtual, identity-mapped)
    // address of a BootInfo it wrote before entry; we check magic and version
    // before trusting any other field, and never write to it.
    let info: &'static BootInfo = unsafe { &*info };
    if info.magic != BOOT_MAGIC || info.version < BOOT_VERSION {
        crate::println!(
            "bad boot info: magic {:#x} version {}",
            info.magic,
            info.version
        );
        crate::io::exit(kvmsandbox_proto::bootinfo::EXIT_PANIC);
    }
    crate::main(info)
}
