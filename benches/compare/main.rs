//! `make bench-compare`: boots the same guests under QEMU (`-M microvm
//! -enable-kvm`) and under kvmsandbox, alternating, and writes a Markdown table
//! (docs/benchmarks/compare.md) and a PNG chart (docs/benchmarks/compare.png).
//!
//! Guests: (a) the micro guest ELF that kvmsandbox embeds, which QEMU enters
//! through its PVH note (guest/micro/src/pvh.rs), to `KVMSANDBOX-READY`; (b) the
//! Linux kernel from `make kernel` with a trivial initramfs, to "Run /init", with
//! the command line kvmsandbox itself would use on this host.
//!
//! It also times the ways to a clean micro sandbox without a boot (reset in
//! place, fork, a snapshot file, beside a cold boot), kvmsandbox only.
//!
//! Usage: `bench-compare [--runs N] [--linux-runs M] [--out DIR]`
//! (defaults: 5 micro runs, 1 Linux run per VMM (0 skips Linux), docs/benchmarks;
//! also from env BENCH_RUNS / BENCH_LINUX_RUNS).

mod chart;
mod report;
mod runner;

use chart::{Bar, Panel, OURS, OURS_PROC, QEMU};
use kvmsandbox::HostKind;
use kvmsandbox_benches::{has_pvh_note, initramfs, kernel_dir, workspace_root};
use report::Row;
use runner::{run_ours, run_ours_clean, run_qemu, GuestSpec, Sample};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

struct Options {
    runs: usize,
    linux_runs: usize,
    out: PathBuf,
}

fn parse_args() -> Result<Options, String> {
    let env_num = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut o = Options {
        runs: env_num("BENCH_RUNS", 5),
        linux_runs: env_num("BENCH_LINUX_RUNS", 1),
        out: workspace_root().join("docs/benchmarks"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--runs" => o.runs = val("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--linux-runs" => o.linux_runs = val("--linux-runs")?.parse().map_err(|e| format!("--linux-runs: {e}"))?,
            "--out" => o.out = PathBuf::from(val("--out")?),
            other => return Err(format!("unknown argument {other:?}; usage: bench-compare [--runs N] [--linux-runs M] [--out DIR]")),
        }
    }
    if o.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    Ok(o)
}

fn measure(name: &str, guest: &GuestSpec, ours: &Path, runs: usize) -> Result<Row, String> {
    let (mut q, mut o): (Vec<Sample>, Vec<Sample>) = (Vec::new(), Vec::new());
    for i in 1..=runs {
        let s = run_qemu(guest).map_err(|e| format!("{name}, QEMU run {i}: {e}"))?;
        eprintln!(
            "[{name}] run {i}/{runs} QEMU: {:.1} ms, RSS beyond guest RAM {} KiB",
            s.wall.as_secs_f64() * 1e3,
            s.mem.beyond_guest_kib()
        );
        q.push(s);
        let s = run_ours(ours, guest).map_err(|e| format!("{name}, kvmsandbox run {i}: {e}"))?;
        eprintln!(
            "[{name}] run {i}/{runs} kvmsandbox: Vm::start {:.1} ms, process {:.1} ms, RSS beyond guest RAM {} KiB",
            s.start.as_secs_f64() * 1e3,
            s.wall.as_secs_f64() * 1e3,
            s.mem.beyond_guest_kib()
        );
        o.push(s);
    }
    Ok(Row::new(name, &q, &o))
}

fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "date unknown".into())
}

fn bars(r: &Row, scale: f64) -> Vec<Bar> {
    let s = |x: report::Stat| report::Stat {
        median: x.median * scale,
        min: x.min * scale,
        max: x.max * scale,
    };
    vec![
        Bar {
            label: "QEMU".into(),
            color: QEMU,
            stat: s(r.qemu_ms),
        },
        Bar {
            label: "ours".into(),
            color: OURS,
            stat: s(r.ours_ms),
        },
        Bar {
            label: "ours+proc".into(),
            color: OURS_PROC,
            stat: s(r.ours_spawn_ms),
        },
    ]
}

fn run() -> Result<(), String> {
    let opts = parse_args()?;
    let host = HostKind::detect();
    eprintln!(
        "bench-compare: host KVM: {host}; {} micro run(s), {} Linux run(s) per VMM",
        opts.runs, opts.linux_runs
    );
    let ours = std::env::current_exe()
        .map_err(|e| format!("cannot find my own path: {e}"))?
        .with_file_name("bench-compare-ours");
    if !ours.is_file() {
        return Err(format!(
            "{} is missing: build it with `cargo build --release -p kvmsandbox-benches --bins`",
            ours.display()
        ));
    }
    if !has_pvh_note(kvmsandbox::config::MICRO_GUEST_ELF) {
        return Err("the embedded micro guest has no PVH note (.note.Xen): rebuild it with guest/micro/src/pvh.rs".into());
    }
    let work = std::env::temp_dir().join("kvmsandbox-bench");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let elf = work.join("kvmsandbox-micro.elf");
    std::fs::write(&elf, kvmsandbox::config::MICRO_GUEST_ELF)
        .map_err(|e| format!("{}: {e}", elf.display()))?;

    let mut rows = vec![measure(
        "micro guest → KVMSANDBOX-READY",
        &GuestSpec::Micro { elf },
        &ours,
        opts.runs,
    )?];
    let clean_runs = (opts.runs * 4).max(20);
    eprintln!("[clean sandboxes] {clean_runs} runs of each way");
    let clean = run_ours_clean(&ours, clean_runs).map_err(|e| format!("clean sandboxes: {e}"))?;
    if opts.linux_runs > 0 {
        let dir = kernel_dir().map_err(|e| e.to_string())?;
        let initrd = initramfs().map_err(|e| e.to_string())?;
        let cmdline = kvmsandbox::vmm::vm::linux_cmdline(host, &[], "");
        let guest = GuestSpec::Linux {
            vmlinux: dir.join("vmlinux"),
            initrd,
            cmdline,
        };
        rows.push(measure(
            "Linux 6.12 → Run /init",
            &guest,
            &ours,
            opts.linux_runs,
        )?);
    }

    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let md = report::markdown(&rows, &host.to_string(), &today()) + &report::clean_section(&clean);
    let md_path = opts.out.join("compare.md");
    std::fs::write(&md_path, &md).map_err(|e| format!("{}: {e}", md_path.display()))?;

    let mut panels = vec![Panel {
        title: "micro guest boot".into(),
        unit: "ms",
        bars: bars(&rows[0], 1.0),
    }];
    if let Some(linux) = rows.get(1) {
        panels.push(Panel {
            title: "Linux boot".into(),
            unit: "s",
            bars: bars(linux, 1e-3),
        });
    }
    let mut mem = Vec::new();
    for (r, tag) in rows.iter().zip(["micro", "Linux"]) {
        mem.push(Bar {
            label: format!("QEMU {tag}"),
            color: QEMU,
            stat: r.qemu_extra_mib,
        });
        mem.push(Bar {
            label: format!("ours {tag}"),
            color: OURS,
            stat: r.ours_extra_mib,
        });
    }
    panels.push(Panel {
        title: "RSS beyond guest RAM".into(),
        unit: "MiB",
        bars: mem,
    });
    let png = opts.out.join("compare.png");
    chart::draw(&png, &panels).map_err(|e| e.to_string())?;
    println!("{md}");
    eprintln!("wrote {} and {}", md_path.display(), png.display());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-compare: {e}");
            ExitCode::FAILURE
        }
    }
}
