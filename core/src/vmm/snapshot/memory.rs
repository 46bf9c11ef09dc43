//! Guest RAM as a snapshot image. The image is a sealed memfd (no write, shrink
//! or grow, ever) holding RAM's contents; all-zero pages are left as holes, so
//! they cost nothing. The VM's RAM is then re-mapped `MAP_PRIVATE` from the image
//! at the same host address: KVM's memory slot stays as it is (KVM follows the
//! host mapping through its MMU notifiers), reads share the image's pages, and
//! guest writes land in private copy-on-write pages. Reverting is one
//! `madvise(MADV_DONTNEED)` over RAM: on a private file mapping it drops only the
//! private copies, and the guest sees the image again.
//!
//! vm-memory maps the region once, at start; replacing it in place (MAP_FIXED,
//! same address and size) is what keeps the slot and every clone of the
//! `GuestMemoryMmap` valid, which vm-memory's builders cannot do.

use super::super::memory::GuestMemory;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;
use vm_memory::{GuestMemoryBackend as _, GuestMemoryRegion as _, MemoryRegionAddress};

/// Host page size assumed for zero-page detection (x86-64).
const PAGE: usize = 4096;
/// RAM is copied into the image through a buffer of this size.
const CHUNK: usize = 256 * 1024;

/// Errors making, mapping or reverting a memory image.
#[derive(Debug, thiserror::Error)]
pub enum MemorySnapshotError {
    /// A host call failed.
    #[error("{what} failed: {source}")]
    Host {
        /// The call.
        what: &'static str,
        /// The host's error.
        source: std::io::Error,
    },
    /// Reading guest RAM failed.
    #[error("cannot read guest RAM at {offset:#x}: {source}")]
    Read {
        /// Offset in the region.
        offset: u64,
        /// vm-memory's error.
        source: vm_memory::GuestMemoryError,
    },
    /// Writing the image failed (usually: out of memory for the memfd).
    #[error("cannot write {len} bytes of the memory image at {offset:#x}: {source}")]
    Write {
        /// Offset in the image.
        offset: u64,
        /// Bytes.
        len: usize,
        /// The host's error.
        source: std::io::Error,
    },
    /// The image and the VM's RAM differ in size.
    #[error("memory image holds {image} bytes, the VM has {ram} bytes of RAM")]
    SizeMismatch {
        /// Image size.
        image: u64,
        /// RAM size.
        ram: u64,
    },
    /// Mapping the image over RAM failed.
    #[error("cannot map the memory image over {size} bytes of RAM at {addr:#x}: {source}")]
    Map {
        /// Host address of the region.
        addr: u64,
        /// Region size.
        size: u64,
        /// The host's error.
        source: std::io::Error,
    },
}

fn host(what: &'static str) -> impl FnOnce(std::io::Error) -> MemorySnapshotError {
    move |source| MemorySnapshotError::Host { what, source }
}

/// A sealed image of guest RAM (all regions, back to back).
#[derive(Debug)]
pub struct MemorySnapshot {
    file: File,
    size: u64,
    /// Where the image starts in `file` (0 for a memfd; page-aligned inside a
    /// snapshot file).
    offset: u64,
}

fn ram_size(mem: &GuestMemory) -> u64 {
    mem.iter().map(|r| r.len()).sum()
}

/// Runs of non-zero pages in `buf`, as (start, end) byte offsets.
fn nonzero_runs(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, page) in buf.chunks(PAGE).enumerate() {
        if page.iter().all(|&b| b == 0) {
            continue;
        }
        let (s, e) = (i * PAGE, i * PAGE + page.len());
        match runs.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => runs.push((s, e)),
        }
    }
    runs
}

