//! `kvmsb_sandbox_exec_opts`: run a command to completion (Linux guest or host
//! agent) and read its result through an opaque `kvmsb_exec_result`.

use crate::args::{bytes_arg, env_array, handle, opt_str, out, str_array, write_out};
use crate::boundary::{ffi_status, ffi_value, FfiResult};
use crate::bytes::borrowed;
use crate::exec_options::kvmsb_exec_options;
use crate::sandbox::kvmsb_sandbox;
use crate::status::kvmsb_status;
use crate::timeout::{timeout_arg, CallTimeout};
use kvmsandbox_core::{ExecOutput, ExecRequest};
use std::os::raw::c_char;

/// An opaque finished command: exit status and all of its output. Free with
/// `kvmsb_exec_result_free`. Immutable: any thread may read it.
pub struct kvmsb_exec_result {
    pub(crate) out: ExecOutput,
}

/// Runs `argv[0..argc]` in the sandbox and waits for it to end. `opts` (NULL =
/// every default) says how: see the `kvmsb_exec_options_*` setters.
///
/// - `argv`: `argc` >= 1 UTF-8 strings; `argv[0]` is looked up in `PATH`. A NULL
///   entry gives KVMSB_STATUS_INVALID_ARGUMENT.
///
/// A command killed at its timeout is still a result (see
/// `kvmsb_exec_result_timed_out`).
///
/// Errors: KVMSB_STATUS_UNSUPPORTED on a micro guest; KVMSB_STATUS_NOT_FOUND etc.
/// as the agent reports them.
///
/// Ownership: arguments and options are copied; the caller owns `*result_out`
/// and frees it with `kvmsb_exec_result_free`. Thread-safety: concurrent calls on
/// one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_exec_opts(
    sandbox: *const kvmsb_sandbox,
    argv: *const *const c_char,
    argc: usize,
    opts: *const kvmsb_exec_options,
    result_out: *mut *mut kvmsb_exec_result,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL opts is a live handle nobody changes during the call.
        let opts = unsafe { opts.as_ref() };
        let defaults = kvmsb_exec_options::default();
        let opts = opts.unwrap_or(&defaults);
        run(sandbox, argv, argc, opts, result_out)
    })
}

/// Runs `argv[0..argc]` in the sandbox and waits for it to end. Kept for
/// existing callers: new code uses `kvmsb_sandbox_exec_opts`.
///
/// - `envp`: `envc` "KEY=VALUE" strings, the process's whole environment (NULL if 0).
/// - `cwd`: working directory, or NULL for the agent's.
/// - `stdin_data`/`stdin_len`: all of stdin; NULL means stdin is /dev/null.
/// - `timeout_ms`: kill the command after this long (0 = no limit, as
///   KVMSB_TIMEOUT_NONE; the named constants are accepted too).
///
/// Errors, ownership, thread-safety: as `kvmsb_sandbox_exec_opts`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn kvmsb_sandbox_exec(
    sandbox: *const kvmsb_sandbox,
    argv: *const *const c_char,
    argc: usize,
    envp: *const *const c_char,
    envc: usize,
    cwd: *const c_char,
    stdin_data: *const u8,
    stdin_len: usize,
    timeout_ms: u64,
    result_out: *mut *mut kvmsb_exec_result,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: envp holds envc entries, each NULL (checked) or a C string.
        let env = unsafe { env_array(envp, envc, "envp") }?;
        // SAFETY: a non-NULL cwd is a NUL-terminated string.
        let cwd = unsafe { opt_str(cwd, "cwd") }?.map(str::to_owned);
        let stdin = if stdin_data.is_null() {
            if stdin_len != 0 {
                return Err(crate::args::null("stdin_data"));
            }
            None
        } else {
            // SAFETY: non-NULL and the caller promises stdin_len readable bytes.
            Some(unsafe { bytes_arg(stdin_data, stdin_len, "stdin_data") }?.to_vec())
        };
        let req = ExecRequest {
            env,
            cwd,
            stdin,
            ..ExecRequest::default()
        };
        let timeout = match timeout_ms {
            0 => CallTimeout::Unlimited,
            ms => timeout_arg(ms, "timeout_ms")?,
        };
        let opts = kvmsb_exec_options {
            request: req,
            timeout,
            ..kvmsb_exec_options::default()
        };
        run(sandbox, argv, argc, &opts, result_out)
    })
}

