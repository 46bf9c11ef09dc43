//! Running a test body in a forked child, so filters never land on the test runner.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use super::super::{syscall_table, ThreadKind};

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// `exit(code)`; the body's `Ok` is 0, its `Err` is 1 (message on stderr), a panic 101.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

/// A child body: `Err(message)` reports a failed check from inside the child.
pub(super) type Body = Box<dyn FnOnce() -> Result<(), String>>;

/// Forks, runs `body` in the child and returns how the child ended (killing it after 30 s).
pub(super) fn run_in_child(body: impl FnOnce() -> Result<(), String> + 'static) -> Outcome {
    run_boxed(Box::new(body))
}

fn run_boxed(body: Body) -> Outcome {
    // Initialise the lazily-built tables before forking: a OnceLock caught mid-init by
    // another test thread at fork time would never complete in the child.
    let _ = syscall_table(ThreadKind::Vcpu);
    let _ = syscall_table(ThreadKind::Vmm);
    let _ = super::super::allowed_syscalls(ThreadKind::Vcpu);
    let _ = super::super::allowed_syscalls(ThreadKind::Vmm);

    // SAFETY: fork() in a multithreaded test binary. The child runs only `body` (glibc's
    // malloc is fork-safe; no std locks other threads could hold are taken) and leaves
    // through _exit, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        child_side(body);
    }
    wait_for(pid)
}

fn child_side(body: Body) -> ! {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls: no core dumps from the SIGSYS deaths the tests provoke.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    let code = match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => 0,
        Ok(Err(message)) => {
            let line = format!("seccomp test child: {message}\n");
            // SAFETY: writing a valid buffer to stderr (allowed under every filter).
            unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
            1
        }
        Err(_) => 101,
    };
    // SAFETY: ends the child without running the parent's atexit handlers or harness.
    unsafe { libc::_exit(code) }
}

fn wait_for(pid: libc::pid_t) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return Outcome::Exited(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Outcome::Signaled(libc::WTERMSIG(status));
            }
            continue;
        }
        let err = std::io::Error::last_os_error();
        assert!(
            r >= 0 || err.kind() == std::io::ErrorKind::Interrupted,
            "waitpid: {err}"
        );
        if Instant::now() > deadline {
            // SAFETY: killing and reaping our own hung child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("seccomp test child {pid} hung");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `Err` with the current errno when `ok` is false.
pub(super) fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Installs a precompiled program on the current (child) thread without any handler.
pub(super) fn apply(filters: &super::super::Filters) -> Result<(), String> {
    filters.apply().map_err(|e| format!("apply_filter: {e}"))
}

pub(super) const SIGSYS: Outcome = Outcome::Signaled(libc::SIGSYS);
pub(super) const OK: Outcome = Outcome::Exited(0);
