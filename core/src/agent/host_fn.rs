//! Host functions: functions of this process that a WASM module imports by
//! name (`(import "host" "lookup" (func ...))`), registered per run in
//! [`WasmRequest::host_functions`](super::WasmRequest).
//!
//! The guest sends each call as a `HostCall` frame on the run's connection;
//! the thread waiting for the run's end (the caller's thread, never a vCPU
//! thread) runs the callback and answers. What the guest sends is checked
//! against the declaration before any callback sees it (index, types, buffer
//! count and sizes), and what a callback returns is checked the same way: a
//! mismatch becomes a trap of the module, not an error of the host. While a
//! callback runs, calls on the same sandbox from that thread fail with
//! [`Error::Reentrant`](crate::Error::Reentrant) (see [`reentry`]).

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use kvmsandbox_proto::msg::host_fn::{MAX_HOST_BYTES, MAX_HOST_FUNCTIONS, MAX_HOST_VALUES};
use kvmsandbox_proto::msg::HostValue as WireValue;
use kvmsandbox_proto::msg::{HostCall as WireCall, HostFnDecl, HostReturn as WireReturn};

pub use kvmsandbox_proto::msg::HostType;

/// The import module name a host function may not use (WASI's).
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// A scalar argument or result of a host function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    /// wasm `i32`.
    I32(i32),
    /// wasm `i64`.
    I64(i64),
    /// wasm `f32`.
    F32(f32),
    /// wasm `f64`.
    F64(f64),
}

impl Val {
    /// Its type.
    pub fn ty(self) -> HostType {
        match self {
            Val::I32(_) => HostType::I32,
            Val::I64(_) => HostType::I64,
            Val::F32(_) => HostType::F32,
            Val::F64(_) => HostType::F64,
        }
    }

    fn from_wire(v: WireValue) -> Val {
        match v {
            WireValue::I32(x) => Val::I32(x),
            WireValue::I64(x) => Val::I64(x),
            WireValue::F32(x) => Val::F32(f32::from_bits(x)),
            WireValue::F64(x) => Val::F64(f64::from_bits(x)),
        }
    }

    fn to_wire(self) -> WireValue {
        match self {
            Val::I32(x) => WireValue::I32(x),
            Val::I64(x) => WireValue::I64(x),
            Val::F32(x) => WireValue::F32(x.to_bits()),
            Val::F64(x) => WireValue::F64(x.to_bits()),
        }
    }
}

/// One call, as a callback sees it.
#[derive(Debug)]
pub struct HostCall<'a> {
    /// Import module name.
    pub module: &'a str,
    /// Import field name.
    pub name: &'a str,
    /// The scalar arguments, in declaration order.
    pub args: &'a [Val],
    /// The bytes of each `Bytes` parameter, in declaration order (copies).
    pub buffers: &'a [Vec<u8>],
    /// Room in the module's output buffer (0 without a `Bytes` result): a
    /// longer result is cut to this, and the module sees the full length.
    pub out_cap: u32,
    /// When the run's time is up: a callback still running then makes the
    /// run fail with a timeout once it returns, so long work should check it.
    pub deadline: Option<Instant>,
}

/// What a callback returns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostReturn {
    /// The scalar results, in declaration order.
    pub values: Vec<Val>,
    /// The `Bytes` result (at most [`MAX_HOST_BYTES`]; empty without one).
    pub bytes: Vec<u8>,
}

impl HostReturn {
    /// Scalar results only.
    pub fn values(values: impl Into<Vec<Val>>) -> Self {
        HostReturn {
            values: values.into(),
            bytes: Vec::new(),
        }
    }

    /// A `Bytes` result only.
    pub fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        HostReturn {
            values: Vec::new(),
            bytes: bytes.into(),
        }
    }
}

/// A callback: `Err(message)` traps the module with that message.
pub type HostCallback = Arc<dyn Fn(&HostCall<'_>) -> Result<HostReturn, String> + Send + Sync>;

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostFnError {
    /// The same module and name twice.
    #[error("host function {module}::{name} is registered twice")]
    Duplicate {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// More functions than a run may declare.
    #[error("{count} host functions, at most {MAX_HOST_FUNCTIONS} are allowed")]
    TooMany {
        /// How many there would be.
        count: usize,
    },
    /// More parameters or results than allowed.
    #[error("host function {module}::{name} has {count} parameters or results, at most {MAX_HOST_VALUES} are allowed")]
    TooManyValues {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// The larger of the two counts.
        count: usize,
    },
    /// More than one `Bytes` result.
    #[error("host function {module}::{name} has {count} Bytes results, at most 1 is allowed")]
    TwoByteResults {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
        /// How many.
        count: usize,
    },
    /// An empty name, or WASI's module name.
    #[error("host function name {module:?}::{name:?} is not allowed (empty, or WASI's module)")]
    BadName {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
}

/// The host functions of a run: declarations with their callbacks.
#[derive(Clone, Default)]
pub struct HostFunctions {
    entries: Vec<(HostFnDecl, HostCallback)>,
}

impl fmt::Debug for HostFunctions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(d, _)| d))
            .finish()
    }
}

