//! Decoding and encoding of WASI preview 1 arguments in guest linear memory.
//!
//! Everything here is a pure function over a byte slice (the module's linear
//! memory) so it can be unit-tested and fuzzed without an interpreter. The
//! module controls every pointer and length it hands us: each access is checked
//! against the memory's length with overflow-free arithmetic and fails with
//! [`AbiError`], which maps to `EFAULT`/`EINVAL`, never a panic.

use alloc::vec::Vec;
use core::ops::Range;

/// A WASI errno value (`wasi_snapshot_preview1::errno`, a u16 on the wire, an
/// i32 as a host function result).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Errno(pub u16);

impl Errno {
    /// No error occurred.
    pub const SUCCESS: Errno = Errno(0);
    /// Bad file descriptor.
    pub const BADF: Errno = Errno(8);
    /// Bad address: a pointer or length outside linear memory.
    pub const FAULT: Errno = Errno(21);
    /// Invalid argument.
    pub const INVAL: Errno = Errno(28);
    /// I/O error.
    pub const IO: Errno = Errno(29);
    /// Function not supported by this runner.
    pub const NOSYS: Errno = Errno(52);
    /// Not a socket (the `sock_*` calls on stdio).
    pub const NOTSOCK: Errno = Errno(57);
    /// Not supported (e.g. a clock the guest does not have).
    pub const NOTSUP: Errno = Errno(58);
    /// Value too large for its data type.
    pub const OVERFLOW: Errno = Errno(61);
    /// Invalid seek (stdio is not seekable).
    pub const SPIPE: Errno = Errno(70);

    /// The value a host function returns to the module.
    pub fn to_i32(self) -> i32 {
        i32::from(self.0)
    }
}

/// Size of one `ciovec`/`iovec` record: `{ buf: u32, buf_len: u32 }`.
pub const IOVEC_SIZE: u32 = 8;
/// Size of a `fdstat` record.
pub const FDSTAT_SIZE: u32 = 24;

/// `filetype::character_device`.
pub const FILETYPE_CHARACTER_DEVICE: u8 = 2;
/// `rights::fd_read`.
pub const RIGHT_FD_READ: u64 = 1 << 1;
/// `rights::fd_write`.
pub const RIGHT_FD_WRITE: u64 = 1 << 6;

/// Why a guest-supplied argument was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiError {
    /// `ptr..ptr+len` does not lie inside linear memory.
    #[error("range {ptr:#x}+{len} is outside linear memory of {mem_len} bytes")]
    OutOfBounds {
        /// Start offset the module gave.
        ptr: u32,
        /// Length in bytes the module asked for.
        len: u64,
        /// Current size of linear memory.
        mem_len: usize,
    },
    /// The iovec lengths add up to more than a u32 can count.
    #[error("iovec lengths add up to {total}, more than a u32 result can hold")]
    TotalTooLarge {
        /// The sum of the buffer lengths.
        total: u64,
    },
    /// Argument or environment strings do not fit the 32-bit address space.
    #[error("string table of {count} items and {bytes} bytes does not fit 32 bits")]
    TableTooLarge {
        /// Number of strings.
        count: usize,
        /// Total bytes including NUL terminators.
        bytes: u64,
    },
}

impl AbiError {
    /// The errno the module sees for this error.
    pub fn errno(&self) -> Errno {
        match self {
            AbiError::OutOfBounds { .. } => Errno::FAULT,
            AbiError::TotalTooLarge { .. } => Errno::INVAL,
            AbiError::TableTooLarge { .. } => Errno::OVERFLOW,
        }
    }
}

/// Checks that `ptr..ptr+len` lies inside a memory of `mem_len` bytes.
pub fn check_range(mem_len: usize, ptr: u32, len: u64) -> Result<Range<usize>, AbiError> {
    let oob = AbiError::OutOfBounds { ptr, len, mem_len };
    let start = u64::from(ptr);
    let end = start.checked_add(len).ok_or_else(|| oob.clone())?;
    let end = usize::try_from(end).map_err(|_| oob.clone())?;
    if end > mem_len {
        return Err(oob);
    }
    // `start <= end <= mem_len` so `start` fits a usize too.
    Ok(start as usize..end)
}

/// Borrows `len` bytes at `ptr`.
pub fn slice(mem: &[u8], ptr: u32, len: u32) -> Result<&[u8], AbiError> {
    let range = check_range(mem.len(), ptr, u64::from(len))?;
    Ok(&mem[range])
}

/// Mutably borrows `len` bytes at `ptr`.
pub fn slice_mut(mem: &mut [u8], ptr: u32, len: u32) -> Result<&mut [u8], AbiError> {
    let range = check_range(mem.len(), ptr, u64::from(len))?;
    Ok(&mut mem[range])
}

