//! Builds the micro guest (guest/micro, a separate no_std workspace) for
//! x86_64-unknown-none and hands its path to the crate, which embeds it with
//! `include_bytes!`: a `Sandbox` needs no file path for its default guest.
//!
//! Set `KVMSANDBOX_MICRO_ELF=/path/to/elf` to embed a prebuilt guest instead.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=KVMSANDBOX_MICRO_ELF");
    if let Ok(prebuilt) = std::env::var("KVMSANDBOX_MICRO_ELF") {
        println!("cargo:rerun-if-changed={prebuilt}");
        println!("cargo:rustc-env=KVMSANDBOX_MICRO_ELF={prebuilt}");
        return;
    }
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.parent().expect("core/ has a parent").to_path_buf();
    let guest = root.join("guest/micro");
    for p in [
        "src",
        "Cargo.toml",
        "Cargo.lock",
        "link.ld",
        ".cargo/config.toml",
        "build.rs",
    ] {
        println!("cargo:rerun-if-changed={}", guest.join(p).display());
    }
    for dep in ["guest/proto", "guest/wasm-runner"] {
        for p in ["src", "Cargo.toml"] {
            println!(
                "cargo:rerun-if-changed={}",
                root.join(dep).join(p).display()
            );
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // target/<profile>/build/<pkg>/out -> target/guest-micro, shared by all profiles.
    let target_dir = out
        .ancestors()
        .nth(4)
        .map(|t| t.join("guest-micro"))
        .unwrap_or_else(|| out.join("guest-micro"));
    let elf = build_guest(&guest, &target_dir);
    println!("cargo:rustc-env=KVMSANDBOX_MICRO_ELF={}", elf.display());
}

fn build_guest(guest: &Path, target_dir: &Path) -> PathBuf {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(guest)
        .args(["build", "--release", "--target", "x86_64-unknown-none"])
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's flags are for the host target; the guest has its own
    // (guest/micro/.cargo/config.toml) and its toolchain from rust-toolchain.toml.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTUP_TOOLCHAIN",
        "CARGO_MAKEFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
        "CARGO_BUILD_JOBS",
    ] {
        cmd.env_remove(var);
    }
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_FEATURE_") || k.starts_with("CARGO_CFG_") || k.starts_with("DEP_") {
            cmd.env_remove(k);
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the micro guest: {e}"));
    if !status.success() {
        panic!(
            "building the micro guest failed ({status}, see its errors above; the x86_64-unknown-none target \
             must be installed: `rustup target add x86_64-unknown-none`)"
        );
    }
    target_dir.join("x86_64-unknown-none/release/kvmsandbox-micro")
}
