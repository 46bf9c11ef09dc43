//! The life cycle every options handle shares (`kvmsb_exec_options`,
//! `kvmsb_wasm_options`): created with defaults, changed by setters on one
//! thread, freed once. Each handle keeps its own exported symbols; only the
//! bodies live here.

use crate::args::{handle_mut, out, write_out};
use crate::boundary::{ffi_status, ffi_value, FfiResult};
use crate::status::kvmsb_status;

/// Runs `f` on the options behind `opts` (NULL is reported as `opts`).
pub(crate) fn with_opts<T>(opts: *mut T, f: impl FnOnce(&mut T) -> FfiResult) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL opts is a live handle from its `_new`, used by
        // this thread alone while a setter runs (documented on each setter).
        let o = unsafe { handle_mut(opts, "opts") }?;
        f(o)
    })
}

/// Writes a new handle holding `T::default()` to `*opts_out`.
pub(crate) fn new_opts<T: Default>(opts_out: *mut *mut T) -> kvmsb_status {
    ffi_status(|| {
        out(opts_out, "opts_out")?;
        let o = Box::into_raw(Box::<T>::default());
        // SAFETY: checked non-NULL above.
        unsafe { write_out(opts_out, o) };
        Ok(())
    })
}

/// Frees a handle from [`new_opts`]; NULL is allowed.
pub(crate) fn free_opts<T>(opts: *mut T) {
    ffi_value((), || {
        if !opts.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw
            // in `new_opts`, not used afterwards.
            drop(unsafe { Box::from_raw(opts) });
        }
    })
}
