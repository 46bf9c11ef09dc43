//! Snapshots of VMs whose virtio devices are in use (vsock + blk on the micro
//! guest and its agent): snapshot, restore in place and fork (`Vm::from_snapshot`)
//! carry device state; a live vsock connection refuses a snapshot; restoring
//! ends the host streams of the current guest; configs that do not fit a
//! snapshot are typed errors. Needs /dev/kvm.

mod common;

use kvmsandbox::agent::{connect_hybrid, AgentClient};
use kvmsandbox::devices::virtio::DeviceStateError;
use kvmsandbox::vmm::snapshot::memory::MemorySnapshotError;
use kvmsandbox::vmm::snapshot::{SnapshotError, VmSnapshot};
use kvmsandbox::{Vm, VmConfig};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

const PORT: u32 = kvmsandbox_proto::DEFAULT_AGENT_PORT;
/// Generous bound for anything the emulated guest has to do.
const BOUND: Duration = Duration::from_secs(20);
const MEM_MIB: u64 = 64;
/// The last page of RAM: the guest heap's far end, which an idle agent leaves alone.
const SCRATCH: u64 = (MEM_MIB << 20) - 0x1000;

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("kvmsb-snapdev-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
    /// A zero-filled disk image of `sectors` 512-byte sectors.
    fn disk(&self, name: &str, sectors: u64) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, vec![0u8; (sectors * 512) as usize]).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(uds: &Path, disk: Option<&Path>) -> VmConfig {
    let cfg = VmConfig::micro()
        .memory_mib(MEM_MIB)
        .vsock(uds)
        .start_timeout(BOUND);
    match disk {
        Some(d) => cfg.disk(d, false),
        None => cfg,
    }
}

fn agent(uds: &Path) -> AgentClient {
    AgentClient::connect_hybrid(uds, PORT, BOUND).unwrap()
}

/// A fresh connection answers a ping (and, with a disk, a disk read).
fn healthy(uds: &Path, disk: bool) {
    let mut a = agent(uds);
    a.ping().unwrap();
    if disk {
        assert_eq!(a.disk_read(0, 0, 512).unwrap(), vec![0u8; 512]);
    }
}

