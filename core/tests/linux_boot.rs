//! Linux guests on this host, verified up to the kernel handing over to init
//! (docs/platform.md: guest user space cannot run under PVM, so nothing here can see
//! the agent run; its PID-1 duties are tested under QEMU TCG in
//! vhost/tests/linux_pid1.rs and linux_tcg.rs). Three boots, each shared by several
//! assertions: an initramfs with the static agent as /init plus a disk and vsock;
//! an ext4 root on virtio-blk built for the agent; a kernel panic. Slow here (about
//! a minute per boot).
//!
//! What "handed over" means: the kernel's own line `Run /init as init process`,
//! printed just before it execs /init. The inputs are the ones a real guest boots
//! (the statically linked agent `make linux-guest` builds, checked to need no
//! dynamic loader), so the only thing between this test and a running agent is
//! the CPU's ability to run user space.
//!
//! Needs /dev/kvm, the kernel from `make kernel` (KVMSANDBOX_KERNEL_DIR, set by
//! `make test`) and the static agent from `make linux-guest` (built here if missing).

mod common;

use kvmsandbox::vmm::boot::linux::LinuxBootError;
use kvmsandbox::{ConfigError, Error, Vm, VmConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The kernel's last line before it execs init: all this host can observe.
const KERNEL_HANDED_OVER_TO_INIT: &str = "Run /init as init process";

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

/// The statically linked agent, as `make linux-guest` builds it (the guest has no libc).
fn static_agent() -> PathBuf {
    if let Ok(p) = std::env::var("KVMSANDBOX_STATIC_AGENT") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let p = target.join("x86_64-unknown-linux-gnu/release/kvmsandbox-agent");
    if !p.exists() {
        let st = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-p",
                "kvmsandbox-agent",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .env(
                "RUSTFLAGS",
                "-C target-feature=+crt-static -C strip=symbols",
            )
            .current_dir(root())
            .status()
            .unwrap();
        assert!(st.success(), "building the static agent failed");
    }
    let elf = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(
        !needs_loader(&elf),
        "{} is dynamically linked: the guest has no libc",
        p.display()
    );
    p
}

/// Whether an ELF64 little-endian file has a PT_INTERP program header.
fn needs_loader(elf: &[u8]) -> bool {
    let u16_at = |o: usize| {
        elf.get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    assert!(
        elf.starts_with(b"\x7fELF\x02\x01"),
        "not an ELF64 little-endian file"
    );
    let phoff = u64_at(0x20)
        .and_then(|v| usize::try_from(v).ok())
        .expect("e_phoff");
    let (phentsize, phnum) = (
        u16_at(0x36).expect("e_phentsize"),
        u16_at(0x38).expect("e_phnum"),
    );
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        elf.get(o..o + 4) == Some(&3u32.to_le_bytes()[..])
    })
}

#[test]
fn a_dynamically_linked_binary_is_recognised() {
    // The test binary itself is dynamically linked: the check must see that.
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert!(needs_loader(&me));
}

fn initramfs() -> PathBuf {
    let out = common::temp_file("initrd.cpio", b"");
    let st = Command::new(root().join("guest/kernel/mkinitramfs.sh"))
        .arg(&out)
        .arg(static_agent())
        .status()
        .unwrap();
    assert!(st.success(), "mkinitramfs.sh failed");
    out
}

fn log_of(vm: &Vm) -> String {
    vm.console_output()
}

#[test]
fn initramfs_boot_hands_over_to_init_with_two_cpus_memory_disk_vsock_and_cmdline() {
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
        .ready_marker(KERNEL_HANDED_OVER_TO_INIT)
        .start_timeout(Duration::from_secs(400));
    let vm = Vm::start(cfg).unwrap();
    let log = log_of(&vm);
    vm.kill();
    assert!(
        log.contains(KERNEL_HANDED_OVER_TO_INIT),
        "kernel did not hand over to init: {log}"
    );
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
    // The shutdown path the agent takes (RB_AUTOBOOT through the i8042) needs this.
    assert!(cmdline_line.contains("reboot=k"), "{cmdline_line}");
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
    eprintln!(
        "linux boot until the kernel handed over to init: {:?}",
        t.ready.unwrap()
    );
}

/// An ext4 root the agent can run on as PID 1: writable, owned by root, with the
/// directories its mount table mounts on, and the static agent as /init.
fn agent_root_image(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    for d in ["dev", "proc", "sys", "tmp", "data"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(static_agent(), dir.join("init")).unwrap();
    let img = dir.with_extension("ext4");
    let _ = std::fs::remove_file(&img);
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "root_owner=0:0", "-d"])
        .arg(dir)
        .arg(&img)
        .arg("32M")
        .status()
        .expect("mkfs.ext4 (apt: e2fsprogs) is needed");
    assert!(st.success());
    img
}

#[test]
fn ext4_root_on_virtio_blk_mounts_writable_and_hands_over_to_init() {
    let dir = std::env::temp_dir().join(format!("kvmsb-rootfs-{}", std::process::id()));
    let img = agent_root_image(&dir);
    let cfg = VmConfig::linux(kernel_dir().join("vmlinux"))
        .disk(&img, false)
        .cmdline("root=/dev/vda rootfstype=ext4 rw init=/init")
        .ready_marker(KERNEL_HANDED_OVER_TO_INIT)
        .start_timeout(Duration::from_secs(400));
    let vm = Vm::start(cfg).unwrap();
    let log = log_of(&vm);
    vm.kill();
    assert!(log.contains("[vda] 65536 512-byte logical blocks"), "{log}");
    let mounted = log
        .lines()
        .find(|l| l.contains("EXT4-fs (vda): mounted filesystem"))
        .unwrap_or_else(|| panic!("root not mounted: {log}"));
    assert!(
        mounted.contains("r/w"),
        "the agent's root must be writable: {mounted}"
    );
    assert!(
        log.contains(KERNEL_HANDED_OVER_TO_INIT),
        "kernel did not hand over to init: {log}"
    );
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
