//! The files API for C: directory operations, and transfers that stream between a
//! guest file and a caller's file descriptor (so a large file never sits whole in
//! memory on either side). Each call takes a `timeout_ms` for every answer of
//! the agent, read as everywhere in the C API (`src/timeout.rs`; the default
//! is the sandbox's answer timeout, docs/timeouts.md). Descriptions come back in a `kvmsb_file_list` whose
//! strings are borrowed from it.

use crate::args::{handle, out, str_arg, write_out};
use crate::boundary::{ffi_status, ffi_value};
use crate::sandbox::kvmsb_sandbox;
use crate::status::kvmsb_status;
use crate::timeout::answer_timeout;
use kvmsandbox_core::{FileInfo, FileKind};
use std::ffi::CString;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::os::raw::{c_char, c_int};
use std::time::UNIX_EPOCH;

/// The type of a guest file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum kvmsb_file_kind {
    /// A regular file.
    File = 1,
    /// A directory.
    Dir = 2,
    /// A symbolic link (not followed).
    Symlink = 3,
    /// A device, FIFO or socket.
    Other = 4,
}

/// One file's description. The strings are borrowed from the list it came from.
#[repr(C)]
pub struct kvmsb_file_info {
    /// The entry's name (for a stat: the last component of the path); UTF-8.
    pub name: *const c_char,
    /// Its type.
    pub kind: kvmsb_file_kind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`mode & 07777`).
    pub mode: u32,
    /// Last modification: seconds since the Unix epoch (negative before it).
    pub mtime_sec: i64,
    /// Nanoseconds within that second.
    pub mtime_nsec: u32,
    /// A symbolic link's target, or NULL.
    pub link_target: *const c_char,
}

struct Entry {
    info: FileInfo,
    name: CString,
    link_target: Option<CString>,
}

/// An opaque list of file descriptions from `kvmsb_sandbox_list_dir` or
/// `kvmsb_sandbox_stat`. Free with `kvmsb_file_list_free`. Immutable: any thread
/// may read it.
pub struct kvmsb_file_list {
    entries: Vec<Entry>,
}

fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

impl kvmsb_file_list {
    fn new(infos: Vec<FileInfo>) -> Box<Self> {
        Box::new(kvmsb_file_list {
            entries: infos
                .into_iter()
                .map(|info| Entry {
                    name: c_string(&info.name),
                    link_target: info.link_target.as_deref().map(c_string),
                    info,
                })
                .collect(),
        })
    }
}

fn kind_of(k: FileKind) -> kvmsb_file_kind {
    match k {
        FileKind::File => kvmsb_file_kind::File,
        FileKind::Dir => kvmsb_file_kind::Dir,
        FileKind::Symlink => kvmsb_file_kind::Symlink,
        _ => kvmsb_file_kind::Other,
    }
}

fn describe(e: &Entry) -> kvmsb_file_info {
    let (mtime_sec, mtime_nsec) = match e.info.modified.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(before) => {
            let d = before.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() == 0 {
                (-secs, 0)
            } else {
                (-secs - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    };
    kvmsb_file_info {
        name: e.name.as_ptr(),
        kind: kind_of(e.info.kind),
        size: e.info.size,
        mode: e.info.mode,
        mtime_sec,
        mtime_nsec,
        link_target: e
            .link_target
            .as_ref()
            .map_or(std::ptr::null(), |t| t.as_ptr()),
    }
}

/// Describes the guest path `path` (UTF-8); `follow`: a symbolic link's target
/// instead of the link. The answer is a one-entry list in `*list_out`.
/// KVMSB_STATUS_NOT_FOUND if it does not exist; KVMSB_STATUS_UNSUPPORTED on a micro guest.
/// `timeout_ms`: milliseconds to wait for the answer, or KVMSB_TIMEOUT_DEFAULT
/// (the sandbox's answer timeout, 10 s unless attached with another;
/// KVMSB_TIMEOUT_NONE is that default too: an answer wait always ends). Silence
/// that long is KVMSB_STATUS_TIMEOUT. The same for every files call below.
///
/// Ownership: the caller frees `*list_out` with `kvmsb_file_list_free`.
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_stat(
    sandbox: *const kvmsb_sandbox,
    path: *const c_char,
    follow: bool,
    timeout_ms: u64,
    list_out: *mut *mut kvmsb_file_list,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: `path` is NULL (checked) or a NUL-terminated string.
        let path = unsafe { str_arg(path, "path") }?;
        out(list_out, "list_out")?;
        let info = sb
            .inner
            .within(answer_timeout(timeout_ms)?)
            .stat(path, follow)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(list_out, Box::into_raw(kvmsb_file_list::new(vec![info]))) };
        Ok(())
    })
}

