//! Recognising the kernel file (ELF `vmlinux` or bzImage, by content, not by name)
//! and loading it with linux-loader.
//!
//! linux-loader accepts any bzImage from protocol 2.00 and any little-endian ELF; we
//! are stricter because we jump to the 64-bit entry point: a bzImage must speak
//! protocol 2.06 or later (the first with `cmdline_size`; 64-bit entry kernels are all
//! newer) and, from 2.12 on, say it has a 64-bit entry (`XLF_KERNEL_64`); an ELF must
//! be ELFCLASS64 for x86_64.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use linux_loader::loader::bootparam::setup_header;
use linux_loader::loader::{BzImage, Elf, KernelLoader, KernelLoaderResult};
use vm_memory::{ByteValued, GuestAddress, GuestMemoryMmap};

use super::LinuxBootError;
use crate::vmm::layout::{CMDLINE_MAX_SIZE, HIMEM_START};

/// Offset of the setup header in a bzImage.
const SETUP_HEADER_OFFSET: usize = 0x1f1;
/// Offset of the "HdrS" magic in a bzImage.
const HDRS_OFFSET: usize = 0x202;
/// The "HdrS" magic as stored (little-endian u32 0x53726448).
const HDRS_MAGIC: &[u8; 4] = b"HdrS";
/// Oldest bzImage protocol we boot (2.06: `cmdline_size` exists).
const MIN_BZIMAGE_VERSION: u16 = 0x0206;
/// First protocol with `xloadflags` (2.12).
const XLOADFLAGS_VERSION: u16 = 0x020c;
/// First protocol with `pref_address` and `init_size` (2.10).
const INIT_SIZE_VERSION: u16 = 0x020a;
/// `xloadflags` bit: the kernel has the legacy 64-bit entry point at +0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// Offset of the 64-bit entry point from a bzImage's protected-mode load address.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// x86 `COMMAND_LINE_SIZE` (with the NUL): what an ELF kernel, which has no header to
/// tell us, accepts.
const X86_COMMAND_LINE_SIZE: usize = 2048;
/// The kernel's own default for `initrd_addr_max` on x86 when no header says otherwise.
const DEFAULT_INITRD_ADDR_MAX: u32 = 0x7fff_ffff;
/// ELF identification.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// `e_ident[EI_CLASS]` for 64-bit.
const ELFCLASS64: u8 = 2;
/// `e_machine` for x86_64.
const EM_X86_64: u16 = 62;

/// The two kernel formats we boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// An uncompressed ELF `vmlinux`, entered at `e_entry` (`startup_64`).
    Elf,
    /// A bzImage, entered at load address + 0x200 (the compressed kernel's `startup_64`).
    BzImage,
}

/// A kernel placed in guest memory.
#[derive(Debug, Clone, Copy)]
pub(super) struct LoadedKernel {
    /// The 64-bit entry point.
    pub entry: GuestAddress,
    /// First byte after everything the kernel will occupy early in boot (its image,
    /// bss, and for a bzImage the area it decompresses into): the initrd goes above it.
    pub footprint_end: u64,
    /// The bzImage's setup header (as linux-loader returns it), `None` for ELF.
    pub setup_header: Option<setup_header>,
}

impl LoadedKernel {
    /// Longest command line (without the NUL) this kernel takes without cutting it.
    pub fn max_cmdline_len(&self) -> usize {
        let kernel_max = match &self.setup_header {
            Some(hdr) => usize::try_from(hdr.cmdline_size).unwrap_or(usize::MAX),
            None => X86_COMMAND_LINE_SIZE - 1,
        };
        kernel_max.min(CMDLINE_MAX_SIZE - 1)
    }

    /// Highest address the initrd's last byte may have.
    pub fn initrd_addr_max(&self) -> u32 {
        match &self.setup_header {
            Some(hdr) if hdr.initrd_addr_max != 0 => hdr.initrd_addr_max,
            _ => DEFAULT_INITRD_ADDR_MAX,
        }
    }
}