/// Reads a little-endian u32 at `ptr`.
pub fn read_u32(mem: &[u8], ptr: u32) -> Result<u32, AbiError> {
    let bytes = slice(mem, ptr, 4)?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Writes a little-endian u32 at `ptr`.
pub fn write_u32(mem: &mut [u8], ptr: u32, value: u32) -> Result<(), AbiError> {
    slice_mut(mem, ptr, 4)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// Reads a little-endian u64 at `ptr`.
pub fn read_u64(mem: &[u8], ptr: u32) -> Result<u64, AbiError> {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(slice(mem, ptr, 8)?);
    Ok(u64::from_le_bytes(bytes))
}

/// Writes a little-endian u64 at `ptr`.
pub fn write_u64(mem: &mut [u8], ptr: u32, value: u64) -> Result<(), AbiError> {
    slice_mut(mem, ptr, 8)?.copy_from_slice(&value.to_le_bytes());
    Ok(())
}

/// A validated iovec array: every buffer lies inside memory and the lengths
/// add up to at most `u32::MAX`. Iterating decodes the records again from the
/// module's memory, so validation allocates nothing however many records the
/// module claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iovecs<'m> {
    records: &'m [u8],
    /// Sum of the buffer lengths.
    pub total: u32,
}

impl Iovecs<'_> {
    /// Number of records.
    pub fn count(&self) -> usize {
        self.records.len() / IOVEC_SIZE as usize
    }

    /// The `(buf, buf_len)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.records.chunks_exact(IOVEC_SIZE as usize).map(record)
    }
}

fn record(bytes: &[u8]) -> (u32, u32) {
    let buf = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    (buf, len)
}

/// Checks `len` iovec records at `ptr` without copying them out.
///
/// Every buffer is checked to lie inside memory too, so an operation either
/// sees all its buffers or fails before any side effect. The lengths must add
/// up to at most `u32::MAX` (the byte count is returned to the module as a
/// u32).
pub fn check_iovecs(mem: &[u8], ptr: u32, len: u32) -> Result<Iovecs<'_>, AbiError> {
    let array_len = u64::from(len) * u64::from(IOVEC_SIZE);
    let records = &mem[check_range(mem.len(), ptr, array_len)?];
    let mut total: u64 = 0;
    for (buf, buf_len) in records.chunks_exact(IOVEC_SIZE as usize).map(record) {
        check_range(mem.len(), buf, u64::from(buf_len))?;
        total += u64::from(buf_len);
        if total > u64::from(u32::MAX) {
            return Err(AbiError::TotalTooLarge { total });
        }
    }
    // The loop returned if `total` exceeded u32::MAX.
    let total = total as u32;
    Ok(Iovecs { records, total })
}

/// Decodes `len` iovec records at `ptr` into `(buf, buf_len)` pairs (for
/// tests and tools; the host functions use [`check_iovecs`], which does not
/// allocate).
pub fn decode_iovecs(mem: &[u8], ptr: u32, len: u32) -> Result<Vec<(u32, u32)>, AbiError> {
    Ok(check_iovecs(mem, ptr, len)?.iter().collect())
}

/// Count and total byte size (each string plus its NUL) of an argv/environ
/// table, as `args_sizes_get`/`environ_sizes_get` report them.
pub fn string_table_sizes(items: &[&[u8]]) -> Result<(u32, u32), AbiError> {
    let bytes: u64 = items.iter().map(|item| item.len() as u64 + 1).sum();
    let too_large = AbiError::TableTooLarge {
        count: items.len(),
        bytes,
    };
    let count = u32::try_from(items.len()).map_err(|_| too_large.clone())?;
    let bytes = u32::try_from(bytes).map_err(|_| too_large)?;
    Ok((count, bytes))
}

/// Writes an argv/environ table as `args_get`/`environ_get` do: a u32 pointer
/// per item at `ptrs`, and the NUL-terminated strings packed at `buf`.
/// Checks the whole destination before writing anything.
pub fn write_string_table(
    mem: &mut [u8],
    ptrs: u32,
    buf: u32,
    items: &[&[u8]],
) -> Result<(), AbiError> {
    let (count, bytes) = string_table_sizes(items)?;
    check_range(mem.len(), ptrs, u64::from(count) * 4)?;
    check_range(mem.len(), buf, u64::from(bytes))?;
    // Both ranges are in bounds and `buf + bytes` fits memory, so the offsets
    // below neither overflow nor fail.
    let mut offset = buf;
    for (index, item) in items.iter().enumerate() {
        write_u32(mem, ptrs + (index as u32) * 4, offset)?;
        let len = item.len() as u32;
        slice_mut(mem, offset, len)?.copy_from_slice(item);
        write_u32_byte(mem, offset + len)?;
        offset += len + 1;
    }
    Ok(())
}

