//! The agent's PID-1 duties on the real guest (issue 21, items 1-6): our kernel,
//! the static agent as PID 1 switched onto an ext4 root disk, under QEMU TCG with
//! our vsock device (see linux_tcg/harness.rs). The same behaviour is tested with
//! the agent as a host process in guest/agent/tests; only here do the kernel's
//! cgroup2, mounts, orphan re-parenting to PID 1 and the reset path take part.
//!
//! One boot serves every case; each case runs on its own and failures are
//! collected and reported together. The last step is the shutdown: it must answer,
//! end QEMU by itself (reset + `-no-reboot`, no halt the host has to notice) and
//! leave the root disk clean. Needs what linux_tcg.rs needs (`make linux-tcg`).

#[path = "linux_tcg/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::{BootOptions, Inputs, TcgVm};
use kvmsandbox::agent::ExecRequest;
use kvmsandbox::Sandbox;
use kvmsandbox_proto::msg::ExecSpec;
use kvmsandbox_proto::{Frame, FrameDecoder, Message, DEFAULT_AGENT_PORT};

const PATH: &str = "/bin:/sbin:/usr/bin:/usr/sbin";
/// "Does not hang" bound for one guest command under TCG on a loaded machine.
const SLOW: Duration = Duration::from_secs(60);

fn sh(script: &str) -> ExecRequest {
    ExecRequest::new(["sh", "-c", script])
        .env("PATH", PATH)
        .timeout(Duration::from_secs(120))
}

/// Runs `script`, asserts it succeeded, returns its stdout.
fn run(sb: &Sandbox, script: &str) -> String {
    let out = sb.exec(&sh(script)).unwrap();
    assert!(
        out.status.success(),
        "`{script}`: {:?}, stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How many processes in the guest have exactly this command line.
fn count(sb: &Sandbox, args: &str) -> usize {
    let n = run(sb, &format!("ps -o args | grep -cx '{args}' || true"));
    n.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ps count: {n:?}"))
}

/// Polls until no process has command line `args` (a kill takes a moment).
fn gone_within(sb: &Sandbox, args: &str, bound: Duration) -> bool {
    let t = Instant::now();
    loop {
        if count(sb, args) == 0 {
            return true;
        }
        if t.elapsed() > bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A bare protocol connection to the agent (to hang up mid-command, or to send
/// stdin regardless of the window, which the client library would never do).
struct Raw {
    s: UnixStream,
    dec: FrameDecoder,
}

impl Raw {
    fn connect(vm: &TcgVm) -> Raw {
        let s =
            kvmsandbox::agent::connect_hybrid(&vm.vsock_path(), DEFAULT_AGENT_PORT, SLOW).unwrap();
        s.set_read_timeout(Some(SLOW)).unwrap();
        let mut r = Raw {
            s,
            dec: FrameDecoder::new(),
        };
        assert!(matches!(r.recv().msg, Message::Hello(_)));
        r
    }

    fn send(&mut self, id: u32, msg: Message) {
        self.s
            .write_all(&Frame::new(id, msg).encode().unwrap())
            .unwrap();
    }

    fn recv(&mut self) -> Frame {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(f) = self.dec.next_frame().unwrap() {
                return f;
            }
            let n = self.s.read(&mut buf).expect("agent silent");
            assert!(n > 0, "agent hung up");
            self.dec.feed(&buf[..n]);
        }
    }

    /// The next frame for `id` that is not a `StdinAck`.
    fn recv_for(&mut self, id: u32) -> Message {
        loop {
            let f = self.recv();
            if f.request_id == id && !matches!(f.msg, Message::StdinAck { .. }) {
                return f.msg;
            }
        }
    }
}

fn spec(argv: &[&str], stdin: bool) -> ExecSpec {
    ExecSpec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), PATH.into())],
        cwd: None,
        stdin,
        timeout_ms: None,
    }
}

