//! One kvmsandbox boot in a process of its own, for `bench-compare`: boots the
//! embedded micro guest (`test=stay`) or a Linux kernel + initramfs, and once
//! `Vm::start` returned (the ready marker was seen on serial) prints one line:
//!
//! `READY start_us=<Vm::start duration> first_us=<to first console line> rss_kib=.. hwm_kib=.. guest_rss_kib=.. host=<kind>`
//!
//! then kills the VM and exits. Its own process so that VmRSS/VmHWM are those of
//! a VMM hosting exactly one guest, as for QEMU.
//!
//! Usage: `bench-compare-ours micro <mem_mib>` | `bench-compare-ours linux <mem_mib> <vmlinux> <initrd>`

use kvmsandbox::{Vm, VmConfig};
use kvmsandbox_benches::procmem::read_proc;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

fn run(args: &[String]) -> Result<(), String> {
    let usage = || {
        "usage: bench-compare-ours micro <mem_mib> | linux <mem_mib> <vmlinux> <initrd>".to_string()
    };
    let mem: u64 = args.get(1).and_then(|m| m.parse().ok()).ok_or_else(usage)?;
    let cfg = match (args.first().map(String::as_str), args.get(2), args.get(3)) {
        (Some("micro"), _, _) => VmConfig::micro().cmdline("test=stay"),
        (Some("linux"), Some(k), Some(i)) => VmConfig::linux(k).initrd(i),
        _ => return Err(usage()),
    };
    let first: Arc<OnceLock<Instant>> = Arc::default();
    let f2 = first.clone();
    let cfg = cfg.on_console_line(move |l| {
        if !l.trim().is_empty() {
            let _ = f2.set(Instant::now());
        }
    });
    let t0 = Instant::now();
    let vm = Vm::start(cfg.memory_mib(mem)).map_err(|e| format!("boot failed: {e}"))?;
    let start_us = t0.elapsed().as_micros();
    let m = read_proc("self", mem).map_err(|e| e.to_string())?;
    let first_us = first
        .get()
        .map(|t| t.duration_since(t0).as_micros())
        .unwrap_or(start_us);
    println!(
        "READY start_us={start_us} first_us={first_us} rss_kib={} hwm_kib={} guest_rss_kib={} host={}",
        m.rss_kib,
        m.hwm_kib,
        m.guest_rss_kib,
        vm.host_kind()
    );
    vm.kill();
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-compare-ours: {e}");
            ExitCode::FAILURE
        }
    }
}
