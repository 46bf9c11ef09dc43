//! The micro guest's virtio-blk driver against our virtio-blk device: the guest's
//! `test=blk-selftest` writes a pattern over the first 64 KiB of disk 0, reads it
//! back and prints a checksum; the host checks the file and the checksum. Needs
//! /dev/kvm.

mod common;

use kvmsandbox::{Vm, VmConfig, VmExit};
use std::time::Duration;

const BYTES: usize = 64 * 1024;

/// Same pattern as guest/micro/src/selftest.rs.
fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[test]
fn blk_selftest_writes_reads_and_the_host_sees_the_pattern() {
    let disk = common::temp_file("blk-selftest.img", &vec![0xa5u8; 1 << 20]);
    let cfg = VmConfig::micro()
        .disk(&disk, false)
        .cmdline("test=blk-selftest")
        .start_timeout(Duration::from_secs(20));
    let vm = Vm::start(cfg);
    let vm = match vm {
        Ok(vm) => vm,
        Err(e) => panic!("start: {e}"),
    };
    let exit = vm.wait().unwrap();
    let out = vm.console_output();
    assert_eq!(exit, VmExit::Exited(0), "{out}");
    let want: Vec<u8> = (0..BYTES).map(pattern).collect();
    let line = format!(
        "blk-selftest: ok sectors=2048 checksum={:016x}",
        fnv1a(&want)
    );
    assert!(out.contains(&line), "want {line:?} in:\n{out}");
    let file = std::fs::read(&disk).unwrap();
    assert_eq!(&file[..BYTES], &want[..]);
    assert!(
        file[BYTES..].iter().all(|&b| b == 0xa5),
        "bytes past the pattern changed"
    );
    assert!(out.contains("virtio-blk 0: 2048 sectors"), "{out}");
}

#[test]
fn blk_selftest_on_a_read_only_disk_fails_cleanly() {
    let disk = common::temp_file("blk-ro.img", &vec![0u8; 1 << 20]);
    let cfg = VmConfig::micro()
        .disk(&disk, true)
        .cmdline("test=blk-selftest")
        .start_timeout(Duration::from_secs(20));
    let vm = Vm::start(cfg).unwrap();
    let exit = vm.wait().unwrap();
    let out = vm.console_output();
    assert_eq!(exit, VmExit::Exited(1), "{out}");
    assert!(out.contains("read-only"), "{out}");
    assert!(
        out.contains("blk-selftest: FAIL write: the disk is read-only"),
        "{out}"
    );
}
