//! `tgkill` is allowed only within our own process and only with the vCPU kick
//! signal: a filtered thread cannot signal another process, nor send its own
//! process any other signal (SIGKILL, SIGSTOP, SIGABRT...).

use super::super::*;
use super::child::{run_in_child, OK, SIGSYS};

fn tgkill(tgid: libc::pid_t, sig: i32) -> std::io::Result<()> {
    // SAFETY: raw syscalls without pointers.
    let r = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::pid_t;
        libc::syscall(libc::SYS_tgkill, tgid, tid, sig)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn errno(r: std::io::Result<()>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
fn seccomp_tgkill_only_kicks_own_process() {
    let outcome = run_in_child(|| {
        crate::vmm::kick::install().map_err(|e| e.to_string())?;
        // SAFETY: no arguments (getppid is not allowed once filtered).
        let (pid, ppid) = unsafe { (libc::getpid(), libc::getppid()) };
        let record = TrapRecord::new();
        install(ThreadKind::Vcpu, SeccompPolicy::Trap, &record).map_err(|e| e.to_string())?;
        let kick = crate::vmm::kick::signal();
        tgkill(pid, kick).map_err(|e| format!("kick of our own thread refused: {e}"))?;
        // Refused by the filter (EPERM from the Trap handler), not by the kernel:
        // unfiltered, the first would deliver SIGUSR1 (and kill us), the second
        // would fail with ESRCH (our tid is not in the parent's group).
        let other_signal = errno(tgkill(pid, libc::SIGUSR1));
        let other_process = errno(tgkill(ppid, kick));
        if (other_signal, other_process) != (Some(libc::EPERM), Some(libc::EPERM)) {
            return Err(format!(
                "tgkill with SIGUSR1 gave errno {other_signal:?}, to the parent {other_process:?}; expected EPERM twice"
            ));
        }
        let trapped = record.take().ok_or("no trap recorded")?;
        if (trapped.number, trapped.count) != (libc::SYS_tgkill, 2) {
            return Err(format!("recorded {trapped:?}"));
        }
        Ok(())
    });
    assert_eq!(outcome, OK);
}

#[test]
fn seccomp_kill_policy_tgkill_with_another_signal_dies_of_sigsys() {
    let outcome = run_in_child(|| {
        install(ThreadKind::Vcpu, SeccompPolicy::Kill, &TrapRecord::new())
            .map_err(|e| e.to_string())?;
        // SAFETY: no arguments.
        let pid = unsafe { libc::getpid() };
        // Allowed, this would end the child by SIGTERM instead.
        tgkill(pid, libc::SIGTERM).map_err(|e| format!("SIGTERM refused: {e}"))
    });
    assert_eq!(outcome, SIGSYS);
}
