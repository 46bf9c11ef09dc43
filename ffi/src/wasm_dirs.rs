//! Preopened directories in the C API: setters on `kvmsb_wasm_options` that
//! add a directory (copied from a host directory, or empty) and files as
//! bytes, the tree's caps, and accessors on `kvmsb_wasm_result` for what the
//! module left in its writable directories (a file's bytes, or the whole
//! tree written to a host directory).

use std::os::raw::c_char;

use crate::args::{bytes_arg, handle, invalid, opt_str, out, path_arg, str_arg, write_out};
use crate::boundary::{ffi_status, Failure};
use crate::status::kvmsb_status;
use crate::wasm::kvmsb_wasm_result;
use crate::wasm_options::{kvmsb_wasm_options, with_opts};
use kvmsandbox_core::{WasmDir, WasmFileKind};

/// Adds a directory the module sees at `guest_path` (e.g. "/data"; preopened
/// as fds 3, 4, ... in the order added). `host_dir`: a host directory copied
/// in now (symlinks copied as links, never followed; at most the tree's byte
/// cap, 64 MiB by default), or NULL for an empty one. `read_only` non-zero:
/// the module gets EROFS for any change.
///
/// Errors: KVMSB_STATUS_INVALID_ARGUMENT if `guest_path` is already added,
/// KVMSB_STATUS_IO if the host directory cannot be read or is too big.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_add_dir(
    opts: *mut kvmsb_wasm_options,
    guest_path: *const c_char,
    host_dir: *const c_char,
    read_only: i32,
) -> kvmsb_status {
    with_opts(opts, |o| {
        // SAFETY: a NUL-terminated string (NULL checked).
        let guest = unsafe { str_arg(guest_path, "guest_path") }?.to_string();
        // SAFETY: NULL or a NUL-terminated string.
        let host = unsafe { opt_str(host_dir, "host_dir") }?;
        if o.request.dirs.iter().any(|d| d.guest_path == guest) {
            return Err(invalid(format!("directory {guest:?} was already added")));
        }
        let cap = o
            .request
            .fs_limits
            .max_bytes
            .unwrap_or(kvmsandbox_core::agent::DEFAULT_MAX_COPY);
        let dir = match host {
            Some(host) => WasmDir::from_host(guest, host, read_only != 0, cap)
                .map_err(|e| Failure::new(kvmsb_status::Io, format!("{e}")))?,
            None => WasmDir::new(guest, read_only != 0),
        };
        o.request.dirs.push(dir);
        Ok(())
    })
}

/// Adds file `path` (relative, '/'-separated; parents are made) with bytes
/// `data[0..len]` to the directory added as `guest_path`.
///
/// Errors: KVMSB_STATUS_NOT_FOUND if no directory `guest_path` was added.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_add_file(
    opts: *mut kvmsb_wasm_options,
    guest_path: *const c_char,
    path: *const c_char,
    data: *const u8,
    len: usize,
) -> kvmsb_status {
    with_opts(opts, |o| {
        // SAFETY: NUL-terminated strings (NULL checked); `len` readable bytes.
        let (guest, path, bytes) = unsafe {
            (
                str_arg(guest_path, "guest_path")?,
                str_arg(path, "path")?,
                bytes_arg(data, len, "data")?,
            )
        };
        let dir = o
            .request
            .dirs
            .iter_mut()
            .find(|d| d.guest_path == guest)
            .ok_or_else(|| {
                Failure::new(
                    kvmsb_status::NotFound,
                    format!("no directory {guest:?} was added"),
                )
            })?;
        let taken = std::mem::take(dir);
        *dir = taken.with_file(path, bytes.to_vec());
        Ok(())
    })
}

/// Caps the guest's in-memory tree of the run's directories: `max_bytes` of
/// contents, names and link targets, `max_inodes` files, directories and
/// links (0: the default, 64 MiB and 65 536). Past a cap the module gets
/// ENOSPC or EDQUOT; contents that do not fit end the run with
/// KVMSB_WASM_OUTCOME_ERROR. Set it before `kvmsb_wasm_options_add_dir` to
/// bound the host copy too.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_set_fs_limits(
    opts: *mut kvmsb_wasm_options,
    max_bytes: u64,
    max_inodes: u64,
) -> kvmsb_status {
    with_opts(opts, |o| {
        o.request.fs_limits.max_bytes = (max_bytes != 0).then_some(max_bytes);
        o.request.fs_limits.max_inodes = (max_inodes != 0).then_some(max_inodes);
        Ok(())
    })
}

/// The bytes of file `path` in writable directory `guest_path` after the
/// run: `*data_out` points at them (NULL when empty), `*len_out` is their
/// count.
///
/// Errors: KVMSB_STATUS_NOT_FOUND if there is no such file.
/// Ownership: borrowed from `result`, valid until `kvmsb_wasm_result_free`.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_result_file(
    result: *const kvmsb_wasm_result,
    guest_path: *const c_char,
    path: *const c_char,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL result is a live handle; NUL-terminated strings.
        let (r, guest, path) = unsafe {
            (
                handle(result, "result")?,
                str_arg(guest_path, "guest_path")?,
                str_arg(path, "path")?,
            )
        };
        out(data_out, "data_out")?;
        out(len_out, "len_out")?;
        let bytes = r
            .out
            .dirs
            .iter()
            .filter(|d| d.guest_path == guest)
            .flat_map(|d| d.files.iter())
            .find_map(|f| match &f.kind {
                WasmFileKind::File(bytes) if f.path == path => Some(bytes),
                _ => None,
            })
            .ok_or_else(|| {
                Failure::new(
                    kvmsb_status::NotFound,
                    format!("no file {path:?} in writable directory {guest:?}"),
                )
            })?;
        let ptr = if bytes.is_empty() {
            std::ptr::null()
        } else {
            bytes.as_ptr()
        };
        // SAFETY: both checked non-NULL above; the caller promises they are writable.
        unsafe {
            write_out(data_out, ptr);
            write_out(len_out, bytes.len());
        }
        Ok(())
    })
}

/// Writes the final tree of writable directory `guest_path` into host
/// directory `host_dir` (made if missing; files of the same names are
/// replaced). Nothing is written outside `host_dir`.
///
/// Errors: KVMSB_STATUS_NOT_FOUND if `guest_path` was not a writable
/// directory of the run, KVMSB_STATUS_IO if writing fails.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_result_write_dir(
    result: *const kvmsb_wasm_result,
    guest_path: *const c_char,
    host_dir: *const c_char,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL result is a live handle; NUL-terminated strings.
        let (r, guest, host) = unsafe {
            (
                handle(result, "result")?,
                str_arg(guest_path, "guest_path")?,
                path_arg(host_dir, "host_dir")?,
            )
        };
        let dir = r
            .out
            .dirs
            .iter()
            .find(|d| d.guest_path == guest)
            .ok_or_else(|| {
                Failure::new(
                    kvmsb_status::NotFound,
                    format!("{guest:?} was not a writable directory of this run"),
                )
            })?;
        dir.write_to(host)
            .map_err(|e| Failure::new(kvmsb_status::Io, format!("{e}")))
    })
}
