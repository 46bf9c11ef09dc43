//! Where a virtio-blk disk's bytes live. The device only needs positional reads and
//! writes, a durability barrier and a size, so the backend is a small trait; the
//! raw-file implementation uses `pread`/`pwrite`/`fdatasync` and never seeks, so it
//! needs no lock of its own.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Storage behind a virtio-blk device. Offsets and lengths are in bytes and were
/// already checked against [`BlockBackend::len`] by the request parser.
pub trait BlockBackend: Send {
    /// Fills `buf` from `offset` (all of it, or an error).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes completed writes durable (`fdatasync` for files).
    fn flush(&self) -> io::Result<()>;
    /// Size in bytes (a multiple of 512).
    fn len(&self) -> u64;
    /// Whether the backend holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A raw disk image in a host file.
pub struct FileBackend {
    file: File,
    len: u64,
}

impl FileBackend {
    /// Wraps an open file of `len` bytes (the caller checked the size).
    pub fn new(file: File, len: u64) -> Self {
        Self { file, len }
    }
}

impl BlockBackend for FileBackend {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> u64 {
        self.len
    }
}
