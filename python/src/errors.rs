//! The exception hierarchy and the mapping from the core's errors to it.
//!
//! The class of each error kind (name, bases, docstring) comes from the core's
//! `ErrorKind` table, the same table that gives the C status, so both faces
//! raise the same kind for the same failure. Classes with a builtin base
//! (`TimeoutError`, `FileNotFoundError`...) need two bases, which
//! `create_exception!` cannot express, so they are built with `type()` when the
//! module loads. The message is always the core error's own text.

use kvmsandbox::agent::{AgentError as CoreAgentError, ErrorCode};
use kvmsandbox::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::collections::HashMap;

create_exception!(
    kvmsandbox,
    KvmSandboxError,
    PyException,
    "Base class of every kvmsandbox error."
);
create_exception!(
    kvmsandbox,
    WasmTrap,
    KvmSandboxError,
    "The WASM module trapped."
);
create_exception!(
    kvmsandbox,
    OutOfFuel,
    KvmSandboxError,
    "The WASM module used up its fuel."
);
create_exception!(
    kvmsandbox,
    WasmError,
    KvmSandboxError,
    "The WASM module could not run (invalid, missing import, too much memory)."
);
create_exception!(
    kvmsandbox,
    CommandError,
    KvmSandboxError,
    "A command exited with a non-zero code (raised by check_returncode())."
);
/// The class of each kind, indexed by `ErrorKind as usize`.
static KIND_CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

/// The module's own base class name in the table.
const BASE: &str = "KvmSandboxError";

/// Whether `name` is one of this module's classes (else a Python builtin).
fn is_ours(name: &str) -> bool {
    name == BASE || ErrorKind::ALL.iter().any(|k| k.info().python_class == name)
}

/// Builds every kind's class from the table, parents before children.
fn build_classes(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let builtins = PyModule::import(py, "builtins")?;
    let make_type = builtins.getattr("type")?;
    let mut made: HashMap<&'static str, Bound<'_, PyType>> = HashMap::new();
    made.insert(BASE, py.get_type::<KvmSandboxError>());
    let mut pending: Vec<ErrorKind> = ErrorKind::ALL.to_vec();
    while !pending.is_empty() {
        let before = pending.len();
        let mut left = Vec::new();
        for kind in pending {
            let info = kind.info();
            if info
                .python_bases
                .iter()
                .any(|b| is_ours(b) && !made.contains_key(b))
            {
                left.push(kind);
                continue;
            }
            let mut bases = Vec::new();
            for b in info.python_bases {
                bases.push(match made.get(b) {
                    Some(t) => t.clone().into_any(),
                    None => builtins.getattr(*b)?,
                });
            }
            let dict = PyDict::new(py);
            dict.set_item("__module__", "kvmsandbox")?;
            dict.set_item("__doc__", info.summary)?;
            let class = make_type
                .call1((info.python_class, PyTuple::new(py, bases)?, dict))?
                .cast_into::<PyType>()?;
            made.insert(info.python_class, class);
        }
        if left.len() == before {
            return Err(PyRuntimeError::new_err(format!(
                "exception bases form a cycle or name an unknown class: {left:?}"
            )));
        }
        pending = left;
    }
    ErrorKind::ALL
        .iter()
        .map(|k| match made.get(k.info().python_class) {
            Some(t) => Ok(t.clone().unbind()),
            None => Err(PyRuntimeError::new_err(format!("no class for {k:?}"))),
        })
        .collect()
}

/// The exception class of `kind`.
pub fn class_of(py: Python<'_>, kind: ErrorKind) -> PyResult<Bound<'_, PyType>> {
    let classes = KIND_CLASSES.get_or_try_init(py, || build_classes(py))?;
    match classes.get(kind as usize) {
        Some(c) => Ok(c.bind(py).clone()),
        None => Err(PyRuntimeError::new_err(format!("no class for {kind:?}"))),
    }
}

/// An exception of `kind` with message `msg` (the base class if the table is broken).
pub fn kind_err(kind: ErrorKind, msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| match class_of(py, kind) {
        Ok(class) => PyErr::from_type(class, msg),
        Err(e) => e,
    })
}

/// `SandboxClosed` (the `Stopped` kind's class), raised by the bindings themselves.
pub struct SandboxClosed;

impl SandboxClosed {
    /// A SandboxClosed exception with message `msg`.
    pub fn new_err(msg: impl Into<String>) -> PyErr {
        kind_err(ErrorKind::Stopped, msg)
    }
}

/// Test aid: `(kind, C status, class)` for every kind, so pytest can check the
/// Python face against the table the C face uses.
#[pyfunction]
fn _error_kinds(py: Python<'_>) -> PyResult<Vec<(&'static str, &'static str, Bound<'_, PyType>)>> {
    ErrorKind::ALL
        .iter()
        .map(|k| Ok((k.name(), k.info().c_status, class_of(py, *k)?)))
        .collect()
}

/// Adds every exception class to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("KvmSandboxError", py.get_type::<KvmSandboxError>())?;
    for kind in ErrorKind::ALL {
        m.add(kind.info().python_class, class_of(py, kind)?)?;
    }
    m.add("WasmTrap", py.get_type::<WasmTrap>())?;
    m.add("OutOfFuel", py.get_type::<OutOfFuel>())?;
    m.add("WasmError", py.get_type::<WasmError>())?;
    m.add("CommandError", py.get_type::<CommandError>())?;
    m.add_function(wrap_pyfunction!(_error_kinds, m)?)?;
    Ok(())
}

/// The stable name of an agent error code (the `code` attribute of a GuestError).
pub fn code_name(code: ErrorCode) -> String {
    match code {
        ErrorCode::NotFound => "not_found".into(),
        ErrorCode::PermissionDenied => "permission_denied".into(),
        ErrorCode::Unsupported => "unsupported".into(),
        ErrorCode::Invalid => "invalid".into(),
        ErrorCode::Io => "io".into(),
        ErrorCode::Timeout => "timeout".into(),
        ErrorCode::Internal => "internal".into(),
        ErrorCode::AlreadyExists => "already_exists".into(),
        ErrorCode::Other(n) => format!("other_{n}"),
    }
}

/// Maps an agent error (from a streaming process) to its exception.
pub fn agent_to_py(py: Python<'_>, e: CoreAgentError) -> PyErr {
    to_py(py, Error::Agent(e))
}

/// Maps a core error to its kind's exception class, keeping the core's message;
/// an error the agent reported also carries its code as `code`.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let err = kind_err(e.kind(), e.to_string());
    if let Error::Agent(a) = &e {
        if let Some(code) = a.remote_code() {
            // Best effort: the attribute is a convenience, the message says it all.
            let _ = err.value(py).setattr("code", code_name(code));
        }
    }
    err
}
