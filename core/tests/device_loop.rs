//! A device event loop that dies while the VM runs (here: a test-only disk whose
//! device panics when its queue is served) must stop the VM with a typed error,
//! not leave the guest running with dead devices.
//!
//! The VM runs under the default Kill policy in a child process (this binary
//! re-executed) with `RUST_BACKTRACE=full`: std's backtrace printer opens files,
//! which the loop thread's filter forbids, so this also checks that a panic on a
//! filtered thread prints one line instead of a backtrace (seccomp/panic_hook.rs).
//!
//! Needs /dev/kvm.

mod common;

use kvmsandbox::devices::virtio::block::device::PANIC_ON_NOTIFY_ID;
use kvmsandbox::devices::virtio::block::BlockConfig;
use kvmsandbox::{Error, Vm, VmConfig};
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KVMSB_DEVICE_LOOP_CHILD";

fn child() -> Result<(), String> {
    let disk = common::temp_file("panic.img", &[0u8; 4096]);
    let cfg = VmConfig::micro()
        .disk_config(BlockConfig {
            path: disk,
            read_only: false,
            id: Some(PANIC_ON_NOTIFY_ID.into()),
        })
        .start_timeout(Duration::from_secs(30));
    let t0 = Instant::now();
    // The device is served right after the guest's driver activates it, which
    // happens before or after the ready marker: both ends must be the typed error.
    let r = match Vm::start(cfg) {
        Err(e) => Err(e),
        Ok(vm) => match vm.wait_timeout(Some(Duration::from_secs(10))) {
            Ok(None) => return Err("the VM kept running with a dead device loop".into()),
            r => r.map(|_| ()),
        },
    };
    match r {
        Err(Error::DeviceLoop { reason }) if reason.contains("panicked") => {}
        other => return Err(format!("expected Error::DeviceLoop, got {other:?}")),
    }
    if t0.elapsed() > Duration::from_secs(20) {
        return Err(format!("took {:?}", t0.elapsed()));
    }
    Ok(())
}

#[test]
#[ignore = "run only as a child of a_panicking_device_stops_the_vm_with_a_device_loop_error"]
fn device_loop_child_entry() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    if let Err(e) = child() {
        eprintln!("device-loop child: {e}");
        std::process::exit(1);
    }
}

#[test]
fn a_panicking_device_stops_the_vm_with_a_device_loop_error() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "device_loop_child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "full")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
