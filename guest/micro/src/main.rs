//! The micro guest: a tiny `no_std` kernel the kvmsandbox VMM starts directly in
//! 64-bit long mode. The entry contract lives in `kvmsandbox_proto::bootinfo`.
//!
//! Default behaviour: bring up the IDT, the PIC and the virtio devices, print the
//! ready marker once the vsock agent listens, and serve the host forever (until
//! it sends `Shutdown`). Without a vsock device the guest prints the marker and
//! exits 0. `test=<mode>` on the command line selects a test behaviour instead:
//!
//! | mode | behaviour |
//! |------|-----------|
//! | `exit` (or any unknown mode) | marker, then exit 0 |
//! | `hang` / `spin` | never ready (halted / busy) |
//! | `early-panic` / `panic` | panic before / after the marker |
//! | `ud` | `ud2` before the marker: the exception handler reports #UD |
//! | `stack-overflow` | recurse before the marker: the guard page stops it, reported as a panic |
//! | `fault` | after the marker, write outside the identity map: #PF report |
//! | `stay` | marker, then halt until killed |
//! | `count` | marker, then count up in RAM forever (its address printed first) |
//! | `blk-selftest` | pattern write/read on disk 0, checksum line, exit 0/1 |
//! | `vsock-connect port=<p>` | connect out to host port `p`, print the reply |
//! | `bench` | time the data-path primitives (see `bench.rs`) |
//! | `hostile-<name>` | attack the VMM, then serve as the agent (see `hostile.rs`) |
//!
//! `stack=report` (with any mode) paints the stack at boot and prints its
//! high-water mark after every WASM run (see `stack.rs`); `clock=calibrate`
//! ignores the host's TSC rate and measures it against the PIT (see `pit.rs`).
#![no_std]
#![no_main]

extern crate alloc;

mod agent;
mod bench;
mod boot;
mod cmdline;
mod devices;
mod heap;
mod hostile;
mod idt;
mod interrupts;
mod io;
mod panic;
mod pic;
mod pit;
mod pvh;
mod selftest;
mod serial;
mod smp;
mod stack;
mod tss;
mod virtio;
mod wasm;
mod wasm_dirs;

use kvmsandbox_proto::bootinfo::{BootInfo, READY_MARKER};

/// Rust entry for the bootstrap processor, called by `boot.rs` once the boot info
/// has been validated.
fn main(info: &'static BootInfo) -> ! {
    let cmd = cmdline::Cmdline::from_boot_info(info);
    if cmd.get("stack") == Some("report") {
        stack::paint();
    }
    tss::init(stack::ist());
    stack::protect();
    println!(
        "kvmsandbox micro guest {} starting",
        env!("CARGO_PKG_VERSION")
    );
    println!("memory: {} MiB", info.mem_size >> 20);
    let heap = heap::init(info.mem_size);
    println!("heap: {} KiB", heap >> 10);
    wasm::init(info, cmd.get("clock") == Some("calibrate"));
    interrupts::init(devices::irq_mask(info));
    smp::wait_for_aps(info.num_cpus);
    println!("cpus online: {}", smp::online());
    if info.flags & kvmsandbox_proto::bootinfo::flags::HOST_PVM != 0 {
        println!("host: pvm");
    }
    match cmd.test_mode() {
        Some("hang") => io::halt_forever(),
        Some("spin") => io::spin_forever(),
        Some("early-panic") => panic!("early panic requested on the command line"),
        Some("ud") => interrupts::raise_ud(),
        Some("stack-overflow") => stack::overflow(),
        Some(m) if m.starts_with("hostile-") => hostile::run(m, info),
        _ => {}
    }
    let mut devs = devices::init(info);
    // The agent listens before the marker goes out: the host connects right after.
    let agent = match cmd.test_mode() {
        None => devs
            .vsock
            .take()
            .map(|v| agent::Agent::new(v, core::mem::take(&mut devs.disks))),
        Some(_) => None,
    };
    println!("{}", READY_MARKER);
    match cmd.test_mode() {
        Some("panic") => panic!("panic requested on the command line"),
        Some("fault") => io::fault(),
        Some("stay") => io::halt_forever(),
        Some("count") => io::count_forever(),
        Some("blk-selftest") => io::exit(selftest::blk(&mut devs.disks)),
        Some("vsock-connect") => io::exit(selftest::vsock_connect(
            devs.vsock.as_mut(),
            cmd.get("port"),
        )),
        Some("bench") => {
            bench::run();
            io::exit(0)
        }
        _ => {}
    }
    let Some(mut agent) = agent else { io::exit(0) };
    agent.run();
    println!("agent: shutdown requested");
    io::exit(0)
}
