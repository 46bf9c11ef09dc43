//! What each policy does to a forbidden syscall, on a vCPU-filtered child.

use super::super::*;
use super::child::{apply, run_in_child, Outcome, OK, SIGSYS};

fn vcpu_then(policy: SeccompPolicy, probe: Probe) -> Outcome {
    run_in_child(move || {
        install(ThreadKind::Vcpu, policy, &TrapRecord::new()).map_err(|e| e.to_string())?;
        forbidden_syscall_probe(probe).map_err(|e| format!("{probe:?} refused: {e}"))
    })
}

#[test]
fn seccomp_kill_socket_dies_of_sigsys() {
    assert_eq!(vcpu_then(SeccompPolicy::Kill, Probe::Socket), SIGSYS);
}

#[test]
fn seccomp_kill_execve_dies_of_sigsys() {
    assert_eq!(vcpu_then(SeccompPolicy::Kill, Probe::Execve), SIGSYS);
}

#[test]
fn seccomp_log_lets_socket_through() {
    assert_eq!(vcpu_then(SeccompPolicy::Log, Probe::Socket), OK);
}

#[test]
fn seccomp_disabled_lets_socket_and_execve_through() {
    assert_eq!(vcpu_then(SeccompPolicy::Disabled, Probe::Socket), OK);
    // execve of /bin/true succeeds: the child *becomes* /bin/true and exits 0, while a
    // returning probe would have exited 1 (its Err) or 2 (below).
    let outcome = run_in_child(|| {
        install(
            ThreadKind::Vcpu,
            SeccompPolicy::Disabled,
            &TrapRecord::new(),
        )
        .map_err(|e| e.to_string())?;
        let result = forbidden_syscall_probe(Probe::Execve);
        // SAFETY: leave with a distinctive code if execve returned at all.
        unsafe { libc::_exit(if result.is_ok() { 2 } else { 3 }) }
    });
    assert_eq!(outcome, OK);
}

#[test]
fn seccomp_trap_without_handler_dies_of_sigsys() {
    // The bare Trap program, applied without `install`'s SIGSYS handler.
    let program = filter_for(ThreadKind::Vcpu, SeccompPolicy::Trap)
        .unwrap()
        .unwrap();
    let outcome = run_in_child(move || {
        apply(&program)?;
        forbidden_syscall_probe(Probe::Socket).map_err(|e| format!("socket refused: {e}"))
    });
    assert_eq!(outcome, SIGSYS);
}

#[test]
fn seccomp_trap_records_the_syscall_and_fails_it_with_eperm() {
    let outcome = run_in_child(|| {
        let record = TrapRecord::new();
        if record.take().is_some() {
            return Err("a trap was recorded before any filter".into());
        }
        install(ThreadKind::Vcpu, SeccompPolicy::Trap, &record).map_err(|e| e.to_string())?;
        let err = match forbidden_syscall_probe(Probe::Socket) {
            Ok(()) => return Err("socket() succeeded under Trap".into()),
            Err(err) => err,
        };
        if err.raw_os_error() != Some(libc::EPERM) {
            return Err(format!("socket() failed with {err}, not EPERM"));
        }
        let execve = forbidden_syscall_probe(Probe::Execve);
        if execve.as_ref().err().and_then(|e| e.raw_os_error()) != Some(libc::EPERM) {
            return Err(format!("execve under Trap gave {execve:?}, not EPERM"));
        }
        let trapped = record.take().ok_or("no trap recorded")?;
        let expected = TrappedSyscall {
            kind: ThreadKind::Vcpu,
            number: libc::SYS_execve,
            name: "execve",
            count: 2,
        };
        if trapped != expected {
            return Err(format!("recorded {trapped:?}, expected {expected:?}"));
        }
        if record.take().is_some() {
            return Err("take did not clear the record".into());
        }
        // The thread goes on working after a trap: an allowed syscall still works.
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: raw clock_gettime with a valid out pointer.
        let r = unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) };
        if r != 0 {
            return Err("clock_gettime failed after a trap".into());
        }
        Ok(())
    });
    assert_eq!(outcome, OK);
}

/// Arms the Trap handler from a helper thread, leaving the calling thread unfiltered.
fn arm_trap_handler_elsewhere(record: &std::sync::Arc<TrapRecord>) -> Result<(), String> {
    let record = record.clone();
    std::thread::spawn(move || install(ThreadKind::Vcpu, SeccompPolicy::Trap, &record))
        .join()
        .map_err(|_| "helper thread panicked".to_string())?
        .map_err(|e| e.to_string())
}

#[test]
fn seccomp_trap_handler_leaves_foreign_sigsys_deadly() {
    // A SIGSYS that is not our seccomp trap, with no handler before ours, must still end
    // the process as SIG_DFL would.
    let outcome = run_in_child(|| {
        arm_trap_handler_elsewhere(&TrapRecord::new())?;
        // SAFETY: raise() on this unfiltered thread.
        unsafe { libc::raise(libc::SIGSYS) };
        Err("survived a foreign SIGSYS".into())
    });
    assert_eq!(outcome, SIGSYS);
}

#[test]
fn seccomp_trap_handler_passes_foreign_sigsys_to_previous_handler() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static PREVIOUS_RAN: AtomicBool = AtomicBool::new(false);
    extern "C" fn previous(_: libc::c_int) {
        PREVIOUS_RAN.store(true, Ordering::SeqCst);
    }
    let outcome = run_in_child(|| {
        // SAFETY: installing a plain handler in the child before ours.
        unsafe { libc::signal(libc::SIGSYS, previous as *const () as libc::sighandler_t) };
        let record = TrapRecord::new();
        arm_trap_handler_elsewhere(&record)?;
        // This (unfiltered) thread gets a SIGSYS that is not a seccomp trap.
        // SAFETY: raise() on our own thread; our handler must chain to `previous`.
        unsafe { libc::raise(libc::SIGSYS) };
        if !PREVIOUS_RAN.load(Ordering::SeqCst) {
            return Err("the previous SIGSYS handler was not called".into());
        }
        if record.take().is_some() {
            return Err("a foreign SIGSYS was recorded as a trap".into());
        }
        Ok(())
    });
    assert_eq!(outcome, OK);
}
