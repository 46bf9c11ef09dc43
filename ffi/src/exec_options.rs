//! `kvmsb_exec_options`: how to run a command, built up by setters so the C
//! API can gain options without new exec functions. The struct is plain (an
//! `ExecRequest` without its argv, and the timeout) so other files can add
//! fields and setters; values are copied in, and one options handle may be
//! reused for many commands.

use crate::args::{bytes_arg, env_array, opt_str};
use crate::output::{kvmsb_output_fn, OutputCallback};
use crate::status::kvmsb_status;
use crate::timeout::{timeout_arg, CallTimeout};
use kvmsandbox_core::ExecRequest;
use std::os::raw::{c_char, c_void};

/// Opaque options for `kvmsb_sandbox_exec_opts`. Create with
/// `kvmsb_exec_options_new`, free with `kvmsb_exec_options_free`.
///
/// Thread-safety: setters need exclusive use; an exec only reads it.
#[derive(Clone, Debug, Default)]
pub struct kvmsb_exec_options {
    /// Environment, cwd and stdin (argv comes with the exec call; the timeout
    /// is `timeout` below).
    pub request: ExecRequest,
    /// How long the command may run before the agent kills it.
    pub timeout: CallTimeout,
    /// Where output goes as it is written (`None`: collected in the result).
    pub on_output: Option<OutputCallback>,
}

/// Runs `f` on the options behind `opts` (NULL is reported as `opts`).
pub(crate) fn with_opts(
    opts: *mut kvmsb_exec_options,
    f: impl FnOnce(&mut kvmsb_exec_options) -> crate::boundary::FfiResult,
) -> kvmsb_status {
    crate::options_handle::with_opts(opts, f)
}

/// Creates options with every default: an empty environment, the agent's
/// working directory, stdin from /dev/null, KVMSB_TIMEOUT_DEFAULT.
///
/// Ownership: the caller owns `*opts_out` and frees it with `kvmsb_exec_options_free`.
#[no_mangle]
pub extern "C" fn kvmsb_exec_options_new(opts_out: *mut *mut kvmsb_exec_options) -> kvmsb_status {
    crate::options_handle::new_opts(opts_out)
}

/// Frees options. NULL is allowed.
///
/// Ownership: `opts` must come from `kvmsb_exec_options_new` and not be used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_exec_options_free(opts: *mut kvmsb_exec_options) {
    crate::options_handle::free_opts(opts)
}

/// Sets the process's whole environment to `envp[0..envc]` ("KEY=VALUE"; NULL
/// when `envc` is 0). Replaces an earlier environment.
#[no_mangle]
pub extern "C" fn kvmsb_exec_options_set_env(
    opts: *mut kvmsb_exec_options,
    envp: *const *const c_char,
    envc: usize,
) -> kvmsb_status {
    with_opts(opts, |o| {
        // SAFETY: envp holds envc entries, each NULL (checked) or a C string.
        o.request.env = unsafe { env_array(envp, envc, "envp") }?;
        Ok(())
    })
}

/// Sets the working directory (UTF-8), or NULL for the agent's.
#[no_mangle]
pub extern "C" fn kvmsb_exec_options_set_cwd(
    opts: *mut kvmsb_exec_options,
    cwd: *const c_char,
) -> kvmsb_status {
    with_opts(opts, |o| {
        // SAFETY: a non-NULL cwd is a NUL-terminated string.
        o.request.cwd = unsafe { opt_str(cwd, "cwd") }?.map(str::to_owned);
        Ok(())
    })
}

/// Sets all of stdin to `data[0..len]`; `data` NULL (with `len` 0) makes stdin
/// /dev/null again.
#[no_mangle]
pub extern "C" fn kvmsb_exec_options_set_stdin(
    opts: *mut kvmsb_exec_options,
    data: *const u8,
    len: usize,
) -> kvmsb_status {
    with_opts(opts, |o| {
        o.request.stdin = if data.is_null() && len == 0 {
            None
        } else {
            // SAFETY: non-NULL (else reported) and len readable bytes by the caller's promise.
            Some(unsafe { bytes_arg(data, len, "data") }?.to_vec())
        };
        Ok(())
    })
}

/// Streams the command's output to `on_output(user_data, stream, data, len)` as
/// it is written, on the thread waiting for the command, instead of collecting
/// it in the result (whose stdout/stderr are then empty, and no output limit
/// applies). NULL `on_output` collects again. `user_data` is passed through.
#[no_mangle]
pub extern "C" fn kvmsb_exec_options_set_output(
    opts: *mut kvmsb_exec_options,
    on_output: kvmsb_output_fn,
    user_data: *mut c_void,
) -> kvmsb_status {
    with_opts(opts, |o| {
        o.on_output = OutputCallback::new(on_output, user_data);
        Ok(())
    })
}

/// Sets how long the command may run: milliseconds, KVMSB_TIMEOUT_DEFAULT or
/// KVMSB_TIMEOUT_NONE (0 is KVMSB_STATUS_INVALID_ARGUMENT). When it passes the
/// agent kills the command's process group and the exec still returns a result
/// (see `kvmsb_exec_result_timed_out`).
#[no_mangle]
pub extern "C" fn kvmsb_exec_options_set_timeout(
    opts: *mut kvmsb_exec_options,
    timeout_ms: u64,
) -> kvmsb_status {
    with_opts(opts, |o| {
        o.timeout = timeout_arg(timeout_ms, "timeout_ms")?;
        Ok(())
    })
}