/// Lists the guest directory `path` (UTF-8) into `*list_out` (without `.`/`..`,
/// in the guest's order). The listing counts against the sandbox's output cap.
/// `timeout_ms` bounds each answer frame, as for `kvmsb_sandbox_stat`.
///
/// Ownership: the caller frees `*list_out` with `kvmsb_file_list_free`.
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_list_dir(
    sandbox: *const kvmsb_sandbox,
    path: *const c_char,
    timeout_ms: u64,
    list_out: *mut *mut kvmsb_file_list,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_stat.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: as in kvmsb_sandbox_stat.
        let path = unsafe { str_arg(path, "path") }?;
        out(list_out, "list_out")?;
        let infos = sb
            .inner
            .within(answer_timeout(timeout_ms)?)
            .list_dir(path)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(list_out, Box::into_raw(kvmsb_file_list::new(infos))) };
        Ok(())
    })
}

/// The number of entries (0 if `list` is NULL).
#[no_mangle]
pub extern "C" fn kvmsb_file_list_len(list: *const kvmsb_file_list) -> usize {
    ffi_value(0, || {
        // SAFETY: NULL checked by `as_ref`; a non-NULL list is a live handle.
        unsafe { list.as_ref() }.map_or(0, |l| l.entries.len())
    })
}

/// Writes entry `index` to `*info_out`. KVMSB_STATUS_INVALID_ARGUMENT if `index`
/// is out of range.
///
/// Ownership: the strings in `*info_out` are borrowed from `list`, valid until
/// `kvmsb_file_list_free`.
#[no_mangle]
pub extern "C" fn kvmsb_file_list_get(
    list: *const kvmsb_file_list,
    index: usize,
    info_out: *mut kvmsb_file_info,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL list is a live handle from this library.
        let l = unsafe { handle(list, "list") }?;
        out(info_out, "info_out")?;
        let e = l.entries.get(index).ok_or_else(|| {
            crate::args::invalid(format!(
                "index {index} is out of range: the list has {} entries",
                l.entries.len()
            ))
        })?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(info_out, describe(e)) };
        Ok(())
    })
}

/// Frees a list. NULL is allowed.
///
/// Ownership: `list` must come from this library and not be used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_file_list_free(list: *mut kvmsb_file_list) {
    ffi_value((), || {
        if !list.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw above.
            drop(unsafe { Box::from_raw(list) });
        }
    })
}

/// Creates the guest directory `path` with permission bits `mode`; with
/// `parents`, also its missing parents (then an existing directory is fine).
/// `timeout_ms` as for `kvmsb_sandbox_stat`.
///
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_make_dir(
    sandbox: *const kvmsb_sandbox,
    path: *const c_char,
    mode: u32,
    parents: bool,
    timeout_ms: u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_stat.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: as in kvmsb_sandbox_stat.
        let path = unsafe { str_arg(path, "path") }?;
        sb.inner
            .within(answer_timeout(timeout_ms)?)
            .make_dir(path, mode, parents)?;
        Ok(())
    })
}

