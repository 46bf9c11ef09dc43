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
//!
//! `bench-compare-ours clean <mem_mib> <runs>` times the ways to a clean micro
//! sandbox that answers (reset in place, fork, a snapshot file, a cold boot;
//! each up to the first ping), alternating, and prints one line per way:
//! `CLEAN <name> <µs> <µs> ...`, then `CLEAN done`.

use kvmsandbox::{Sandbox, SandboxSnapshot, Vm, VmConfig};
use kvmsandbox_benches::procmem::read_proc;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
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

/// Times `f` in microseconds into `into`.
fn timed(into: &mut Vec<u128>, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let t = Instant::now();
    f()?;
    into.push(t.elapsed().as_micros());
    Ok(())
}

fn clean(args: &[String]) -> Result<(), String> {
    let usage = || "usage: bench-compare-ours clean <mem_mib> <runs>".to_string();
    let mem: u64 = args.get(1).and_then(|m| m.parse().ok()).ok_or_else(usage)?;
    let runs: usize = args.get(2).and_then(|m| m.parse().ok()).ok_or_else(usage)?;
    let e = |what: &'static str| move |e: kvmsandbox::Error| format!("{what}: {e}");
    let cfg = || VmConfig::micro().memory_mib(mem);
    let ping = |sb: &Sandbox| sb.ping().map(drop).map_err(e("ping"));
    let sb = Sandbox::start(cfg()).map_err(e("boot"))?;
    let snap = sb.snapshot().map_err(e("snapshot"))?;
    let path = std::env::temp_dir().join(format!("kvmsb-compare-{}.snap", std::process::id()));
    snap.save(&path).map_err(|err| format!("save: {err}"))?;
    let mut times: [(&str, Vec<u128>); 4] = [
        ("reset", Vec::new()),
        ("fork", Vec::new()),
        ("file", Vec::new()),
        ("boot", Vec::new()),
    ];
    let result = (|| {
        for _ in 0..runs {
            // Dirty the guest a little first, as a used sandbox would be.
            sb.echo(&[7u8; 4096]).map_err(e("echo"))?;
            timed(&mut times[0].1, || {
                sb.restore(&snap).map_err(e("restore"))?;
                ping(&sb)
            })?;
            timed(&mut times[1].1, || {
                ping(&Sandbox::from_snapshot(&snap).map_err(e("fork"))?)
            })?;
            timed(&mut times[2].1, || {
                let loaded = SandboxSnapshot::load(&path).map_err(|err| format!("load: {err}"))?;
                ping(&Sandbox::from_snapshot(&loaded).map_err(e("fork from file"))?)
            })?;
            timed(&mut times[3].1, || {
                ping(&Sandbox::start(cfg()).map_err(e("boot"))?)
            })?;
            // Teardown of the VMs dropped above runs in the background.
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok::<(), String>(())
    })();
    let _ = std::fs::remove_file(&path);
    result?;
    for (name, us) in &times {
        let us: Vec<String> = us.iter().map(u128::to_string).collect();
        println!("CLEAN {name} {}", us.join(" "));
    }
    println!("CLEAN done");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("clean") => clean(&args),
        _ => run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-compare-ours: {e}");
            ExitCode::FAILURE
        }
    }
}
