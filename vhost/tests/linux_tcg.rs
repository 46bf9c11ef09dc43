//! The Linux guest end to end: our kernel with the agent as PID 1 on an ext4 root
//! disk, talking through OUR virtio-vsock device to the real Linux virtio-vsock
//! driver, under two VMMs with one set of cases (`run_cases`, taking a `&Sandbox`):
//!
//! - QEMU TCG, our device served over vhost-user by kvmsandbox-vhost-vsock: on
//!   every host (the only place Linux user space runs on a PVM host);
//! - our own VMM (`Sandbox::start(VmConfig::linux(..))`): on hardware KVM. On a
//!   PVM host that start must fail saying why (`Error::LinuxUserSpaceOnPvm`),
//!   which the same test checks instead. Each test prints the backend it used.
//!
//! One boot per backend serves every case (a TCG boot costs seconds, and `make
//! test` has a time budget); each case runs on its own, failures are collected and
//! reported together, and the last step shuts the guest down and checks the root
//! disk with `e2fsck -fn`. Needs `make linux-guest` (kernel, initramfs),
//! qemu-system-x86_64 (`make qemu`), busybox-static and e2fsprogs: missing pieces
//! fail the test.

#[path = "linux_tcg/harness.rs"]
mod harness;

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{BootOptions, Inputs, TcgVm};
use kvmsandbox::agent::{AgentError, ErrorCode, ExecEvent, ExecRequest, Stream};
use kvmsandbox::{Error, HostKind, Sandbox, VmConfig};

const PATH: &str = "/bin:/sbin:/usr/bin:/usr/sbin";
const MIB: usize = 1 << 20;

fn sh(script: &str) -> ExecRequest {
    ExecRequest::new(["sh", "-c", script])
        .env("PATH", PATH)
        .timeout(Duration::from_secs(120))
}

/// Deterministic bytes covering every value, with no short period.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn exit_codes(sb: &Sandbox) {
    for code in [0, 1, 3, 42, 255] {
        let out = sb.exec(&sh(&format!("exit {code}"))).unwrap();
        assert_eq!(out.status.code, Some(code), "{out:?}");
        assert_eq!(out.status.signal, None);
    }
}

fn signals(sb: &Sandbox) {
    let out = sb.exec(&sh("kill -TERM $$; sleep 5")).unwrap();
    assert_eq!(out.status.signal, Some(libc::SIGTERM), "{:?}", out.status);
    assert_eq!(out.status.code, None);
    let out = sb.exec(&sh("kill -KILL $$")).unwrap();
    assert_eq!(out.status.signal, Some(libc::SIGKILL), "{:?}", out.status);
}

fn env_is_exactly_what_was_given(sb: &Sandbox) {
    let req = ExecRequest::new(["env"])
        .env("PATH", PATH)
        .env("GREETING", "hello world")
        .env("EMPTY", "");
    let out = sb.exec(&req).unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut lines: Vec<_> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "EMPTY=",
            "GREETING=hello world",
            format!("PATH={PATH}").as_str()
        ]
    );
}

fn cwd(sb: &Sandbox) {
    let out = sb
        .exec(
            &ExecRequest::new(["pwd"])
                .env("PATH", PATH)
                .cwd("/proc/self"),
        )
        .unwrap();
    // busybox pwd prints the logical directory it was started in.
    assert!(out.status.success(), "{out:?}");
    let out2 = sb.exec(&sh("pwd").cwd("/tmp")).unwrap();
    assert_eq!(out2.stdout, b"/tmp\n");
    let err = sb.exec(&sh("true").cwd("/no/such/dir")).unwrap_err();
    assert!(
        matches!(err, Error::Agent(AgentError::Remote { .. })),
        "{err}"
    );
}

fn stdin_round_trips_binary(sb: &Sandbox) {
    let data = pattern(3 * MIB + 17);
    let out = sb
        .exec(
            &ExecRequest::new(["cat"])
                .env("PATH", PATH)
                .stdin(data.clone()),
        )
        .unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "stdin came back altered");
}

fn binary_stdout_and_stderr_stay_apart(sb: &Sandbox) {
    let out = sb
        .exec(&sh(
            r"printf 'a\000b\377\n'; printf 'e\001\376' >&2; printf 'c'",
        ))
        .unwrap();
    assert_eq!(out.stdout, b"a\0b\xff\nc");
    assert_eq!(out.stderr, b"e\x01\xfe");
}

