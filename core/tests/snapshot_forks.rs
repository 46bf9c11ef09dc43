//! Many forks of one snapshot: what each idle fork costs in host memory. A fork
//! maps the snapshot's image copy-on-write, so guest pages it only reads are
//! the image's (shared, counted once per mapping in RssShmem); only pages the
//! guest writes become its own (RssAnon, with the fork's host-side state). One
//! `#[test]` on purpose: the counts are process-wide. Needs /dev/kvm.

mod common;

use kvmsandbox::agent::AgentClient;
use kvmsandbox::{Vm, VmConfig};
use std::path::Path;
use std::time::{Duration, Instant};

const FORKS: usize = 50;
/// Generous bound on what an idle fork adds of its own (private guest pages it
/// wrote, vCPU and device threads' stacks, KVM's per-VM host memory is not in
/// here). A copy of its 64 MiB of RAM would be 64 MiB.
const ANON_PER_FORK_KIB: u64 = 8 * 1024;
const TIMEOUT: Duration = Duration::from_secs(20);

fn ping(uds: &Path) {
    AgentClient::connect_hybrid(uds, kvmsandbox_proto::DEFAULT_AGENT_PORT, TIMEOUT)
        .unwrap()
        .ping()
        .unwrap();
}

#[test]
fn fifty_idle_forks_share_the_snapshot_pages() {
    let dir = std::env::temp_dir().join(format!("kvmsb-forks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = |uds: &Path| VmConfig::micro().memory_mib(64).vsock(uds);
    let uds = dir.join("v.sock");
    let vm = Vm::start(cfg(&uds)).unwrap();
    ping(&uds);
    let deadline = Instant::now() + TIMEOUT;
    while vm.check_devices_quiescent().is_err() {
        assert!(Instant::now() < deadline, "vsock never quiescent");
        std::thread::sleep(Duration::from_millis(2));
    }
    let snap = vm.snapshot().unwrap();
    drop(vm);
    let anon0 = common::status_field("RssAnon:");
    let shmem0 = common::status_field("RssShmem:");
    let t = Instant::now();
    let forks: Vec<Vm> = (0..FORKS)
        .map(|i| {
            let uds = dir.join(format!("f{i}.sock"));
            let f = Vm::from_snapshot(cfg(&uds), &snap).unwrap();
            ping(&uds);
            f
        })
        .collect();
    let took = t.elapsed();
    // Let them settle idle.
    std::thread::sleep(Duration::from_millis(200));
    let anon = common::status_field("RssAnon:").saturating_sub(anon0) / FORKS as u64;
    let shmem = common::status_field("RssShmem:").saturating_sub(shmem0) / FORKS as u64;
    eprintln!(
        "{FORKS} forks created and pinged in {took:.2?}; per idle fork: RssAnon +{anon} KiB, \
         RssShmem +{shmem} KiB (the image's pages, shared)"
    );
    assert!(forks.iter().all(Vm::is_running));
    assert!(
        anon <= ANON_PER_FORK_KIB,
        "each idle fork holds {anon} KiB of private memory"
    );
    drop(forks);
    let _ = std::fs::remove_dir_all(&dir);
}
