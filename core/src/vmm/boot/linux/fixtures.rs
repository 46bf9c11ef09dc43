//! Test helpers: tiny hand-built kernel images (so the loader's core behaviour is
//! tested without the real kernel), temporary files, guest memory, and the way to
//! find the real kernel built by `guest/kernel/build.sh` when it is there.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use vm_memory::{GuestAddress, GuestMemoryMmap};

/// Where the synthetic ELF's single PT_LOAD segment is loaded.
pub const ELF_PADDR: u64 = 0x20_0000;
/// The synthetic ELF's entry point.
pub const ELF_ENTRY: u64 = ELF_PADDR + 0x10;
/// Bytes of the segment present in the file.
pub const ELF_FILESZ: u64 = 0x100;
/// Offset of the segment in the file.
const ELF_SEG_OFFSET: u64 = 0x100;

/// The byte pattern of segment / payload byte `i`.
pub fn pattern(i: usize) -> u8 {
    (i as u8).wrapping_mul(7).wrapping_add(3)
}

/// A minimal ELF64 executable: one PT_LOAD of `ELF_FILESZ` pattern bytes at
/// `ELF_PADDR` with `memsz` bytes in memory (the rest is bss).
pub fn elf_kernel(class: u8, machine: u16, memsz: u64) -> Vec<u8> {
    let mut f = vec![0u8; (ELF_SEG_OFFSET + ELF_FILESZ) as usize];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = class; // EI_CLASS
    f[5] = 1; // EI_DATA: little-endian
    f[6] = 1; // EI_VERSION
    put16(&mut f, 16, 2); // e_type: EXEC
    put16(&mut f, 18, machine);
    put32(&mut f, 20, 1); // e_version
    put64(&mut f, 24, ELF_ENTRY);
    put64(&mut f, 32, 64); // e_phoff
    put16(&mut f, 52, 64); // e_ehsize
    put16(&mut f, 54, 56); // e_phentsize
    put16(&mut f, 56, 1); // e_phnum
    put16(&mut f, 58, 64); // e_shentsize
    let ph = 64;
    put32(&mut f, ph, 1); // PT_LOAD
    put32(&mut f, ph + 4, 5); // R+X
    put64(&mut f, ph + 8, ELF_SEG_OFFSET);
    put64(&mut f, ph + 16, ELF_PADDR); // p_vaddr
    put64(&mut f, ph + 24, ELF_PADDR); // p_paddr
    put64(&mut f, ph + 32, ELF_FILESZ);
    put64(&mut f, ph + 40, memsz);
    put64(&mut f, ph + 48, 0x1000);
    for i in 0..ELF_FILESZ as usize {
        f[ELF_SEG_OFFSET as usize + i] = pattern(i);
    }
    f
}

/// Fields of a synthetic bzImage header.
#[derive(Debug, Clone, Copy)]
pub struct BzFields {
    pub version: u16,
    pub setup_sects: u8,
    pub xloadflags: u16,
    pub code32_start: u32,
    pub initrd_addr_max: u32,
    pub kernel_alignment: u32,
    pub cmdline_size: u32,
    pub pref_address: u64,
    pub init_size: u32,
    /// Bytes of "protected-mode kernel" after the setup sectors.
    pub payload_len: usize,
}

impl Default for BzFields {
    fn default() -> Self {
        BzFields {
            version: 0x020f,
            setup_sects: 4,
            xloadflags: 1, // XLF_KERNEL_64
            code32_start: 0x10_0000,
            initrd_addr_max: 0x7fff_ffff,
            kernel_alignment: 0x20_0000,
            cmdline_size: 2047,
            pref_address: 0x100_0000,
            init_size: 0x40_0000,
            payload_len: 0x800,
        }
    }
}

/// Size of the setup area (boot sector + setup sectors) of a synthetic bzImage.
pub fn bz_setup_len(f: &BzFields) -> usize {
    (usize::from(f.setup_sects.max(4)) + 1) * 512
}

/// A minimal bzImage: boot sector with the setup header, setup sectors, then
/// `payload_len` pattern bytes standing in for the protected-mode kernel.
pub fn bzimage(fields: &BzFields) -> Vec<u8> {
    let setup = bz_setup_len(fields);
    let mut f = vec![0u8; setup + fields.payload_len];
    f[0x1f1] = fields.setup_sects;
    put16(&mut f, 0x1fe, 0xaa55); // boot_flag
    f[0x202..0x206].copy_from_slice(b"HdrS");
    put16(&mut f, 0x206, fields.version);
    f[0x211] = 1; // loadflags: LOADED_HIGH
    put32(&mut f, 0x214, fields.code32_start);
    put32(&mut f, 0x22c, fields.initrd_addr_max);
    put32(&mut f, 0x230, fields.kernel_alignment);
    f[0x234] = 1; // relocatable_kernel
    put16(&mut f, 0x236, fields.xloadflags);
    put32(&mut f, 0x238, fields.cmdline_size);
    put64(&mut f, 0x258, fields.pref_address);
    put32(&mut f, 0x260, fields.init_size);
    for i in 0..fields.payload_len {
        f[setup + i] = pattern(i);
    }
    f
}

fn put16(f: &mut [u8], at: usize, v: u16) {
    f[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(f: &mut [u8], at: usize, v: u32) {
    f[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(f: &mut [u8], at: usize, v: u64) {
    f[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A file in the temp dir, removed on drop.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// Writes `bytes` to a fresh file whose name includes `name`.
    pub fn new(name: &str, bytes: &[u8]) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "kvmsandbox-linux-{}-{n}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, bytes).unwrap();
        TempFile(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `size` bytes of guest RAM from address 0.
pub fn guest_memory(size: u64) -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)]).unwrap()
}

/// The directory holding the real `vmlinux` and `bzImage` from `guest/kernel/build.sh`:
/// `$KVMSANDBOX_KERNEL_DIR`, else the newest entry of the build cache.
pub fn real_kernel_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KVMSANDBOX_KERNEL_DIR") {
        return Some(PathBuf::from(dir));
    }
    let cache = match std::env::var_os("KVMSANDBOX_CACHE") {
        Some(c) => PathBuf::from(c),
        None => match std::env::var_os("XDG_CACHE_HOME") {
            Some(x) => PathBuf::from(x).join("kvmsandbox"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/kvmsandbox"),
        },
    };
    std::fs::read_dir(cache.join("kernel"))
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("vmlinux").is_file() && p.join("bzImage").is_file())
        .max_by_key(|p| {
            std::fs::metadata(p.join("vmlinux"))
                .and_then(|m| m.modified())
                .ok()
        })
}
