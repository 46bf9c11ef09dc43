//! Closing a VM off the caller's path. With guest memory registered before the
//! irqchip (the fast way to create a VM on PVM), closing the VM fd costs ~12 ms
//! there (docs/snapshots.md): KVM tears the VM down when its last fd closes. A
//! started VM hands its KVM objects to a short-lived detached thread instead,
//! so `drop` returns at once. Bounded: with `MAX_IN_FLIGHT` closes already
//! running the caller closes synchronously, so a burst of drops cannot pile up
//! threads or memory. Whoever counts fds or threads (tests) calls [`wait_idle`]
//! first; at process exit the kernel closes whatever is left.

use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most closes running in the background at once.
const MAX_IN_FLIGHT: usize = 4;

static IN_FLIGHT: Mutex<usize> = Mutex::new(0);
static DONE: Condvar = Condvar::new();
/// Reaper threads not joined yet (joined by the next close or by `wait_idle`).
static THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// Drops `parts` on a background thread, or here if too many are in flight or
/// no thread can be started.
pub fn close<T: Send + 'static>(parts: T) {
    {
        let mut n = crate::devices::bus::lock(&IN_FLIGHT);
        if *n >= MAX_IN_FLIGHT {
            drop(n);
            drop(parts);
            return;
        }
        *n += 1;
    }
    // The closure owns `parts`; if the spawn fails the closure (and so `parts`)
    // is dropped here by the failed builder, and we undo the count.
    let spawned = std::thread::Builder::new()
        .name("kvmsb-reaper".into())
        .spawn(move || {
            drop(parts);
            finish();
        });
    match spawned {
        Ok(h) => {
            let mut threads = crate::devices::bus::lock(&THREADS);
            for done in take_where(&mut threads, JoinHandle::is_finished) {
                let _ = done.join();
            }
            threads.push(h);
        }
        Err(_) => finish(),
    }
}

fn take_where(
    v: &mut Vec<JoinHandle<()>>,
    pred: impl Fn(&JoinHandle<()>) -> bool,
) -> Vec<JoinHandle<()>> {
    let (take, keep) = std::mem::take(v).into_iter().partition(|h| pred(h));
    *v = keep;
    take
}

fn finish() {
    *crate::devices::bus::lock(&IN_FLIGHT) -= 1;
    DONE.notify_all();
}

/// Waits up to `timeout` until no background close is running and joins the
/// reaper threads; `true` if none is left.
pub fn wait_idle(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut n = crate::devices::bus::lock(&IN_FLIGHT);
    while *n > 0 {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        n = DONE
            .wait_timeout(n, deadline - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    drop(n);
    // Every close has finished its work; its thread is ending: join it.
    let threads = std::mem::take(&mut *crate::devices::bus::lock(&THREADS));
    for h in threads {
        let _ = h.join();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Probe(Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            std::thread::sleep(Duration::from_millis(20));
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Every handed-over value is dropped, and `wait_idle` returns only after.
    #[test]
    fn everything_closed_is_dropped_by_the_time_wait_idle_returns() {
        let dropped = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            close(Probe(dropped.clone()));
        }
        assert!(wait_idle(Duration::from_secs(10)));
        assert_eq!(dropped.load(Ordering::SeqCst), 10);
    }
}
