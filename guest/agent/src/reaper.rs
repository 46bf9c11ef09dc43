//! The agent's only `wait`: one loop reaps every child that exits and hands the
//! status to whoever registered for that pid, so exec supervisors never race an
//! orphan reaper for the same zombie and a command whose supervisor is gone (the
//! host hung up) is still reaped. As PID 1 (or a host-mode subreaper) the agent
//! inherits orphans too; nobody registered for them, so the loop just reaps them.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Called with the raw `wait` status of the pid it was registered for.
pub type Waiter = Box<dyn FnOnce(i32) + Send>;

static WAITERS: Mutex<Option<HashMap<i32, Waiter>>> = Mutex::new(None);
/// Signalled on every spawn, so the loop stops idling once there is a child.
static SPAWNED: Condvar = Condvar::new();
static STARTED: OnceLock<()> = OnceLock::new();

fn waiters() -> MutexGuard<'static, Option<HashMap<i32, Waiter>>> {
    WAITERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the reap loop (once per process).
pub fn start() -> io::Result<()> {
    let mut result = Ok(());
    STARTED.get_or_init(|| {
        result = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(reap_forever)
            .map(|_| ());
    });
    result
}

/// Spawns `cmd` and registers `on_exit` for its pid. The registry stays locked
/// across the fork, so the loop cannot reap the child before its waiter exists
/// (nor reap a child that failed to exec before std's own `wait` for it).
pub fn spawn_watched(cmd: &mut Command, on_exit: Waiter) -> io::Result<Child> {
    let mut w = waiters();
    let child = cmd.spawn()?;
    // Pids fit in i32 on Linux (pid_max <= 2^22).
    w.get_or_insert_with(HashMap::new)
        .insert(child.id() as i32, on_exit);
    SPAWNED.notify_all();
    Ok(child)
}

fn reap_forever() {
    loop {
        // SAFETY: siginfo_t is plain old data; zero is a valid initial value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with a valid out-pointer; WNOWAIT only peeks, so the zombie
        // is reaped below under the registry lock (see `spawn_watched`).
        let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => {}
                // ECHILD: no children; the next one can only come from a spawn.
                _ => {
                    let guard = waiters();
                    let _ = SPAWNED.wait_timeout(guard, Duration::from_secs(1));
                }
            }
            continue;
        }
        // SAFETY: waitid succeeded with WEXITED, so si_pid is set.
        let pid = unsafe { info.si_pid() };
        if pid <= 0 {
            continue;
        }
        let mut guard = waiters();
        let mut status = 0;
        // SAFETY: reaping one known zombie with a valid status pointer.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        let waiter = guard.as_mut().and_then(|m| m.remove(&pid));
        drop(guard);
        if reaped == pid {
            if let Some(w) = waiter {
                w(status);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    // The reap loop under test is what waits for these children.
    #[allow(clippy::zombie_processes)]
    fn hands_each_status_to_its_waiter_and_reaps_the_rest() {
        start().unwrap();
        let (tx, rx) = mpsc::channel();
        let mut pids = Vec::new();
        for code in [0, 3, 7] {
            let tx = tx.clone();
            let child = spawn_watched(
                Command::new("sh").args(["-c", &format!("exit {code}")]),
                Box::new(move |st| {
                    let _ = tx.send((code, st));
                }),
            )
            .unwrap();
            pids.push(child.id());
        }
        // A child nobody registered for (as an orphan would be) is reaped as well.
        let stray = Command::new("true").spawn().unwrap().id();
        for _ in 0..3 {
            let (code, st) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert!(libc::WIFEXITED(st));
            assert_eq!(libc::WEXITSTATUS(st), code);
        }
        let t = std::time::Instant::now();
        while std::path::Path::new(&format!("/proc/{stray}")).exists() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "stray child not reaped"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for p in pids {
            assert!(!std::path::Path::new(&format!("/proc/{p}")).exists());
        }
    }
}
