//! Host functions for C: `kvmsb_wasm_options_add_host_fn` registers a C
//! callback (with a `void *user_data`) that a module imports by module and
//! function name. The callback runs on the thread that called
//! `kvmsb_sandbox_run_wasm_opts`, sees the call through a `kvmsb_host_call`
//! valid only while it runs, and answers through the `kvmsb_host_return`
//! setters. Value types travel as `uint32_t` (`KVMSB_VAL_*`) so that a bad
//! value is an error, not undefined behaviour.

use crate::args::{invalid, null, str_arg};
use crate::boundary::{ffi_status, FfiResult};
use crate::status::kvmsb_status;
use crate::wasm_options::{kvmsb_wasm_options, with_opts};
use kvmsandbox_core::agent::{HostCall, HostReturn, HostType, Val};
use std::ffi::{c_void, CString};
use std::os::raw::c_char;
use std::sync::Arc;

/// wasm `i32` (`kvmsb_val.i32`).
pub const KVMSB_VAL_I32: u32 = 1;
/// wasm `i64` (`kvmsb_val.i64`).
pub const KVMSB_VAL_I64: u32 = 2;
/// wasm `f32` (`kvmsb_val.f32`).
pub const KVMSB_VAL_F32: u32 = 3;
/// wasm `f64` (`kvmsb_val.f64`).
pub const KVMSB_VAL_F64: u32 = 4;
/// A byte buffer: as a parameter, (pointer, length) in the module's memory,
/// copied to the callback; as a result (at most one), written into the
/// module's (output pointer, capacity), the module getting the full length.
pub const KVMSB_VAL_BYTES: u32 = 5;

/// A scalar value: `kind` is a `KVMSB_VAL_*` and only that member is meaningful.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct kvmsb_val {
    /// KVMSB_VAL_I32, _I64, _F32 or _F64.
    pub kind: u32,
    /// The value when `kind` is KVMSB_VAL_I32.
    pub i32: i32,
    /// The value when `kind` is KVMSB_VAL_I64.
    pub i64: i64,
    /// The value when `kind` is KVMSB_VAL_F32.
    pub f32: f32,
    /// The value when `kind` is KVMSB_VAL_F64.
    pub f64: f64,
}

/// Bytes borrowed for the duration of a callback.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kvmsb_buffer {
    /// The first byte (may be NULL when `len` is 0).
    pub data: *const u8,
    /// How many bytes.
    pub len: usize,
}

/// One call of a host function, valid only while the callback runs.
#[repr(C)]
#[derive(Debug)]
pub struct kvmsb_host_call {
    /// Import module name (NUL-terminated).
    pub module: *const c_char,
    /// Import function name (NUL-terminated).
    pub name: *const c_char,
    /// The scalar arguments, in declaration order.
    pub args: *const kvmsb_val,
    /// How many `args`.
    pub nargs: usize,
    /// The bytes of each KVMSB_VAL_BYTES parameter, in declaration order.
    pub buffers: *const kvmsb_buffer,
    /// How many `buffers`.
    pub nbuffers: usize,
    /// Room in the module's output buffer (0 without a bytes result): longer
    /// bytes are cut to this, and the module sees the full length.
    pub out_cap: u32,
}

/// Where a callback puts its results (opaque; use the setters).
#[derive(Debug, Default)]
pub struct kvmsb_host_return {
    ret: HostReturn,
    error: Option<String>,
}

/// A host function: return 0 after pushing the declared results, or non-zero
/// (with `kvmsb_host_return_set_error` for a message) to trap the module.
pub type kvmsb_host_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        call: *const kvmsb_host_call,
        ret: *mut kvmsb_host_return,
    ) -> i32,
>;

/// A registered C callback.
struct CCallback {
    f: unsafe extern "C" fn(*mut c_void, *const kvmsb_host_call, *mut kvmsb_host_return) -> i32,
    user_data: *mut c_void,
    module: CString,
    name: CString,
}

