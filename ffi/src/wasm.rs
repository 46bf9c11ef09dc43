//! `kvmsb_sandbox_run_wasm_opts`: run a WASM (WASI) module in the micro guest and
//! read how it ended through an opaque `kvmsb_wasm_result`. A module that traps
//! or runs out of fuel is a successful call with that outcome; only failures to
//! run it at all are error statuses.

use crate::args::{bytes_arg, env_array, handle, out, str_array, write_out};
use crate::boundary::{ffi_status, ffi_value, FfiResult};
use crate::bytes::borrowed;
use crate::sandbox::kvmsb_sandbox;
use crate::status::kvmsb_status;
use crate::timeout::{timeout_arg, CallTimeout};
use crate::wasm_options::kvmsb_wasm_options;
use kvmsandbox_core::{WasmOutcome, WasmOutput, WasmRequest};
use std::ffi::CString;
use std::os::raw::c_char;

/// How a module run ended.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum kvmsb_wasm_outcome {
    /// `_start` returned (exit code 0) or the module called `proc_exit`.
    Exit = 0,
    /// The module trapped (`kvmsb_wasm_result_message` says why).
    Trap = 1,
    /// The fuel limit was reached.
    OutOfFuel = 2,
    /// The module could not run: invalid, missing import, no `_start`, memory limit
    /// (`kvmsb_wasm_result_message` says which).
    Error = 3,
}

/// An opaque finished module run. Free with `kvmsb_wasm_result_free`.
/// Immutable: any thread may read it.
pub struct kvmsb_wasm_result {
    pub(crate) out: WasmOutput,
    message: CString,
}

fn message_of(o: &WasmOutcome) -> CString {
    let m = match o {
        WasmOutcome::Exit(_) | WasmOutcome::OutOfFuel => String::new(),
        WasmOutcome::Trap(m) => m.clone(),
        WasmOutcome::Error { kind, message } => format!("{kind:?}: {message}"),
        other => format!("{other:?}"),
    };
    CString::new(m.replace('\0', "\\0")).unwrap_or_default()
}

/// Runs the WASM module `module[0..module_len]` in the sandbox (micro guest only)
/// and waits for it to end. `opts` (NULL = every default) says how: see the
/// `kvmsb_wasm_options_*` setters.
///
/// A timeout (`kvmsb_wasm_options_set_timeout`) stops the VM (a module cannot be
/// interrupted otherwise) and returns KVMSB_STATUS_TIMEOUT: the sandbox is dead
/// afterwards.
///
/// Errors: KVMSB_STATUS_UNSUPPORTED on a Linux guest or host agent, or when the
/// guest was built without a WASM runtime.
///
/// Ownership: the module and options are copied; the caller owns `*result_out`
/// and frees it with `kvmsb_wasm_result_free`. Thread-safety: concurrent calls on
/// one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_run_wasm_opts(
    sandbox: *const kvmsb_sandbox,
    module: *const u8,
    module_len: usize,
    opts: *const kvmsb_wasm_options,
    result_out: *mut *mut kvmsb_wasm_result,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL opts is a live handle nobody changes during the call.
        let opts = unsafe { opts.as_ref() };
        let defaults = kvmsb_wasm_options::default();
        let opts = opts.unwrap_or(&defaults);
        run(sandbox, module, module_len, opts, result_out)
    })
}

/// Runs the WASM module `module[0..module_len]` in the sandbox (micro guest only)
/// and waits for it to end. Kept for existing callers: new code uses
/// `kvmsb_sandbox_run_wasm_opts`, which can take every option.
///
/// - `args`: `argc` UTF-8 strings, the module's argv (NULL if 0; no NULL entries).
/// - `envp`: `envc` "KEY=VALUE" strings (NULL if 0).
/// - `stdin_data`/`stdin_len`: all of stdin (NULL if empty).
/// - `fuel`: instruction budget, 0 = unlimited.
/// - `timeout_ms`: wall-clock limit, 0 = none (as KVMSB_TIMEOUT_NONE; the named
///   constants are accepted too). When it passes the VM is stopped and
///   KVMSB_STATUS_TIMEOUT is returned: the sandbox is dead afterwards.
///
/// Errors, ownership, thread-safety: as `kvmsb_sandbox_run_wasm_opts`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn kvmsb_sandbox_run_wasm(
    sandbox: *const kvmsb_sandbox,
    module: *const u8,
    module_len: usize,
    args: *const *const c_char,
    argc: usize,
    envp: *const *const c_char,
    envc: usize,
    stdin_data: *const u8,
    stdin_len: usize,
    fuel: u64,
    timeout_ms: u64,
    result_out: *mut *mut kvmsb_wasm_result,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: args/envp hold argc/envc entries, each NULL (checked) or a C string.
        let args = unsafe { str_array(args, argc, "args") }?;
        // SAFETY: as above.
        let env = unsafe { env_array(envp, envc, "envp") }?;
        // SAFETY: NULL allowed when stdin_len is 0; otherwise stdin_len readable bytes.
        let stdin = unsafe { bytes_arg(stdin_data, stdin_len, "stdin_data") }?.to_vec();
        let req = WasmRequest {
            args,
            env,
            stdin,
            fuel: (fuel != 0).then_some(fuel),
            ..WasmRequest::default()
        };
        let timeout = match timeout_ms {
            0 => CallTimeout::Unlimited,
            ms => timeout_arg(ms, "timeout_ms")?,
        };
        let opts = kvmsb_wasm_options {
            request: req,
            timeout,
            ..kvmsb_wasm_options::default()
        };
        run(sandbox, module, module_len, &opts, result_out)
    })
}

