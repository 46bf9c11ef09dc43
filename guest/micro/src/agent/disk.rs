//! Byte-addressed disk access for `DiskRead`/`DiskWrite` on top of the
//! sector-addressed virtio-blk driver: unaligned edges are read, patched and
//! written back.

use alloc::vec;
use alloc::vec::Vec;

use crate::virtio::blk::{Blk, BlkError, SECTOR};

/// Sector range `[first, end)` covering bytes `[offset, offset + len)`.
fn span(offset: u64, len: u64) -> Option<(u64, u64)> {
    let end = offset.checked_add(len)?;
    let s = SECTOR as u64;
    Some((offset / s, end.div_ceil(s)))
}

/// Reads `len` bytes at byte `offset`.
pub fn read(blk: &mut Blk, offset: u64, len: usize) -> Result<Vec<u8>, BlkError> {
    let (first, end) = span(offset, len as u64).ok_or(BlkError::OutOfRange {
        sector: offset / SECTOR as u64,
        sectors: len as u64,
        capacity: blk.capacity(),
    })?;
    let mut buf = Vec::new();
    blk.read_append(first, ((end - first) as usize) * SECTOR, &mut buf)?;
    let skip = (offset - first * SECTOR as u64) as usize;
    if skip == 0 {
        buf.truncate(len);
        return Ok(buf);
    }
    Ok(buf[skip..skip + len].to_vec())
}

/// Writes `data` at byte `offset`.
pub fn write(blk: &mut Blk, offset: u64, data: &[u8]) -> Result<(), BlkError> {
    if blk.read_only() {
        return Err(BlkError::ReadOnly);
    }
    let (first, end) = span(offset, data.len() as u64).ok_or(BlkError::OutOfRange {
        sector: offset / SECTOR as u64,
        sectors: data.len() as u64,
        capacity: blk.capacity(),
    })?;
    let skip = (offset - first * SECTOR as u64) as usize;
    if skip == 0 && data.len().is_multiple_of(SECTOR) {
        return blk.write(first, data);
    }
    let mut buf = vec![0u8; ((end - first) as usize) * SECTOR];
    // Only the partial first and last sectors need their old contents.
    blk.read(first, &mut buf[..SECTOR])?;
    if end - first > 1 {
        let last = buf.len() - SECTOR;
        blk.read(end - 1, &mut buf[last..])?;
    }
    buf[skip..skip + data.len()].copy_from_slice(data);
    blk.write(first, &buf)
}
