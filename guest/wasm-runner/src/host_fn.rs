//! Host functions: imports the embedder declares for a run (any module name
//! but WASI's), each answered by [`RunHost::host_call`].
//!
//! A declaration's types are lowered to a wasm signature (see [`HostType`]);
//! the module's import must have exactly that type, or linking fails naming
//! it. A call copies its buffers out of the module's memory (refusing any
//! that reach past it, or that total more than [`MAX_HOST_BYTES`]), charges
//! [`HOST_FUNCTION_FUEL`] plus the bytes moved, hands them to the embedder,
//! and writes what comes back. A failed call traps the module with the
//! embedder's message, so a host that says no cannot be ignored.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;
use wasmi::{FuncType, Val, ValType};

use crate::wasi::ctx::WasiCtx;

/// Most bytes of buffers one call may pass to the host, and most the host
/// may return (the protocol's per-frame bound).
pub const MAX_HOST_BYTES: usize = 256 * 1024;
/// Most parameters (or results) a declaration may have.
pub const MAX_HOST_VALUES: usize = 16;
/// Fuel a host function call costs before its bytes: a round trip to the
/// host takes the guest about as long as this many wasm instructions, and a
/// module calling in a loop must run out of fuel in reasonable time.
pub const HOST_FUNCTION_FUEL: u64 = 10_000;
/// Bytes moved per unit of fuel (as wasmi charges for `memory.copy`).
const BYTES_PER_FUEL: u64 = 64;

/// A parameter or result type of a host function.
///
/// `Bytes` as a parameter is two wasm `i32`s, pointer and length. `Bytes` as a
/// result (at most one) adds two `i32` parameters after all others, output
/// pointer and capacity, and one `i32` result before all others: the length
/// of what the host returned, of which `min(length, capacity)` bytes are
/// written (a module seeing `length > capacity` may call again with more room).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HostType {
    /// wasm `i32`.
    I32,
    /// wasm `i64`.
    I64,
    /// wasm `f32`.
    F32,
    /// wasm `f64`.
    F64,
    /// A byte buffer in the module's memory.
    Bytes,
}

/// A scalar value crossing to or from the host (floats as bit patterns).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HostValue {
    /// wasm `i32`.
    I32(i32),
    /// wasm `i64`.
    I64(i64),
    /// wasm `f32` bits.
    F32(u32),
    /// wasm `f64` bits.
    F64(u64),
}

/// One host function a module may import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostImport {
    /// Import module name.
    pub module: String,
    /// Import field name.
    pub name: String,
    /// Parameter types.
    pub params: Vec<HostType>,
    /// Result types.
    pub results: Vec<HostType>,
}

/// What a host function returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostReply {
    /// Scalar results, in declaration order.
    pub values: Vec<HostValue>,
    /// The `Bytes` result (ignored without one).
    pub bytes: Vec<u8>,
}

/// One call as the embedder sees it.
pub struct HostCallArgs<'m> {
    /// Index of the declaration in [`RunHost::host_functions`](crate::RunHost::host_functions).
    pub func: u32,
    /// Scalar arguments, in order.
    pub args: &'m [HostValue],
    /// The bytes of each `Bytes` parameter, in order.
    pub buffers: &'m [&'m [u8]],
    /// Room in the module's output buffer (0 without a `Bytes` result).
    pub out_cap: u32,
}

/// Why a host function call trapped the module (the trap's message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFault(pub String);

impl core::fmt::Display for HostFault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl wasmi_core::HostError for HostFault {}

/// A declaration that cannot be used, or an import that does not match it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// More than one `Bytes` result.
    #[error("host function {module}::{name} declares {count} Bytes results, at most 1 is allowed")]
    TwoByteResults {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// How many it declares.
        count: usize,
    },
    /// Too many parameters or results.
    #[error("host function {module}::{name} declares {count} values, at most {MAX_HOST_VALUES} are allowed")]
    TooManyValues {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// Parameters or results declared.
        count: usize,
    },
    /// The module imports it with another type.
    #[error("import {module}::{name} has type {found}, the host function has type {expected}")]
    Mismatch {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// The lowered declaration.
        expected: String,
        /// What the module imports.
        found: String,
    },
}

fn val_type(t: HostType) -> ValType {
    match t {
        HostType::I32 | HostType::Bytes => ValType::I32,
        HostType::I64 => ValType::I64,
        HostType::F32 => ValType::F32,
        HostType::F64 => ValType::F64,
    }
}

/// The wasm signature of `decl` (see [`HostType`] for how buffers lower).
pub fn lower(decl: &HostImport) -> Result<FuncType, SignatureError> {
    let count = decl.params.len().max(decl.results.len());
    if count > MAX_HOST_VALUES {
        return Err(SignatureError::TooManyValues {
            module: decl.module.clone(),
            name: decl.name.clone(),
            count,
        });
    }
    let byte_results = decl
        .results
        .iter()
        .filter(|t| **t == HostType::Bytes)
        .count();
    if byte_results > 1 {
        return Err(SignatureError::TwoByteResults {
            module: decl.module.clone(),
            name: decl.name.clone(),
            count: byte_results,
        });
    }
    let mut params = Vec::new();
    for t in &decl.params {
        params.push(val_type(*t));
        if *t == HostType::Bytes {
            params.push(ValType::I32);
        }
    }
    let mut results = Vec::new();
    if byte_results == 1 {
        params.extend([ValType::I32, ValType::I32]);
        results.push(ValType::I32);
    }
    for t in decl.results.iter().filter(|t| **t != HostType::Bytes) {
        results.push(val_type(*t));
    }
    Ok(FuncType::new(params, results))
}

