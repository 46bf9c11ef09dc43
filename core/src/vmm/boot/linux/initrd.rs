//! Placing the initrd: page-aligned, as high as possible (like QEMU and the boot
//! protocol's advice), below the kernel's `initrd_addr_max` and the end of RAM, and
//! above the kernel's footprint so early boot does not overwrite it.

use std::fs::File;
use std::io;
use std::path::Path;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::LinuxBootError;

/// Guest page size; the boot protocol wants the initrd page-aligned.
const PAGE_SIZE: u64 = 0x1000;

/// Where the initrd went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InitrdPlacement {
    /// Guest physical address of its first byte (page-aligned).
    pub addr: u64,
    /// Its size in bytes.
    pub size: u64,
}

/// Picks the address for `size` bytes: the highest page-aligned one with the initrd
/// ending at or below `limit` and starting at or above the page-rounded `kernel_end`.
/// On failure returns the number of bytes that would have fitted.
pub(super) fn place(size: u64, kernel_end: u64, limit: u64) -> Result<u64, u64> {
    let lowest = kernel_end.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE);
    let available = limit.saturating_sub(lowest);
    if size > available {
        return Err(available);
    }
    // limit - size >= lowest, and lowest is page-aligned, so rounding down stays above it.
    Ok((limit - size) & !(PAGE_SIZE - 1))
}

/// Copies the initrd file at `path` into `mem` at the address [`place`] picks.
pub(super) fn load_initrd(
    mem: &GuestMemoryMmap<()>,
    path: &Path,
    kernel_end: u64,
    limit: u64,
) -> Result<InitrdPlacement, LinuxBootError> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => LinuxBootError::InitrdNotFound { path: path.into() },
        _ => LinuxBootError::Io {
            path: path.into(),
            source,
        },
    };
    let mut file = File::open(path).map_err(io_err)?;
    let size = file.metadata().map_err(io_err)?.len();
    let addr =
        place(size, kernel_end, limit).map_err(|available| LinuxBootError::InitrdTooLarge {
            path: path.into(),
            size,
            available,
        })?;
    // size <= limit <= mem_end, and mem_end fits in usize (it is a mapped range).
    let len = usize::try_from(size).map_err(|_| LinuxBootError::InitrdTooLarge {
        path: path.into(),
        size,
        available: limit,
    })?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, len)
        .map_err(|source| LinuxBootError::InitrdCopy {
            path: path.into(),
            addr,
            source,
        })?;
    Ok(InitrdPlacement { addr, size })
}
