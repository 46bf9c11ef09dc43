//! Sandbox-level snapshots on the micro guest: snapshot at a quiescent point
//! (open streams and running calls are `Busy`), restore in place (memory back,
//! streams see EOF, the agent reconnects, randomness differs, the guest clock
//! does not go backwards), forks from a snapshot and from a file, mismatches,
//! and per-call isolation (a timeout restores instead of killing). Needs /dev/kvm.

use kvmsandbox::{Error, Sandbox, SandboxSnapshot, VmConfig, WasmOutcome, WasmRequest};
use std::io::Read;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

const MEM_MIB: u64 = 64;
/// The last page of RAM: the guest heap's far end, which an idle agent leaves alone.
const SCRATCH: GuestAddress = GuestAddress((MEM_MIB << 20) - 0x1000);

fn wat(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/wasm/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn run(sb: &Sandbox, name: &str) -> Vec<u8> {
    let req = WasmRequest {
        module: wat(name),
        ..Default::default()
    };
    let out = sb.run_wasm(&req, Some(Duration::from_secs(30))).unwrap();
    assert_eq!(out.outcome, WasmOutcome::Exit(0), "{name}");
    out.stdout
}

fn scratch(sb: &Sandbox) -> u64 {
    sb.vm().unwrap().guest_memory().read_obj(SCRATCH).unwrap()
}

fn set_scratch(sb: &Sandbox, v: u64) {
    sb.vm()
        .unwrap()
        .guest_memory()
        .write_obj(v, SCRATCH)
        .unwrap();
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("kvmsb-sbsnap-{}-{name}", std::process::id()))
}

#[test]
fn restore_brings_memory_back_and_the_agent_answers_again() {
    let sb = Sandbox::micro().unwrap();
    set_scratch(&sb, 0x1111);
    let snap = sb.snapshot().unwrap();
    set_scratch(&sb, 0x2222);
    sb.ping().unwrap();
    for _ in 0..20 {
        sb.restore(&snap).unwrap();
        assert_eq!(scratch(&sb), 0x1111);
        sb.ping().unwrap();
        set_scratch(&sb, 0x3333);
    }
    assert_eq!(run(&sb, "hello"), b"hello, world\n");
}