fn write_u32_byte(mem: &mut [u8], ptr: u32) -> Result<(), AbiError> {
    slice_mut(mem, ptr, 1)?[0] = 0;
    Ok(())
}

/// Writes a `fdstat` for a character device with the given base rights.
pub fn write_fdstat_char_device(mem: &mut [u8], ptr: u32, rights: u64) -> Result<(), AbiError> {
    let out = slice_mut(mem, ptr, FDSTAT_SIZE)?;
    out.fill(0);
    out[0] = FILETYPE_CHARACTER_DEVICE;
    // fs_flags (u16 at 2) stay 0; rights_base at 8, rights_inheriting at 16 (0).
    out[8..16].copy_from_slice(&rights.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iovec_mem(records: &[(u32, u32)], size: usize) -> Vec<u8> {
        let mut mem = alloc::vec![0u8; size];
        for (index, (buf, len)) in records.iter().enumerate() {
            let at = index * 8;
            mem[at..at + 4].copy_from_slice(&buf.to_le_bytes());
            mem[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
        }
        mem
    }

    #[test]
    fn check_range_edges() {
        assert_eq!(check_range(10, 0, 10), Ok(0..10));
        assert_eq!(check_range(10, 10, 0), Ok(10..10));
        assert!(check_range(10, 10, 1).is_err());
        assert!(check_range(10, 11, 0).is_err());
        assert!(check_range(10, u32::MAX, u64::MAX).is_err());
        assert!(check_range(usize::MAX, u32::MAX, u64::MAX).is_err());
    }

    #[test]
    fn decodes_valid_iovecs() {
        let mem = iovec_mem(&[(32, 4), (40, 0), (60, 4)], 64);
        assert_eq!(
            decode_iovecs(&mem, 0, 3),
            Ok(alloc::vec![(32, 4), (40, 0), (60, 4)])
        );
        assert_eq!(decode_iovecs(&mem, 0, 0), Ok(alloc::vec![]));
    }

    #[test]
    fn rejects_iovec_array_out_of_bounds() {
        let mem = iovec_mem(&[(0, 0)], 16);
        let err = decode_iovecs(&mem, 12, 1).unwrap_err();
        assert_eq!(err.errno(), Errno::FAULT);
        assert_eq!(
            decode_iovecs(&mem, 0, u32::MAX).unwrap_err().errno(),
            Errno::FAULT
        );
        assert_eq!(
            decode_iovecs(&mem, u32::MAX, 1).unwrap_err().errno(),
            Errno::FAULT
        );
    }

    #[test]
    fn rejects_iovec_buffer_out_of_bounds() {
        let mem = iovec_mem(&[(8, 4), (60, 5)], 64);
        assert_eq!(decode_iovecs(&mem, 0, 2).unwrap_err().errno(), Errno::FAULT);
        let mem = iovec_mem(&[(u32::MAX, u32::MAX)], 64);
        assert_eq!(decode_iovecs(&mem, 0, 1).unwrap_err().errno(), Errno::FAULT);
    }

    #[test]
    fn writes_string_table() {
        let mut mem = alloc::vec![0xffu8; 32];
        let items: [&[u8]; 2] = [b"ab", b"c"];
        assert_eq!(string_table_sizes(&items), Ok((2, 5)));
        write_string_table(&mut mem, 0, 8, &items).unwrap();
        assert_eq!(read_u32(&mem, 0), Ok(8));
        assert_eq!(read_u32(&mem, 4), Ok(11));
        assert_eq!(&mem[8..13], b"ab\0c\0");
        assert_eq!(mem[13], 0xff);
    }

    #[test]
    fn string_table_out_of_bounds_writes_nothing() {
        let mut mem = alloc::vec![0xffu8; 16];
        let items: [&[u8]; 2] = [b"abcdef", b"ghijkl"];
        let err = write_string_table(&mut mem, 0, 8, &items).unwrap_err();
        assert_eq!(err.errno(), Errno::FAULT);
        assert!(mem.iter().all(|byte| *byte == 0xff));
    }

    #[test]
    fn fdstat_layout() {
        let mut mem = alloc::vec![0xaau8; 32];
        write_fdstat_char_device(&mut mem, 4, RIGHT_FD_WRITE).unwrap();
        assert_eq!(mem[4], FILETYPE_CHARACTER_DEVICE);
        assert_eq!(&mem[12..20], &RIGHT_FD_WRITE.to_le_bytes());
        assert_eq!(&mem[20..28], &[0; 8]);
        assert!(write_fdstat_char_device(&mut mem, 9, 0).is_err());
    }
}
