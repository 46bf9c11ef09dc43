//! Gives `libkvmsandbox.so` the SONAME `libkvmsandbox.so.MAJOR` (MAJOR of the
//! workspace version, `0` while it is 0.x), so a program linked against it
//! records that name and `ffi/install.sh` can install versioned files with the
//! usual symlinks. A linker argument rather than cargo-c: cargo-c is a long
//! compile on every fresh build machine for what is one flag plus an install
//! script here.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // The SONAME flag is ELF's; other targets get their library as it is.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".to_string());
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libkvmsandbox.so.{major}");
}
