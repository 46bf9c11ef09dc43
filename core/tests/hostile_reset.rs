//! A guest that resets its vsock and blk devices (writes 0 to Status), and
//! publishes a vsock REQUEST before DRIVER_OK, while host streams are connected,
//! must not kill the process: those Status writes run on a vCPU thread, whose
//! seccomp filter (default policy: Kill) allows none of the socket and epoll
//! calls a vsock reset or activation makes. The device event loop must do them.
//!
//! Runs in a child process (this test binary re-executed), since a regression
//! would kill it by SIGSYS. In the child: a bystander sandbox starts first; the
//! attacked guest (`test=hostile-reset`, guest/micro/src/hostile.rs) waits each
//! round until a host stream reached it (a host thread keeps connecting to the
//! agent and echo ports), resets with it live, and finally serves as the agent;
//! then the attacked sandbox and the bystander must both answer.
//!
//! Needs /dev/kvm.

mod common;

use kvmsandbox::seccomp::SeccompPolicy;
use kvmsandbox::{Sandbox, VmConfig};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KVMSB_HOSTILE_RESET_CHILD";

/// Keeps host streams connected to the agent (1024) and echo (1025) ports
/// until `stop`; returns how many connections were made.
fn keep_connecting(
    sock: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut held: Vec<UnixStream> = Vec::new();
        let mut made = 0;
        while !stop.load(Ordering::Relaxed) {
            for port in [1024, 1025] {
                if let Ok(mut s) = UnixStream::connect(&sock) {
                    if s.write_all(format!("CONNECT {port}\n").as_bytes()).is_ok() {
                        made += 1;
                        held.push(s);
                    }
                }
            }
            if held.len() > 64 {
                held.drain(..32);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        made
    })
}

fn child() -> Result<(), String> {
    let by = Sandbox::start(VmConfig::micro().seccomp(SeccompPolicy::Kill))
        .map_err(|e| format!("bystander: {e}"))?;
    by.ping().map_err(|e| format!("bystander before: {e}"))?;
    let dir = std::env::temp_dir().join(format!("kvmsb-hostile-reset-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let disk = common::temp_file("hostile-reset.img", &vec![7u8; 64 * 1024]);
    let sock = dir.join("v.sock");
    let stop = Arc::new(AtomicBool::new(false));
    let host = keep_connecting(sock.clone(), stop.clone());
    let cfg = VmConfig::micro()
        .cmdline("test=hostile-reset")
        .disk(&disk, false)
        .vsock(&sock)
        .seccomp(SeccompPolicy::Kill)
        .start_timeout(Duration::from_secs(90));
    let t0 = Instant::now();
    let sb = Sandbox::start(cfg);
    stop.store(true, Ordering::Relaxed);
    let made = host
        .join()
        .map_err(|_| "host thread panicked".to_string())?;
    let sb = sb.map_err(|e| format!("attacked guest did not come back: {e}"))?;
    let out = sb.console_output();
    let line = out
        .lines()
        .find(|l| l.contains("hostile-reset: done"))
        .ok_or_else(|| format!("no done line: {out}"))?
        .to_string();
    eprintln!("{line} (host connections made: {made}, {:?})", t0.elapsed());
    let field = |k: &str| -> u32 {
        line.split(&format!("{k}="))
            .nth(1)
            .and_then(|v| v.split(' ').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    if field("live") == 0 {
        return Err(format!(
            "no round had a live host connection at reset: {line}"
        ));
    }
    if field("blk_resets") == 0 || field("early_requests") == 0 {
        return Err(format!("attack incomplete: {line}"));
    }
    sb.ping().map_err(|e| format!("attacked guest ping: {e}"))?;
    let echoed = sb
        .echo(b"after the storm")
        .map_err(|e| format!("echo: {e}"))?;
    if echoed != b"after the storm" {
        return Err(format!("echo returned {echoed:?}"));
    }
    let sector = sb
        .disk_read(0, 0, 512)
        .map_err(|e| format!("disk read: {e}"))?;
    if sector != vec![7u8; 512] {
        return Err("disk content changed".into());
    }
    by.ping().map_err(|e| format!("bystander after: {e}"))?;
    sb.kill();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Child-process body, selected by the environment (ignored in normal runs).
#[test]
#[ignore = "run only as a child of reset_storm_with_live_connections_does_not_kill_the_process"]
fn hostile_reset_child_entry() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    match child() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("hostile-reset child: {e}");
            std::process::exit(1)
        }
    }
}

#[test]
fn reset_storm_with_live_connections_does_not_kill_the_process() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hostile_reset_child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.signal(),
        Some(libc::SIGSYS),
        "the process was killed by seccomp: {err}"
    );
    assert!(out.status.success(), "{:?}: {err}", out.status);
    eprintln!(
        "{}",
        err.lines()
            .filter(|l| l.contains("hostile-reset"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