/// (b) cgroup2 is mounted where the agent keeps its commands, and each command
/// runs in a cgroup of its own while the agent stays in the root.
fn each_command_gets_its_own_cgroup(sb: &Sandbox) {
    let mounts = run(sb, "grep ' /sys/fs/cgroup ' /proc/mounts");
    assert!(
        mounts.starts_with("cgroup2 /sys/fs/cgroup cgroup2 "),
        "{mounts}"
    );
    let a = run(sb, "cat /proc/self/cgroup");
    let b = run(sb, "cat /proc/self/cgroup");
    for cg in [&a, &b] {
        assert!(
            cg.starts_with("0::/kvmsandbox-agent-1/cmd-"),
            "not in a command cgroup: {cg}"
        );
    }
    assert_ne!(a, b, "two commands shared a cgroup");
    assert_eq!(run(sb, "cat /proc/1/cgroup"), "0::/\n");
    // A finished command's cgroup is removed.
    let left = run(sb, "ls /sys/fs/cgroup/kvmsandbox-agent-1 | grep -c '^cmd-'");
    assert_eq!(left.trim(), "1", "only this command's cgroup should exist");
}

/// (a) Item 1: a background child keeping stdout open does not hold the exec
/// until it ends (it used to take 100 s), and is gone afterwards.
fn background_child_does_not_hold_the_exec(sb: &Sandbox) -> Duration {
    let t = Instant::now();
    let out = sb
        .exec(&sh("sleep 101 &").timeout(Duration::from_secs(1)))
        .unwrap();
    let took = t.elapsed();
    assert_eq!(out.status.code, Some(0), "{:?}", out.status);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(count(sb, "sleep 101"), 0, "the background sleep survived");
    // A daemon that let go of stdout is ended with the exec too.
    let out = sb.exec(&sh("sleep 106 >/dev/null 2>&1 &")).unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(count(sb, "sleep 106"), 0, "the detached sleep survived");
    took
}

