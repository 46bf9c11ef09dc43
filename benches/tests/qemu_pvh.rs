//! The micro guest's PVH entry (guest/micro/src/pvh.rs), which `bench-compare`
//! relies on: the embedded ELF carries the note, and QEMU microvm boots it to the
//! ready marker and through `test=exit` to a clean exit. Needs /dev/kvm and
//! `qemu-system-x86_64` (`make qemu`, part of `make test`); fails without them.
//! ~5 s on a PVM host.

use kvmsandbox_benches::has_pvh_note;
use std::process::Command;

#[test]
fn embedded_micro_guest_has_a_pvh_note() {
    assert!(has_pvh_note(kvmsandbox::config::MICRO_GUEST_ELF));
}

#[test]
fn qemu_microvm_boots_the_micro_guest_through_pvh() {
    assert!(
        std::path::Path::new("/dev/kvm").exists(),
        "/dev/kvm is needed"
    );
    assert!(
        Command::new("qemu-system-x86_64")
            .arg("--version")
            .output()
            .is_ok(),
        "qemu-system-x86_64 is needed: run `make qemu`"
    );
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("micro.elf");
    std::fs::write(&elf, kvmsandbox::config::MICRO_GUEST_ELF).unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .args([
            "qemu-system-x86_64",
            "-M",
            "microvm",
            "-enable-kvm",
            "-m",
            "64M",
            "-nodefaults",
            "-no-user-config",
        ])
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0x501,iosize=4",
        ])
        .arg("-kernel")
        .arg(&elf)
        .args(["-append", "test=exit"])
        .output()
        .unwrap();
    let serial = String::from_utf8_lossy(&out.stdout);
    assert!(
        serial.contains("KVMSANDBOX-READY"),
        "no ready marker; serial: {serial}; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(serial.contains("memory: "), "{serial}");
    // isa-debug-exit turns the guest's exit status s into QEMU's exit code (s << 1) | 1.
    assert_eq!(
        out.status.code(),
        Some(1),
        "guest did not exit 0 through port 0x501; serial: {serial}"
    );
}
