//! Seccomp on the real VMM threads: a vCPU thread that makes a forbidden
//! syscall (through the test-only probe port) is stopped, as the policy says;
//! the caller's own threads keep their full syscall set. Each policy case runs in
//! a child process (this test binary re-executed), since Kill kills the process.

mod common;

use kvmsandbox::seccomp::SeccompPolicy;
use kvmsandbox::{Error, Sandbox, Vm, VmConfig, VmExit};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::Duration;

const CHILD_ENV: &str = "KVMSB_SECCOMP_CHILD";
const TRAPPED_EXIT: i32 = 42;
const SURVIVED_EXIT: i32 = 43;

/// Guest: print "R\n" (the ready marker), write the 32-bit probe value for `probe`
/// (1 = socket, 2 = execve) to port 0x510, exit 0.
fn probe_guest(probe: u8) -> std::path::PathBuf {
    let magic = (0x5ecc_0000u32 | u32::from(probe)).to_le_bytes();
    let code = [
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'R', 0xee, // mov al, 'R'; out dx, al
        0xb0, b'\n', 0xee, // mov al, '\n'; out dx, al
        0x66, 0xba, 0x10, 0x05, // mov dx, 0x510
        0xb8, magic[0], magic[1], magic[2], magic[3], // mov eax, magic
        0xef,     // out dx, eax
        0x31, 0xc0, // xor eax, eax
        0x66, 0xba, 0x01, 0x05, // mov dx, 0x501
        0xef, // out dx, eax
        0xf4, // hlt
    ];
    common::temp_file(&format!("probe-{probe}.elf"), &common::tiny_elf(&code))
}

/// Child-process body, selected by the environment (ignored in normal runs).
#[test]
#[ignore = "run only as a child of the seccomp tests"]
fn seccomp_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    if spec == "console-open" {
        console_callback_opens_a_file();
    }
    let (policy, probe) = spec.split_once(':').unwrap();
    let policy = match policy {
        "kill" => SeccompPolicy::Kill,
        "trap" => SeccompPolicy::Trap,
        _ => SeccompPolicy::Disabled,
    };
    let cfg = VmConfig::micro()
        .micro_image(probe_guest(probe.parse().unwrap()))
        .ready_marker("R")
        .seccomp(policy)
        .start_timeout(Duration::from_secs(10));
    let vm = Vm::start(cfg).unwrap();
    match vm.wait() {
        Err(Error::Seccomp(e)) => {
            eprintln!("trapped: {e}");
            std::process::exit(TRAPPED_EXIT)
        }
        other => {
            eprintln!("vm ended: {other:?}");
            std::process::exit(SURVIVED_EXIT)
        }
    }
}

/// Child body: under Kill, a console callback opens and reads a file for every
/// line (openat/read are forbidden on vCPU threads).
fn console_callback_opens_a_file() -> ! {
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = opened.clone();
    let cfg = VmConfig::micro()
        .cmdline("test=exit")
        .seccomp(SeccompPolicy::Kill)
        .on_console_line(move |_| {
            if std::fs::read("/proc/self/status").is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
    let vm = Vm::start(cfg).unwrap();
    let end = vm.wait();
    let n = opened.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("vm ended: {end:?}; the callback read a file {n} times");
    std::process::exit(if matches!(end, Ok(VmExit::Exited(0))) && n > 0 {
        SURVIVED_EXIT
    } else {
        1
    })
}

fn run_child(spec: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "seccomp_child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, spec)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kill_policy_kills_on_socket_from_a_vcpu_thread() {
    let (st, err) = run_child("kill:1");
    assert_eq!(st.signal(), Some(libc::SIGSYS), "{st:?} {err}");
}

#[test]
fn kill_policy_kills_on_execve_from_a_vcpu_thread() {
    let (st, err) = run_child("kill:2");
    assert_eq!(st.signal(), Some(libc::SIGSYS), "{st:?} {err}");
}

#[test]
fn trap_policy_reports_a_typed_error() {
    let (st, err) = run_child("trap:1");
    assert_eq!(st.code(), Some(TRAPPED_EXIT), "{st:?} {err}");
    assert!(err.contains("socket"), "{err}");
    let (st, err) = run_child("trap:2");
    assert_eq!(st.code(), Some(TRAPPED_EXIT), "{st:?} {err}");
    assert!(err.contains("execve"), "{err}");
}

#[test]
fn disabled_policy_lets_the_syscall_through() {
    let (st, err) = run_child("disabled:1");
    assert_eq!(st.code(), Some(SURVIVED_EXIT), "{st:?} {err}");
}

#[test]
fn callers_threads_keep_their_syscalls() {
    let sb = Sandbox::micro().unwrap();
    sb.ping().unwrap();
    let check = || {
        // SAFETY: plain syscall; the fd is closed right away.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        assert!(fd >= 0, "socket() on a caller thread failed");
        // SAFETY: fd is ours.
        unsafe { libc::close(fd) };
        let out = Command::new("/bin/echo")
            .arg("still free")
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"still free\n");
        std::fs::read("/proc/self/status").unwrap();
    };
    check();
    std::thread::spawn(check).join().unwrap();
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Seccomp:") && l.ends_with('0')),
        "{status}"
    );
    sb.ping().unwrap();
}

#[test]
fn console_callback_may_open_files_under_kill() {
    let (st, err) = run_child("console-open");
    assert_eq!(st.code(), Some(SURVIVED_EXIT), "{st:?} {err}");
}

#[test]
fn a_trap_is_reported_by_its_own_vm_only() {
    let cfg = VmConfig::micro()
        .micro_image(probe_guest(1))
        .ready_marker("R")
        .seccomp(SeccompPolicy::Trap)
        .start_timeout(Duration::from_secs(10));
    let trapping = Vm::start(cfg).unwrap();
    // The probe guest traps (socket) and then exits: wait until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while trapping.is_running() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!trapping.is_running(), "the probe guest did not stop");
    let bystander = Vm::start(
        VmConfig::micro()
            .cmdline("test=stay")
            .seccomp(SeccompPolicy::Trap),
    )
    .unwrap();
    bystander.kill();
    assert!(
        matches!(bystander.wait(), Ok(VmExit::Killed)),
        "the bystander reported another VM's trap"
    );
    match trapping.wait() {
        Err(Error::Seccomp(e)) => assert!(e.to_string().contains("socket"), "{e}"),
        other => panic!("the trapping VM lost its trap: {other:?}"),
    }
}
