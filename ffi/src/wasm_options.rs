//! `kvmsb_wasm_options`: how to run a WASM module, built up by setters so the
//! C API can gain options without new run functions. Other files add setters for
//! their own fields (the struct is plain: a `WasmRequest` and a timeout); values
//! are copied in, so the caller's buffers may be freed after each setter, and one
//! options handle may be reused for many runs.

use crate::args::{bytes_arg, env_array, str_array};
use crate::output::{kvmsb_output_fn, OutputCallback};
use crate::status::kvmsb_status;
use crate::timeout::{timeout_arg, CallTimeout};
use kvmsandbox_core::WasmRequest;
use std::os::raw::{c_char, c_void};

/// Opaque options for `kvmsb_sandbox_run_wasm_opts`. Create with
/// `kvmsb_wasm_options_new`, free with `kvmsb_wasm_options_free`.
///
/// Thread-safety: setters need exclusive use; a run only reads it, so several
/// threads may run with one options handle that nobody is changing.
#[derive(Clone, Debug, Default)]
pub struct kvmsb_wasm_options {
    /// Everything but the module, which the run call supplies.
    pub request: WasmRequest,
    /// The wall-clock timeout of the run.
    pub timeout: CallTimeout,
    /// Where output goes as it is written (`None`: collected in the result).
    pub on_output: Option<OutputCallback>,
}

/// Runs `f` on the options behind `opts` (NULL is reported as `opts`).
pub(crate) fn with_opts(
    opts: *mut kvmsb_wasm_options,
    f: impl FnOnce(&mut kvmsb_wasm_options) -> crate::boundary::FfiResult,
) -> kvmsb_status {
    crate::options_handle::with_opts(opts, f)
}

/// Creates options with every default: no arguments, an empty environment, empty
/// stdin, unlimited fuel, the runtime's memory limit, KVMSB_TIMEOUT_DEFAULT.
///
/// Ownership: the caller owns `*opts_out` and frees it with `kvmsb_wasm_options_free`.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_new(opts_out: *mut *mut kvmsb_wasm_options) -> kvmsb_status {
    crate::options_handle::new_opts(opts_out)
}

/// Frees options. NULL is allowed.
///
/// Ownership: `opts` must come from `kvmsb_wasm_options_new` and not be used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_free(opts: *mut kvmsb_wasm_options) {
    crate::options_handle::free_opts(opts)
}

/// Sets the module's argv to `args[0..argc]` (UTF-8, no NULL entries; `args`
/// may be NULL when `argc` is 0). Replaces earlier arguments.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_set_args(
    opts: *mut kvmsb_wasm_options,
    args: *const *const c_char,
    argc: usize,
) -> kvmsb_status {
    with_opts(opts, |o| {
        // SAFETY: args holds argc entries, each NULL (checked) or a C string.
        o.request.args = unsafe { str_array(args, argc, "args") }?;
        Ok(())
    })
}

/// Sets the module's whole environment to `envp[0..envc]` ("KEY=VALUE"; NULL
/// when `envc` is 0). Replaces an earlier environment.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_set_env(
    opts: *mut kvmsb_wasm_options,
    envp: *const *const c_char,
    envc: usize,
) -> kvmsb_status {
    with_opts(opts, |o| {
        // SAFETY: envp holds envc entries, each NULL (checked) or a C string.
        o.request.env = unsafe { env_array(envp, envc, "envp") }?;
        Ok(())
    })
}

/// Sets all of stdin to `data[0..len]` (NULL when `len` is 0: empty stdin).
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_set_stdin(
    opts: *mut kvmsb_wasm_options,
    data: *const u8,
    len: usize,
) -> kvmsb_status {
    with_opts(opts, |o| {
        // SAFETY: NULL allowed when len is 0; otherwise len readable bytes.
        o.request.stdin = unsafe { bytes_arg(data, len, "data") }?.to_vec();
        Ok(())
    })
}

/// Limits the run to `fuel` units (about one per WASM instruction); the run
/// ends with KVMSB_WASM_OUTCOME_OUT_OF_FUEL when they are spent. Default: unlimited.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_set_fuel(
    opts: *mut kvmsb_wasm_options,
    fuel: u64,
) -> kvmsb_status {
    with_opts(opts, |o| {
        o.request.fuel = Some(fuel);
        Ok(())
    })
}

/// Limits the module's linear memory to `bytes` (a module needing more ends
/// with KVMSB_WASM_OUTCOME_ERROR). Default: the guest runtime's limit.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_set_max_memory(
    opts: *mut kvmsb_wasm_options,
    bytes: u64,
) -> kvmsb_status {
    with_opts(opts, |o| {
        o.request.max_memory_bytes = Some(bytes);
        Ok(())
    })
}

/// Streams the module's output to `on_output(user_data, stream, data, len)` as
/// it is written, on the thread running the module, instead of collecting it in
/// the result (whose stdout/stderr are then empty). NULL collects again.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_set_output(
    opts: *mut kvmsb_wasm_options,
    on_output: kvmsb_output_fn,
    user_data: *mut c_void,
) -> kvmsb_status {
    with_opts(opts, |o| {
        o.on_output = OutputCallback::new(on_output, user_data);
        Ok(())
    })
}

/// Sets the wall-clock timeout of the run: milliseconds, KVMSB_TIMEOUT_DEFAULT
/// or KVMSB_TIMEOUT_NONE (0 is KVMSB_STATUS_INVALID_ARGUMENT). When it passes
/// the VM is stopped (a module cannot be interrupted otherwise), the run returns
/// KVMSB_STATUS_TIMEOUT and the sandbox is dead afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_options_set_timeout(
    opts: *mut kvmsb_wasm_options,
    timeout_ms: u64,
) -> kvmsb_status {
    with_opts(opts, |o| {
        o.timeout = timeout_arg(timeout_ms, "timeout_ms")?;
        Ok(())
    })
}
