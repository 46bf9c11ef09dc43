//! Linux boot protocol: put a kernel, an initrd and a command line into guest memory
//! and describe the machine in a `boot_params` zero page.
//!
//! We enter the kernel through its **64-bit entry point** (like Firecracker), with the
//! VMM having set up long mode itself: for an ELF `vmlinux` that is `e_entry`
//! (`startup_64`, a physical address), for a bzImage it is the load address + 0x200.
//! Either way RSI must point at the zero page returned here ([`LinuxEntry`]).
//! The 16-bit real-mode setup code of a bzImage is never run, so this module does
//! the setup code's job: copy the image's setup header into `boot_params`, add the
//! loader fields, the command line and initrd pointers, and the e820 map.
//!
//! Split by job: [`image`] recognises and loads the kernel file, [`initrd`] picks the
//! initrd address and copies it in, [`params`] validates and writes the command line
//! and builds the zero page. Nothing here needs KVM, so all of it is unit-tested over
//! a plain `GuestMemoryMmap`.

mod image;
mod initrd;
mod params;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::vmm::layout::{HIMEM_START, MMIO_START, ZERO_PAGE_START};

pub use image::{kernel_format, KernelFormat};

/// What to boot: the kernel file (ELF `vmlinux` or bzImage, recognised by content),
/// an optional initrd (loaded as-is: our kernel expects an uncompressed newc cpio)
/// and the kernel command line.
#[derive(Debug, Clone, Copy)]
pub struct LinuxImage<'a> {
    /// ELF `vmlinux` or bzImage.
    pub kernel: &'a Path,
    /// Initial ramdisk, copied byte for byte.
    pub initrd: Option<&'a Path>,
    /// Kernel command line (printable ASCII).
    pub cmdline: &'a str,
}

/// Where the boot vCPU starts: RIP = `entry` in 64-bit mode, RSI = `boot_params`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxEntry {
    /// The kernel's 64-bit entry point (guest physical).
    pub entry: GuestAddress,
    /// The zero page (`struct boot_params`), to be passed in RSI.
    pub boot_params: GuestAddress,
}

/// Why a Linux guest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LinuxBootError {
    /// The kernel file does not exist.
    #[error("kernel image {path} not found")]
    KernelNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The initrd file does not exist.
    #[error("initrd {path} not found")]
    InitrdNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// Opening, reading or sizing a file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Neither an ELF file nor a bzImage (no "HdrS" setup header).
    #[error("{path} is not a Linux kernel: neither an ELF vmlinux nor a bzImage")]
    NotAKernel {
        /// The file.
        path: PathBuf,
    },
    /// An ELF file, but not a 64-bit x86 one.
    #[error("{path} is an ELF file for class {class} machine {machine}, not an x86_64 (class 2, machine 62) kernel")]
    UnsupportedElf {
        /// The file.
        path: PathBuf,
        /// `e_ident[EI_CLASS]` (2 = 64-bit).
        class: u8,
        /// `e_machine` (62 = x86_64).
        machine: u16,
    },
    /// A bzImage older than boot protocol 2.06 (no `cmdline_size`, no 64-bit entry).
    #[error("{path} uses boot protocol {}.{:02}, at least 2.06 is needed", version >> 8, version & 0xff)]
    BzImageTooOld {
        /// The file.
        path: PathBuf,
        /// The header's protocol version (0x0206 = 2.06).
        version: u16,
    },
    /// A bzImage whose header says it has no 64-bit entry point (a 32-bit kernel).
    #[error("{path} has no 64-bit entry point (xloadflags {xloadflags:#x} lacks XLF_KERNEL_64)")]
    NotA64BitKernel {
        /// The file.
        path: PathBuf,
        /// The header's `xloadflags`.
        xloadflags: u16,
    },
    /// linux-loader refused the image or could not copy it into guest memory.
    #[error("cannot load kernel {path}: {source}")]
    Load {
        /// The file.
        path: PathBuf,
        /// What linux-loader said.
        source: linux_loader::loader::Error,
    },
    /// The kernel (including its bss / decompression area) extends past guest RAM.
    #[error("kernel {path} needs memory up to {kernel_end:#x} but guest RAM ends at {mem_end:#x}")]
    KernelDoesNotFit {
        /// The file.
        path: PathBuf,
        /// End of the kernel's footprint (exclusive).
        kernel_end: u64,
        /// End of guest RAM (exclusive).
        mem_end: u64,
    },
    /// The initrd does not fit between the kernel's end and the top of usable RAM.
    #[error("initrd {path} is {size} bytes but only {available} bytes are free between the kernel and the initrd limit")]
    InitrdTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// Bytes available for it (page-aligned).
        available: u64,
    },
    /// Copying the initrd into guest memory failed.
    #[error("cannot copy initrd {path} to guest address {addr:#x}: {source}")]
    InitrdCopy {
        /// The file.
        path: PathBuf,
        /// Where it was going.
        addr: u64,
        /// The underlying error.
        source: vm_memory::GuestMemoryError,
    },
    /// The command line is longer than the kernel accepts (it would silently cut it).
    #[error("kernel command line is {len} bytes, the kernel accepts at most {max}")]
    CmdlineTooLong {
        /// Its length in bytes (without the NUL).
        len: usize,
        /// The most the kernel takes (without the NUL).
        max: usize,
    },
    /// The command line contains a byte that is not printable ASCII.
    #[error("kernel command line has byte {byte:#04x} at offset {offset}; only printable ASCII is allowed")]
    InvalidCmdline {
        /// Offset of the first offending byte.
        offset: usize,
        /// That byte.
        byte: u8,
    },
    /// Writing the command line into guest memory failed.
    #[error("cannot write the kernel command line: {0}")]
    CmdlineWrite(linux_loader::loader::Error),
    /// Writing the zero page into guest memory failed.
    #[error("cannot write boot_params at {ZERO_PAGE_START:#x}: {0}")]
    BootParamsWrite(linux_loader::configurator::Error),
    /// Guest memory is not one contiguous range from 0 past 1 MiB.
    #[error(
        "guest memory must be contiguous from 0 and extend past 1 MiB; it ends at {mem_end:#x}"
    )]
    MemoryLayout {
        /// End of guest RAM (exclusive).
        mem_end: u64,
    },
}

