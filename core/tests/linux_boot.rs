//! Linux guests on this host, verified up to the kernel (PLATFORM.md: guest user
//! space cannot run under PVM). Three boots, each shared by several assertions:
//! initramfs with the agent as /init plus a disk and vsock; an ext4 root on
//! virtio-blk; a kernel panic. Slow here (about a minute per boot).
//!
//! Needs /dev/kvm, the kernel from `make kernel` (KVMSANDBOX_KERNEL_DIR, set by
//! `make test`) and the agent binary (`cargo build -p kvmsandbox-agent`).

mod common;

use kvmsandbox::vmm::boot::linux::LinuxBootError;
use kvmsandbox::{ConfigError, Error, Vm, VmConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn kernel_dir() -> PathBuf {
    let dir = std::env::var("KVMSANDBOX_KERNEL_DIR").expect(
        "KVMSANDBOX_KERNEL_DIR is not set: run `make test`, or `make kernel` and point it at the directory it prints",
    );
    PathBuf::from(dir)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn agent_binary() -> PathBuf {
    if let Ok(p) = std::env::var("KVMSANDBOX_AGENT") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let p = target.join("debug/kvmsandbox-agent");
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args(["build", "-p", "kvmsandbox-agent"])
            .current_dir(root())
            .status()
            .unwrap();
        assert!(st.success());
    }
    p
}

fn initramfs() -> PathBuf {
    let out = common::temp_file("initrd.cpio", b"");
    let st = Command::new(root().join("guest/kernel/mkinitramfs.sh"))
        .arg(&out)
        .arg(agent_binary())
        .status()
        .unwrap();
    assert!(st.success(), "mkinitramfs.sh failed");
    out
}

fn log_of(vm: &Vm) -> String {
    vm.console_output()
}

#[test]
fn initramfs_boot_reaches_init_with_two_cpus_memory_disk_vsock_and_cmdline() {
    let disk = common::temp_file("linux-data.img", &vec![0u8; 1 << 20]);
    let sock = std::env::temp_dir().join(format!("kvmsb-linux-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let cfg = VmConfig::linux(kernel_dir().join("vmlinux"))
        .initrd(initramfs())
        .vcpus(2)
        .memory_mib(256)
        .disk(&disk, false)
        .vsock(&sock)
        .cmdline("kvmsbprobe=4242")
        .start_timeout(Duration::from_secs(400));
    let vm = Vm::start(cfg).unwrap();
    let log = log_of(&vm);
    vm.kill();
    assert!(log.contains("Run /init as init process"), "{log}");
    assert!(log.contains("smp: Brought up 1 node, 2 CPUs"), "{log}");
    // "Memory: 242928K/261752K available": the total is the RAM we gave minus holes.
    let total_k: u64 = log
        .lines()
        .find_map(|l| {
            l.split("Memory: ")
                .nth(1)?
                .split('/')
                .nth(1)?
                .split('K')
                .next()?
                .parse()
                .ok()
        })
        .expect("no Memory: line");
    assert!(
        (250 * 1024..=256 * 1024).contains(&total_k),
        "guest saw {total_k} KiB of 256 MiB"
    );
    // Our extras reach the kernel: it logs the command line, and the unknown word.
    let cmdline_line = log
        .lines()
        .find(|l| l.contains("Kernel command line:"))
        .expect("no command line log");
    assert!(cmdline_line.contains("kvmsbprobe=4242"), "{cmdline_line}");
    assert!(
        cmdline_line.contains("virtio_mmio.device=4K@0xd0000000:5"),
        "{cmdline_line}"
    );
    // virtio-blk found with the right size; both virtio drivers activated their device.
    assert!(log.contains("[vda] 2048 512-byte logical blocks"), "{log}");
    assert!(
        log.contains("NET: Registered PF_VSOCK protocol family"),
        "{log}"
    );
    assert_eq!(
        vm.virtio_devices(),
        vec![(2, true), (19, true)],
        "block and vsock drivers probed"
    );
    let t = vm.timings();
    eprintln!("linux boot to Run /init: {:?}", t.ready.unwrap());
}

#[test]
fn ext4_root_on_virtio_blk_mounts_and_stays_clean() {
    let dir = std::env::temp_dir().join(format!("kvmsb-rootfs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("dev")).unwrap();
    std::fs::copy(agent_binary(), dir.join("init")).unwrap();
    let img = dir.with_extension("ext4");
    let _ = std::fs::remove_file(&img);
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&dir)
        .arg(&img)
        .arg("32M")
        .status()
        .expect("mkfs.ext4 (apt: e2fsprogs) is needed");
    assert!(st.success());
    let cfg = VmConfig::linux(kernel_dir().join("vmlinux"))
        .disk(&img, false)
        .cmdline("root=/dev/vda rootfstype=ext4 init=/init")
        .start_timeout(Duration::from_secs(400));
    let vm = Vm::start(cfg).unwrap();
    let log = log_of(&vm);
    vm.kill();
    assert!(log.contains("[vda] 65536 512-byte logical blocks"), "{log}");
    assert!(log.contains("EXT4-fs (vda): mounted filesystem"), "{log}");
    assert!(log.contains("Run /init as init process"), "{log}");
    drop(vm);
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&img);
}

#[test]
fn kernel_panic_is_a_typed_error_with_the_panic_line() {
    let cfg = VmConfig::linux(kernel_dir().join("vmlinux"))
        .cmdline("root=/dev/nothing")
        .start_timeout(Duration::from_secs(400));
    match Vm::start(cfg) {
        Err(Error::GuestPanic { message, .. }) => {
            assert!(message.contains("Kernel panic - not syncing"), "{message}");
            assert!(
                message.contains("VFS") || message.contains("root"),
                "{message}"
            );
        }
        other => panic!("expected GuestPanic, got {:?}", other.err()),
    }
}

#[test]
fn bad_linux_inputs_are_typed_errors() {
    let e = Vm::start(VmConfig::linux("/nonexistent/vmlinux"))
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Config(ConfigError::FileNotFound { .. })),
        "{e}"
    );
    let text = common::temp_file("not-a-kernel", b"#!/bin/sh\necho I am not a kernel\n");
    let e = Vm::start(VmConfig::linux(&text)).err().unwrap();
    assert!(
        matches!(e, Error::LinuxBoot(LinuxBootError::NotAKernel { .. })),
        "{e}"
    );
    let e = Vm::start(VmConfig::linux(kernel_dir().join("vmlinux")).initrd("/nonexistent/initrd"))
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            Error::Config(ConfigError::FileNotFound { what: "initrd", .. })
        ),
        "{e}"
    );
    // An initrd bigger than the guest's RAM (sparse, so it costs nothing on disk).
    let big = common::temp_file("huge-initrd", b"");
    std::fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let e = Vm::start(
        VmConfig::linux(kernel_dir().join("vmlinux"))
            .initrd(&big)
            .memory_mib(64),
    )
    .err()
    .unwrap();
    assert!(
        matches!(e, Error::LinuxBoot(LinuxBootError::InitrdTooLarge { .. })),
        "{e}"
    );
}
