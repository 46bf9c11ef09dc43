//! `install` filters the calling thread only: the caller's other threads stay free.

use std::sync::mpsc;

use super::super::*;
use super::child::{run_in_child, OK};

/// The `Seccomp:` mode of a thread from /proc (0 = none, 2 = filter).
fn seccomp_mode(status_path: &str) -> Result<u32, String> {
    let text = std::fs::read_to_string(status_path).map_err(|e| format!("{status_path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{status_path}: no Seccomp line"))
}

#[test]
fn seccomp_install_on_spawned_thread_leaves_main_thread_free() {
    let outcome = run_in_child(|| {
        let (tid_tx, tid_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let worker = std::thread::spawn(move || -> Result<(), String> {
            install(ThreadKind::Vcpu, SeccompPolicy::Kill, &TrapRecord::new())
                .map_err(|e| e.to_string())?;
            // SAFETY: no arguments.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) };
            tid_tx.send(tid).map_err(|e| e.to_string())?;
            done_rx.recv().map_err(|e| e.to_string())?;
            // Returning runs std's and glibc's thread-exit path under the Kill filter.
            Ok(())
        });
        let tid = tid_rx.recv().map_err(|e| format!("worker died: {e}"))?;
        let worker_mode = seccomp_mode(&format!("/proc/self/task/{tid}/status"))?;
        let main_mode = seccomp_mode("/proc/thread-self/status")?;
        if (worker_mode, main_mode) != (2, 0) {
            return Err(format!(
                "Seccomp modes worker={worker_mode} main={main_mode}, expected 2 and 0"
            ));
        }
        // The main thread may still do what the worker may not.
        forbidden_syscall_probe(Probe::Socket).map_err(|e| format!("main socket(): {e}"))?;
        done_tx.send(()).map_err(|e| e.to_string())?;
        worker.join().map_err(|_| "worker panicked".to_string())??;
        forbidden_syscall_probe(Probe::Socket).map_err(|e| format!("main socket() after join: {e}"))
    });
    assert_eq!(outcome, OK);
}

#[test]
fn seccomp_trap_on_spawned_thread_does_not_touch_main_thread() {
    let outcome = run_in_child(|| {
        let record = TrapRecord::new();
        let armed = record.clone();
        let worker = std::thread::spawn(move || -> Result<Option<i32>, String> {
            install(ThreadKind::Vmm, SeccompPolicy::Trap, &armed).map_err(|e| e.to_string())?;
            Ok(forbidden_syscall_probe(Probe::Socket)
                .err()
                .and_then(|e| e.raw_os_error()))
        });
        let worker_errno = worker.join().map_err(|_| "worker panicked".to_string())??;
        if worker_errno != Some(libc::EPERM) {
            return Err(format!(
                "worker socket() errno {worker_errno:?}, expected EPERM"
            ));
        }
        forbidden_syscall_probe(Probe::Socket).map_err(|e| format!("main socket(): {e}"))?;
        let trapped = record.take().ok_or("no trap recorded")?;
        if (trapped.kind, trapped.number, trapped.count) != (ThreadKind::Vmm, libc::SYS_socket, 1) {
            return Err(format!("recorded {trapped:?}"));
        }
        Ok(())
    });
    assert_eq!(outcome, OK);
}

#[test]
fn seccomp_trap_records_are_per_owner() {
    // Two threads armed with two records (two VMs): each trap lands in its own
    // thread's record only, and taking one leaves the other alone.
    let outcome = run_in_child(|| {
        let (a, b) = (TrapRecord::new(), TrapRecord::new());
        let spawn = |record: std::sync::Arc<TrapRecord>, probe: Probe| {
            std::thread::spawn(move || -> Result<(), String> {
                install(ThreadKind::Vcpu, SeccompPolicy::Trap, &record)
                    .map_err(|e| e.to_string())?;
                match forbidden_syscall_probe(probe) {
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
                    other => Err(format!("{probe:?} under Trap gave {other:?}")),
                }
            })
        };
        spawn(a.clone(), Probe::Socket)
            .join()
            .map_err(|_| "thread a panicked".to_string())??;
        let b_thread = spawn(b.clone(), Probe::Execve);
        b_thread
            .join()
            .map_err(|_| "thread b panicked".to_string())??;
        let got_a = a.take().ok_or("a's trap was not recorded in a")?;
        let got_b = b.take().ok_or("b's trap was not recorded in b")?;
        if (got_a.number, got_a.count) != (libc::SYS_socket, 1) {
            return Err(format!("a recorded {got_a:?}"));
        }
        if (got_b.number, got_b.count) != (libc::SYS_execve, 1) {
            return Err(format!("b recorded {got_b:?}"));
        }
        Ok(())
    });
    assert_eq!(outcome, OK);
}
