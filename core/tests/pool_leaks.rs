//! A pool gives back everything it took: after many acquire/use/release cycles
//! and a close (with one sandbox still borrowed at close, released after), file
//! descriptors, threads and runtime directories are back at their starting
//! level. One `#[test]`: the counts are process-wide. Needs /dev/kvm.

mod common;

use kvmsandbox::{PoolConfig, PoolSource, SandboxPool, VmConfig};
use std::time::{Duration, Instant};

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    common::status_field("Threads:") as usize
}

/// (fds, threads) once background VM closes finished, waiting (bounded) for
/// them to come back down to `base`.
fn settle(base: (usize, usize)) -> (usize, usize) {
    assert!(kvmsandbox::vmm::reaper::wait_idle(Duration::from_secs(10)));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let u = (fds(), threads());
        if (u.0 <= base.0 && u.1 <= base.1) || Instant::now() > deadline {
            return u;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pool() -> SandboxPool {
    SandboxPool::new(
        PoolSource::config(VmConfig::micro),
        PoolConfig {
            min_idle: 2,
            max_size: 3,
            threads: 2,
        },
    )
    .unwrap()
}

#[test]
fn pool_cycles_and_close_give_everything_back() {
    // Warm up once-only state (signal handler, allocator arenas, stack cache).
    drop(pool().acquire(Duration::from_secs(30)).unwrap());
    let base = settle((usize::MAX, usize::MAX));
    let p = pool();
    for _ in 0..10 {
        let sb = p.acquire(Duration::from_secs(30)).unwrap();
        sb.ping().unwrap();
    }
    let kept = p.acquire(Duration::from_secs(30)).unwrap();
    p.close();
    kept.ping().unwrap();
    drop(kept);
    let m = p.metrics();
    drop(p);
    let after = settle(base);
    eprintln!("pool: {m:?}; (fds, threads) {base:?} -> {after:?}");
    assert_eq!(after, base, "(fds, threads) leaked by a pool");
    assert_eq!(
        (m.acquired, m.released, m.busy, m.idle),
        (11, 11, 0, 0),
        "{m:?}"
    );
}
