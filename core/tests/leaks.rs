//! Creating and destroying VMs must give everything back: file descriptors,
//! threads, memory mappings, runtime directories and resident memory return to
//! their starting level after many cycles.
//!
//! One `#[test]` on purpose: the counts are process-wide, so nothing else may run
//! in this binary at the same time.
//!
//! Counts come from the environment, with defaults small enough for `make test`:
//!   * `KVMSB_LEAK_VM_CYCLES` (default 200): `Vm::start` of the micro guest, in
//!     turn with `test=exit` (marker, exit at once), `test=early-panic` (start
//!     fails with `GuestPanic`) and `test=stay` + `kill()`; then drop;
//!   * `KVMSB_LEAK_SANDBOX_CYCLES` (default 20): `Sandbox::micro()`, `ping`,
//!     `shutdown`, drop.
//!
//! Before the cycles, `Vm::start` is made to fail at each step after its first
//! thread started (`KVMSB_TEST_FAIL_START`, a test-utils hook): each failed start
//! must return with every thread joined and every fd closed.
//!
//! The full run from the issue: `KVMSB_LEAK_VM_CYCLES=1000
//! KVMSB_LEAK_SANDBOX_CYCLES=50 cargo test -p kvmsandbox --test leaks -- --nocapture`.
//! Needs /dev/kvm.

mod common;

use kvmsandbox::{Error, Sandbox, Vm, VmConfig, VmExit};
use std::time::{Duration, Instant};

/// Resident memory may grow this much (allocator caches, glibc's thread-stack
/// cache), never with the cycle count.
const RSS_SLACK_KIB: u64 = 20 * 1024;
/// Extra mappings tolerated for the same caches (a leaked guest RAM mapping per
/// cycle would exceed this quickly).
const MAPS_SLACK: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Usage {
    fds: usize,
    threads: usize,
    maps: usize,
    rss_kib: u64,
    runtime_dirs: usize,
}

/// Sandbox runtime directories of this process (`kvmsandbox-<pid>-<n>`).
fn runtime_dirs() -> usize {
    let prefix = format!("kvmsandbox-{}-", std::process::id());
    let bases = [
        std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from),
        Some(std::env::temp_dir()),
    ];
    bases
        .iter()
        .flatten()
        .filter_map(|b| std::fs::read_dir(b).ok())
        .flat_map(|rd| rd.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .count()
}