/// (b) Item 2: a `setsid` escapee (other session and process group, same cgroup)
/// is killed at the timeout.
fn setsid_escapee_is_killed_on_timeout(sb: &Sandbox) {
    let script = r#"pg() { cut -d' ' -f5 /proc/$1/stat; }
        setsid sh -c 'echo "esc $(cut -d" " -f5 /proc/$$/stat) $(cat /proc/$$/cgroup)"; exec sleep 102' &
        echo "me $(pg $$) $(cat /proc/$$/cgroup)"
        wait"#;
    let t = Instant::now();
    let out = sb
        .exec(&sh(script).timeout(Duration::from_secs(3)))
        .unwrap();
    assert!(out.status.timed_out, "{:?}", out.status);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let fields = |tag: &str| -> Vec<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(tag))
            .unwrap_or_else(|| panic!("no `{tag}` line in {text:?}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let (me, esc) = (fields("me "), fields("esc "));
    assert_ne!(me[0], esc[0], "the escapee did not leave the process group");
    assert_eq!(me[1], esc[1], "the escapee is not in the command's cgroup");
    assert!(
        gone_within(sb, "sleep 102", Duration::from_secs(5)),
        "the setsid escapee survived the timeout"
    );
}

/// (c) Item 6: mounts carry the flags of the agent's table.
fn mounts_have_the_tables_flags(sb: &Sandbox) {
    let text = run(sb, "cat /proc/mounts");
    // The last line for a mount point is the one on top.
    let mut m: HashMap<&str, (&str, Vec<&str>)> = HashMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 4 {
            m.insert(f[1], (f[2], f[3].split(',').collect()));
        }
    }
    let want: &[(&str, &str, &[&str], &[&str])] = &[
        ("/proc", "proc", &["nosuid", "nodev", "noexec"], &[]),
        ("/sys", "sysfs", &["nosuid", "nodev", "noexec"], &[]),
        ("/dev", "devtmpfs", &["nosuid", "noexec"], &["nodev"]),
        ("/dev/pts", "devpts", &["nosuid", "noexec"], &["nodev"]),
        ("/dev/shm", "tmpfs", &["nosuid", "nodev"], &["noexec"]),
        ("/tmp", "tmpfs", &["nosuid", "nodev"], &["noexec"]),
        (
            "/sys/fs/cgroup",
            "cgroup2",
            &["nosuid", "nodev", "noexec"],
            &[],
        ),
    ];
    for (target, fstype, has, lacks) in want {
        let (ty, opts) = m
            .get(target)
            .unwrap_or_else(|| panic!("{target} not mounted:\n{text}"));
        assert_eq!(ty, fstype, "{target}");
        for o in *has {
            assert!(opts.contains(o), "{target} lacks {o}: {opts:?}");
        }
        for o in *lacks {
            assert!(!opts.contains(o), "{target} has {o}: {opts:?}");
        }
    }
    // RAM-backed mounts are bounded: /tmp at a quarter of RAM.
    let mem_kib: u64 = run(sb, "awk '/MemTotal/ {print $2}' /proc/meminfo")
        .trim()
        .parse()
        .unwrap();
    for t in ["/tmp", "/dev/shm"] {
        let size: u64 = m[t]
            .1
            .iter()
            .find_map(|o| o.strip_prefix("size="))
            .and_then(|s| s.strip_suffix('k'))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{t} has no size limit: {:?}", m[t].1));
        assert!(size <= mem_kib * 26 / 100, "{t}: {size} KiB of {mem_kib}");
    }
    // The links, and what the flags mean in practice.
    let links = run(
        sb,
        "for l in /dev/fd /dev/stdin /dev/stdout /dev/stderr; do readlink $l; done",
    );
    assert_eq!(
        links,
        "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n"
    );
    let out = sb.exec(&sh("echo to-stderr > /dev/stderr")).unwrap();
    assert_eq!(out.stderr, b"to-stderr\n");
    assert_eq!(run(sb, "ls /dev/pts/ptmx >/dev/null && echo pts"), "pts\n");
    let execs = run(
        sb,
        "for d in /tmp /dev/shm; do printf '#!/bin/sh\\necho ran\\n' > $d/x.sh; chmod +x $d/x.sh; $d/x.sh; done",
    );
    assert_eq!(execs, "ran\nran\n", "scratch space must stay executable");
    // nodev: a device node made in /tmp cannot be opened.
    let out = sb
        .exec(&sh("mknod /tmp/null c 1 3 && echo x > /tmp/null"))
        .unwrap();
    assert!(!out.status.success(), "a device opened on /tmp (no nodev)");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (d) Orphans are re-parented to the agent and reaped: no zombie after a double fork.
fn orphans_are_reaped(sb: &Sandbox) {
    let out = run(
        sb,
        r#"p=$( (sleep 0.5 >/dev/null 2>&1 & echo $!) )
           ppid=$(awk '/^PPid/ {print $2}' /proc/$p/status)
           sleep 2
           if [ -e /proc/$p ]; then echo "left: $(cat /proc/$p/stat)"; else echo "gone $ppid"; fi
           ps -o stat | grep -c '^Z' || true"#,
    );
    assert_eq!(out, "gone 1\n0\n", "orphan not reaped by PID 1");
}

/// (e) Item 2/4: the host hanging up mid-command kills the command, escapee included.
fn host_disconnect_kills_the_command(vm: &TcgVm, sb: &Sandbox) {
    let mut r = Raw::connect(vm);
    r.send(
        1,
        Message::Exec(spec(
            &[
                "sh",
                "-c",
                "setsid sleep 105 >/dev/null 2>&1 & echo up; exec sleep 104",
            ],
            false,
        )),
    );
    assert!(matches!(r.recv_for(1), Message::ExecStarted { .. }));
    match r.recv_for(1) {
        Message::Stdout { data } => assert_eq!(data, b"up\n"),
        other => panic!("expected `up`, got {other:?}"),
    }
    assert_eq!(count(sb, "sleep 104"), 1);
    assert_eq!(count(sb, "sleep 105"), 1);
    drop(r);
    for s in ["sleep 104", "sleep 105"] {
        assert!(
            gone_within(sb, s, Duration::from_secs(10)),
            "`{s}` outlived its host's connection"
        );
    }
}

/// (f) Item 3: a child that never reads stdin, 20 MiB of stdin sent regardless of
/// the window, and a Ping on the same connection is still answered.
fn ignored_stdin_does_not_block_the_connection(vm: &TcgVm, sb: &Sandbox) -> Duration {
    let mut r = Raw::connect(vm);
    r.send(1, Message::Exec(spec(&["sleep", "107"], true)));
    assert!(matches!(r.recv_for(1), Message::ExecStarted { .. }));
    let mut w = r.s.try_clone().unwrap();
    let t = Instant::now();
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 512 << 10];
        for _ in 0..40 {
            let f = Frame::new(
                1,
                Message::Stdin {
                    data: chunk.clone(),
                },
            );
            w.write_all(&f.encode().unwrap()).unwrap();
        }
        let ping = Frame::new(2, Message::Ping { nonce: 77 });
        w.write_all(&ping.encode().unwrap()).unwrap();
    });
    assert_eq!(r.recv_for(2), Message::Pong { nonce: 77 });
    let took = t.elapsed();
    writer.join().unwrap();
    r.send(1, Message::Kill { signal: 9 });
    assert!(
        matches!(
            r.recv_for(1),
            Message::ExecExit {
                signal: Some(9),
                ..
            }
        ),
        "Kill not honoured"
    );
    // Through the client library (which keeps to the window): the command ends
    // with its own status although its 20 MiB of stdin was never read.
    let out = sb
        .exec(&sh("sleep 2; exit 4").stdin(vec![5u8; 20 << 20]))
        .unwrap();
    assert_eq!(out.status.code, Some(4), "{:?}", out.status);
    took
}

