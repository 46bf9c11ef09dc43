//! Prepared WASM templates: `kvmsb_sandbox_prepare_wasm` has the guest validate
//! and compile a module once and snapshots the sandbox there;
//! `kvmsb_wasm_template_run` restores that snapshot and runs the module's
//! `_start` with one call's inputs, taken from the same `kvmsb_wasm_options`
//! handle `kvmsb_sandbox_run_wasm_opts` uses (so both calls grow together).

use crate::args::{bytes_arg, handle, null, out, write_out};
use crate::boundary::{ffi_status, ffi_value};
use crate::sandbox::kvmsb_sandbox;
use crate::status::kvmsb_status;
use crate::wasm::{hand_out, kvmsb_wasm_result};
use crate::wasm_options::kvmsb_wasm_options;
use kvmsandbox_core::{WasmCall, WasmTemplate};

/// An opaque prepared module (and the sandbox snapshot taken right after it
/// was prepared). Free with `kvmsb_wasm_template_free`. Immutable: any thread
/// may run it.
pub struct kvmsb_wasm_template {
    pub(crate) inner: WasmTemplate,
}

/// Sends the WASM module `module[0..module_len]` to the sandbox's guest (micro
/// guest only) to be validated and compiled once, snapshots the sandbox, and
/// writes the template to `*template_out`. Of `opts` (NULL = defaults) only the
/// memory limit applies here: it caps every run's linear memory. A later
/// prepare in the same sandbox does not invalidate this template (its runs
/// restore its own snapshot).
///
/// Errors: KVMSB_STATUS_INVALID_ARGUMENT for a module that cannot run (invalid,
/// an import the runtime lacks, no `_start`; the message says which);
/// KVMSB_STATUS_BUSY when a stream or another call is open (no snapshot then);
/// KVMSB_STATUS_UNSUPPORTED on a Linux guest or host agent.
///
/// Ownership: the module is copied; the caller owns `*template_out` and frees
/// it with `kvmsb_wasm_template_free`. Thread-safety: do not run other calls on
/// the sandbox meanwhile (the snapshot needs it idle).
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_prepare_wasm(
    sandbox: *const kvmsb_sandbox,
    module: *const u8,
    module_len: usize,
    opts: *const kvmsb_wasm_options,
    template_out: *mut *mut kvmsb_wasm_template,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(template_out, "template_out")?;
        if module.is_null() {
            return Err(null("module"));
        }
        // SAFETY: non-NULL; the caller promises module_len readable bytes.
        let module = unsafe { bytes_arg(module, module_len, "module") }?;
        // SAFETY: a non-NULL opts is a live handle nobody changes during the call.
        let max_memory = unsafe { opts.as_ref() }.and_then(|o| o.request.max_memory_bytes);
        let t = sb.inner.prepare_wasm(module, max_memory)?;
        let t = Box::into_raw(Box::new(kvmsb_wasm_template { inner: t }));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(template_out, t) };
        Ok(())
    })
}

/// Runs `template` in `sandbox` (the one that prepared it, or a sandbox of the
/// same shape, e.g. one forked from it): restores the template's snapshot, then
/// runs `_start` with `opts`' arguments, environment, stdin, fuel and timeout
/// (NULL = defaults; the module and memory limit are the template's). Results
/// read like `kvmsb_sandbox_run_wasm_opts`'. A wall-clock timeout restores the
/// template instead of stopping the VM: KVMSB_STATUS_TIMEOUT, and the sandbox
/// stays usable.
///
/// Ownership: the caller owns `*result_out` and frees it with
/// `kvmsb_wasm_result_free`. Thread-safety: one run at a time per sandbox (a
/// restore while another call runs fails with KVMSB_STATUS_BUSY).
#[no_mangle]
pub extern "C" fn kvmsb_wasm_template_run(
    template: *const kvmsb_wasm_template,
    sandbox: *const kvmsb_sandbox,
    opts: *const kvmsb_wasm_options,
    result_out: *mut *mut kvmsb_wasm_result,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL template is a live handle from this library.
        let t = unsafe { handle(template, "template") }?;
        // SAFETY: as above.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(result_out, "result_out")?;
        // SAFETY: a non-NULL opts is a live handle nobody changes during the call.
        let opts = unsafe { opts.as_ref() };
        let defaults = kvmsb_wasm_options::default();
        let opts = opts.unwrap_or(&defaults);
        let call = WasmCall::from(&opts.request);
        let timeout = opts.timeout.or(kvmsandbox_core::timeouts::RUN_WASM);
        let result = t.inner.run(&sb.inner, &call, timeout)?;
        // SAFETY: checked non-NULL above.
        unsafe { hand_out(result, result_out) };
        Ok(())
    })
}

/// Frees a template (its snapshot goes when nothing else uses it). NULL is allowed.
///
/// Ownership: `template` must come from `kvmsb_sandbox_prepare_wasm` and not be
/// used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_wasm_template_free(template: *mut kvmsb_wasm_template) {
    ffi_value((), || {
        if !template.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw above.
            drop(unsafe { Box::from_raw(template) });
        }
    })
}
