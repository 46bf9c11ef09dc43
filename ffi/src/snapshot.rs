//! `kvmsb_snapshot`: a sandbox at one instant (Rust `SandboxSnapshot`). Take it
//! from a quiescent sandbox, put a sandbox back to it in place, fork new
//! sandboxes from it, save it to a file and load it back (loading checks the
//! whole file and maps its memory image), and turn on per-call isolation.

use crate::args::{handle, out, path_arg, write_out};
use crate::boundary::{ffi_status, ffi_value};
use crate::config::kvmsb_config;
use crate::sandbox::{boxed, kvmsb_sandbox};
use crate::status::kvmsb_status;
use kvmsandbox_core::{Sandbox, SandboxSnapshot};
use std::os::raw::c_char;

/// An opaque snapshot. Free with `kvmsb_snapshot_free`; it stays valid after the
/// sandbox it was taken of is freed (sandboxes restored or forked from it share
/// its memory image). Immutable: any thread may use it, concurrently.
pub struct kvmsb_snapshot {
    pub(crate) inner: SandboxSnapshot,
}

fn boxed_snapshot(s: SandboxSnapshot) -> *mut kvmsb_snapshot {
    Box::into_raw(Box::new(kvmsb_snapshot { inner: s }))
}

/// Takes a snapshot of the sandbox (micro or Linux guest started by this
/// library). The sandbox's idle agent connections are closed first (the next
/// call reconnects).
///
/// Errors: KVMSB_STATUS_BUSY while a call runs or a stream (`kvmsb_sandbox_connect`,
/// a spawned process) is open; KVMSB_STATUS_UNSUPPORTED for an attached sandbox;
/// KVMSB_STATUS_SNAPSHOT if the VM cannot be captured.
/// Ownership: the caller frees `*snapshot_out` with `kvmsb_snapshot_free`.
/// Thread-safety: any thread; concurrent calls on the sandbox make it BUSY.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_snapshot(
    sandbox: *const kvmsb_sandbox,
    snapshot_out: *mut *mut kvmsb_snapshot,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(snapshot_out, "snapshot_out")?;
        let s = sb.inner.snapshot()?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(snapshot_out, boxed_snapshot(s)) };
        Ok(())
    })
}

/// Puts the sandbox back to `snapshot` in place (same VM and threads). Streams
/// the sandbox opened read EOF.
///
/// Errors: KVMSB_STATUS_SNAPSHOT if the snapshot was taken of a sandbox of
/// another guest kind, memory size, vCPU count or disks (nothing changes);
/// KVMSB_STATUS_BUSY while a call runs on another thread.
/// Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_restore(
    sandbox: *const kvmsb_sandbox,
    snapshot: *const kvmsb_snapshot,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: non-NULL handles are live handles from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        // SAFETY: as above.
        let s = unsafe { handle(snapshot, "snapshot") }?;
        sb.inner.restore(&s.inner)?;
        Ok(())
    })
}

/// A new sandbox continuing from `snapshot` (its own VM, socket and threads;
/// memory shared copy-on-write). The agent is connected lazily. With `config`
/// NULL the snapshot's recorded shape is used and disks are opened again from
/// the recorded paths (they must have the recorded sizes); otherwise `config`
/// supplies disks, seccomp policy and the rest, and its vCPUs, memory and disks
/// must match the snapshot's.
///
/// Errors: KVMSB_STATUS_SNAPSHOT (mismatch, named), KVMSB_STATUS_UNSUPPORTED for
/// a Linux snapshot without `config`, KVMSB_STATUS_CONFIG (a disk missing).
/// Ownership: `config` is only read; the caller frees `*sandbox_out` with
/// `kvmsb_sandbox_free`. Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_from_snapshot(
    snapshot: *const kvmsb_snapshot,
    config: *const kvmsb_config,
    sandbox_out: *mut *mut kvmsb_sandbox,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL snapshot is a live handle from this library.
        let s = unsafe { handle(snapshot, "snapshot") }?;
        out(sandbox_out, "sandbox_out")?;
        let sb = if config.is_null() {
            Sandbox::from_snapshot(&s.inner)?
        } else {
            // SAFETY: non-NULL, a live handle from kvmsb_config_new.
            let c = unsafe { handle(config, "config") }?;
            Sandbox::from_snapshot_with(&s.inner, c.to_vm_config())?
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(sandbox_out, boxed(sb)) };
        Ok(())
    })
}

/// Per-call isolation: with a snapshot, every call starts from it (the sandbox
/// is restored now and after each call) and a `run_wasm` wall-clock timeout
/// restores instead of stopping the VM (KVMSB_STATUS_TIMEOUT, the sandbox stays
/// usable). NULL turns it off.
///
/// Ownership: the sandbox keeps its own reference; `snapshot` may be freed.
/// Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_set_call_isolation(
    sandbox: *const kvmsb_sandbox,
    snapshot: *const kvmsb_snapshot,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        let snap = if snapshot.is_null() {
            None
        } else {
            // SAFETY: non-NULL, a live handle from this library.
            Some(&unsafe { handle(snapshot, "snapshot") }?.inner)
        };
        sb.inner.set_call_isolation(snap)?;
        Ok(())
    })
}

/// Writes the snapshot to `path` (a new file renamed into place).
///
/// Errors: KVMSB_STATUS_IO. Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_snapshot_save(
    snapshot: *const kvmsb_snapshot,
    path: *const c_char,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL snapshot is a live handle from this library.
        let s = unsafe { handle(snapshot, "snapshot") }?;
        // SAFETY: NULL (checked) or a NUL-terminated string.
        let p = unsafe { path_arg(path, "path") }?;
        s.inner.save(p).map_err(kvmsandbox_core::Error::from)?;
        Ok(())
    })
}

/// Loads a snapshot file, checking all of it before returning; its memory image
/// is mapped from the file (which must not change while the snapshot or a
/// sandbox made from it lives).
///
/// Errors: KVMSB_STATUS_SNAPSHOT naming what is wrong (truncated, corrupt,
/// another format version or guest kind, inconsistent), KVMSB_STATUS_IO.
/// Ownership: the caller frees `*snapshot_out` with `kvmsb_snapshot_free`.
/// Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_snapshot_load(
    path: *const c_char,
    snapshot_out: *mut *mut kvmsb_snapshot,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: NULL (checked) or a NUL-terminated string.
        let p = unsafe { path_arg(path, "path") }?;
        out(snapshot_out, "snapshot_out")?;
        let s = SandboxSnapshot::load(p).map_err(kvmsandbox_core::Error::from)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(snapshot_out, boxed_snapshot(s)) };
        Ok(())
    })
}

/// Frees a snapshot. NULL is allowed. Sandboxes restored or forked from it are
/// not affected.
#[no_mangle]
pub extern "C" fn kvmsb_snapshot_free(snapshot: *mut kvmsb_snapshot) {
    ffi_value((), || {
        if !snapshot.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw here.
            drop(unsafe { Box::from_raw(snapshot) });
        }
    })
}
