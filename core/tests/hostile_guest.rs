//! A hostile guest must not hurt the VMM. The micro guest's `test=hostile-<name>`
//! modes (guest/micro/src/hostile.rs) attack from inside: garbage in the
//! virtio-mmio registers, malformed descriptor chains, a vsock flood, accesses to
//! unmapped physical addresses, garbage on every I/O port, a busy loop with
//! interrupts off. After each attack
//! the guest resets its devices, brings them up with the ordinary drivers and
//! serves as the agent again, so each test checks that:
//!   * the attacked sandbox still starts (the marker comes after the attack) and
//!     answers `ping()` and a disk read through its devices;
//!   * `kill()` returns promptly (< 5 s) and the VM is stopped afterwards;
//!   * a bystander sandbox of the same process, started before the attack, still
//!     answers `ping()`.
//!
//! Needs /dev/kvm. Each test is bounded (start timeout 25 s). The guest draws its
//! garbage from a seed it prints (`hostile: seed=N`); `KVMSB_HOSTILE_SEED=N`
//! replays it.

mod common;

use kvmsandbox::{Error, Sandbox, Vm, VmConfig, VmExit};
use std::io::Read;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Upper bound for `kill()` and drop.
const TEARDOWN: Duration = Duration::from_secs(5);
/// The hostile guest's data buffer is 1 MiB; the disk stays well below.
const DISK_BYTES: usize = 64 * 1024;

/// One normal sandbox shared by every test, started before any attack.
fn bystander() -> &'static Sandbox {
    static B: OnceLock<Sandbox> = OnceLock::new();
    B.get_or_init(|| Sandbox::micro().expect("bystander sandbox"))
}

fn disk(name: &str) -> PathBuf {
    let bytes: Vec<u8> = (0..DISK_BYTES)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[2])
        .collect();
    common::temp_file(name, &bytes)
}

fn vsock_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvmsb-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Boots `test=<mode>` with a disk and a vsock at `dir/v.sock`, checks the
/// guest survived its own attack with a working agent, kills it within
/// [`TEARDOWN`] and checks the bystander. Returns the console output.
fn survive(mode: &str, dir: &std::path::Path) -> String {
    survive_then(mode, dir, |_| {})
}

/// [`survive`], running `check` on the attacked sandbox before it is killed.
fn survive_then(mode: &str, dir: &std::path::Path, check: impl FnOnce(&Sandbox)) -> String {
    let by = bystander();
    let _serial = one_at_a_time();
    by.ping().expect("bystander before the attack");
    let disk = disk(&format!("{mode}.img"));
    // The guest prints its random seed; KVMSB_HOSTILE_SEED replays one.
    let seed = std::env::var("KVMSB_HOSTILE_SEED")
        .map(|s| format!(" seed={s}"))
        .unwrap_or_default();
    let cfg = VmConfig::micro()
        .cmdline(&format!("test={mode}{seed}"))
        .disk(&disk, false)
        .vsock(dir.join("v.sock"))
        .start_timeout(Duration::from_secs(25));
    let t0 = Instant::now();
    let sb = match Sandbox::start(cfg) {
        Ok(sb) => sb,
        Err(e) => panic!("{mode}: the attacked guest did not come back: {e}"),
    };
    let attack_time = t0.elapsed();
    let out = sb.console_output();
    assert!(out.contains(&format!("{mode}: done")), "{mode}: {out}");
    assert!(
        out.contains("hostile: disk 0 reads after the attack"),
        "{mode}: {out}"
    );
    // The agent on the attacked devices answers, and the disk is still the file.
    sb.ping()
        .unwrap_or_else(|e| panic!("{mode}: attacked guest does not answer: {e}\n{out}"));
    let sector = sb
        .disk_read(0, 0, 512)
        .unwrap_or_else(|e| panic!("{mode}: disk read: {e}"));
    assert_eq!(
        sector,
        std::fs::read(&disk).unwrap()[..512],
        "{mode}: disk content"
    );
    check(&sb);
    let vm = sb.vm().unwrap();
    assert!(vm.is_running(), "{mode}");
    // Nothing left spinning: no device stuck re-reading a broken ring, no vCPU
    // thread looping on an exit (the guest agent idles in hlt).
    let cpu = cpu_over(Duration::from_secs(1));
    assert!(
        cpu < Duration::from_millis(300),
        "{mode}: {cpu:?} of CPU in 1 s while idle"
    );
    let t = Instant::now();
    sb.kill();
    assert!(
        t.elapsed() < TEARDOWN,
        "{mode}: kill took {:?}",
        t.elapsed()
    );
    assert!(!vm.is_running(), "{mode}");
    let t = Instant::now();
    drop(sb);
    assert!(
        t.elapsed() < TEARDOWN,
        "{mode}: drop took {:?}",
        t.elapsed()
    );
    by.ping()
        .unwrap_or_else(|e| panic!("bystander after {mode}: {e}"));
    eprintln!(
        "{mode}: attack + recovery {attack_time:?}, idle CPU {cpu:?}/s; {}",
        done_line(&out, mode)
    );
    out
}

/// CPU time (user + system) this process used over `window`.
fn cpu_over(window: Duration) -> Duration {
    fn ticks() -> u64 {
        let s = std::fs::read_to_string("/proc/self/stat").unwrap();
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        let rest = &s[s.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|v| v.parse().unwrap())
            .collect();
        f[0] + f[1]
    }
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let a = ticks();
    std::thread::sleep(window);
    Duration::from_millis((ticks() - a) * 1000 / hz)
}

/// Serialises every test of this binary that runs a VM of its own (attacks and
/// spinning guests), so the process-wide CPU measurement of an idle attacked VM
/// never includes another test's busy vCPU (tests run in parallel by default).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|p| p.into_inner())
}

