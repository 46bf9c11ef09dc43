//! Moving bytes: guest files (Linux guest or host agent) and raw disk blocks
//! through the agent (any sandbox with disks). Data coming back is a
//! caller-freed `kvmsb_bytes`. Each call takes a `timeout_ms` for each answer
//! of the agent: milliseconds, or KVMSB_TIMEOUT_DEFAULT (docs/timeouts.md;
//! KVMSB_TIMEOUT_NONE is the default too: an answer wait always ends).

use crate::args::{bytes_arg, handle, out, str_arg, write_out};
use crate::boundary::ffi_status;
use crate::bytes::kvmsb_bytes;
use crate::sandbox::kvmsb_sandbox;
use crate::status::kvmsb_status;
use crate::timeout::answer_timeout;
use std::os::raw::c_char;

/// Writes `data[0..len]` to the guest file `path` (UTF-8), created or truncated
/// with permission bits `mode` (e.g. 0644). The byte count written goes to
/// `*written_out` unless it is NULL. KVMSB_STATUS_UNSUPPORTED on a micro guest.
///
/// Ownership: `data` is only read. Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_write_file(
    sandbox: *const kvmsb_sandbox,
    path: *const c_char,
    data: *const u8,
    len: usize,
    mode: u32,
    timeout_ms: u64,
    written_out: *mut u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: `path` is NULL (checked) or a NUL-terminated string.
        let path = unsafe { str_arg(path, "path") }?;
        // SAFETY: NULL allowed only with len 0; otherwise `len` readable bytes.
        let data = unsafe { bytes_arg(data, len, "data") }?;
        let t = answer_timeout(timeout_ms)?;
        let n = sb.inner.within(t).write_file(path, data, mode)?;
        if !written_out.is_null() {
            // SAFETY: non-NULL; the caller promises a writable uint64_t.
            unsafe { write_out(written_out, n) };
        }
        Ok(())
    })
}

/// Reads all of the guest file `path` (UTF-8) into `*out_bytes`.
/// KVMSB_STATUS_NOT_FOUND if it does not exist; KVMSB_STATUS_UNSUPPORTED on a micro guest.
///
/// Ownership: the caller frees `*out_bytes` with `kvmsb_bytes_free`.
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_read_file(
    sandbox: *const kvmsb_sandbox,
    path: *const c_char,
    timeout_ms: u64,
    out_bytes: *mut kvmsb_bytes,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_write_file.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: as in kvmsb_sandbox_write_file.
        let path = unsafe { str_arg(path, "path") }?;
        out(out_bytes, "out_bytes")?;
        let mut data = Vec::new();
        let t = answer_timeout(timeout_ms)?;
        sb.inner.within(t).read_file(path, &mut data)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_bytes, kvmsb_bytes::from_vec(data)) };
        Ok(())
    })
}

/// Reads `len` bytes at byte `offset` of disk number `disk` (in the order the
/// disks were added) into `*out_bytes`. A range past the end of the disk gives
/// KVMSB_STATUS_INVALID_ARGUMENT, a missing disk KVMSB_STATUS_NOT_FOUND.
///
/// Ownership: the caller frees `*out_bytes` with `kvmsb_bytes_free`.
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_disk_read(
    sandbox: *const kvmsb_sandbox,
    disk: u32,
    offset: u64,
    len: u32,
    timeout_ms: u64,
    out_bytes: *mut kvmsb_bytes,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_write_file.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(out_bytes, "out_bytes")?;
        let t = answer_timeout(timeout_ms)?;
        let data = sb.inner.within(t).disk_read(disk, offset, len)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_bytes, kvmsb_bytes::from_vec(data)) };
        Ok(())
    })
}

/// Writes `data[0..len]` at byte `offset` of disk `disk` (same rules as
/// `kvmsb_sandbox_disk_read`; a read-only disk gives KVMSB_STATUS_PERMISSION_DENIED).
///
/// Ownership: `data` is only read. Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_disk_write(
    sandbox: *const kvmsb_sandbox,
    disk: u32,
    offset: u64,
    data: *const u8,
    len: usize,
    timeout_ms: u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_write_file.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: NULL allowed only with len 0; otherwise `len` readable bytes.
        let data = unsafe { bytes_arg(data, len, "data") }?;
        let t = answer_timeout(timeout_ms)?;
        sb.inner.within(t).disk_write(disk, offset, data)?;
        Ok(())
    })
}

/// Flushes disk `disk`: the guest's writes reach the image file (fdatasync).
///
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_disk_flush(
    sandbox: *const kvmsb_sandbox,
    disk: u32,
    timeout_ms: u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_write_file.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        let t = answer_timeout(timeout_ms)?;
        sb.inner.within(t).disk_flush(disk)?;
        Ok(())
    })
}