fn run(
    sandbox: *const kvmsb_sandbox,
    argv: *const *const c_char,
    argc: usize,
    opts: &kvmsb_exec_options,
    result_out: *mut *mut kvmsb_exec_result,
) -> FfiResult {
    // SAFETY: a non-NULL sandbox is a live handle from this library.
    let sb = unsafe { handle(sandbox, "sandbox") }?;
    out(result_out, "result_out")?;
    // SAFETY: argv holds argc entries, each NULL (checked) or a C string.
    let req = unsafe { request(argv, argc, opts) }?;
    let result = match &opts.on_output {
        None => sb.inner.exec(&req)?,
        Some(cb) => {
            let mut p = sb.inner.spawn(&req)?;
            if let Some(mut stdin) = p.take_stdin() {
                // Without stdin data the command reads end of file at once.
                stdin.close().map_err(kvmsandbox_core::Error::Agent)?;
            }
            let status = p
                .wait(|s, d| cb.call(s, d))
                .map_err(kvmsandbox_core::Error::Agent)?;
            ExecOutput {
                pid: p.pid(),
                status,
                stdout: Vec::new(),
                stderr: Vec::new(),
            }
        }
    };
    let r = Box::into_raw(Box::new(kvmsb_exec_result { out: result }));
    // SAFETY: checked non-NULL above.
    unsafe { write_out(result_out, r) };
    Ok(())
}

/// The request for `argv` with `opts`, checked.
///
/// # Safety
/// As [`str_array`]: `argv` holds `argc` entries, each NULL or a C string.
pub(crate) unsafe fn request(
    argv: *const *const c_char,
    argc: usize,
    opts: &kvmsb_exec_options,
) -> FfiResult<ExecRequest> {
    if argv.is_null() {
        return Err(crate::args::null("argv"));
    }
    if argc == 0 {
        return Err(crate::args::invalid(
            "argc is 0: a command needs at least argv[0]",
        ));
    }
    let mut req = opts.request.clone();
    // SAFETY: the caller's promise, forwarded.
    req.argv = unsafe { str_array(argv, argc, "argv") }?;
    req.timeout = opts.timeout.or(kvmsandbox_core::timeouts::EXEC);
    Ok(req)
}

fn with<T>(r: *const kvmsb_exec_result, default: T, f: impl FnOnce(&ExecOutput) -> T) -> T {
    ffi_value(default, || {
        // SAFETY: NULL checked by `as_ref`; a non-NULL result is a live handle.
        match unsafe { r.as_ref() } {
            Some(r) => f(&r.out),
            None => default_of(f),
        }
    })
}

// A NULL result reads like an empty one (no exit code, no output, `*len` = 0).
fn default_of<T>(f: impl FnOnce(&ExecOutput) -> T) -> T {
    f(&ExecOutput {
        pid: 0,
        status: EMPTY_STATUS,
        stdout: Vec::new(),
        stderr: Vec::new(),
    })
}

const EMPTY_STATUS: kvmsandbox_core::agent::ExitStatus = kvmsandbox_core::agent::ExitStatus {
    code: None,
    signal: None,
    timed_out: false,
};

/// The exit code, or -1 if the command was killed by a signal (or `result` is NULL).
#[no_mangle]
pub extern "C" fn kvmsb_exec_result_exit_code(result: *const kvmsb_exec_result) -> i32 {
    with(result, -1, |o| o.status.code.unwrap_or(-1))
}

/// The signal that killed the command, or 0 if it exited (or `result` is NULL).
#[no_mangle]
pub extern "C" fn kvmsb_exec_result_signal(result: *const kvmsb_exec_result) -> i32 {
    with(result, 0, |o| o.status.signal.unwrap_or(0))
}

/// True if the agent killed the command because its timeout passed.
#[no_mangle]
pub extern "C" fn kvmsb_exec_result_timed_out(result: *const kvmsb_exec_result) -> bool {
    with(result, false, |o| o.status.timed_out)
}

/// The guest pid the command ran as (0 if `result` is NULL).
#[no_mangle]
pub extern "C" fn kvmsb_exec_result_pid(result: *const kvmsb_exec_result) -> u32 {
    with(result, 0, |o| o.pid)
}

/// All of stdout: returns the bytes (NULL when empty) and writes their count to
/// `*len` (if `len` is non-NULL).
///
/// Ownership: borrowed from `result`, valid until `kvmsb_exec_result_free`.
#[no_mangle]
pub extern "C" fn kvmsb_exec_result_stdout(
    result: *const kvmsb_exec_result,
    len: *mut usize,
) -> *const u8 {
    with(result, std::ptr::null(), |o| borrowed(&o.stdout, len))
}

/// All of stderr, like `kvmsb_exec_result_stdout`.
///
/// Ownership: borrowed from `result`, valid until `kvmsb_exec_result_free`.
#[no_mangle]
pub extern "C" fn kvmsb_exec_result_stderr(
    result: *const kvmsb_exec_result,
    len: *mut usize,
) -> *const u8 {
    with(result, std::ptr::null(), |o| borrowed(&o.stderr, len))
}

/// Frees a result. NULL is allowed.
///
/// Ownership: `result` must come from a `kvmsb_sandbox_exec*` call and not be used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_exec_result_free(result: *mut kvmsb_exec_result) {
    ffi_value((), || {
        if !result.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw above.
            drop(unsafe { Box::from_raw(result) });
        }
    })
}
