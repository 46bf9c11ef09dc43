//! Snapshots and reset in place at the VMM level, on the micro guest without
//! devices: memory written before a snapshot is there after a restore and memory
//! written after is gone; the vCPUs run on correctly after any number of
//! restores; snapshots of another shape or of a stopped VM are typed errors
//! (VMs with devices in use: snapshot_devices.rs). The guest's `test=count` mode counts in a RAM
//! word the host reads through guest memory. Needs /dev/kvm.

mod common;

use kvmsandbox::vmm::snapshot::SnapshotError;
use kvmsandbox::{Vm, VmConfig, VmExit};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

/// Generous bound for "the guest makes progress" (the emulated guest on PVM runs
/// a few million instructions a second, slower on a loaded machine).
const PROGRESS_BOUND: Duration = Duration::from_secs(20);

/// A counting guest and the guest address of its counter.
fn counting_vm(vcpus: u32) -> (Vm, u64) {
    let vm = Vm::start(VmConfig::micro().vcpus(vcpus).cmdline("test=count")).unwrap();
    let deadline = Instant::now() + PROGRESS_BOUND;
    loop {
        let out = vm.console_output();
        if let Some(hex) = out.lines().find_map(|l| l.strip_prefix("counter at 0x")) {
            return (vm, u64::from_str_radix(hex.trim(), 16).unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "no counter address printed: {out}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn counter(vm: &Vm, addr: u64) -> u64 {
    vm.guest_memory().read_obj(GuestAddress(addr)).unwrap()
}

/// Waits until the guest's counter passes `above`.
fn wait_counter_above(vm: &Vm, addr: u64, above: u64) -> u64 {
    let deadline = Instant::now() + PROGRESS_BOUND;
    loop {
        let c = counter(vm, addr);
        if c > above {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "counter stuck at {c} (waiting for > {above}; VM running: {}); console: {}",
            vm.is_running(),
            vm.console_output()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn memory_written_before_a_snapshot_is_back_after_restore_and_memory_written_after_is_gone() {
    let vm = Vm::start(VmConfig::micro().memory_mib(32).cmdline("test=stay")).unwrap();
    let mem = vm.guest_memory();
    let (kept, scratch) = (GuestAddress(0x180_0000), GuestAddress(0x1c0_0000));
    mem.write_obj(0x1111_2222_3333_4444u64, kept).unwrap();
    let snap = vm.snapshot().unwrap();
    for round in 0..5u64 {
        mem.write_obj(0x5555 + round, kept).unwrap();
        mem.write_slice(&[0xab; 8192], scratch).unwrap();
        vm.restore(&snap).unwrap();
        assert_eq!(
            mem.read_obj::<u64>(kept).unwrap(),
            0x1111_2222_3333_4444,
            "round {round}"
        );
        let mut back = [0xffu8; 8192];
        mem.read_slice(&mut back, scratch).unwrap();
        assert!(
            back.iter().all(|&b| b == 0),
            "round {round}: memory written after the snapshot survived"
        );
    }
    assert!(vm.is_running());
}

/// The guest's own writes are rewound too, and it keeps counting from the
/// snapshot's value, restore after restore, on every vCPU configuration.
#[test]
fn a_counting_guest_rewinds_to_the_snapshot_and_counts_on() {
    for vcpus in [1, 2] {
        let (vm, addr) = counting_vm(vcpus);
        wait_counter_above(&vm, addr, 1000);
        let snap = vm.snapshot().unwrap();
        let mut at_snap = [0u8; 8];
        snap.memory
            .file()
            .read_exact_at(&mut at_snap, addr)
            .unwrap();
        let at_snap = u64::from_le_bytes(at_snap);
        assert!(at_snap > 1000);
        for _ in 0..5 {
            let later = wait_counter_above(&vm, addr, at_snap + 5000);
            let mut paused = vm.pause().unwrap();
            paused.restore(&snap).unwrap();
            assert_eq!(
                counter(&vm, addr),
                at_snap,
                "{vcpus} vCPU(s): counter not rewound (was {later})"
            );
            drop(paused);
            wait_counter_above(&vm, addr, at_snap + 1000);
        }
        // The guest still prints (port I/O works): a "count" line after the restores.
        let lines_before = vm.console_output().matches("count ").count();
        let deadline = Instant::now() + PROGRESS_BOUND * 3;
        while vm.console_output().matches("count ").count() == lines_before {
            assert!(
                Instant::now() < deadline && vm.is_running(),
                "no console output after restores: {}",
                vm.console_output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(vm.is_running());
    }
}

/// A second snapshot captures the guest's state on top of the first; restoring
/// either one in any order gives its own contents.
#[test]
fn two_snapshots_restore_in_any_order() {
    let vm = Vm::start(VmConfig::micro().memory_mib(32).cmdline("test=stay")).unwrap();
    let mem = vm.guest_memory();
    let at = GuestAddress(0x180_0000);
    mem.write_obj(1u64, at).unwrap();
    let one = vm.snapshot().unwrap();
    mem.write_obj(2u64, at).unwrap();
    let two = vm.snapshot().unwrap();
    mem.write_obj(3u64, at).unwrap();
    for (snap, want) in [(&one, 1u64), (&two, 2), (&two, 2), (&one, 1), (&two, 2)] {
        vm.restore(snap).unwrap();
        assert_eq!(mem.read_obj::<u64>(at).unwrap(), want);
        mem.write_obj(9u64, at).unwrap();
    }
}

#[test]
fn a_snapshot_of_another_shape_is_refused_and_the_vm_runs_on() {
    let (small, _) = counting_vm(1);
    let other = small.snapshot().unwrap();
    let (vm, addr) = counting_vm(2);
    match vm.restore(&other) {
        Err(SnapshotError::VcpuCount { snapshot: 1, vm: 2 }) => {}
        r => panic!("expected VcpuCount, got {r:?}"),
    }
    let big = Vm::start(VmConfig::micro().memory_mib(96).cmdline("test=count")).unwrap();
    match big.restore(&other) {
        Err(SnapshotError::Memory(e)) => assert!(e.to_string().contains("bytes of RAM"), "{e}"),
        r => panic!("expected a memory size mismatch, got {r:?}"),
    }
    let c = counter(&vm, addr);
    wait_counter_above(&vm, addr, c);
}

#[test]
fn a_stopped_vm_cannot_be_snapshotted() {
    let vm = Vm::start(VmConfig::micro().cmdline("test=stay")).unwrap();
    let snap = vm.snapshot().unwrap();
    vm.kill();
    assert!(matches!(vm.snapshot(), Err(SnapshotError::Stopped)));
    assert!(matches!(vm.restore(&snap), Err(SnapshotError::Stopped)));
}

/// Snapshots and restores from several threads at once on one VM are
/// serialized: every one succeeds and each restore gives its snapshot's memory.
#[test]
fn concurrent_snapshots_and_restores_are_serialized() {
    let vm = Vm::start(
        VmConfig::micro()
            .vcpus(2)
            .memory_mib(16)
            .cmdline("test=count"),
    )
    .unwrap();
    let at = GuestAddress(0xc0_0000);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let vm = &vm;
            s.spawn(move || {
                for i in 0..5u64 {
                    let mut paused = vm.pause().unwrap();
                    let mark = (t << 32) | i;
                    vm.guest_memory().write_obj(mark, at).unwrap();
                    let snap = paused.snapshot().unwrap();
                    vm.guest_memory().write_obj(!mark, at).unwrap();
                    paused.restore(&snap).unwrap();
                    assert_eq!(vm.guest_memory().read_obj::<u64>(at).unwrap(), mark);
                    drop(paused);
                }
            });
        }
    });
    assert!(vm.is_running(), "{}", vm.console_output());
}

/// A micro VM that calibrates its clock against the in-kernel PIT has one: its
/// PIT state is captured and restored with the rest, and the guest counts on.
#[test]
fn a_vm_with_a_pit_restores_too() {
    let vm = Vm::start(VmConfig::micro().cmdline("clock=calibrate test=count")).unwrap();
    let deadline = Instant::now() + PROGRESS_BOUND;
    let addr = loop {
        let out = vm.console_output();
        if let Some(hex) = out.lines().find_map(|l| l.strip_prefix("counter at 0x")) {
            break u64::from_str_radix(hex.trim(), 16).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no counter address printed: {out}"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let snap = vm.snapshot().unwrap();
    let lines_at_snapshot = vm.console_output().matches("count ").count();
    eprintln!("snapshot taken with {lines_at_snapshot} count line(s) printed");
    assert!(snap.pit.is_some(), "a calibrating micro VM has a PIT");
    let mut at_snap = [0u8; 8];
    snap.memory
        .file()
        .read_exact_at(&mut at_snap, addr)
        .unwrap();
    let at_snap = u64::from_le_bytes(at_snap);
    wait_counter_above(&vm, addr, at_snap + 1000);
    let mut paused = vm.pause().unwrap();
    paused.restore(&snap).unwrap();
    assert_eq!(counter(&vm, addr), at_snap);
    drop(paused);
    wait_counter_above(&vm, addr, at_snap + 1000);
    let (plain, _) = counting_vm(1);
    match plain.restore(&snap) {
        Err(SnapshotError::PitMismatch {
            snapshot: true,
            vm: false,
        }) => {}
        r => panic!("expected PitMismatch, got {r:?}"),
    }
}

/// Guest that reads the serial line status register (port 0x3fd, 0x60 when idle)
/// in a loop and exits with 0x100 | the value if it ever reads anything else:
/// nearly every instruction it runs is an I/O exit to the VMM.
fn port_reading_guest() -> std::path::PathBuf {
    let code = [
        0x66, 0xba, 0xf8, 0x03, // mov dx, 0x3f8
        0xb0, b'R', 0xee, // mov al, 'R'; out dx, al
        0xb0, b'\n', 0xee, // mov al, '\n'; out dx, al
        0x66, 0xba, 0xfd, 0x03, // mov dx, 0x3fd
        0x31, 0xc0, // loop: xor eax, eax
        0xec, // in al, dx
        0x3c, 0x60, // cmp al, 0x60
        0x74, 0xf9, // je loop
        0x66, 0xba, 0x01, 0x05, // mov dx, 0x501
        0x0d, 0x00, 0x01, 0x00, 0x00, // or eax, 0x100
        0xef, // out dx, eax
        0xf4, // hlt
    ];
    common::temp_file("port-reader.elf", &common::tiny_elf(&code))
}

/// A vCPU parked right after an I/O exit has an unfinished instruction inside
/// KVM (the `in` result is written, and the instruction skipped, only at the next
/// KVM_RUN). Pausing finishes it first; otherwise the next KVM_RUN would finish
/// it on top of the restored registers (skipping into the middle of an
/// instruction). Snapshots and restores at random points of a guest that is
/// almost always in such an exit must leave it reading 0x60 forever.
#[test]
fn restores_between_io_exits_leave_the_guest_intact() {
    let cfg = VmConfig::micro()
        .micro_image(port_reading_guest())
        .memory_mib(16)
        .ready_marker("R")
        .start_timeout(Duration::from_secs(20));
    let vm = Vm::start(cfg).unwrap();
    for s in 0..15u64 {
        std::thread::sleep(Duration::from_micros(100 * s));
        let snap = vm.snapshot().unwrap();
        for r in 0..40u64 {
            std::thread::sleep(Duration::from_micros(50 * (r % 7)));
            vm.restore(&snap)
                .unwrap_or_else(|e| panic!("snapshot {s}, restore {r}: {e}"));
        }
    }
    assert_eq!(
        vm.wait_timeout(Some(Duration::from_millis(300))).unwrap(),
        None,
        "{}",
        vm.console_output()
    );
    vm.kill();
    assert_eq!(vm.wait().unwrap(), VmExit::Killed);
}