fn run(
    sandbox: *const kvmsb_sandbox,
    module: *const u8,
    module_len: usize,
    opts: &kvmsb_wasm_options,
    result_out: *mut *mut kvmsb_wasm_result,
) -> FfiResult {
    // SAFETY: a non-NULL sandbox is a live handle from this library.
    let sb = unsafe { handle(sandbox, "sandbox") }?;
    out(result_out, "result_out")?;
    if module.is_null() {
        return Err(crate::args::null("module"));
    }
    let mut req = opts.request.clone();
    // SAFETY: non-NULL; the caller promises module_len readable bytes.
    req.module = unsafe { bytes_arg(module, module_len, "module") }?.to_vec();
    let timeout = opts.timeout.or(kvmsandbox_core::timeouts::RUN_WASM);
    let result = match &opts.on_output {
        None => sb.inner.run_wasm(&req, timeout)?,
        Some(cb) => sb
            .inner
            .run_wasm_streamed(&req, timeout, |s, d| cb.call(s, d))?,
    };
    // SAFETY: checked non-NULL above.
    unsafe { hand_out(result, result_out) };
    Ok(())
}

/// Boxes `result` into `*result_out`.
///
/// # Safety
/// `result_out` must be non-NULL and writable.
pub(crate) unsafe fn hand_out(result: WasmOutput, result_out: *mut *mut kvmsb_wasm_result) {
    let message = message_of(&result.outcome);
    let r = Box::into_raw(Box::new(kvmsb_wasm_result {
        out: result,
        message,
    }));
    // SAFETY: non-NULL and writable, by the caller's promise.
    unsafe { write_out(result_out, r) };
}

fn with<T>(r: *const kvmsb_wasm_result, default: T, f: impl FnOnce(&kvmsb_wasm_result) -> T) -> T {
    ffi_value(default, || {
        // SAFETY: NULL checked by `as_ref`; a non-NULL result is a live handle.
        let empty = kvmsb_wasm_result {
            out: WasmOutput {
                outcome: WasmOutcome::Error {
                    kind: kvmsandbox_core::agent::WasmErrorKind::Other(0),
                    message: String::new(),
                },
                stdout: Vec::new(),
                stderr: Vec::new(),
                dirs: Vec::new(),
            },
            message: CString::default(),
        };
        match unsafe { r.as_ref() } {
            Some(r) => f(r),
            // A NULL result reads like an empty one.
            None => f(&empty),
        }
    })
}

/// How the module ended (KVMSB_WASM_OUTCOME_ERROR if `result` is NULL).
#[no_mangle]
pub extern "C" fn kvmsb_wasm_result_outcome(
    result: *const kvmsb_wasm_result,
) -> kvmsb_wasm_outcome {
    with(result, kvmsb_wasm_outcome::Error, |r| match r.out.outcome {
        WasmOutcome::Exit(_) => kvmsb_wasm_outcome::Exit,
        WasmOutcome::Trap(_) => kvmsb_wasm_outcome::Trap,
        WasmOutcome::OutOfFuel => kvmsb_wasm_outcome::OutOfFuel,
        // Outcomes newer than this C API read as errors (the message names them).
        _ => kvmsb_wasm_outcome::Error,
    })
}

/// The exit code when the outcome is KVMSB_WASM_OUTCOME_EXIT, else -1.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_result_exit_code(result: *const kvmsb_wasm_result) -> i32 {
    with(result, -1, |r| match r.out.outcome {
        WasmOutcome::Exit(c) => c,
        _ => -1,
    })
}

/// The trap or error message ("" for other outcomes). Never NULL.
///
/// Ownership: borrowed from `result`, valid until `kvmsb_wasm_result_free`
/// (for a NULL `result`: a static empty string).
#[no_mangle]
pub extern "C" fn kvmsb_wasm_result_message(result: *const kvmsb_wasm_result) -> *const c_char {
    static EMPTY: &std::ffi::CStr = c"";
    if result.is_null() {
        return EMPTY.as_ptr();
    }
    with(result, EMPTY.as_ptr(), |r| r.message.as_ptr())
}

/// All of the module's stdout: returns the bytes (NULL when empty) and writes
/// their count to `*len` (if `len` is non-NULL).
///
/// Ownership: borrowed from `result`, valid until `kvmsb_wasm_result_free`.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_result_stdout(
    result: *const kvmsb_wasm_result,
    len: *mut usize,
) -> *const u8 {
    with(result, std::ptr::null(), |r| borrowed(&r.out.stdout, len))
}

/// All of the module's stderr, like `kvmsb_wasm_result_stdout`.
///
/// Ownership: borrowed from `result`, valid until `kvmsb_wasm_result_free`.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_result_stderr(
    result: *const kvmsb_wasm_result,
    len: *mut usize,
) -> *const u8 {
    with(result, std::ptr::null(), |r| borrowed(&r.out.stderr, len))
}

/// Frees a result. NULL is allowed.
///
/// Ownership: `result` must come from a `kvmsb_sandbox_run_wasm*` call and not be used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_result_free(result: *mut kvmsb_wasm_result) {
    ffi_value((), || {
        if !result.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw above.
            drop(unsafe { Box::from_raw(result) });
        }
    })
}
