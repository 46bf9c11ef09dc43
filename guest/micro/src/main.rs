//! The micro guest: a tiny `no_std` kernel the kvmsandbox VMM starts directly in
//! 64-bit long mode. The entry contract lives in `kvmsandbox_proto::bootinfo`.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod heap;
mod cmdline;
mod io;
mod panic;
mod serial;
mod smp;

use kvmsandbox_proto::bootinfo::BootInfo;

/// Rust entry for the bootstrap processor, called by `boot.rs` once the boot info
/// has been validated.
fn main(info: &'static BootInfo) -> ! {
    println!("kvmsandbox micro guest {} starting", env!("CARGO_PKG_VERSION"));
    println!("memory: {} MiB", info.mem_size >> 20);
    let heap = heap::init(info.mem_size);
    println!("heap: {} KiB", heap >> 10);
    let cmd = cmdline::Cmdline::from_boot_info(info);
    smp::wait_for_aps(info.num_cpus);
    println!("cpus online: {}", smp::online());
    if info.flags & kvmsandbox_proto::bootinfo::flags::HOST_PVM != 0 {
        println!("host: pvm");
    }
    match cmd.test_mode() {
        Some("hang") => io::halt_forever(),
        Some("spin") => io::spin_forever(),
        Some("early-panic") => panic!("early panic requested on the command line"),
        _ => {}
    }
    println!("{}", kvmsandbox_proto::bootinfo::READY_MARKER);
    match cmd.test_mode() {
        Some("panic") => panic!("panic requested on the command line"),
        Some("fault") => io::fault(),
        Some("stay") => io::halt_forever(),
        _ => io::exit(0),
    }
}
