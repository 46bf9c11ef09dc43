//! `kvmsandbox-linux-tcg`: boots the Linux guest under QEMU TCG with the harness
//! of `tests/linux_tcg.rs` and prints the hybrid vsock socket's path as its first
//! line of stdout, so the C and Python tests can drive the same guest through
//! `attach_vsock` without a harness of their own. The guest lives until stdin
//! closes (the caller ending, in any way, closes it), then QEMU and the backend
//! are stopped and the run directory removed. A failed boot panics with the
//! console, QEMU's and the backend's output, and exits non-zero before printing
//! a path.
//!
//! Inputs as for the Rust test: `KVMSANDBOX_KERNEL_DIR` (else the directory named
//! in `build/kernel-dir`, written by `make kernel`), `KVMSANDBOX_LINUX_INITRD`
//! (else `build/linux/initramfs.cpio`).

#[path = "harness.rs"]
#[allow(dead_code)] // The launcher uses the boot half; the test uses the rest.
mod harness;

use std::io::Write;
use std::path::Path;

fn main() {
    if std::env::args().len() > 1 {
        eprintln!(
            "usage: kvmsandbox-linux-tcg (no arguments): boots the Linux guest under QEMU TCG, \
             prints its hybrid vsock socket path, and stops it when stdin closes"
        );
        std::process::exit(2);
    }
    if std::env::var_os("KVMSANDBOX_KERNEL_DIR").is_none() {
        let recorded = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/kernel-dir");
        if let Ok(dir) = std::fs::read_to_string(&recorded) {
            std::env::set_var("KVMSANDBOX_KERNEL_DIR", dir.trim());
        }
    }
    let inputs = harness::Inputs::from_env();
    let vm = harness::TcgVm::boot(&inputs, &harness::BootOptions::default());
    eprintln!("boot to agent ready (QEMU TCG): {:.2?}", vm.boot_time());
    let mut out = std::io::stdout().lock();
    // A caller that went away before reading the path: nothing left to serve.
    if writeln!(out, "{}", vm.vsock_path().display())
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    drop(out);
    // Until EOF (or a read error: either way nobody is left to write).
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    eprintln!("{}", vm.diagnostics());
}