/// (g) Item 6: the root is the ext4 disk, writable, with the API mounts on it.
fn switched_to_the_disk_root(sb: &Sandbox) {
    let root = run(sb, "grep ' / ' /proc/mounts");
    assert!(root.starts_with("/dev/vda / ext4 rw"), "{root}");
    assert_eq!(run(sb, "cat /proc/1/comm"), "init\n");
    // The agent's own root is the disk, not the initramfs behind it.
    assert_eq!(
        run(
            sb,
            "[ -d /proc/1/root/data ] && [ ! -e /proc/1/root/init ] && echo disk"
        ),
        "disk\n",
        "PID 1 is still on the initramfs"
    );
    run(sb, "echo on-disk > /data/switch-root && sync");
}

/// The disk image's directory, removed even when the test fails.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("kvmsb-pid1-disk-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tool(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn agent_pid1_duties_on_the_real_guest() {
    let inputs = Inputs::from_env();
    let dir = TempDir::new();
    let disk = dir.0.join("root.ext4");
    harness::busybox_ext4(&disk, 128);
    let mut vm = TcgVm::boot(
        &inputs,
        &BootOptions {
            disks: vec![disk.clone()],
            // QEMU's microvm has no i8042 ("i8042: No controller found"), so
            // the kernel's reboot=k path (our VMM's, which has one) spends ~2 s
            // on keyboard-controller retries before it falls back to a triple
            // fault. reboot=t goes straight to that fault, a reset to QEMU as to
            // our VMM; the agent's side (RB_AUTOBOOT) is the same either way.
            append: "reboot=t kvmsandbox.root=/dev/vda".into(),
        },
    );
    let sb = vm.sandbox();
    let mut failures = Vec::new();
    let mut figures = vec![format!("boot to agent ready: {:.2?}", vm.boot_time())];
    macro_rules! case {
        ($name:literal, $body:expr) => {{
            let t = Instant::now();
            match catch_unwind(AssertUnwindSafe(|| $body)) {
                Ok(v) => {
                    eprintln!("ok   {} ({:.2?})", $name, t.elapsed());
                    Some(v)
                }
                Err(e) => {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    eprintln!("FAIL {}: {msg}", $name);
                    failures.push(format!("{}: {msg}", $name));
                    None
                }
            }
        }};
    }
    case!("switched_to_the_disk_root", switched_to_the_disk_root(&sb));
    case!(
        "each_command_gets_its_own_cgroup",
        each_command_gets_its_own_cgroup(&sb)
    );
    if let Some(t) = case!(
        "background_child_does_not_hold_the_exec",
        background_child_does_not_hold_the_exec(&sb)
    ) {
        figures.push(format!("`sleep 101 &` exec returned after {t:.2?}"));
    }
    case!(
        "setsid_escapee_is_killed_on_timeout",
        setsid_escapee_is_killed_on_timeout(&sb)
    );
    case!(
        "mounts_have_the_tables_flags",
        mounts_have_the_tables_flags(&sb)
    );
    case!("orphans_are_reaped", orphans_are_reaped(&sb));
    case!(
        "host_disconnect_kills_the_command",
        host_disconnect_kills_the_command(&vm, &sb)
    );
    if let Some(t) = case!(
        "ignored_stdin_does_not_block_the_connection",
        ignored_stdin_does_not_block_the_connection(&vm, &sb)
    ) {
        figures.push(format!("Pong behind 20 MiB of unread stdin: {t:.2?}"));
    }

    // Last, item 5: shutdown answers, QEMU exits by itself (the guest reset
    // and -no-reboot turned that into an exit, where a halt used to leave it
    // running), and the root file system is clean: flushed and remounted
    // read-only first.
    let marker = b"written before shutdown\n";
    sb.write_file("/data/marker", &marker[..], 0o644).unwrap();
    let t = Instant::now();
    sb.shutdown().unwrap();
    let answered = t.elapsed();
    let exited = vm.wait_qemu_exit(SLOW);
    let gone = t.elapsed();
    assert!(
        exited.is_some(),
        "QEMU still runs {SLOW:?} after shutdown: the guest did not reset\n{}",
        vm.diagnostics()
    );
    figures.push(format!(
        "shutdown: answered in {answered:.2?}, QEMU gone after {gone:.2?}"
    ));
    assert!(
        vm.wait_console("reboot: Restarting system", Duration::from_secs(1)),
        "{}",
        vm.diagnostics()
    );
    assert!(
        !vm.console().contains("System halted"),
        "{}",
        vm.diagnostics()
    );
    drop(sb);
    drop(vm);
    let (ok, fsck) = tool(Command::new("e2fsck").arg("-fn").arg(&disk));
    assert!(ok, "e2fsck -fn found problems:\n{fsck}");
    let (ok, sb_info) = tool(Command::new("dumpe2fs").arg("-h").arg(&disk));
    assert!(ok, "{sb_info}");
    let features = sb_info
        .lines()
        .find(|l| l.starts_with("Filesystem features:"))
        .unwrap_or_default();
    assert!(
        !features.contains("needs_recovery"),
        "the root was not remounted read-only before the reset: {features}"
    );
    for (path, want) in [
        ("/data/marker", &marker[..]),
        ("/data/switch-root", b"on-disk\n"),
    ] {
        let out = Command::new("debugfs")
            .arg("-R")
            .arg(format!("cat {path}"))
            .arg(&disk)
            .output()
            .expect("run debugfs");
        assert_eq!(
            out.stdout,
            want,
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    eprintln!("QEMU TCG figures (not KVM):\n  {}", figures.join("\n  "));
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A PID 1 that cannot start (here: the root disk named on the command line does
/// not exist) says why on the console and ends the VM at once; it used to halt,
/// leaving the host to wait for a ready line that never comes.
#[test]
fn a_failed_pid1_start_ends_the_vm_with_its_reason() {
    let inputs = Inputs::from_env();
    let mut vm = TcgVm::boot_until(
        &inputs,
        &BootOptions {
            disks: Vec::new(),
            append: "reboot=t kvmsandbox.root=/dev/vdz".into(),
        },
        "kvmsandbox-agent: switch_root to /dev/vdz",
    );
    let t = Instant::now();
    let exited = vm.wait_qemu_exit(SLOW);
    assert!(
        exited.is_some(),
        "QEMU still runs {SLOW:?} after the agent failed\n{}",
        vm.diagnostics()
    );
    eprintln!("QEMU gone {:.2?} after the agent's error line", t.elapsed());
    let console = vm.console();
    assert!(
        console.contains("reboot: Restarting system"),
        "{}",
        vm.diagnostics()
    );
    assert!(!console.contains("Kernel panic"), "{}", vm.diagnostics());
    assert!(!console.contains(harness::READY), "{}", vm.diagnostics());
}