fn usage() -> Usage {
    // Dropped VMs close their KVM objects in the background (vmm/reaper.rs).
    assert!(
        kvmsandbox::vmm::reaper::wait_idle(Duration::from_secs(10)),
        "background VM closes did not finish"
    );
    Usage {
        fds: std::fs::read_dir("/proc/self/fd").unwrap().count(),
        threads: common::status_field("Threads:") as usize,
        maps: std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count(),
        rss_kib: common::status_field("VmRSS:"),
        runtime_dirs: runtime_dirs(),
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One VM lifetime; `i` rotates through the ways a VM ends: the guest exits, the
/// guest panics before ready (start fails after threads and devices exist), the
/// host kills a running guest.
fn vm_cycle(i: usize) {
    match i % 3 {
        0 => {
            let vm = Vm::start(VmConfig::micro().cmdline("test=exit")).unwrap();
            assert_eq!(vm.wait().unwrap(), VmExit::Exited(0));
        }
        1 => match Vm::start(VmConfig::micro().cmdline("test=early-panic")) {
            Err(Error::GuestPanic { .. }) => {}
            other => panic!("expected GuestPanic, got {:?}", other.err()),
        },
        _ => {
            let vm = Vm::start(VmConfig::micro().cmdline("test=stay")).unwrap();
            vm.kill();
            assert_eq!(vm.wait().unwrap(), VmExit::Killed);
        }
    }
}

fn sandbox_cycle() {
    let sb = Sandbox::micro().unwrap();
    sb.ping().unwrap();
    sb.shutdown().unwrap();
}

/// Waits (bounded) for fds and threads to come back to `base`; returns the
/// final usage.
fn settle(base: Usage) -> Usage {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let u = usage();
        if (u.fds <= base.fds && u.threads <= base.threads && u.runtime_dirs <= base.runtime_dirs)
            || Instant::now() > deadline
        {
            return u;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn check(what: &str, base: Usage, after: Usage, cycles: usize, took: Duration) {
    eprintln!(
        "{what}: {cycles} cycles in {took:.2?} ({:.1}/s); fds {} -> {}, threads {} -> {}, maps {} -> {}, \
         VmRSS {} -> {} KiB, runtime dirs {} -> {}",
        cycles as f64 / took.as_secs_f64(),
        base.fds, after.fds, base.threads, after.threads, base.maps, after.maps,
        base.rss_kib, after.rss_kib, base.runtime_dirs, after.runtime_dirs
    );
    assert_eq!(after.fds, base.fds, "{what}: file descriptors leaked");
    assert_eq!(after.threads, base.threads, "{what}: threads leaked");
    assert_eq!(
        after.runtime_dirs, base.runtime_dirs,
        "{what}: runtime directories left behind"
    );
    assert!(
        after.maps <= base.maps + MAPS_SLACK,
        "{what}: mappings grew {} -> {}",
        base.maps,
        after.maps
    );
    assert!(
        after.rss_kib <= base.rss_kib + RSS_SLACK_KIB,
        "{what}: VmRSS grew {} -> {} KiB",
        base.rss_kib,
        after.rss_kib
    );
}

/// The probes are live: a leaked fd, thread and mapping each show up.
fn probes_see_leaks(base: Usage) {
    let f = std::fs::File::open("/dev/null").unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let th = std::thread::spawn(move || rx.recv());
    let buf = vec![1u8; 8 << 20]; // large: its own mapping, resident once touched
    let u = usage();
    assert_eq!(u.fds, base.fds + 1, "{u:?}");
    assert_eq!(u.threads, base.threads + 1, "{u:?}");
    assert!(
        u.maps > base.maps && u.rss_kib >= base.rss_kib + 7 * 1024,
        "{base:?} {u:?}"
    );
    drop((f, tx, buf));
    let _ = th.join();
    assert_eq!(settle(base).fds, base.fds);
}

#[test]
fn vm_and_sandbox_cycles_give_everything_back() {
    let vm_cycles = env_count("KVMSB_LEAK_VM_CYCLES", 200);
    let sb_cycles = env_count("KVMSB_LEAK_SANDBOX_CYCLES", 20);
    // Warm up once-only state (signal handler, lazily built tables, allocator
    // arenas, thread-stack cache) before taking the baseline.
    for i in 0..3 {
        vm_cycle(i);
        sandbox_cycle();
    }
    let base = settle(usage());
    probes_see_leaks(base);
    failed_starts_give_everything_back(base);

    let t0 = Instant::now();
    for i in 0..vm_cycles {
        vm_cycle(i);
    }
    let took = t0.elapsed();
    let after_vms = settle(base);
    check(
        "Vm::start (exit | early-panic | stay+kill)",
        base,
        after_vms,
        vm_cycles,
        took,
    );

    let base2 = after_vms;
    let t = Instant::now();
    for _ in 0..sb_cycles {
        sandbox_cycle();
    }
    let took = t.elapsed();
    let after_sandboxes = settle(base2);
    check(
        "Sandbox::micro + ping + shutdown",
        base2,
        after_sandboxes,
        sb_cycles,
        took,
    );
    // And against the very first baseline, so two slacks cannot add up.
    check(
        "overall",
        base,
        after_sandboxes,
        vm_cycles + sb_cycles,
        t0.elapsed(),
    );

    // A live sandbox whose guest reset and re-activated its devices dozens of
    // times (hostile-mmio) holds exactly what a fresh one holds; and a guest that
    // left host connections and queued RSTs behind (hostile-vsock) gives all of
    // it back when killed.
    for mode in ["hostile-mmio", "hostile-vsock"] {
        let dir = std::env::temp_dir().join(format!("kvmsb-leak-{}-{mode}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("disk.img");
        std::fs::write(&disk, vec![0u8; 64 * 1024]).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(dir.join("v.sock_5555")).unwrap();
        let before = settle(usage());
        let cfg = |cmdline: &str, sock: &str| {
            VmConfig::micro()
                .cmdline(cmdline)
                .disk(&disk, false)
                .vsock(dir.join(sock))
                .start_timeout(Duration::from_secs(25))
        };
        // The same machine (one disk, one vsock) serving normally.
        let t = Instant::now();
        let quiet = live_cost(cfg("", "q.sock"), None, None);
        let attacked = live_cost(
            cfg(&format!("test={mode}"), "v.sock"),
            Some(&listener),
            Some(quiet),
        );
        eprintln!("{mode}: a live sandbox holds {attacked:?} (fds, threads) after the attack, {quiet:?} serving normally");
        assert_eq!(attacked, quiet, "{mode}: (fds, threads) held while alive");
        let after = settle(before);
        check(mode, before, after, 2, t.elapsed());
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Starts a sandbox, pings it, and returns the (fds, threads) it holds while
/// alive above the level before it started; then kills it. A connection the
/// guest made to `listener` is accepted and closed first, so only the VMM's own
/// fds are counted. With `expect`, waits (bounded) for the cost to come down to
/// it (the muxer closes hung-up connections asynchronously) and returns what it
/// saw last.
fn live_cost(
    cfg: VmConfig,
    listener: Option<&std::os::unix::net::UnixListener>,
    expect: Option<(usize, usize)>,
) -> (usize, usize) {
    let before = usage();
    let sb = Sandbox::start(cfg).unwrap();
    sb.ping().unwrap();
    if let Some(l) = listener {
        l.set_nonblocking(true).unwrap();
        while let Ok((c, _)) = l.accept() {
            drop(c);
        }
    }
    let cost = || {
        let live = usage();
        (live.fds - before.fds, live.threads - before.threads)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = cost();
    while expect.is_some_and(|e| e != seen) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        seen = cost();
    }
    sb.kill();
    drop(sb);
    seen
}

/// Steps of `Vm::start` after which threads exist (see `KVMSB_TEST_FAIL_START`).
const FAIL_STEPS: &[&str] = &[
    "console",
    "vcpu0",
    "vcpu1",
    "vcpu-setup",
    "event-loop",
    "wait-ready",
];

/// A start failing at each step returns with nothing left behind: fds exactly
/// as before (everything was joined and dropped before `start` returned), and
/// threads back to the baseline (bounded wait: a joined thread leaves
/// /proc/self/task a moment after its joiner returns).
fn failed_starts_give_everything_back(base: Usage) {
    let dir = std::env::temp_dir().join(format!("kvmsb-leak-{}-fail", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let disk = dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 64 * 1024]).unwrap();
    let base = Usage {
        runtime_dirs: runtime_dirs(),
        ..base
    };
    for step in FAIL_STEPS {
        // One #[test] in this binary: nobody else reads the environment meanwhile.
        std::env::set_var("KVMSB_TEST_FAIL_START", step);
        let cfg = VmConfig::micro()
            .vcpus(2)
            .cmdline("test=stay")
            .disk(&disk, false)
            .on_console_line(|_| {});
        let t = Instant::now();
        let r = Vm::start(cfg);
        let took = t.elapsed();
        std::env::remove_var("KVMSB_TEST_FAIL_START");
        let e = r
            .err()
            .unwrap_or_else(|| panic!("{step}: start succeeded despite the injected failure"));
        assert!(e.to_string().contains("injected"), "{step}: {e}");
        let fds_now = usage().fds;
        let after = settle(base);
        eprintln!(
            "failed start at {step}: returned in {took:.2?}; fds {} -> {fds_now}, threads {} -> {}",
            base.fds, base.threads, after.threads
        );
        assert_eq!(
            fds_now, base.fds,
            "{step}: fds left open when start returned"
        );
        assert_eq!(after.threads, base.threads, "{step}: threads left running");
        assert!(
            took < Duration::from_secs(5),
            "{step}: failed start took {took:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