/// Loads kernel, initrd and command line into `mem` and writes the zero page.
///
/// RAM is taken to be `[0, mem_end)`, where `mem_end` is the end of the last region
/// (capped at [`MMIO_START`]); the VMM maps it that way (see `layout.rs`), and this
/// is checked. The e820 map given to the kernel is `[0, EBDA_START)` and
/// `[HIMEM_START, mem_end)`.
pub fn load_linux(
    mem: &GuestMemoryMmap<()>,
    image: &LinuxImage<'_>,
) -> Result<LinuxEntry, LinuxBootError> {
    let mem_end = ram_end(mem)?;
    let kernel = image::load_kernel(mem, image.kernel, mem_end)?;

    let max_cmdline = kernel.max_cmdline_len();
    let cmdline_len = params::write_cmdline(mem, image.cmdline, max_cmdline)?;

    let initrd = match image.initrd {
        Some(path) => Some(initrd::load_initrd(
            mem,
            path,
            kernel.footprint_end,
            mem_end.min(u64::from(kernel.initrd_addr_max()).saturating_add(1)),
        )?),
        None => None,
    };

    let zero_page =
        params::build_boot_params(kernel.setup_header.as_ref(), cmdline_len, initrd, mem_end);
    params::write_boot_params(mem, &zero_page)?;

    Ok(LinuxEntry {
        entry: kernel.entry,
        boot_params: GuestAddress(ZERO_PAGE_START),
    })
}

/// End of RAM usable by the kernel: the end of guest memory, never past the MMIO hole.
fn ram_end(mem: &GuestMemoryMmap<()>) -> Result<u64, LinuxBootError> {
    let mem_end = mem
        .last_addr()
        .raw_value()
        .saturating_add(1)
        .min(MMIO_START);
    // The zero page and the command line sit below 1 MiB, the kernel above it, and
    // the e820 map we hand out claims every byte in between is RAM.
    let contiguous = usize::try_from(mem_end)
        .map(|len| mem.check_range(GuestAddress(0), len))
        .unwrap_or(false);
    if mem.num_regions() == 0 || mem_end <= HIMEM_START || !contiguous {
        return Err(LinuxBootError::MemoryLayout { mem_end });
    }
    Ok(mem_end)
}
