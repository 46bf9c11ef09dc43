//! Resetting a VM in place many times gives everything back: file descriptors,
//! threads, mappings and resident memory return to their level after the first
//! restore. One `#[test]` on purpose: the counts are process-wide.
//!
//! `KVMSB_SNAPSHOT_RESTORES` (default 1000) sets the number of restores. Each
//! cycle dirties 64 pages from the host while the guest counts in RAM, then
//! restores. A second phase does a fifth as many restores of a guest whose
//! vsock device is active, each after a connection to its agent: the restore
//! closes that connection's host side, and nothing of it may stay behind.
//! Needs /dev/kvm.

mod common;

use kvmsandbox::agent::AgentClient;
use kvmsandbox::{Vm, VmConfig};
use std::time::Duration;
use std::time::Instant;
use vm_memory::{Bytes, GuestAddress};

/// Resident memory may differ this much (allocator caches, the zero page's
/// mappings), never with the number of restores: 1000 cycles of 64 leaked
/// pages would be 250 MiB.
const RSS_SLACK_KIB: u64 = 8 * 1024;

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn maps() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

#[test]
fn a_thousand_restores_leak_nothing() {
    let cycles: usize = std::env::var("KVMSB_SNAPSHOT_RESTORES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let vm = Vm::start(
        VmConfig::micro()
            .vcpus(2)
            .memory_mib(64)
            .cmdline("test=count"),
    )
    .unwrap();
    let mem = vm.guest_memory();
    let snap = vm.snapshot().unwrap();
    let dirty = |i: usize| {
        for p in 0..64u64 {
            mem.write_obj(i as u64 + 1, GuestAddress(0x200_0000 + p * 4096))
                .unwrap();
        }
    };
    dirty(0);
    vm.restore(&snap).unwrap();
    let (fds0, threads0, maps0, rss0) = (
        fds(),
        common::status_field("Threads:"),
        maps(),
        common::status_field("VmRSS:"),
    );
    let t = Instant::now();
    for i in 0..cycles {
        dirty(i);
        vm.restore(&snap).unwrap();
        assert_eq!(
            mem.read_obj::<u64>(GuestAddress(0x200_0000)).unwrap(),
            0,
            "cycle {i}: a dirty page survived"
        );
    }
    let took = t.elapsed();
    let (fds1, threads1, maps1, rss1) = (
        fds(),
        common::status_field("Threads:"),
        maps(),
        common::status_field("VmRSS:"),
    );
    eprintln!(
        "{cycles} restores in {took:.2?} ({:.1} µs each); fds {fds0} -> {fds1}, threads {threads0} -> {threads1}, \
         maps {maps0} -> {maps1}, VmRSS {rss0} -> {rss1} KiB",
        took.as_secs_f64() * 1e6 / cycles as f64
    );
    assert!(vm.is_running(), "{}", vm.console_output());
    assert_eq!(fds1, fds0, "file descriptors leaked");
    assert_eq!(threads1, threads0, "threads leaked");
    assert_eq!(maps1, maps0, "mappings leaked");
    assert!(
        rss1 <= rss0 + RSS_SLACK_KIB,
        "resident memory grew from {rss0} to {rss1} KiB over {cycles} restores"
    );
    drop(vm);
    with_devices(cycles / 5);
}

fn with_devices(cycles: usize) {
    let dir = std::env::temp_dir().join(format!("kvmsb-snapleak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let uds = dir.join("v.sock");
    let vm = Vm::start(VmConfig::micro().memory_mib(64).vsock(&uds)).unwrap();
    let ping = || {
        AgentClient::connect_hybrid(
            &uds,
            kvmsandbox_proto::DEFAULT_AGENT_PORT,
            Duration::from_secs(20),
        )
        .unwrap()
        .ping()
        .unwrap();
    };
    ping();
    let deadline = Instant::now() + Duration::from_secs(20);
    while vm.check_devices_quiescent().is_err() {
        assert!(Instant::now() < deadline, "vsock never quiescent");
        std::thread::sleep(Duration::from_millis(2));
    }
    let snap = vm.snapshot().unwrap();
    ping();
    vm.restore(&snap).unwrap();
    let (fds0, threads0) = (fds(), common::status_field("Threads:"));
    let t = Instant::now();
    for _ in 0..cycles {
        ping();
        vm.restore(&snap).unwrap();
    }
    let took = t.elapsed();
    let (fds1, threads1) = (fds(), common::status_field("Threads:"));
    eprintln!(
        "{cycles} x (connect + ping + restore) with vsock in {took:.2?}; fds {fds0} -> {fds1}, \
         threads {threads0} -> {threads1}"
    );
    assert!(vm.is_running(), "{}", vm.console_output());
    assert_eq!(fds1, fds0, "file descriptors leaked (vsock connections?)");
    assert_eq!(threads1, threads0, "threads leaked");
    drop(vm);
    let _ = std::fs::remove_dir_all(&dir);
}