/// Equal when they declare the same functions with the same callbacks.
impl PartialEq for HostFunctions {
    fn eq(&self, other: &Self) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|((a, fa), (b, fb))| a == b && Arc::ptr_eq(fa, fb))
    }
}

impl Eq for HostFunctions {}

impl HostFunctions {
    /// No host functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `module`.`name` with these parameter and result types (see
    /// docs/host-functions.md for how `Bytes` appears in the wasm signature).
    pub fn add(
        &mut self,
        module: &str,
        name: &str,
        params: &[HostType],
        results: &[HostType],
        callback: impl Fn(&HostCall<'_>) -> Result<HostReturn, String> + Send + Sync + 'static,
    ) -> Result<&mut Self, HostFnError> {
        self.add_callback(module, name, params, results, Arc::new(callback))
    }

    /// [`add`](Self::add) with a shared callback.
    pub fn add_callback(
        &mut self,
        module: &str,
        name: &str,
        params: &[HostType],
        results: &[HostType],
        callback: HostCallback,
    ) -> Result<&mut Self, HostFnError> {
        let (m, n) = (module.to_string(), name.to_string());
        if module.is_empty() || name.is_empty() || module == WASI_MODULE {
            return Err(HostFnError::BadName { module: m, name: n });
        }
        if self
            .entries
            .iter()
            .any(|(d, _)| d.module == module && d.name == name)
        {
            return Err(HostFnError::Duplicate { module: m, name: n });
        }
        if self.entries.len() >= MAX_HOST_FUNCTIONS {
            return Err(HostFnError::TooMany {
                count: self.entries.len() + 1,
            });
        }
        let count = params.len().max(results.len());
        if count > MAX_HOST_VALUES {
            return Err(HostFnError::TooManyValues {
                module: m,
                name: n,
                count,
            });
        }
        let count = results.iter().filter(|t| **t == HostType::Bytes).count();
        if count > 1 {
            return Err(HostFnError::TwoByteResults {
                module: m,
                name: n,
                count,
            });
        }
        let decl = HostFnDecl {
            module: m,
            name: n,
            params: params.to_vec(),
            results: results.to_vec(),
        };
        self.entries.push((decl, callback));
        Ok(self)
    }

    /// How many are registered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The declarations, as sent to the guest.
    pub(crate) fn decls(&self) -> Vec<HostFnDecl> {
        self.entries.iter().map(|(d, _)| d.clone()).collect()
    }

    /// Answers one call from the guest: `Ok` with the return, or `Err` with
    /// the message the module traps with (a malformed call, a failed
    /// callback, or a return that does not match the declaration).
    pub(crate) fn serve(
        &self,
        call: WireCall,
        deadline: Option<Instant>,
    ) -> Result<WireReturn, String> {
        let Some((decl, callback)) = self.entries.get(call.func as usize) else {
            return Err(format!("no host function number {}", call.func));
        };
        let who = |what: String| format!("host function {}::{}: {what}", decl.module, decl.name);
        let scalar_params: Vec<HostType> = decl
            .params
            .iter()
            .copied()
            .filter(|t| *t != HostType::Bytes)
            .collect();
        let arg_types: Vec<HostType> = call.args.iter().map(|v| v.ty()).collect();
        let byte_params = decl.params.len() - scalar_params.len();
        if arg_types != scalar_params || call.buffers.len() != byte_params {
            return Err(who(format!(
                "malformed call ({arg_types:?} and {} buffers)",
                call.buffers.len()
            )));
        }
        let total: usize = call.buffers.iter().map(Vec::len).sum();
        if total > MAX_HOST_BYTES {
            return Err(who(format!(
                "buffers of {total} bytes exceed {MAX_HOST_BYTES}"
            )));
        }
        let args: Vec<Val> = call.args.into_iter().map(Val::from_wire).collect();
        let host_call = HostCall {
            module: &decl.module,
            name: &decl.name,
            args: &args,
            buffers: &call.buffers,
            out_cap: call.out_cap,
            deadline,
        };
        let ret = callback(&host_call).map_err(who)?;
        let scalar_results: Vec<HostType> = decl
            .results
            .iter()
            .copied()
            .filter(|t| *t != HostType::Bytes)
            .collect();
        let types: Vec<HostType> = ret.values.iter().map(|v| v.ty()).collect();
        if types != scalar_results {
            return Err(who(format!(
                "the callback returned {types:?}, the declaration says {scalar_results:?}"
            )));
        }
        if ret.bytes.len() > MAX_HOST_BYTES {
            return Err(who(format!(
                "the callback returned {} bytes, more than {MAX_HOST_BYTES}",
                ret.bytes.len()
            )));
        }
        let mut bytes = ret.bytes;
        if !decl.results.contains(&HostType::Bytes) {
            bytes.clear();
        }
        Ok(WireReturn {
            values: ret.values.into_iter().map(Val::to_wire).collect(),
            bytes,
        })
    }
}

/// Which sandboxes the current thread is inside a host function of: each
/// sandbox is known by a key (the address of its shared connector), pushed
/// while one of its callbacks runs.
/// Callbacks running on any thread are counted too: a sandbox that serializes
/// its calls (per-call isolation) must refuse a call a callback waits for even
/// when it comes from another thread (a binding's worker), or both wait forever.
pub(crate) mod reentry {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::Mutex;

