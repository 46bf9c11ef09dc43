//! Helpers shared by the criterion benchmarks (benches/benches) and the QEMU
//! comparison (benches/compare): finding the guest Linux kernel, building the
//! initramfs the Linux boots use, the WASM hello world, and a one-line banner
//! saying which host KVM kind and guest a number was measured on (numbers from a
//! PVM host, where every guest instruction is emulated, are not comparable with
//! hardware KVM numbers).

mod timing;
pub use timing::{percentiles, timed};

pub mod procmem;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Env var that opts in to the Linux boot benchmark (one boot is ~65 s on PVM).
pub const LINUX_OPT_IN: &str = "KVMSANDBOX_BENCH_LINUX";

/// Errors finding or building benchmark inputs.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// No built guest kernel was found.
    #[error("no guest kernel found: set KVMSANDBOX_KERNEL_DIR, or run `make kernel` (looked in {looked})")]
    NoKernel {
        /// Where we looked.
        looked: String,
    },
    /// A helper program could not be run or failed.
    #[error("{program} failed: {detail}")]
    Tool {
        /// The program.
        program: String,
        /// Its exit status or spawn error, and stderr.
        detail: String,
    },
    /// A file operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The workspace root (benches/..).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// The directory holding `vmlinux` and `bzImage`: `$KVMSANDBOX_KERNEL_DIR`, then
/// `build/kernel-dir` (written by `make kernel`), then the newest complete entry
/// of `$KVMSANDBOX_CACHE/kernel` (default `~/.cache/kvmsandbox/kernel`).
pub fn kernel_dir() -> Result<PathBuf, BenchError> {
    let has_vmlinux = |d: &Path| d.join("vmlinux").is_file();
    let mut looked = Vec::new();
    if let Some(d) = std::env::var_os("KVMSANDBOX_KERNEL_DIR").map(PathBuf::from) {
        if has_vmlinux(&d) {
            return Ok(d);
        }
        looked.push(d.display().to_string());
    }
    let file = workspace_root().join("build/kernel-dir");
    if let Ok(s) = std::fs::read_to_string(&file) {
        let d = PathBuf::from(s.trim());
        if has_vmlinux(&d) {
            return Ok(d);
        }
    }
    looked.push(file.display().to_string());
    let cache = std::env::var_os("KVMSANDBOX_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/kvmsandbox")))
        .map(|c| c.join("kernel"));
    if let Some(cache) = cache {
        let newest = std::fs::read_dir(&cache)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| has_vmlinux(p))
            .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
        if let Some(d) = newest {
            return Ok(d);
        }
        looked.push(cache.display().to_string());
    }
    Err(BenchError::NoKernel {
        looked: looked.join(", "),
    })
}

/// Builds (once, cached in the temp dir) an initramfs whose `/init` is a shell
/// script, with `guest/kernel/mkinitramfs.sh`. The boot benchmarks stop at the
/// kernel's "Run /init" line, so what `/init` is does not matter (on PVM no user
/// space can run anyway, docs/platform.md).
pub fn initramfs() -> Result<PathBuf, BenchError> {
    let dir = std::env::temp_dir().join("kvmsandbox-bench");
    let out = dir.join("initramfs.cpio");
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&dir).map_err(|source| BenchError::Io {
        what: "create",
        path: dir.clone(),
        source,
    })?;
    let init = dir.join("init.sh");
    std::fs::write(&init, "#!/bin/sh\necho kvmsandbox-bench init\n").map_err(|source| {
        BenchError::Io {
            what: "write",
            path: init.clone(),
            source,
        }
    })?;
    let script = workspace_root().join("guest/kernel/mkinitramfs.sh");
    let o = Command::new(&script)
        .arg(&out)
        .arg(&init)
        .output()
        .map_err(|e| BenchError::Tool {
            program: script.display().to_string(),
            detail: e.to_string(),
        })?;
    if !o.status.success() || !out.is_file() {
        return Err(BenchError::Tool {
            program: script.display().to_string(),
            detail: format!(
                "{}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        });
    }
    Ok(out)
}

/// The WASI hello world every `run_wasm` benchmark runs (text form).
pub const HELLO_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello, world\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

/// What the hello world prints.
pub const HELLO_OUTPUT: &[u8] = b"hello, world\n";

/// Where a sans-serif TrueType font is looked for.
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a sans-serif font with plotters (once per process); true when text
/// can be drawn. This crate turns on plotters' `ab_glyph` renderer for the
/// comparison chart, and cargo unifies that feature into criterion's plotters:
/// criterion's own charts then need a registered font too (see `benches/common`).
pub fn register_font() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| {
        FONT_PATHS.iter().any(|p| match std::fs::read(p) {
            Ok(bytes) => {
                // Leaked once per process: plotters keeps fonts for the program's life.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font(
                    "sans-serif",
                    plotters::style::FontStyle::Normal,
                    bytes,
                )
                .is_ok()
            }
            Err(_) => false,
        })
    })
}

/// Prints, once per benchmark, which host KVM kind and guest it runs on.
pub fn announce(bench: &str, host: kvmsandbox::HostKind, guest: &str) {
    eprintln!("[{bench}] host KVM: {host}; guest: {guest}");
}

/// PVH entry note type (`XEN_ELFNOTE_PHYS32_ENTRY`).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// True if `elf` carries a PVH entry note (owner "Xen", 64-bit address), i.e.
/// QEMU microvm can boot it (guest/micro/src/pvh.rs).
pub fn has_pvh_note(elf: &[u8]) -> bool {
    // Note header (namesz = 4, descsz = 8, type) followed by the name "Xen\0".
    let mut pat = Vec::with_capacity(16);
    for w in [4u32, 8, XEN_ELFNOTE_PHYS32_ENTRY] {
        pat.extend_from_slice(&w.to_le_bytes());
    }
    pat.extend_from_slice(b"Xen\0");
    elf.windows(pat.len()).any(|w| w == pat.as_slice())
}

/// True when the caller opted in to the Linux boot benchmarks.
pub fn linux_opted_in() -> bool {
    std::env::var_os(LINUX_OPT_IN).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Median of `v` (sorted in place); `None` when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn finds_the_pvh_note() {
        let mut elf = vec![0u8; 64];
        assert!(!has_pvh_note(&elf));
        for w in [4u32, 8, 18] {
            elf.extend_from_slice(&w.to_le_bytes());
        }
        elf.extend_from_slice(b"Xen\0");
        assert!(has_pvh_note(&elf));
        elf[64 + 8] = 17; // another note type
        assert!(!has_pvh_note(&elf));
    }

    #[test]
    fn kernel_dir_honours_env_override() {
        let d = tempfile_dir();
        std::fs::write(d.join("vmlinux"), b"x").unwrap();
        std::env::set_var("KVMSANDBOX_KERNEL_DIR", &d);
        assert_eq!(kernel_dir().unwrap(), d);
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("kvmsb-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
