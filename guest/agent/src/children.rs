//! Who reaps which child. Exec waiters reap their own child (`Child::wait`); as PID 1
//! the agent also inherits orphans, which a reaper thread collects. The reaper only
//! peeks (`WNOWAIT`) and reaps a zombie itself when no waiter owns it, so it never
//! steals an exit status an exec is waiting for.

use std::collections::HashSet;
use std::io;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

static OWNED: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

fn owned() -> MutexGuard<'static, Option<HashSet<u32>>> {
    OWNED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Spawns `cmd` and records its pid as owned by a waiter, atomically with respect
/// to the reaper (which checks ownership under the same lock).
pub fn spawn_owned(cmd: &mut Command) -> io::Result<Child> {
    let mut set = owned();
    let child = cmd.spawn()?;
    set.get_or_insert_with(HashSet::new).insert(child.id());
    Ok(child)
}

/// Forgets `pid` once its waiter has reaped it.
pub fn release(pid: u32) {
    if let Some(set) = owned().as_mut() {
        set.remove(&pid);
    }
}

/// PID 1 only: reaps orphaned zombies forever.
pub fn reap_orphans_forever() {
    loop {
        // SAFETY: siginfo_t is plain old data; zero is a valid initial value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with a valid out-pointer; WNOWAIT leaves the zombie in place.
        let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc < 0 {
            // ECHILD: no children right now.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        // SAFETY: waitid succeeded with WEXITED, so si_pid is set.
        let pid = unsafe { info.si_pid() };
        let is_owned = owned().as_ref().is_some_and(|s| s.contains(&(pid as u32)));
        if is_owned {
            // Its waiter is about to reap it; look again shortly.
            std::thread::sleep(Duration::from_millis(20));
        } else {
            let mut status = 0;
            // SAFETY: reaping a specific zombie pid with a valid status pointer.
            unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        }
    }
}