// SAFETY: the library never dereferences `user_data`; it only passes it back
// to the callback, on the thread running the module (documented on
// `kvmsb_wasm_options_add_host_fn`: the caller guarantees it may be used there).
unsafe impl Send for CCallback {}
// SAFETY: as above; the callback is only invoked, never shared state of ours.
unsafe impl Sync for CCallback {}

fn to_c(v: Val) -> kvmsb_val {
    match v {
        Val::I32(x) => kvmsb_val {
            kind: KVMSB_VAL_I32,
            i32: x,
            ..Default::default()
        },
        Val::I64(x) => kvmsb_val {
            kind: KVMSB_VAL_I64,
            i64: x,
            ..Default::default()
        },
        Val::F32(x) => kvmsb_val {
            kind: KVMSB_VAL_F32,
            f32: x,
            ..Default::default()
        },
        Val::F64(x) => kvmsb_val {
            kind: KVMSB_VAL_F64,
            f64: x,
            ..Default::default()
        },
    }
}

fn from_c(v: &kvmsb_val) -> FfiResult<Val> {
    Ok(match v.kind {
        KVMSB_VAL_I32 => Val::I32(v.i32),
        KVMSB_VAL_I64 => Val::I64(v.i64),
        KVMSB_VAL_F32 => Val::F32(v.f32),
        KVMSB_VAL_F64 => Val::F64(v.f64),
        k => {
            return Err(invalid(format!(
                "value kind {k} is not KVMSB_VAL_I32/I64/F32/F64"
            )))
        }
    })
}

fn host_type(t: u32) -> FfiResult<HostType> {
    Ok(match t {
        KVMSB_VAL_I32 => HostType::I32,
        KVMSB_VAL_I64 => HostType::I64,
        KVMSB_VAL_F32 => HostType::F32,
        KVMSB_VAL_F64 => HostType::F64,
        KVMSB_VAL_BYTES => HostType::Bytes,
        t => return Err(invalid(format!("type {t} is not a KVMSB_VAL_* constant"))),
    })
}

/// `types[0..n]` as host types (NULL allowed when `n` is 0).
///
/// # Safety
/// A non-NULL `types` must point to `n` readable `u32`s.
unsafe fn types_arg(types: *const u32, n: usize, name: &str) -> FfiResult<Vec<HostType>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if types.is_null() {
        return Err(null(name));
    }
    if n > 64 {
        return Err(invalid(format!("{name}: {n} types, at most 64")));
    }
    // SAFETY: non-NULL, and the caller promises n readable u32s.
    let raw = unsafe { std::slice::from_raw_parts(types, n) };
    raw.iter().map(|t| host_type(*t)).collect()
}

impl CCallback {
    fn call(&self, call: &HostCall<'_>) -> Result<HostReturn, String> {
        let args: Vec<kvmsb_val> = call.args.iter().map(|v| to_c(*v)).collect();
        let buffers: Vec<kvmsb_buffer> = call
            .buffers
            .iter()
            .map(|b| kvmsb_buffer {
                data: b.as_ptr(),
                len: b.len(),
            })
            .collect();
        let c = kvmsb_host_call {
            module: self.module.as_ptr(),
            name: self.name.as_ptr(),
            args: args.as_ptr(),
            nargs: args.len(),
            buffers: buffers.as_ptr(),
            nbuffers: buffers.len(),
            out_cap: call.out_cap,
        };
        let mut ret = kvmsb_host_return::default();
        // SAFETY: `f` is the caller's callback, given pointers valid for the
        // call (`c` and what it points to, `ret`) and the caller's user_data.
        let rc = unsafe { (self.f)(self.user_data, &c, &mut ret) };
        if let Some(message) = ret.error {
            return Err(message);
        }
        if rc != 0 {
            return Err(format!("the callback returned {rc}"));
        }
        Ok(ret.ret)
    }
}