fn twenty_mib_of_stdout(sb: &Sandbox) -> Duration {
    let n = 20 * MIB;
    let t = Instant::now();
    let out = sb
        .exec(&sh(&format!("yes 0123456789abcdef | head -c {n}")))
        .unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), n);
    assert!(
        out.stdout
            .chunks(17)
            .all(|c| b"0123456789abcdef\n".starts_with(c)),
        "stdout corrupted"
    );
    took
}

fn output_streams_before_exit(sb: &Sandbox) {
    let mut p = sb.spawn(&sh("echo first; sleep 3; echo second")).unwrap();
    let t = Instant::now();
    let first = loop {
        match p.next_event().unwrap() {
            ExecEvent::Output(Stream::Stdout, d) => break d,
            ExecEvent::Exit(st) => panic!("exited ({st:?}) before any output"),
            _ => continue,
        }
    };
    assert_eq!(first, b"first\n");
    assert!(
        t.elapsed() < Duration::from_millis(2900),
        "first line arrived only at exit"
    );
    let out = p.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"second\n");
}

fn streaming_stdin(sb: &Sandbox) {
    let mut p = sb
        .spawn(&ExecRequest::new(["cat"]).env("PATH", PATH))
        .unwrap();
    let mut stdin = p.take_stdin().unwrap();
    stdin.write_all(b"ping\n").unwrap();
    match p.next_event().unwrap() {
        ExecEvent::Output(Stream::Stdout, d) => assert_eq!(d, b"ping\n"),
        other => panic!("expected the echo, got {other:?}"),
    }
    drop(stdin);
    let st = p.wait(|_, _| {}).unwrap();
    assert!(st.success(), "{st:?}");
}

fn timeout_kills(sb: &Sandbox) {
    let t = Instant::now();
    let out = sb
        .exec(
            &ExecRequest::new(["sh", "-c", "sleep 1000 & sleep 1000"])
                .env("PATH", PATH)
                .timeout(Duration::from_secs(1)),
        )
        .unwrap();
    assert!(out.status.timed_out, "{:?}", out.status);
    assert!(out.status.signal.is_some(), "{:?}", out.status);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    // The whole process group went: no sleeper is left.
    let ps = sb
        .exec(&sh("ps -o comm | grep -c '^sleep$' || true"))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ps.stdout).trim(),
        "0",
        "sleepers left behind"
    );
}

fn command_not_found(sb: &Sandbox) {
    let err = sb
        .exec(&ExecRequest::new(["no-such-command"]).env("PATH", PATH))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent(AgentError::Remote {
                code: ErrorCode::NotFound,
                ..
            })
        ),
        "{err}"
    );
    let out = sb.exec(&sh("no-such-command")).unwrap();
    assert_eq!(out.status.code, Some(127));
}

fn eight_concurrent_commands(sb: &Sandbox) {
    let t = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| s.spawn(move || sb.exec(&sh(&format!("sleep 2; echo {i}")))))
            .collect();
        for (i, h) in hs.into_iter().enumerate() {
            let out = h.join().unwrap().unwrap();
            assert_eq!(out.stdout, format!("{i}\n").as_bytes());
        }
    });
    // Serially they would need 16 s; the guest ran them side by side.
    assert!(
        t.elapsed() < Duration::from_secs(14),
        "took {:?}",
        t.elapsed()
    );
}

fn files_small_and_missing(sb: &Sandbox) {
    assert_eq!(
        sb.write_file("/tmp/small", &b"hello\0file"[..], 0o640)
            .unwrap(),
        10
    );
    let mut back = Vec::new();
    sb.read_file("/tmp/small", &mut back).unwrap();
    assert_eq!(back, b"hello\0file");
    let out = sb.exec(&sh("stat -c %a /tmp/small")).unwrap();
    assert_eq!(out.stdout, b"640\n");
    let err = sb.read_file("/tmp/missing", &mut Vec::new()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Agent(AgentError::Remote {
                code: ErrorCode::NotFound,
                ..
            })
        ),
        "{err}"
    );
}