fn done_line<'a>(out: &'a str, mode: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!("{mode}: done")))
        .unwrap_or("")
}

#[test]
fn garbage_in_every_mmio_register_leaves_devices_usable() {
    let dir = vsock_dir("mmio");
    let out = survive("hostile-mmio", &dir);
    // Every bad ring setup must have been refused (DEVICE_NEEDS_RESET), 6 per device.
    let line = done_line(&out, "hostile-mmio");
    let n: u32 = line
        .split("needs_reset=")
        .nth(1)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(n, 12, "{line}");
    // The devices really went live on rings full of garbage. The guest gets 8
    // explicit chances (4 rounds x 2 devices) plus random Status writes, but a
    // chance only counts if the guest's read-back right after DRIVER_OK still shows
    // no DEVICE_NEEDS_RESET, and the event loop applies the activation (and serves
    // every queue once) concurrently: on a garbage ring it may already have asked
    // for a reset by then. So 8 is not guaranteed; 3 proves activation on garbage
    // happened for more than one round (a single lucky one would show 1).
    let live: u32 = line
        .split("live_on_garbage=")
        .nth(1)
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(live >= 3, "{line}");
}

#[test]
fn malformed_descriptor_chains_are_refused_not_followed() {
    let dir = vsock_dir("desc");
    let out = survive("hostile-desc", &dir);
    let line = done_line(&out, "hostile-desc");
    let used = |attack: &str| -> u32 {
        let field = line
            .split(' ')
            .find(|f| f.starts_with(&format!("{attack}:")))
            .unwrap_or_else(|| panic!("{attack} missing: {line}"));
        field
            .split("used=")
            .nth(1)
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    // Each malformed chain came back (as an error, with nothing followed forever),
    // so a loop cannot wedge the queue...
    for (attack, chains) in [
        ("self-loop", 1),
        ("cycle", 1),
        ("huge-len", 2),
        ("whole-table-chain", 1),
        ("indirect-1000", 2),
    ] {
        assert_eq!(used(attack), chains, "{attack}: {line}");
    }
    // ...and an avail index 60000 ahead of the device is refused outright.
    assert_eq!(used("avail-jump"), 0, "{line}");
    // Random descriptors: 32 chains were published, so the device cannot have
    // used more, whatever it made of them (a used idx past that is a device bug).
    let random = used("random");
    assert!(
        random <= 32,
        "random: device used {random} of 32 published chains: {line}"
    );
}

#[test]
fn vsock_flood_and_credit_abuse_leave_the_muxer_working() {
    let dir = vsock_dir("vsock");
    // A host listener that accepts nothing and reads nothing: the guest's data
    // without credit has nowhere to go.
    let listener = UnixListener::bind(dir.join("v.sock_5555")).unwrap();
    let out = survive_then("hostile-vsock", &dir, |_| {
        // The guest reset its device with that connection open: the host side
        // must be closed already (whatever data got through, then EOF), not left
        // dangling until the VM dies.
        let (mut c, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut got = Vec::new();
        match c.read_to_end(&mut got) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("host end of the guest's connection still open after the device reset: {e} ({} bytes)", got.len()),
        }
        eprintln!(
            "hostile-vsock: host listener got {} bytes, then EOF",
            got.len()
        );
    });
    let line = done_line(&out, "hostile-vsock");
    assert!(line.contains("connected=true"), "{line}");
    // The flood without a listener was answered with RSTs once rx buffers came.
    let rsts: usize = line
        .split("rsts=")
        .nth(1)
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(rsts > 0, "{line}");
    drop(listener);
}

#[test]
fn unmapped_physical_accesses_are_harmless() {
    let dir = vsock_dir("unmapped");
    let out = survive("hostile-unmapped", &dir);
    assert!(
        done_line(&out, "hostile-unmapped").contains("accesses="),
        "{out}"
    );
}

#[test]
fn garbage_on_every_io_port_and_in_the_uart_is_harmless() {
    let dir = vsock_dir("pio");
    let out = survive("hostile-pio", &dir);
    assert!(
        done_line(&out, "hostile-pio").contains("accesses="),
        "{out}"
    );
}

#[test]
fn spinning_guest_with_interrupts_off_is_killed_promptly() {
    let by = bystander();
    let _serial = one_at_a_time();
    let vm = Vm::start(VmConfig::micro().vcpus(2).cmdline("test=hostile-spin")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(vm.is_running());
    assert_eq!(
        vm.wait_timeout(Some(Duration::from_millis(100))).unwrap(),
        None
    );
    let t = Instant::now();
    vm.kill();
    assert!(t.elapsed() < TEARDOWN, "kill took {:?}", t.elapsed());
    assert_eq!(vm.wait().unwrap(), VmExit::Killed);
    let t = Instant::now();
    drop(vm);
    assert!(t.elapsed() < TEARDOWN, "drop took {:?}", t.elapsed());
    by.ping().unwrap();
}

#[test]
fn guest_spinning_before_ready_times_out_and_is_torn_down() {
    let by = bystander();
    let _serial = one_at_a_time();
    let t = Instant::now();
    let cfg = VmConfig::micro()
        .cmdline("test=spin")
        .start_timeout(Duration::from_secs(1));
    match Vm::start(cfg) {
        Err(Error::StartTimeout { .. }) => {}
        other => panic!("expected StartTimeout, got {:?}", other.err()),
    }
    assert!(
        t.elapsed() < Duration::from_secs(1) + TEARDOWN,
        "took {:?}",
        t.elapsed()
    );
    by.ping().unwrap();
}