/// Removes a guest file, link or empty directory; with `recursive`, a whole tree.
/// `timeout_ms` as for `kvmsb_sandbox_stat`.
///
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_remove(
    sandbox: *const kvmsb_sandbox,
    path: *const c_char,
    recursive: bool,
    timeout_ms: u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_stat.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: as in kvmsb_sandbox_stat.
        let path = unsafe { str_arg(path, "path") }?;
        sb.inner
            .within(answer_timeout(timeout_ms)?)
            .remove(path, recursive)?;
        Ok(())
    })
}

/// Renames the guest path `from` to `to`. `timeout_ms` as for `kvmsb_sandbox_stat`.
///
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_rename(
    sandbox: *const kvmsb_sandbox,
    from: *const c_char,
    to: *const c_char,
    timeout_ms: u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_stat.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: as in kvmsb_sandbox_stat.
        let from = unsafe { str_arg(from, "from") }?;
        // SAFETY: as in kvmsb_sandbox_stat.
        let to = unsafe { str_arg(to, "to") }?;
        sb.inner
            .within(answer_timeout(timeout_ms)?)
            .rename(from, to)?;
        Ok(())
    })
}

/// A caller's descriptor as a `File` that is never closed by us.
fn borrow_fd(fd: c_int) -> crate::boundary::FfiResult<ManuallyDrop<File>> {
    if fd < 0 {
        return Err(crate::args::invalid(format!(
            "fd {fd} is not a file descriptor"
        )));
    }
    // SAFETY: the caller promises `fd` is open for the call's duration; ManuallyDrop
    // keeps us from closing it.
    Ok(ManuallyDrop::new(unsafe { File::from_raw_fd(fd) }))
}

/// Streams everything readable from `fd` (from its current offset) into the guest
/// file `path`, created or truncated with permission bits `mode`, in chunks. The
/// byte count goes to `*written_out` unless it is NULL. `timeout_ms` bounds the
/// wait for each answer of the agent, not the whole transfer, as for
/// `kvmsb_sandbox_stat`.
///
/// Ownership: `fd` stays the caller's (not closed). Thread-safety: concurrent
/// calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_upload_fd(
    sandbox: *const kvmsb_sandbox,
    path: *const c_char,
    fd: c_int,
    mode: u32,
    timeout_ms: u64,
    written_out: *mut u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_stat.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: as in kvmsb_sandbox_stat.
        let path = unsafe { str_arg(path, "path") }?;
        let f = borrow_fd(fd)?;
        let n = sb.inner.within(answer_timeout(timeout_ms)?).write_file(
            path,
            BufReader::new(&*f),
            mode,
        )?;
        if !written_out.is_null() {
            // SAFETY: non-NULL; the caller promises a writable uint64_t.
            unsafe { write_out(written_out, n) };
        }
        Ok(())
    })
}

/// Streams the guest file `path` into `fd` (at its current offset), in chunks. The
/// byte count goes to `*read_out` unless it is NULL. `timeout_ms` bounds the
/// wait for each chunk, not the whole transfer, as for `kvmsb_sandbox_stat`.
///
/// Ownership: `fd` stays the caller's (not closed). Thread-safety: concurrent
/// calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_download_fd(
    sandbox: *const kvmsb_sandbox,
    path: *const c_char,
    fd: c_int,
    timeout_ms: u64,
    read_out: *mut u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_stat.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: as in kvmsb_sandbox_stat.
        let path = unsafe { str_arg(path, "path") }?;
        let f = borrow_fd(fd)?;
        let mut w = BufWriter::new(&*f);
        let n = sb
            .inner
            .within(answer_timeout(timeout_ms)?)
            .read_file(path, &mut w)?;
        w.flush()
            .map_err(|source| kvmsandbox_core::Error::HostFile {
                path: format!("(fd {fd})").into(),
                source,
            })?;
        if !read_out.is_null() {
            // SAFETY: non-NULL; the caller promises a writable uint64_t.
            unsafe { write_out(read_out, n) };
        }
        Ok(())
    })
}
