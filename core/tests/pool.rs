//! Warm pools of real micro guests: reuse, refill, bounds, timeouts, failures,
//! close, and many threads at once. Needs /dev/kvm.

use kvmsandbox::config::DEFAULT_MICRO_MEM_MIB;
use kvmsandbox::pool::PoolError;
use kvmsandbox::{
    Error, PoolConfig, PoolSource, Sandbox, SandboxPool, VmConfig, WasmCall, WasmOutcome,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

/// The last page of RAM: the guest heap's far end, which an idle agent leaves alone.
const SCRATCH: u64 = (DEFAULT_MICRO_MEM_MIB << 20) - 0x1000;

const WAIT: Duration = Duration::from_secs(30);

fn micro_pool(min_idle: usize, max_size: usize) -> SandboxPool {
    SandboxPool::new(
        PoolSource::config(VmConfig::micro),
        PoolConfig {
            min_idle,
            max_size,
            threads: 2,
        },
    )
    .unwrap()
}

/// Waits (bounded) until the pool threads have nothing left to do.
fn settle(pool: &SandboxPool) {
    let deadline = Instant::now() + WAIT;
    while pool.metrics().in_flight > 0 {
        assert!(
            Instant::now() < deadline,
            "pool never settled: {:?}",
            pool.metrics()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn pool_acquire_release_reuses_and_refills_min_idle() {
    let pool = micro_pool(2, 3);
    assert!(pool.wait_idle(2, WAIT), "{:?}", pool.metrics());
    let sb = pool.acquire(WAIT).unwrap();
    sb.ping().unwrap();
    let first_socket = sb.vsock_path().unwrap().to_path_buf();
    // One borrowed, and the pool boots another to keep two idle.
    assert!(pool.wait_idle(2, WAIT), "{:?}", pool.metrics());
    let m = pool.metrics();
    assert_eq!((m.busy, m.idle, m.created), (1, 2, 3), "{m:?}");
    sb.release();
    settle(&pool);
    let m = pool.metrics();
    assert_eq!(
        (m.acquired, m.released, m.resets, m.busy),
        (1, 1, 1, 0),
        "{m:?}"
    );
    // max_size 3: all three are idle now, the released one replaced by a fresh VM.
    assert_eq!(m.idle, 3, "{m:?}");
    let mut sockets = Vec::new();
    let held: Vec<_> = (0..3).map(|_| pool.acquire(WAIT).unwrap()).collect();
    for sb in &held {
        sb.ping().unwrap();
        sockets.push(sb.vsock_path().unwrap().to_path_buf());
    }
    assert!(
        !sockets.contains(&first_socket),
        "a used sandbox of a config pool came back instead of a fresh one"
    );
}

#[test]
fn pool_at_max_size_times_out_then_serves_a_released_sandbox() {
    let pool = Arc::new(micro_pool(0, 1));
    let sb = pool.acquire(WAIT).unwrap();
    let t0 = Instant::now();
    match pool.acquire(Duration::from_millis(200)) {
        Err(Error::Pool(PoolError::AcquireTimeout {
            busy: 1,
            max_size: 1,
            ..
        })) => {}
        other => panic!("expected AcquireTimeout, got {:?}", other.map(|_| ())),
    }
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    assert_eq!(pool.metrics().acquire_timeouts, 1);
    // A waiter is served once the borrower gives back.
    let p2 = pool.clone();
    let waiter = std::thread::spawn(move || {
        let sb = p2.acquire(WAIT).unwrap();
        sb.ping().unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    drop(sb);
    waiter.join().unwrap();
    let m = pool.metrics();
    assert_eq!((m.acquired, m.released), (2, 2), "{m:?}");
    assert!(m.acquire_wait_max >= Duration::from_millis(50), "{m:?}");
}

#[test]
fn pool_replaces_a_sandbox_killed_while_borrowed() {
    let pool = micro_pool(1, 1);
    let sb = pool.acquire(WAIT).unwrap();
    sb.kill();
    assert!(sb.ping().is_err());
    drop(sb);
    let sb = pool.acquire(WAIT).unwrap();
    sb.ping().unwrap();
    let m = pool.metrics();
    assert_eq!((m.discarded, m.resets, m.created), (1, 0, 2), "{m:?}");
    // An explicit discard: thrown away, not reset.
    sb.discard();
    settle(&pool);
    let m = pool.metrics();
    assert_eq!((m.discarded, m.resets, m.idle), (2, 0, 1), "{m:?}");
}

#[test]
fn pool_discards_a_sandbox_whose_handle_outlives_its_release() {
    let pool = micro_pool(0, 1);
    let sb = pool.acquire(WAIT).unwrap();
    let stale = sb.shared();
    sb.release();
    settle(&pool);
    // The kept handle's VM was killed, not handed to the next borrower.
    assert!(stale.ping().is_err());
    let m = pool.metrics();
    assert_eq!((m.discarded, m.idle), (1, 1), "{m:?}");
    let next = pool.acquire(WAIT).unwrap();
    next.ping().unwrap();
    assert_ne!(next.vsock_path(), stale.vsock_path());
}

#[test]
fn pool_eight_threads_share_two_sandboxes() {
    let pool = Arc::new(micro_pool(1, 2));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let p = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..3 {
                    let sb = p.acquire(Duration::from_secs(60)).unwrap();
                    sb.ping().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    settle(&pool);
    let m = pool.metrics();
    eprintln!("8 threads x 3 cycles on max_size 2: {m:?}");
    assert_eq!((m.acquired, m.released, m.busy), (24, 24, 0), "{m:?}");
    assert_eq!(m.resets, 24, "{m:?}");
    assert!(m.idle <= 2 && m.idle >= 1, "{m:?}");
    assert_eq!(m.acquire_timeouts, 0);
}

#[test]
fn pool_close_kills_idle_leaves_borrowed_to_owner_and_refuses_acquire() {
    let pool = micro_pool(2, 3);
    assert!(pool.wait_idle(2, WAIT));
    let borrowed = pool.acquire(WAIT).unwrap();
    pool.close();
    // The borrower keeps a working sandbox until it gives it back.
    borrowed.ping().unwrap();
    match pool.acquire(WAIT) {
        Err(Error::Pool(PoolError::Closed)) => {}
        other => panic!("expected Closed, got {:?}", other.map(|_| ())),
    }
    let stale = borrowed.shared();
    drop(borrowed);
    assert!(
        stale.ping().is_err(),
        "a sandbox given back after close was not killed"
    );
    let m = pool.metrics();
    assert_eq!((m.idle, m.busy, m.in_flight), (0, 0, 0), "{m:?}");
}

#[test]
fn pool_boot_failure_reaches_the_waiting_acquirer() {
    let pool = SandboxPool::new(
        PoolSource::config(|| VmConfig::micro().micro_image("/nonexistent/micro.elf")),
        PoolConfig {
            min_idle: 0,
            max_size: 2,
            threads: 1,
        },
    )
    .unwrap();
    let t0 = Instant::now();
    let err = pool.acquire(WAIT).map(|_| ()).unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "waited for the timeout instead"
    );
    assert_eq!(err.kind(), kvmsandbox::ErrorKind::Config, "{err}");
    assert_eq!(pool.metrics().create_failures, 1);
}

#[test]
fn pool_refuses_bad_settings() {
    let bad = |min_idle, max_size, threads| {
        SandboxPool::new(
            PoolSource::config(VmConfig::micro),
            PoolConfig {
                min_idle,
                max_size,
                threads,
            },
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    assert!(bad(0, 0, 1).contains("max_size = 0"));
    assert!(bad(3, 2, 1).contains("min_idle = 3"));
    assert!(bad(0, 2, 0).contains("threads = 0"));
    let shared = SandboxPool::new(
        PoolSource::config(|| VmConfig::micro().vsock("/tmp/kvmsb-one.sock")),
        PoolConfig::default(),
    );
    match shared {
        Err(Error::Pool(PoolError::SharedVsockPath { path })) => {
            assert_eq!(path, std::path::Path::new("/tmp/kvmsb-one.sock"))
        }
        other => panic!("expected SharedVsockPath, got {other:?}"),
    }
}

fn one_at_a_time() -> PoolConfig {
    PoolConfig {
        min_idle: 1,
        max_size: 1,
        threads: 1,
    }
}

#[test]
fn pool_from_snapshot_restores_released_sandboxes_in_place() {
    let snap = {
        let base = Sandbox::micro().unwrap();
        base.snapshot().unwrap()
    };
    let pool = SandboxPool::new(PoolSource::from_snapshot(&snap), one_at_a_time()).unwrap();
    let sb = pool.acquire(WAIT).unwrap();
    sb.ping().unwrap();
    let socket = sb.vsock_path().unwrap().to_path_buf();
    let mem = sb.vm().unwrap().guest_memory();
    let clean: u64 = mem.read_obj(GuestAddress(SCRATCH)).unwrap();
    mem.write_obj(!clean, GuestAddress(SCRATCH)).unwrap();
    sb.release();
    settle(&pool);
    let sb = pool.acquire(WAIT).unwrap();
    // The same VM (restored in place, not replaced), with its memory as at the snapshot.
    assert_eq!(sb.vsock_path().unwrap(), socket);
    let mem = sb.vm().unwrap().guest_memory();
    assert_eq!(
        mem.read_obj::<u64>(GuestAddress(SCRATCH)).unwrap(),
        clean,
        "memory a borrower wrote survived the release"
    );
    sb.ping().unwrap();
    let m = pool.metrics();
    assert_eq!(
        (m.created, m.resets, m.reset_failures, m.discarded),
        (1, 1, 0, 0),
        "{m:?}"
    );
}

#[test]
fn pool_from_template_serves_clean_runs() {
    let module = wat::parse_file(format!(
        "{}/tests/wasm/template_state.wat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let template = {
        let base = Sandbox::micro().unwrap();
        base.prepare_wasm(&module, None).unwrap()
    };
    let pool = SandboxPool::new(PoolSource::from_template(&template), one_at_a_time()).unwrap();
    assert_eq!(pool.template().map(|t| t.id()), Some(template.id()));
    for round in 0..3 {
        let sb = pool.acquire(WAIT).unwrap();
        let t = sb.template().unwrap();
        let out = t.run(&sb, &WasmCall::default(), None).unwrap();
        assert_eq!(out.outcome, WasmOutcome::Exit(0), "round {round}");
        // The counter the module bumps in its memory starts afresh every time.
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(line.starts_with("1 "), "round {round}: {line:?}");
    }
    settle(&pool);
    let m = pool.metrics();
    assert_eq!((m.created, m.resets, m.acquired), (1, 3, 3), "{m:?}");
}

#[test]
fn pool_replaces_a_sandbox_whose_reset_fails() {
    let snap = Sandbox::micro().unwrap().snapshot().unwrap();
    let pool = SandboxPool::new(PoolSource::from_snapshot(&snap), one_at_a_time()).unwrap();
    let sb = pool.acquire(WAIT).unwrap();
    let first = sb.vsock_path().unwrap().to_path_buf();
    pool.fail_next_resets(1);
    sb.release();
    settle(&pool);
    let m = pool.metrics();
    assert_eq!(
        (m.reset_failures, m.resets, m.discarded, m.created, m.idle),
        (1, 0, 1, 2, 1),
        "{m:?}"
    );
    let sb = pool.acquire(WAIT).unwrap();
    assert_ne!(
        sb.vsock_path().unwrap(),
        first,
        "a sandbox whose reset failed came back"
    );
    sb.ping().unwrap();
}

#[test]
fn forks_of_a_snapshot_pool_take_the_config_given_with_it() {
    let origin = Sandbox::micro().unwrap();
    let snap = origin.snapshot().unwrap();
    let cfg = PoolConfig {
        min_idle: 0,
        max_size: 1,
        threads: 1,
    };
    // A config of the snapshot's shape (its own seccomp policy): forks work.
    let pool = SandboxPool::new(
        PoolSource::from_snapshot(&snap)
            .with_config(|| VmConfig::micro().seccomp(kvmsandbox::config::SeccompPolicy::Trap)),
        cfg,
    )
    .unwrap();
    let sb = pool.acquire(WAIT).unwrap();
    sb.ping().unwrap();
    drop(sb);
    pool.close();
    // The config is really used: one of another shape makes every fork fail,
    // named, at acquire.
    let pool = SandboxPool::new(
        PoolSource::from_snapshot(&snap).with_config(|| VmConfig::micro().vcpus(2)),
        cfg,
    )
    .unwrap();
    let e = pool.acquire(WAIT).map(drop).unwrap_err();
    assert_eq!(e.kind(), kvmsandbox::ErrorKind::Snapshot, "{e}");
    assert!(e.to_string().contains("vCPU"), "{e}");
    pool.close();
    // And a shared socket path is refused up front, as for a config pool.
    let shared = SandboxPool::new(
        PoolSource::from_snapshot(&snap)
            .with_config(|| VmConfig::micro().vsock("/tmp/kvmsb-one.sock")),
        cfg,
    );
    assert!(
        matches!(shared, Err(Error::Pool(PoolError::SharedVsockPath { .. }))),
        "{shared:?}"
    );
}