/// Checks that the module imports `decl` with its lowered type.
pub fn check_import(decl: &HostImport, found: &FuncType) -> Result<(), SignatureError> {
    let expected = lower(decl)?;
    if &expected == found {
        return Ok(());
    }
    Err(SignatureError::Mismatch {
        module: decl.module.clone(),
        name: decl.name.clone(),
        expected: format!("{:?} -> {:?}", expected.params(), expected.results()),
        found: format!("{:?} -> {:?}", found.params(), found.results()),
    })
}

/// The range `ptr..ptr+len` of a memory of `size` bytes, or why not.
fn span(ptr: i32, len: i32, size: usize, what: &str) -> Result<Range<usize>, HostFault> {
    let (start, n) = (ptr as u32 as usize, len as u32 as usize);
    match start.checked_add(n) {
        Some(end) if end <= size => Ok(start..end),
        _ => Err(HostFault(format!(
            "{what} at {start} of {n} bytes is past the end of memory ({size} bytes)"
        ))),
    }
}

/// Serves one call of declaration `func` (`decl`) from `params`, filling
/// `results`. `Ok(None)`: the run's fuel ran out (the context says so).
pub fn call(
    ctx: &mut WasiCtx<'_>,
    mem: &mut [u8],
    func: u32,
    decl: &HostImport,
    params: &[Val],
    results: &mut [Val],
) -> Result<Option<()>, HostFault> {
    let who = |what: &str| format!("host function {}::{}: {what}", decl.module, decl.name);
    let mut args = Vec::new();
    let mut spans = Vec::new();
    let mut at = 0;
    let mut next = || {
        let v = params.get(at).cloned();
        at += 1;
        v
    };
    for t in &decl.params {
        let v = next();
        match (t, v) {
            (HostType::I32, Some(Val::I32(x))) => args.push(HostValue::I32(x)),
            (HostType::I64, Some(Val::I64(x))) => args.push(HostValue::I64(x)),
            (HostType::F32, Some(Val::F32(x))) => args.push(HostValue::F32(x.to_bits())),
            (HostType::F64, Some(Val::F64(x))) => args.push(HostValue::F64(x.to_bits())),
            (HostType::Bytes, Some(Val::I32(ptr))) => {
                let Some(Val::I32(len)) = next() else {
                    return Err(HostFault(who("bad parameters")));
                };
                spans.push(span(ptr, len, mem.len(), "buffer").map_err(|e| HostFault(who(&e.0)))?);
            }
            _ => return Err(HostFault(who("bad parameters"))),
        }
    }
    let total: usize = spans.iter().map(|s| s.len()).sum();
    if total > MAX_HOST_BYTES {
        return Err(HostFault(who(&format!(
            "buffers of {total} bytes exceed the limit of {MAX_HOST_BYTES}"
        ))));
    }
    let out = if decl.results.contains(&HostType::Bytes) {
        match (next(), next()) {
            (Some(Val::I32(ptr)), Some(Val::I32(cap))) => {
                Some(span(ptr, cap, mem.len(), "output buffer").map_err(|e| HostFault(who(&e.0)))?)
            }
            _ => return Err(HostFault(who("bad parameters"))),
        }
    } else {
        None
    };
    if !ctx.charge(HOST_FUNCTION_FUEL + total as u64 / BYTES_PER_FUEL) {
        return Ok(None);
    }
    // Output written before the call reaches the host before the call does.
    ctx.flush();
    let buffers: Vec<&[u8]> = spans.iter().map(|s| &mem[s.clone()]).collect();
    let out_cap = out.as_ref().map_or(0, |o| o.len() as u32);
    let call = HostCallArgs {
        func,
        args: &args,
        buffers: &buffers,
        out_cap,
    };
    let reply = ctx
        .host
        .host_call(&call)
        .map_err(|message| HostFault(who(&message)))?;
    drop(buffers);
    let scalar_types: Vec<HostType> = decl
        .results
        .iter()
        .copied()
        .filter(|t| *t != HostType::Bytes)
        .collect();
    let types: Vec<HostType> = reply.values.iter().map(|v| type_of(*v)).collect();
    if types != scalar_types {
        return Err(HostFault(who(&format!(
            "the host returned {types:?}, the declaration says {scalar_types:?}"
        ))));
    }
    let mut slots = results.iter_mut();
    if let Some(out) = out {
        let len = reply.bytes.len();
        if len > MAX_HOST_BYTES {
            return Err(HostFault(who(&format!(
                "the host returned {len} bytes, more than the limit of {MAX_HOST_BYTES}"
            ))));
        }
        let n = len.min(out.len());
        if !ctx.charge(n as u64 / BYTES_PER_FUEL) {
            return Ok(None);
        }
        mem[out.start..out.start + n].copy_from_slice(&reply.bytes[..n]);
        if let Some(slot) = slots.next() {
            *slot = Val::I32(len as i32);
        }
    }
    for (slot, v) in slots.zip(&reply.values) {
        *slot = match *v {
            HostValue::I32(x) => Val::I32(x),
            HostValue::I64(x) => Val::I64(x),
            HostValue::F32(x) => Val::from(f32::from_bits(x)),
            HostValue::F64(x) => Val::from(f64::from_bits(x)),
        };
    }
    Ok(Some(()))
}

fn type_of(v: HostValue) -> HostType {
    match v {
        HostValue::I32(_) => HostType::I32,
        HostValue::I64(_) => HostType::I64,
        HostValue::F32(_) => HostType::F32,
        HostValue::F64(_) => HostType::F64,
    }
}