#[test]
fn an_open_stream_or_a_running_call_makes_snapshot_busy_and_restore_ends_streams() {
    let sb = Sandbox::micro().unwrap();
    let mut s = sb.connect(kvmsandbox::ECHO_PORT).unwrap();
    match sb.snapshot() {
        Err(Error::Busy {
            op: "snapshot",
            what,
        }) => assert!(what.contains("1 stream"), "{what}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    // Restoring is allowed: the stream reads EOF (bounded).
    let snap = {
        drop(s);
        let snap = sb.snapshot().unwrap();
        s = sb.connect(kvmsandbox::ECHO_PORT).unwrap();
        snap
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let t0 = Instant::now();
    sb.restore(&snap).unwrap();
    let mut b = [0u8; 8];
    assert_eq!(s.read(&mut b).unwrap(), 0, "stream did not see EOF");
    assert!(t0.elapsed() < Duration::from_secs(2));
    drop(s);
    sb.ping().unwrap();

    // A call running in another thread: snapshot and restore are Busy.
    std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let req = WasmRequest {
                module: wat("clock_wait_1s"),
                ..Default::default()
            };
            sb.run_wasm(&req, Some(Duration::from_secs(30)))
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut saw_busy = false;
        while !h.is_finished() && Instant::now() < deadline {
            if let Err(Error::Busy { what, .. }) = sb.snapshot() {
                assert!(what.contains("call is running"), "{what}");
                saw_busy = true;
                match sb.restore(&snap) {
                    Err(Error::Busy { .. }) => {}
                    r => panic!(
                        "restore during a call: expected Busy, got {r:?} (snapshot said {what})"
                    ),
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(saw_busy, "no snapshot attempt overlapped the running call");
        assert_eq!(h.join().unwrap().unwrap().outcome, WasmOutcome::Exit(0));
    });
}

#[test]
fn randomness_differs_across_restores_and_the_clock_does_not_go_back() {
    let sb = Sandbox::micro().unwrap();
    let snap = sb.snapshot().unwrap();
    let after_snap = u64::from_le_bytes(run(&sb, "clock_now").try_into().unwrap());
    sb.restore(&snap).unwrap();
    let a = run(&sb, "random16");
    let after_restore = u64::from_le_bytes(run(&sb, "clock_now").try_into().unwrap());
    assert!(
        after_restore >= after_snap,
        "guest clock went back: {after_snap} ns before the restore, {after_restore} ns after"
    );
    sb.restore(&snap).unwrap();
    let b = run(&sb, "random16");
    assert_eq!((a.len(), b.len()), (16, 16));
    assert_ne!(a, b, "two restores gave the same random bytes");
}

#[test]
fn forks_run_independently_and_a_file_round_trip_forks_too() {
    let sb = Sandbox::micro().unwrap();
    set_scratch(&sb, 0x4444);
    let snap = sb.snapshot().unwrap();
    let f1 = Sandbox::from_snapshot(&snap).unwrap();
    let f2 = Sandbox::from_snapshot(&snap).unwrap();
    assert_eq!(scratch(&f1), 0x4444);
    set_scratch(&f1, 0x5555);
    assert_eq!(scratch(&f2), 0x4444);
    f1.ping().unwrap();
    assert_eq!(run(&f2, "hello"), b"hello, world\n");
    assert_ne!(f1.vsock_path(), f2.vsock_path());
    drop(sb);

    let path = temp("fork.snap");
    snap.save(&path).unwrap();
    let loaded = SandboxSnapshot::load(&path).unwrap();
    let f3 = Sandbox::from_snapshot(&loaded).unwrap();
    assert_eq!(scratch(&f3), 0x4444);
    assert_eq!(run(&f3, "hello"), b"hello, world\n");
    f3.restore(&loaded).unwrap();
    f3.ping().unwrap();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn snapshots_of_another_shape_are_mismatches() {
    let sb = Sandbox::micro().unwrap();
    let snap = sb.snapshot().unwrap();
    let other = Sandbox::start(VmConfig::micro().vcpus(2)).unwrap();
    match other.restore(&snap) {
        Err(Error::SnapshotMismatch {
            what,
            snapshot,
            sandbox,
        }) => {
            assert_eq!(
                (what, snapshot.as_str(), sandbox.as_str()),
                ("vCPU count", "1", "2")
            )
        }
        r => panic!("expected SnapshotMismatch, got {r:?}"),
    }
    match Sandbox::from_snapshot_with(&snap, VmConfig::micro().memory_mib(MEM_MIB * 2)) {
        Err(Error::SnapshotMismatch { what, .. }) => assert_eq!(what, "memory size (bytes)"),
        r => panic!("expected SnapshotMismatch, got {:?}", r.err()),
    }
}

#[test]
fn under_call_isolation_a_timeout_restores_and_no_call_leaves_a_trace() {
    let sb = Sandbox::micro().unwrap();
    set_scratch(&sb, 0x6666);
    let snap = sb.snapshot().unwrap();
    sb.set_call_isolation(Some(&snap)).unwrap();
    // A trace left between calls (as a call writing guest memory would) is gone
    // after the next call.
    set_scratch(&sb, 0x7777);
    assert_eq!(run(&sb, "hello"), b"hello, world\n");
    assert_eq!(scratch(&sb), 0x6666);

    let req = WasmRequest {
        module: wat("infinite_loop"),
        ..Default::default()
    };
    let t0 = Instant::now();
    match sb.run_wasm(&req, Some(Duration::from_secs(2))) {
        Err(e @ Error::CallTimeout { .. }) => assert_eq!(e.kind(), kvmsandbox::ErrorKind::Timeout),
        r => panic!("expected CallTimeout, got {r:?}"),
    }
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t0.elapsed()
    );
    assert!(sb.vm().unwrap().is_running());
    assert_eq!(run(&sb, "hello"), b"hello, world\n");
    assert_eq!(scratch(&sb), 0x6666);
    sb.set_call_isolation(None).unwrap();
    set_scratch(&sb, 0x8888);
    sb.ping().unwrap();
    assert_eq!(scratch(&sb), 0x8888);
}

/// A snapshot file's disk paths are not opened on its word (a crafted file
/// could name any host file of the right size): a fork of a loaded snapshot
/// that records disks must name them.
#[test]
fn disks_named_by_a_snapshot_file_are_not_opened_on_its_word() {
    let disk = temp("file-disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let sb = Sandbox::start(VmConfig::micro().disk(&disk, true)).unwrap();
    let snap = sb.snapshot().unwrap();
    let path = temp("disk.snap");
    snap.save(&path).unwrap();
    drop(sb);
    let loaded = SandboxSnapshot::load(&path).unwrap();
    assert!(loaded.loaded_from_file() && !snap.loaded_from_file());
    match Sandbox::from_snapshot(&loaded) {
        Err(Error::SnapshotMismatch { what, snapshot, .. }) => {
            assert_eq!(what, "disks");
            assert!(snapshot.contains("not opened"), "{snapshot}");
        }
        r => panic!("expected SnapshotMismatch, got {:?}", r.err()),
    }
    let fork = Sandbox::from_snapshot_disks(&loaded, &[(disk.clone(), true)]).unwrap();
    fork.ping().unwrap();
    drop(fork);
    // A snapshot taken in this process still forks with its own disks.
    Sandbox::from_snapshot(&snap).unwrap().ping().unwrap();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&disk);
}