/// Opens `path`, recognises its format and loads it into `mem`, whose RAM ends at
/// `mem_end`.
pub(super) fn load_kernel(
    mem: &GuestMemoryMmap<()>,
    path: &Path,
    mem_end: u64,
) -> Result<LoadedKernel, LinuxBootError> {
    let (mut file, head, format) = open_kernel(path)?;

    let highmem = Some(GuestAddress(HIMEM_START));
    let load_err = |source| LinuxBootError::Load {
        path: path.into(),
        source,
    };
    let kernel = match format {
        KernelFormat::Elf => {
            let res: KernelLoaderResult =
                Elf::load(mem, None, &mut file, highmem).map_err(load_err)?;
            LoadedKernel {
                entry: res.kernel_load,
                footprint_end: res.kernel_end,
                setup_header: None,
            }
        }
        KernelFormat::BzImage => {
            let res = BzImage::load(mem, None, &mut file, highmem).map_err(load_err)?;
            // linux-loader always returns the header for a bzImage; fall back to the one
            // we read (identical but for code32_start) rather than trusting that.
            let hdr = res
                .setup_header
                .unwrap_or_else(|| parse_setup_header(&head));
            LoadedKernel {
                entry: GuestAddress(res.kernel_load.0 + BZIMAGE_64BIT_ENTRY_OFFSET),
                footprint_end: res.kernel_end.max(decompressed_end(&hdr)),
                setup_header: Some(hdr),
            }
        }
    };
    if kernel.footprint_end > mem_end {
        return Err(LinuxBootError::KernelDoesNotFit {
            path: path.into(),
            kernel_end: kernel.footprint_end,
            mem_end,
        });
    }
    Ok(kernel)
}

/// Recognises the kernel file at `path` without loading it (for up-front validation).
pub fn kernel_format(path: &Path) -> Result<KernelFormat, LinuxBootError> {
    open_kernel(path).map(|(_, _, format)| format)
}

/// Opens the kernel file, reads its head and recognises it.
fn open_kernel(path: &Path) -> Result<(File, Vec<u8>, KernelFormat), LinuxBootError> {
    let mut file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => LinuxBootError::KernelNotFound { path: path.into() },
        _ => LinuxBootError::Io {
            path: path.into(),
            source,
        },
    })?;
    let head = read_head(&mut file, path)?;
    let format = detect(&head, path)?;
    Ok((file, head, format))
}

/// Reads enough of the file to recognise it and parse a bzImage setup header.
fn read_head(file: &mut File, path: &Path) -> Result<Vec<u8>, LinuxBootError> {
    let want = SETUP_HEADER_OFFSET + std::mem::size_of::<setup_header>();
    let mut head = Vec::with_capacity(want);
    file.by_ref()
        .take(want as u64)
        .read_to_end(&mut head)
        .map_err(|source| LinuxBootError::Io {
            path: path.into(),
            source,
        })?;
    Ok(head)
}

/// Decides ELF vs bzImage from the first bytes, applying our stricter checks.
fn detect(head: &[u8], path: &Path) -> Result<KernelFormat, LinuxBootError> {
    if head.starts_with(ELF_MAGIC) {
        let class = head.get(4).copied().unwrap_or(0);
        let machine = head
            .get(18..20)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .unwrap_or(0);
        if class != ELFCLASS64 || machine != EM_X86_64 {
            return Err(LinuxBootError::UnsupportedElf {
                path: path.into(),
                class,
                machine,
            });
        }
        return Ok(KernelFormat::Elf);
    }
    if head.get(HDRS_OFFSET..HDRS_OFFSET + 4) == Some(HDRS_MAGIC.as_slice()) {
        let hdr = parse_setup_header(head);
        let version = hdr.version;
        if version < MIN_BZIMAGE_VERSION {
            return Err(LinuxBootError::BzImageTooOld {
                path: path.into(),
                version,
            });
        }
        let xloadflags = hdr.xloadflags;
        if version >= XLOADFLAGS_VERSION && xloadflags & XLF_KERNEL_64 == 0 {
            return Err(LinuxBootError::NotA64BitKernel {
                path: path.into(),
                xloadflags,
            });
        }
        return Ok(KernelFormat::BzImage);
    }
    Err(LinuxBootError::NotAKernel { path: path.into() })
}

/// The setup header at 0x1f1 (zero-filled where the file is shorter).
fn parse_setup_header(head: &[u8]) -> setup_header {
    let mut hdr = setup_header::default();
    let src = head.get(SETUP_HEADER_OFFSET..).unwrap_or(&[]);
    let dst = hdr.as_mut_slice();
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    hdr
}

/// End of the area a bzImage decompresses into: without KASLR the kernel lands at
/// `pref_address` (its LOAD_PHYSICAL_ADDR) and needs `init_size` bytes from there.
fn decompressed_end(hdr: &setup_header) -> u64 {
    if hdr.version < INIT_SIZE_VERSION {
        return 0;
    }
    let (pref, init) = (hdr.pref_address, hdr.init_size);
    pref.saturating_add(u64::from(init))
}