/// Lets modules run with these options import `module`.`name`, a function
/// with parameter types `params[0..nparams]` and result types
/// `results[0..nresults]` (`KVMSB_VAL_*`; arrays may be NULL when empty),
/// answered by `callback(user_data, call, ret)`.
///
/// The callback runs on the thread that calls `kvmsb_sandbox_run_wasm_opts`,
/// never on a VM thread; while it runs, calls into the same sandbox from it
/// fail with KVMSB_STATUS_INVALID_ARGUMENT (they would wait for the run). A
/// callback that returns after the run's timeout makes the run time out.
/// Errors: KVMSB_STATUS_INVALID_ARGUMENT for an unknown type, a duplicate
/// name, WASI's module name, or more than one KVMSB_VAL_BYTES result.
///
/// Ownership: names and type arrays are copied; `user_data` must stay valid
/// (and usable from the running thread) while runs with these options may call it.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn kvmsb_wasm_options_add_host_fn(
    opts: *mut kvmsb_wasm_options,
    module: *const c_char,
    name: *const c_char,
    params: *const u32,
    nparams: usize,
    results: *const u32,
    nresults: usize,
    callback: kvmsb_host_fn,
    user_data: *mut c_void,
) -> kvmsb_status {
    with_opts(opts, |o| {
        // SAFETY: C strings or NULL (reported), per the caller's promise.
        let (m, n) = unsafe { (str_arg(module, "module")?, str_arg(name, "name")?) };
        // SAFETY: arrays of nparams/nresults u32s, or NULL when empty.
        let (p, r) = unsafe {
            (
                types_arg(params, nparams, "params")?,
                types_arg(results, nresults, "results")?,
            )
        };
        let f = callback.ok_or_else(|| null("callback"))?;
        let cb = CCallback {
            f,
            user_data,
            module: CString::new(m).map_err(|_| invalid("module contains NUL"))?,
            name: CString::new(n).map_err(|_| invalid("name contains NUL"))?,
        };
        o.request
            .host_functions
            .add_callback(m, n, &p, &r, Arc::new(move |call| cb.call(call)))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(())
    })
}

/// Runs `f` on the return handle (NULL reported as `ret`).
fn with_ret(
    ret: *mut kvmsb_host_return,
    f: impl FnOnce(&mut kvmsb_host_return) -> FfiResult,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL ret is the handle the library passed to the
        // running callback (the only place one exists).
        let r = unsafe { ret.as_mut() }.ok_or_else(|| null("ret"))?;
        f(r)
    })
}

/// Appends a scalar result (results are pushed in declaration order).
/// Errors: KVMSB_STATUS_INVALID_ARGUMENT for a kind that is not a scalar type.
#[no_mangle]
pub extern "C" fn kvmsb_host_return_push(
    ret: *mut kvmsb_host_return,
    value: kvmsb_val,
) -> kvmsb_status {
    with_ret(ret, |r| {
        r.ret.values.push(from_c(&value)?);
        Ok(())
    })
}

/// Sets the bytes result to a copy of `data[0..len]` (NULL when `len` is 0).
#[no_mangle]
pub extern "C" fn kvmsb_host_return_set_bytes(
    ret: *mut kvmsb_host_return,
    data: *const u8,
    len: usize,
) -> kvmsb_status {
    with_ret(ret, |r| {
        // SAFETY: NULL allowed when len is 0; otherwise len readable bytes.
        r.ret.bytes = unsafe { crate::args::bytes_arg(data, len, "data") }?.to_vec();
        Ok(())
    })
}

/// Makes the call fail: the module traps with `message` (UTF-8; invalid
/// bytes are replaced).
#[no_mangle]
pub extern "C" fn kvmsb_host_return_set_error(
    ret: *mut kvmsb_host_return,
    message: *const c_char,
) -> kvmsb_status {
    with_ret(ret, |r| {
        if message.is_null() {
            return Err(null("message"));
        }
        // SAFETY: non-NULL and, by the caller's promise, NUL-terminated.
        let m = unsafe { std::ffi::CStr::from_ptr(message) };
        r.error = Some(m.to_string_lossy().into_owned());
        Ok(())
    })
}
