//! `kvmsb_process`: a command started with `kvmsb_sandbox_spawn`, for
//! interactive stdin. One thread waits (`kvmsb_process_wait`, which hands
//! output to the options' callback or collects it) while others may write to
//! its stdin or signal it: the three parts are locked separately for that, since
//! stdin writes beyond the agent's window wait for acknowledgements that only
//! arrive while somebody reads the command's events.

use crate::args::{bytes_arg, handle, out, write_out};
use crate::boundary::{ffi_status, ffi_value, Failure, FfiResult};
use crate::exec::{kvmsb_exec_result, request};
use crate::exec_options::kvmsb_exec_options;
use crate::output::OutputCallback;
use crate::sandbox::kvmsb_sandbox;
use crate::status::kvmsb_status;
use kvmsandbox_core::agent::{ProcessHandle, ProcessKiller, ProcessStdin};
use kvmsandbox_core::{Error, ExecOutput};
use std::io::Write;
use std::os::raw::c_char;
use std::sync::{Mutex, MutexGuard};

/// An opaque running command. Free with `kvmsb_process_free` (which does not
/// stop it: `kvmsb_process_kill` does).
///
/// Thread-safety: `kvmsb_process_write_stdin`, `kvmsb_process_close_stdin` and
/// `kvmsb_process_kill` may be called from any thread, also while another
/// thread is in `kvmsb_process_wait`.
pub struct kvmsb_process {
    handle: Mutex<Option<ProcessHandle>>,
    stdin: Mutex<Option<ProcessStdin>>,
    killer: ProcessKiller,
    pid: u32,
    on_output: Option<OutputCallback>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the Options half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn with_process(
    p: *const kvmsb_process,
    f: impl FnOnce(&kvmsb_process) -> FfiResult,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL process is a live handle from kvmsb_sandbox_spawn.
        let p = unsafe { handle(p, "process") }?;
        f(p)
    })
}

/// Starts `argv[0..argc]` and returns at once. `opts` (NULL = defaults) as for
/// `kvmsb_sandbox_exec_opts`, except that without stdin data
/// (`kvmsb_exec_options_set_stdin`) the command's stdin stays open for
/// `kvmsb_process_write_stdin` until `kvmsb_process_close_stdin`.
///
/// Ownership: the caller owns `*process_out` and frees it with `kvmsb_process_free`.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_spawn(
    sandbox: *const kvmsb_sandbox,
    argv: *const *const c_char,
    argc: usize,
    opts: *const kvmsb_exec_options,
    process_out: *mut *mut kvmsb_process,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(process_out, "process_out")?;
        // SAFETY: a non-NULL opts is a live handle nobody changes during the call.
        let opts = unsafe { opts.as_ref() };
        let defaults = kvmsb_exec_options::default();
        let opts = opts.unwrap_or(&defaults);
        // SAFETY: argv holds argc entries, each NULL (checked) or a C string.
        let req = unsafe { request(argv, argc, opts) }?;
        let mut h = sb.inner.spawn(&req)?;
        let p = kvmsb_process {
            stdin: Mutex::new(h.take_stdin()),
            killer: h.killer(),
            pid: h.pid(),
            on_output: opts.on_output,
            handle: Mutex::new(Some(h)),
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(process_out, Box::into_raw(Box::new(p))) };
        Ok(())
    })
}

/// The command's guest pid (0 if `process` is NULL).
#[no_mangle]
pub extern "C" fn kvmsb_process_pid(process: *const kvmsb_process) -> u32 {
    // SAFETY: NULL checked by `as_ref`; a non-NULL process is a live handle.
    ffi_value(0, || unsafe { process.as_ref() }.map_or(0, |p| p.pid))
}

/// Writes all of `data[0..len]` to the command's stdin (blocks while the agent's
/// window is full). KVMSB_STATUS_IO when stdin was closed or given up front.
#[no_mangle]
pub extern "C" fn kvmsb_process_write_stdin(
    process: *const kvmsb_process,
    data: *const u8,
    len: usize,
) -> kvmsb_status {
    with_process(process, |p| {
        // SAFETY: NULL allowed when len is 0; otherwise len readable bytes.
        let data = unsafe { bytes_arg(data, len, "data") }?;
        let mut guard = lock(&p.stdin);
        let pid = p.pid;
        let w = guard.as_mut().ok_or_else(|| {
            Failure::new(
                kvmsb_status::Io,
                format!("the stdin of process {pid} is closed (or was given up front)"),
            )
        })?;
        w.write_all(data).map_err(|e| {
            Failure::new(
                kvmsb_status::Io,
                format!("writing to the stdin of process {pid}: {e}"),
            )
        })
    })
}

/// Closes the command's stdin (it reads end of file). Idempotent.
#[no_mangle]
pub extern "C" fn kvmsb_process_close_stdin(process: *const kvmsb_process) -> kvmsb_status {
    with_process(process, |p| {
        if let Some(mut w) = lock(&p.stdin).take() {
            w.close().map_err(Error::Agent)?;
        }
        Ok(())
    })
}

/// Sends `signal` (e.g. 9 for SIGKILL) to the command's process group.
#[no_mangle]
pub extern "C" fn kvmsb_process_kill(process: *const kvmsb_process, signal: i32) -> kvmsb_status {
    with_process(process, |p| {
        p.killer.kill(signal).map_err(Error::Agent)?;
        Ok(())
    })
}

/// Waits for the command to end: output goes to the options' callback as it
/// comes, or is collected in `*result_out` (at most the agent limit per stream).
/// Once per process; a second call is KVMSB_STATUS_INVALID_ARGUMENT.
///
/// Ownership: the caller owns `*result_out` (free with `kvmsb_exec_result_free`).
#[no_mangle]
pub extern "C" fn kvmsb_process_wait(
    process: *const kvmsb_process,
    result_out: *mut *mut kvmsb_exec_result,
) -> kvmsb_status {
    with_process(process, |p| {
        out(result_out, "result_out")?;
        let mut h = lock(&p.handle).take().ok_or_else(|| {
            crate::args::invalid(format!("process {} was already waited for", p.pid))
        })?;
        let result = match &p.on_output {
            None => h.wait_with_output().map_err(Error::Agent)?,
            Some(cb) => ExecOutput {
                pid: p.pid,
                status: h.wait(|s, d| cb.call(s, d)).map_err(Error::Agent)?,
                stdout: Vec::new(),
                stderr: Vec::new(),
            },
        };
        // The command ended: its stdin is gone too.
        lock(&p.stdin).take();
        let r = Box::into_raw(Box::new(kvmsb_exec_result { out: result }));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(result_out, r) };
        Ok(())
    })
}

/// Frees a process handle (the command keeps running unless killed). NULL is allowed.
///
/// Ownership: `process` must come from `kvmsb_sandbox_spawn` and not be used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_process_free(process: *mut kvmsb_process) {
    ffi_value((), || {
        if !process.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw above.
            drop(unsafe { Box::from_raw(process) });
        }
    })
}
