//! Host functions: functions of the host that a WASM module imports by name.
//!
//! Why a separate declaration message rather than fields of `WasmSpec`: a host
//! that declares none sends nothing new, and an agent that does not know host
//! functions answers the declaration with `Error{Unsupported}` instead of
//! running a module whose imports it would then refuse with a vaguer error.
//!
//! Conversation: `RunWasm`, `HostFunctions` (same request id), the module's
//! `Data`*/`DataEnd`; while the module runs, each call of an import is one
//! `HostCall` from the agent, answered by the host with `HostReturn` or
//! `HostError` (same request id) before the module goes on.
//!
//! Bounds (checked by both ends, decoding never pre-allocates from a count):
//! [`MAX_HOST_FUNCTIONS`] declarations, [`MAX_HOST_VALUES`] parameters or
//! results each, [`MAX_HOST_BYTES`] of buffers per call in each direction.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Reader, Writer};
use crate::error::ProtoError;

/// Most host functions one run may declare.
pub const MAX_HOST_FUNCTIONS: usize = 256;
/// Most parameters (or results) one host function may declare.
pub const MAX_HOST_VALUES: usize = 16;
/// Most bytes of buffers one call may carry to the host, and most bytes a
/// host may return (each fits one frame with room to spare).
pub const MAX_HOST_BYTES: usize = 256 * 1024;

/// A parameter or result type of a host function.
///
/// `Bytes` as a parameter is two wasm `i32`s (pointer, length) whose bytes are
/// copied to the host. `Bytes` as a result (at most one) adds two `i32`
/// parameters at the end of the wasm signature (output pointer, capacity) and
/// one `i32` result in front of the others: the length of what the host
/// returned (only `min(length, capacity)` bytes are written).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

impl HostType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            Self::I32 => 1,
            Self::I64 => 2,
            Self::F32 => 3,
            Self::F64 => 4,
            Self::Bytes => 5,
        }
    }

    /// From the wire value (`None`: not a type this version knows).
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::I32,
            2 => Self::I64,
            3 => Self::F32,
            4 => Self::F64,
            5 => Self::Bytes,
            _ => return None,
        })
    }
}

/// One host function a module may import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFnDecl {
    /// Import module name (e.g. `"host"`).
    pub module: String,
    /// Import field name (e.g. `"lookup"`).
    pub name: String,
    /// Parameter types, in order.
    pub params: Vec<HostType>,
    /// Result types, in order.
    pub results: Vec<HostType>,
}

/// A scalar argument or result. Floats travel as their bit patterns, so a NaN
/// arrives as it left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HostValue {
    /// wasm `i32`.
    I32(i32),
    /// wasm `i64`.
    I64(i64),
    /// wasm `f32`, as bits.
    F32(u32),
    /// wasm `f64`, as bits.
    F64(u64),
}

impl HostValue {
    /// The type of this value.
    pub fn ty(self) -> HostType {
        match self {
            Self::I32(_) => HostType::I32,
            Self::I64(_) => HostType::I64,
            Self::F32(_) => HostType::F32,
            Self::F64(_) => HostType::F64,
        }
    }
}

/// A module called host function `func` (an index into the run's declarations).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCall {
    /// Index of the declaration in `HostFunctions`.
    pub func: u32,
    /// The scalar arguments, in declaration order (buffers left out).
    pub args: Vec<HostValue>,
    /// The bytes of each `Bytes` parameter, in declaration order.
    pub buffers: Vec<Vec<u8>>,
    /// Capacity of the module's output buffer (0 without a `Bytes` result).
    pub out_cap: u32,
}

/// The host's answer to a [`HostCall`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostReturn {
    /// The scalar results, in declaration order.
    pub values: Vec<HostValue>,
    /// The `Bytes` result (empty without one).
    pub bytes: Vec<u8>,
}

impl Writer<'_> {
    fn host_types(&mut self, v: &[HostType]) {
        self.len(v.len());
        for t in v {
            self.u8(t.to_u8());
        }
    }

    fn host_values(&mut self, v: &[HostValue]) {
        self.len(v.len());
        for value in v {
            self.u8(value.ty().to_u8());
            match *value {
                HostValue::I32(x) => self.i32(x),
                HostValue::I64(x) => self.u64(x as u64),
                HostValue::F32(x) => self.u32(x),
                HostValue::F64(x) => self.u64(x),
            }
        }
    }

    pub(super) fn host_decls(&mut self, v: &[HostFnDecl]) {
        self.len(v.len());
        for d in v {
            self.str(&d.module);
            self.str(&d.name);
            self.host_types(&d.params);
            self.host_types(&d.results);
        }
    }

    pub(super) fn host_call(&mut self, c: &HostCall) {
        self.u32(c.func);
        self.host_values(&c.args);
        self.len(c.buffers.len());
        for b in &c.buffers {
            self.bytes(b);
        }
        self.u32(c.out_cap);
    }

    pub(super) fn host_return(&mut self, r: &HostReturn) {
        self.host_values(&r.values);
        self.bytes(&r.bytes);
    }
}

impl Reader<'_> {
    fn host_type(&mut self, field: &'static str) -> Result<HostType, ProtoError> {
        let v = self.u8(field)?;
        HostType::from_u8(v).ok_or(ProtoError::InvalidValue {
            field,
            value: u64::from(v),
        })
    }

    fn host_types(&mut self, field: &'static str) -> Result<Vec<HostType>, ProtoError> {
        let n = self.count(field, 1)?;
        (0..n).map(|_| self.host_type(field)).collect()
    }

    fn host_values(&mut self, field: &'static str) -> Result<Vec<HostValue>, ProtoError> {
        let n = self.count(field, 5)?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(match self.host_type(field)? {
                HostType::I32 => HostValue::I32(self.i32(field)?),
                HostType::I64 => HostValue::I64(self.u64(field)? as i64),
                HostType::F32 => HostValue::F32(self.u32(field)?),
                HostType::F64 => HostValue::F64(self.u64(field)?),
                HostType::Bytes => {
                    return Err(ProtoError::InvalidValue {
                        field,
                        value: u64::from(HostType::Bytes.to_u8()),
                    })
                }
            });
        }
        Ok(out)
    }

    pub(super) fn host_decls(&mut self) -> Result<Vec<HostFnDecl>, ProtoError> {
        let n = self.count("host_functions", 16)?;
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(HostFnDecl {
                module: self.string("host_functions.module")?,
                name: self.string("host_functions.name")?,
                params: self.host_types("host_functions.params")?,
                results: self.host_types("host_functions.results")?,
            });
        }
        Ok(out)
    }

    pub(super) fn host_call(&mut self) -> Result<HostCall, ProtoError> {
        let func = self.u32("host_call.func")?;
        let args = self.host_values("host_call.args")?;
        let n = self.count("host_call.buffers", 4)?;
        let mut buffers = Vec::new();
        for _ in 0..n {
            buffers.push(self.bytes("host_call.buffers")?);
        }
        Ok(HostCall {
            func,
            args,
            buffers,
            out_cap: self.u32("host_call.out_cap")?,
        })
    }

    pub(super) fn host_return(&mut self) -> Result<HostReturn, ProtoError> {
        Ok(HostReturn {
            values: self.host_values("host_return.values")?,
            bytes: self.bytes("host_return.bytes")?,
        })
    }
}
