//! Boots a Linux kernel (and optional initramfs) and prints its console and
//! boot-phase times. `cargo run --release -p kvmsandbox --example boot_linux -- <vmlinux|bzImage> [initrd] [extra cmdline]`
use kvmsandbox::{Vm, VmConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let kernel = args
        .next()
        .ok_or("usage: boot_linux <kernel> [initrd] [extra cmdline]")?;
    let mut cfg = VmConfig::linux(kernel)
        .vcpus(2)
        .on_console_line(|l| println!("guest| {l}"));
    if let Some(initrd) = args.next().filter(|s| !s.is_empty()) {
        cfg = cfg.initrd(initrd);
    }
    if let Some(extra) = args.next() {
        cfg = cfg.cmdline(&extra);
    }
    let vm = Vm::start(cfg)?;
    println!(
        "--- host: {} ---\nboot phases (from create):\n{}",
        vm.host_kind(),
        vm.timings()
    );
    vm.kill();
    Ok(())
}