/// 64 MiB onto the ext4 root (virtio-blk), read back, checked in the guest too.
fn sixty_four_mib_file(sb: &Sandbox) -> (Duration, Duration) {
    let data = pattern(64 * MIB);
    let t = Instant::now();
    assert_eq!(
        sb.write_file("/data/big", &data[..], 0o644).unwrap(),
        data.len() as u64
    );
    let write = t.elapsed();
    let t = Instant::now();
    let mut back = Vec::with_capacity(data.len());
    sb.read_file("/data/big", &mut back).unwrap();
    let read = t.elapsed();
    assert!(
        back == data,
        "64 MiB file came back altered ({} bytes)",
        back.len()
    );
    let out = sb.exec(&sh("wc -c < /data/big")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        (64 * MIB).to_string()
    );
    (write, read)
}

fn pid1_duties(sb: &Sandbox) {
    let out = sb.exec(&sh("cat /proc/1/comm; grep -c ' /proc \\| /sys \\| /dev \\| /tmp ' /proc/mounts; grep ' / ' /proc/mounts")).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("init"), "{text}");
    assert_eq!(lines.next(), Some("4"), "API filesystems: {text}");
    let root = lines.next().unwrap_or_default();
    assert!(
        root.starts_with("/dev/vda / ext4"),
        "root is not the ext4 disk: {text}"
    );
    // Orphans are reaped: a double-forked child must not stay a zombie.
    let out = sb
        .exec(&sh(
            "(sleep 0.2 &) ; sleep 1; ps -o stat,comm | grep -c '^Z' || true",
        ))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "zombies left"
    );
}

fn exec_round_trip(sb: &Sandbox) -> Duration {
    let n = 20;
    let t = Instant::now();
    for _ in 0..n {
        let out = sb
            .exec(&ExecRequest::new(["true"]).env("PATH", PATH))
            .unwrap();
        assert!(out.status.success());
    }
    t.elapsed() / n
}

/// The disk image's directory, removed even when the test fails.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let d = std::env::temp_dir().join(format!("kvmsb-{tag}-disk-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the cases found: failures and measured figures.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    figures: Vec<String>,
}

/// Every case against `sb`, whichever VMM runs the guest; each case runs on its
/// own and a failing one does not stop the rest.
fn run_cases(sb: &Sandbox) -> Report {
    let mut r = Report::default();
    macro_rules! case {
        ($f:ident) => {{
            let t = Instant::now();
            match catch_unwind(AssertUnwindSafe(|| $f(sb))) {
                Ok(v) => {
                    eprintln!("ok   {} ({:.2?})", stringify!($f), t.elapsed());
                    Some(v)
                }
                Err(e) => {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    eprintln!("FAIL {}: {msg}", stringify!($f));
                    r.failures.push(format!("{}: {msg}", stringify!($f)));
                    None
                }
            }
        }};
    }
    case!(pid1_duties);
    case!(exit_codes);
    case!(signals);
    case!(env_is_exactly_what_was_given);
    case!(cwd);
    case!(binary_stdout_and_stderr_stay_apart);
    case!(stdin_round_trips_binary);
    case!(output_streams_before_exit);
    case!(streaming_stdin);
    case!(timeout_kills);
    case!(command_not_found);
    case!(eight_concurrent_commands);
    case!(files_small_and_missing);
    if let Some(rt) = case!(exec_round_trip) {
        r.figures
            .push(format!("exec round trip (`true`): {rt:.2?}"));
    }
    if let Some(t) = case!(twenty_mib_of_stdout) {
        r.figures.push(format!(
            "20 MiB stdout: {t:.2?} ({:.1} MiB/s)",
            20.0 / t.as_secs_f64()
        ));
    }
    if let Some((w, rd)) = case!(sixty_four_mib_file) {
        r.figures.push(format!(
            "64 MiB file write: {w:.2?} ({:.1} MiB/s), read: {rd:.2?} ({:.1} MiB/s)",
            64.0 / w.as_secs_f64(),
            64.0 / rd.as_secs_f64()
        ));
    }
    r
}

const MARKER: &[u8] = b"written by the guest\n";

/// Writes the marker file on the root disk and flushes it; the caller then shuts
/// the guest down its backend's way.
fn write_marker(sb: &Sandbox) {
    sb.write_file("/data/marker", MARKER, 0o644).unwrap();
    let out = sb.exec(&sh("sync")).unwrap();
    assert!(out.status.success());
}