    thread_local! {
        static INSIDE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }

    /// Callbacks running per key, on every thread.
    static ACTIVE: Mutex<Option<HashMap<usize, usize>>> = Mutex::new(None);

    fn active<T>(f: impl FnOnce(&mut HashMap<usize, usize>) -> T) -> T {
        let mut g = ACTIVE.lock().unwrap_or_else(|p| p.into_inner());
        f(g.get_or_insert_with(HashMap::new))
    }

    /// Marks the thread as inside a callback of `key` until dropped.
    pub(crate) struct Guard(usize);

    impl Guard {
        pub(crate) fn enter(key: usize) -> Guard {
            INSIDE.with(|s| s.borrow_mut().push(key));
            active(|m| *m.entry(key).or_insert(0) += 1);
            Guard(key)
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            INSIDE.with(|s| {
                let mut s = s.borrow_mut();
                if let Some(i) = s.iter().rposition(|k| *k == self.0) {
                    s.remove(i);
                }
            });
            active(|m| {
                if let Some(n) = m.get_mut(&self.0) {
                    *n -= 1;
                    if *n == 0 {
                        m.remove(&self.0);
                    }
                }
            });
        }
    }

    /// Whether a callback of `key` is running on any thread.
    pub(crate) fn active_anywhere(key: usize) -> bool {
        active(|m| m.contains_key(&key))
    }

    /// Whether a callback of `key` is running on this thread.
    pub(crate) fn inside(key: usize) -> bool {
        INSIDE.with(|s| s.borrow().contains(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_len() -> HostFunctions {
        let mut h = HostFunctions::new();
        h.add("host", "len", &[HostType::Bytes], &[HostType::I64], |c| {
            Ok(HostReturn::values([Val::I64(c.buffers[0].len() as i64)]))
        })
        .unwrap();
        h
    }

    #[test]
    fn registration_refuses_bad_declarations() {
        let mut h = echo_len();
        let ok = |_: &HostCall<'_>| Ok(HostReturn::default());
        assert!(matches!(
            h.add("host", "len", &[], &[], ok),
            Err(HostFnError::Duplicate { .. })
        ));
        assert!(matches!(
            h.add(WASI_MODULE, "fd_write", &[], &[], ok),
            Err(HostFnError::BadName { .. })
        ));
        assert!(matches!(
            h.add("host", "two", &[], &[HostType::Bytes, HostType::Bytes], ok),
            Err(HostFnError::TwoByteResults { count: 2, .. })
        ));
        assert!(matches!(
            h.add("host", "wide", &[HostType::I32; 17], &[], ok),
            Err(HostFnError::TooManyValues { count: 17, .. })
        ));
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn malformed_calls_never_reach_the_callback() {
        let h = echo_len();
        let bad = [
            WireCall {
                func: 9,
                ..WireCall::default()
            },
            WireCall {
                func: 0,
                ..WireCall::default()
            },
            WireCall {
                func: 0,
                args: vec![WireValue::I32(1)],
                buffers: vec![vec![]],
                out_cap: 0,
            },
            WireCall {
                func: 0,
                buffers: vec![vec![0; MAX_HOST_BYTES + 1]],
                ..WireCall::default()
            },
        ];
        for call in bad {
            assert!(h.serve(call, None).is_err());
        }
        let good = WireCall {
            func: 0,
            buffers: vec![vec![1, 2, 3]],
            ..WireCall::default()
        };
        assert_eq!(h.serve(good, None).unwrap().values, vec![WireValue::I64(3)]);
    }

    #[test]
    fn a_return_of_the_wrong_type_is_refused() {
        let mut h = HostFunctions::new();
        h.add("host", "f", &[], &[HostType::I32], |_| {
            Ok(HostReturn::values([Val::F64(1.0)]))
        })
        .unwrap();
        let err = h.serve(WireCall::default(), None).unwrap_err();
        assert!(err.contains("host::f") && err.contains("F64"), "{err}");
    }

    #[test]
    fn reentry_guard_marks_only_while_alive() {
        assert!(!reentry::inside(7));
        {
            let _g = reentry::Guard::enter(7);
            assert!(reentry::inside(7));
            assert!(!reentry::inside(8));
        }
        assert!(!reentry::inside(7));
    }
}
