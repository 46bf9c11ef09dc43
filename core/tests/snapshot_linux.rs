//! A Linux kernel restored in place mid-boot boots on from the snapshot: kvmclock,
//! LAPIC timer, PIT, IOAPIC and MSR state all come back usable. Linux user space
//! cannot run on the PVM development hosts, so the kernel's own boot is the
//! workload: snapshot once the CPUs are up, let it run further, restore, and the
//! same boot messages appear again until it ends as it always does here (no root
//! device: a kernel panic). Slow on PVM (a boot takes about a minute).
//!
//! Needs /dev/kvm and the kernel from `make kernel` (KVMSANDBOX_KERNEL_DIR).

use kvmsandbox::{Error, Vm, VmConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bound for each boot phase on a loaded PVM host.
const PHASE_BOUND: Duration = Duration::from_secs(400);
/// Printed once all CPUs are up: the snapshot is taken here.
const SNAPSHOT_AT: &str = "smp: Brought up";
/// Printed later in the boot, well before the root-mount panic.
const LATER: &str = "devtmpfs: initialized";

fn kernel() -> PathBuf {
    let dir = std::env::var("KVMSANDBOX_KERNEL_DIR").expect(
        "KVMSANDBOX_KERNEL_DIR is not set: run `make test`, or `make kernel` and point it at the directory it prints",
    );
    PathBuf::from(dir).join("vmlinux")
}

/// Waits until the console shows `line` at least `times` times.
fn wait_for(vm: &Vm, line: &str, times: usize) {
    let deadline = Instant::now() + PHASE_BOUND;
    loop {
        let out = vm.console_output();
        if out.matches(line).count() >= times {
            return;
        }
        assert!(
            vm.is_running(),
            "the kernel stopped before printing {line:?} {times}x:\n{out}"
        );
        assert!(
            Instant::now() < deadline,
            "no {line:?} {times}x within {PHASE_BOUND:?}:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_kernel_restored_mid_boot_boots_on_from_the_snapshot() {
    let cfg = VmConfig::linux(kernel())
        .vcpus(2)
        .cmdline("root=/dev/nothing")
        .ready_marker(SNAPSHOT_AT)
        .start_timeout(PHASE_BOUND);
    let vm = Vm::start(cfg).unwrap();
    let snap = vm.snapshot().unwrap();
    assert!(snap.pit.is_some(), "a Linux VM has a PIT");
    wait_for(&vm, LATER, 1);
    vm.restore(&snap).unwrap();
    wait_for(&vm, LATER, 2);
    match vm.wait() {
        Err(Error::GuestPanic { message, .. }) => assert!(
            message.contains("VFS") || message.contains("root"),
            "{message}"
        ),
        other => panic!(
            "expected the root-mount panic, got {other:?}\n{}",
            vm.console_output()
        ),
    }
}