/// After shutdown: the root disk is clean and holds the marker file.
fn check_disk(disk: &std::path::Path) {
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(disk)
        .output()
        .expect("run e2fsck");
    assert!(
        fsck.status.success(),
        "e2fsck -fn found problems: {}\n{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let cat = Command::new("debugfs")
        .arg("-R")
        .arg("cat /data/marker")
        .arg(disk)
        .output()
        .expect("run debugfs");
    assert_eq!(
        cat.stdout,
        MARKER,
        "{}",
        String::from_utf8_lossy(&cat.stderr)
    );
}

fn finish(backend: &str, report: Report) {
    eprintln!("{backend} figures:\n  {}", report.figures.join("\n  "));
    assert!(
        report.failures.is_empty(),
        "{backend}: {} case(s) failed:\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
}

#[test]
fn linux_guest_end_to_end_under_qemu_tcg() {
    eprintln!(
        "backend: QEMU TCG with kvmsandbox-vhost-vsock (host: {})",
        HostKind::detect()
    );
    let inputs = Inputs::from_env();
    let dir = TempDir::new("tcg");
    let disk = dir.0.join("root.ext4");
    harness::busybox_ext4(&disk, 256);
    let mut vm = TcgVm::boot(
        &inputs,
        &BootOptions {
            disks: vec![disk.clone()],
            append: "kvmsandbox.root=/dev/vda".into(),
        },
    );
    let sb = vm.sandbox();
    let mut report = run_cases(&sb);
    report
        .figures
        .insert(0, format!("boot to agent ready: {:.2?}", vm.boot_time()));

    // Last: a file written and flushed on the root disk survives a shutdown,
    // and the filesystem is clean afterwards.
    write_marker(&sb);
    sb.shutdown().unwrap();
    // The agent restarts the guest ("reboot: Restarting system"), which QEMU
    // (-no-reboot) turns into an exit; linux_pid1.rs checks that part.
    assert!(
        vm.wait_console("reboot: ", Duration::from_secs(60)),
        "the guest did not power down\n{}",
        vm.diagnostics()
    );
    drop(sb);
    vm.stop();
    check_disk(&disk);
    drop(vm);
    finish("QEMU TCG (not KVM)", report);
}

/// Under our own VMM on hardware KVM; on a PVM host, where Linux user space
/// cannot run, the start must fail with the error that says so.
#[test]
fn linux_guest_end_to_end_under_our_vmm() {
    let host = HostKind::detect();
    let inputs = Inputs::from_env();
    let cfg = VmConfig::linux(&inputs.vmlinux)
        .initrd(&inputs.initrd)
        .memory_mib(512)
        // PVM emulates the boot: ~30 s idle, 275 s seen on a machine loaded 5x over.
        .start_timeout(Duration::from_secs(900));
    if host.is_pvm() {
        eprintln!("backend: our VMM on {host}: Linux user space cannot run here, checking the start error (the cases ran under QEMU TCG)");
        let t = Instant::now();
        let err = Sandbox::start(cfg)
            .err()
            .expect("a Linux guest started on a PVM host");
        eprintln!("failed after {:.1?}: {err}", t.elapsed());
        match &err {
            Error::LinuxUserSpaceOnPvm { signal, .. } => {
                assert_eq!(*signal, libc::SIGSEGV, "{err}")
            }
            other => panic!("expected Error::LinuxUserSpaceOnPvm, got {other:?}"),
        }
        let msg = err.to_string();
        for needle in [
            "PVM-enabled guest kernel",
            "micro guest",
            "killed by signal 11",
        ] {
            assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
        }
        return;
    }
    eprintln!("backend: our VMM on {host}");
    let dir = TempDir::new("vmm");
    let disk = dir.0.join("root.ext4");
    harness::busybox_ext4(&disk, 256);
    let t = Instant::now();
    let sb = Sandbox::start(cfg.disk(&disk, false).cmdline("kvmsandbox.root=/dev/vda"))
        .unwrap_or_else(|e| panic!("our VMM did not start the Linux guest: {e}"));
    let mut report = run_cases(&sb);
    report
        .figures
        .insert(0, format!("start to agent ready: {:.2?}", t.elapsed()));
    write_marker(&sb);
    // The agent's shutdown resets the VM, which ends it under our VMM.
    sb.shutdown().unwrap();
    drop(sb);
    check_disk(&disk);
    finish("our VMM (KVM)", report);
}