/// Waits until every device activated and the vsock device has no connection
/// left (the guest answers a host's close with a RST; until then the stream
/// counts as open).
fn wait_quiescent(vm: &Vm) {
    let deadline = Instant::now() + BOUND;
    loop {
        let active = vm.virtio_devices().iter().all(|&(_, a)| a);
        match vm.check_devices_quiescent() {
            Ok(()) if active => return,
            r => assert!(
                Instant::now() < deadline,
                "devices never quiescent: {r:?}, activated: {:?}",
                vm.virtio_devices()
            ),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Boots a guest with a disk and vsock, talks to it, and snapshots it idle.
fn booted_and_snapshotted(dir: &Dir) -> (Vm, VmSnapshot, PathBuf, PathBuf) {
    let (uds, disk) = (dir.path("v.sock"), dir.disk("d.img", 64));
    let vm = Vm::start(config(&uds, Some(&disk))).unwrap();
    healthy(&uds, true);
    wait_quiescent(&vm);
    let snap = vm.snapshot().unwrap();
    (vm, snap, uds, disk)
}

#[test]
fn a_guest_using_vsock_and_blk_is_snapshotted_restored_and_stays_healthy() {
    let dir = Dir::new("restore");
    let (vm, snap, uds, _disk) = booted_and_snapshotted(&dir);
    assert_eq!(snap.devices.len(), 2, "disk and vsock");
    assert!(snap.devices.iter().all(|d| d.transport.activated));
    // The guest keeps working after the snapshot.
    healthy(&uds, true);
    let mem = vm.guest_memory();
    mem.write_obj(0xfeed_f00d_u64, GuestAddress(SCRATCH))
        .unwrap();
    wait_quiescent(&vm);
    vm.restore(&snap).unwrap();
    assert_eq!(
        mem.read_obj::<u64>(GuestAddress(SCRATCH)).unwrap(),
        0,
        "memory written after the snapshot survived the restore"
    );
    healthy(&uds, true);
    let t = Instant::now();
    for round in 0..50 {
        // Restore with the last round's connection closed but possibly not yet
        // torn down by the guest: the restore drops it either way.
        vm.restore(&snap)
            .unwrap_or_else(|e| panic!("restore {round}: {e}"));
        healthy(&uds, round % 10 == 0);
    }
    eprintln!("50 x (restore + connect + ping): {:?}", t.elapsed());
    assert!(vm.is_running());
}

#[test]
fn a_live_vsock_connection_refuses_a_snapshot() {
    let dir = Dir::new("live");
    let uds = dir.path("v.sock");
    let vm = Vm::start(config(&uds, None)).unwrap();
    let mut a = agent(&uds);
    a.ping().unwrap();
    match vm.snapshot() {
        Err(SnapshotError::Device {
            index: 0,
            device_type: 19,
            source: DeviceStateError::NotQuiescent { reason, .. },
        }) => assert!(reason.contains("1 vsock connection"), "{reason}"),
        r => panic!("expected NotQuiescent, got {:?}", r.map(|_| ())),
    }
    assert!(vm.check_devices_quiescent().is_err());
    // Refusing changed nothing: the connection still works.
    a.ping().unwrap();
    drop(a);
    wait_quiescent(&vm);
    vm.snapshot().unwrap();
}

#[test]
fn restoring_ends_the_host_streams_of_the_current_guest() {
    let dir = Dir::new("eof");
    let uds = dir.path("v.sock");
    let vm = Vm::start(config(&uds, None)).unwrap();
    healthy(&uds, false);
    wait_quiescent(&vm);
    let snap = vm.snapshot().unwrap();
    let mut stream = connect_hybrid(&uds, PORT, BOUND).unwrap();
    stream.set_read_timeout(Some(BOUND)).unwrap();
    // The agent greets every connection first: the stream is live.
    let mut hello = [0u8; 4];
    stream.read_exact(&mut hello).unwrap();
    vm.restore(&snap).unwrap();
    let t = Instant::now();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "EOF after {:?}",
        t.elapsed()
    );
    healthy(&uds, false);
}

#[test]
fn two_forks_of_one_snapshot_answer_independently() {
    let dir = Dir::new("fork");
    let (vm, snap, uds, disk) = booted_and_snapshotted(&dir);
    let t = Instant::now();
    let forks: Vec<(Vm, PathBuf)> = (0..2)
        .map(|i| {
            let uds = dir.path(&format!("fork{i}.sock"));
            let disk = dir.disk(&format!("fork{i}.img"), 64);
            let f = Vm::from_snapshot(config(&uds, Some(&disk)), &snap).unwrap();
            (f, uds)
        })
        .collect();
    eprintln!("2 forks created in {:?}", t.elapsed());
    for (f, uds) in &forks {
        healthy(uds, true);
        assert!(f.is_running());
    }
    // Each fork has its own memory: a write into one is not seen by the other,
    // nor by the VM the snapshot was taken of.
    let a = GuestAddress(SCRATCH);
    forks[0].0.guest_memory().write_obj(7u64, a).unwrap();
    assert_eq!(forks[1].0.guest_memory().read_obj::<u64>(a).unwrap(), 0);
    assert_eq!(vm.guest_memory().read_obj::<u64>(a).unwrap(), 0);
    let mut forks = forks.into_iter();
    let (f0, _) = forks.next().unwrap();
    let (f1, uds1) = forks.next().unwrap();
    drop(f0);
    healthy(&uds1, true);
    // The original keeps running on its own disk and socket.
    healthy(&uds, true);
    assert!(disk.exists());
    // A fork can be restored in place like any VM.
    wait_quiescent(&f1);
    f1.restore(&snap).unwrap();
    healthy(&uds1, true);
}

#[test]
fn a_fork_whose_config_does_not_fit_the_snapshot_is_refused() {
    let dir = Dir::new("mismatch");
    let (_vm, snap, _uds, _disk) = booted_and_snapshotted(&dir);
    let uds = dir.path("f.sock");
    let disk = dir.disk("f.img", 64);
    let err = |cfg: VmConfig| match Vm::from_snapshot(cfg, &snap) {
        Ok(_) => panic!("a mismatched fork was created"),
        Err(e) => e,
    };
    match err(config(&uds, Some(&disk)).vcpus(2)) {
        SnapshotError::VcpuCount { snapshot: 1, vm: 2 } => {}
        e => panic!("expected VcpuCount, got {e:?}"),
    }
    match err(config(&uds, Some(&disk)).memory_mib(96)) {
        SnapshotError::Memory(MemorySnapshotError::SizeMismatch { image, ram }) => {
            assert_eq!((image, ram), (MEM_MIB << 20, 96 << 20))
        }
        e => panic!("expected a memory size mismatch, got {e:?}"),
    }
    match err(config(&uds, None)) {
        SnapshotError::DeviceCount { snapshot: 2, vm: 1 } => {}
        e => panic!("expected DeviceCount, got {e:?}"),
    }
    let small = dir.disk("small.img", 32);
    match err(config(&uds, Some(&small))) {
        SnapshotError::Device {
            index: 0,
            device_type: 2,
            source:
                DeviceStateError::DiskSize {
                    snapshot: 64,
                    device: 32,
                },
        } => {}
        e => panic!("expected DiskSize, got {e:?}"),
    }
    let ro = config(&uds, None).disk(&disk, true);
    match err(ro) {
        SnapshotError::Device {
            source: DeviceStateError::DiskReadOnly { .. },
            ..
        } => {}
        e => panic!("expected DiskReadOnly, got {e:?}"),
    }
    // Nothing was left behind: the socket path is free for a fitting fork.
    let ok = Vm::from_snapshot(config(&uds, Some(&disk)), &snap).unwrap();
    healthy(&uds, true);
    drop(ok);
}

#[test]
fn restoring_a_snapshot_of_another_device_set_is_refused() {
    let dir = Dir::new("devset");
    let (vm, _snap, uds, _disk) = booted_and_snapshotted(&dir);
    let bare = Vm::start(VmConfig::micro().memory_mib(MEM_MIB).cmdline("test=stay"))
        .unwrap()
        .snapshot()
        .unwrap();
    match vm.restore(&bare) {
        Err(SnapshotError::DeviceCount { snapshot: 0, vm: 2 }) => {}
        r => panic!("expected DeviceCount, got {r:?}"),
    }
    // Refused before anything changed: the guest runs on.
    healthy(&uds, true);
}