impl MemorySnapshot {
    /// Copies guest RAM into a new sealed memfd (the vCPUs must be paused and no
    /// device may be writing guest memory).
    pub fn capture(mem: &GuestMemory) -> Result<MemorySnapshot, MemorySnapshotError> {
        let size = ram_size(mem);
        // SAFETY: memfd_create with a NUL-terminated name and flags; returns a new fd or -1.
        let fd = unsafe {
            libc::memfd_create(
                c"kvmsandbox-ram".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        if fd < 0 {
            return Err(host("memfd_create")(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(size)
            .map_err(host("ftruncate of the memory image"))?;
        let mut buf = vec![0u8; CHUNK];
        let mut image_off = 0u64;
        for region in mem.iter() {
            let len = region.len();
            let mut off = 0u64;
            while off < len {
                let n = (len - off).min(CHUNK as u64) as usize;
                let slice = region.get_slice(MemoryRegionAddress(off), n).map_err(|e| {
                    MemorySnapshotError::Read {
                        offset: off,
                        source: e,
                    }
                })?;
                slice.copy_to(&mut buf[..n]);
                for (s, e) in nonzero_runs(&buf[..n]) {
                    let at = image_off + off + s as u64;
                    file.write_all_at(&buf[s..e], at).map_err(|source| {
                        MemorySnapshotError::Write {
                            offset: at,
                            len: e - s,
                            source,
                        }
                    })?;
                }
                off += n as u64;
            }
            image_off += len;
        }
        let seals =
            libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl on a descriptor we own; F_ADD_SEALS takes an int.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(host("sealing the memory image")(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(MemorySnapshot {
            file,
            size,
            offset: 0,
        })
    }

    /// An image of `size` bytes at `offset` in `file` (a snapshot file opened
    /// read-only; the caller checked that the range lies in the file). Mapped,
    /// never copied: the file must not change while anything maps it.
    pub fn from_file(file: File, offset: u64, size: u64) -> MemorySnapshot {
        MemorySnapshot { file, size, offset }
    }

    /// Where the image starts in [`MemorySnapshot::file`].
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes of RAM the image holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file holding the image (a sealed memfd, or a snapshot file), at [`MemorySnapshot::offset`].
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Replaces `mem`'s RAM with a private copy-on-write mapping of this image
    /// (the vCPUs must be paused and no device may be using guest memory).
    pub fn map_over(&self, mem: &GuestMemory) -> Result<(), MemorySnapshotError> {
        let ram = ram_size(mem);
        if ram != self.size {
            return Err(MemorySnapshotError::SizeMismatch {
                image: self.size,
                ram,
            });
        }
        let mut image_off = self.offset;
        for region in mem.iter() {
            let (addr, size) = (region.as_ptr(), region.len());
            // SAFETY: MAP_FIXED replaces exactly the range vm-memory mapped for this
            // region (same address and size), which stays mapped throughout, so
            // every pointer into it stays valid; vm-memory unmaps the range when
            // the region drops, as before. The file holds `size` bytes of image at
            // `offset` (a sealed memfd, or a snapshot file whose section bounds
            // the loader checked), and `image_off + len` never passes their end.
            let p = unsafe {
                libc::mmap(
                    addr.cast(),
                    size as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_NORESERVE,
                    self.file.as_raw_fd(),
                    image_off as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED || p.cast::<u8>() != addr {
                return Err(MemorySnapshotError::Map {
                    addr: addr as u64,
                    size,
                    source: std::io::Error::last_os_error(),
                });
            }
            image_off += size;
        }
        Ok(())
    }
}

/// Drops every private page of `mem` (mapped from an image by
/// [`MemorySnapshot::map_over`]): the guest sees the image's contents again.
pub fn revert(mem: &GuestMemory) -> Result<(), MemorySnapshotError> {
    for region in mem.iter() {
        // SAFETY: the range is exactly one region vm-memory mapped; DONTNEED on a
        // private file mapping discards private copies and nothing else.
        if unsafe {
            libc::madvise(
                region.as_ptr().cast(),
                region.len() as usize,
                libc::MADV_DONTNEED,
            )
        } != 0
        {
            return Err(host("madvise(MADV_DONTNEED) of guest RAM")(
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestAddress};

    fn ram(mib: usize) -> GuestMemory {
        GuestMemory::from_ranges(&[(GuestAddress(0), mib << 20)]).unwrap()
    }

    #[test]
    fn zero_pages_are_skipped_and_runs_merge() {
        let mut b = vec![0u8; 5 * PAGE];
        b[PAGE] = 1;
        b[2 * PAGE + 7] = 2;
        b[4 * PAGE + 9] = 3;
        assert_eq!(
            nonzero_runs(&b),
            vec![(PAGE, 3 * PAGE), (4 * PAGE, 5 * PAGE)]
        );
    }

    /// Written before the snapshot: there after a revert; written after: gone.
    #[test]
    fn revert_restores_the_image_contents() {
        let mem = ram(4);
        mem.write_obj(0x1111_u64, GuestAddress(0x1000)).unwrap();
        let snap = MemorySnapshot::capture(&mem).unwrap();
        snap.map_over(&mem).unwrap();
        assert_eq!(mem.read_obj::<u64>(GuestAddress(0x1000)).unwrap(), 0x1111);
        for round in 0..3u64 {
            mem.write_obj(0x2222_u64 + round, GuestAddress(0x1000))
                .unwrap();
            mem.write_obj(0x3333_u64, GuestAddress(0x20_0000)).unwrap();
            revert(&mem).unwrap();
            assert_eq!(mem.read_obj::<u64>(GuestAddress(0x1000)).unwrap(), 0x1111);
            assert_eq!(mem.read_obj::<u64>(GuestAddress(0x20_0000)).unwrap(), 0);
        }
    }

    /// The image is sealed: nobody can change what restores come back to.
    #[test]
    fn the_image_is_sealed_against_writes_and_resizes() {
        let mem = ram(1);
        mem.write_obj(7u8, GuestAddress(0)).unwrap();
        let snap = MemorySnapshot::capture(&mem).unwrap();
        assert!(snap.file().write_all_at(&[9], 0).is_err());
        assert!(snap.file().set_len(0).is_err());
        assert!(snap.file().set_len(2 << 20).is_err());
        let mut b = [0u8; 1];
        snap.file().read_exact_at(&mut b, 0).unwrap();
        assert_eq!(b[0], 7);
    }

    #[test]
    fn an_image_of_another_size_is_refused() {
        let snap = MemorySnapshot::capture(&ram(1)).unwrap();
        match snap.map_over(&ram(2)) {
            Err(MemorySnapshotError::SizeMismatch { image, ram }) => {
                assert_eq!((image, ram), (1 << 20, 2 << 20))
            }
            other => panic!("expected SizeMismatch, got {other:?}"),
        }
    }
}
