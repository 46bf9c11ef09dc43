//! Typed results crossing the native boundary: small frozen classes with named
//! fields instead of positional tuples, so a field added on the Rust side
//! cannot shift another and the stubs (checked by stubtest) name every field.
//! `kvmsandbox/__init__.py` turns them into the public result classes.

use kvmsandbox::agent::{AgentLimits, ExecOutput, ExitStatus, WasmErrorKind};
use kvmsandbox::{WasmOutcome, WasmOutput};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// How a module run ended.
#[pyclass(
    module = "kvmsandbox._kvmsandbox",
    name = "_WasmOutcome",
    frozen,
    get_all
)]
pub struct PyWasmOutcome {
    /// "exit", "trap", "out_of_fuel" or "error".
    kind: String,
    exit_code: Option<i32>,
    message: Option<String>,
    /// For "error": invalid_module, memory_limit, missing_import, no_entry_point, other.
    error_kind: Option<String>,
}

impl From<WasmOutcome> for PyWasmOutcome {
    fn from(o: WasmOutcome) -> Self {
        let (kind, exit_code, message, error_kind) = match o {
            WasmOutcome::Exit(code) => ("exit", Some(code), None, None),
            WasmOutcome::Trap(msg) => ("trap", None, Some(msg), None),
            WasmOutcome::OutOfFuel => ("out_of_fuel", None, None, None),
            WasmOutcome::Error { kind, message } => {
                ("error", None, Some(message), Some(wasm_error_kind(kind)))
            }
            // Outcomes newer than these bindings read as errors naming them.
            other => ("error", None, Some(format!("{other:?}")), Some("other")),
        };
        PyWasmOutcome {
            kind: kind.into(),
            exit_code,
            message,
            error_kind: error_kind.map(str::to_owned),
        }
    }
}

fn wasm_error_kind(k: WasmErrorKind) -> &'static str {
    match k {
        WasmErrorKind::InvalidModule => "invalid_module",
        WasmErrorKind::MemoryLimit => "memory_limit",
        WasmErrorKind::MissingImport => "missing_import",
        WasmErrorKind::NoEntryPoint => "no_entry_point",
        _ => "other",
    }
}

/// How a command ended.
#[pyclass(
    module = "kvmsandbox._kvmsandbox",
    name = "_ExitStatus",
    frozen,
    get_all
)]
pub struct PyExitStatus {
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
}

impl From<ExitStatus> for PyExitStatus {
    fn from(s: ExitStatus) -> Self {
        PyExitStatus {
            exit_code: s.code,
            signal: s.signal,
            timed_out: s.timed_out,
        }
    }
}

/// A finished command with its output.
#[pyclass(
    module = "kvmsandbox._kvmsandbox",
    name = "_ExecOutput",
    frozen,
    get_all
)]
pub struct PyExecOutput {
    pid: u32,
    status: Py<PyExitStatus>,
    stdout: Py<PyBytes>,
    stderr: Py<PyBytes>,
}

impl PyExecOutput {
    pub fn new(py: Python<'_>, o: ExecOutput) -> PyResult<Self> {
        Ok(PyExecOutput {
            pid: o.pid,
            status: Py::new(py, PyExitStatus::from(o.status))?,
            stdout: PyBytes::new(py, &o.stdout).unbind(),
            stderr: PyBytes::new(py, &o.stderr).unbind(),
        })
    }
}

/// A finished module run with its output.
#[pyclass(
    module = "kvmsandbox._kvmsandbox",
    name = "_WasmOutput",
    frozen,
    get_all
)]
pub struct PyWasmOutput {
    outcome: Py<PyWasmOutcome>,
    stdout: Py<PyBytes>,
    stderr: Py<PyBytes>,
    /// The writable preopened directories after the run: (guest path,
    /// [(relative path, bytes)]).
    files: crate::wasm_dirs::DirsOut,
}

impl PyWasmOutput {
    pub fn new(py: Python<'_>, o: WasmOutput) -> PyResult<Self> {
        Ok(PyWasmOutput {
            outcome: Py::new(py, PyWasmOutcome::from(o.outcome))?,
            stdout: PyBytes::new(py, &o.stdout).unbind(),
            stderr: PyBytes::new(py, &o.stderr).unbind(),
            files: crate::wasm_dirs::files_of(py, &o.dirs),
        })
    }
}

/// The agent limits in force.
#[pyclass(
    module = "kvmsandbox._kvmsandbox",
    name = "_AgentLimits",
    frozen,
    get_all
)]
pub struct PyAgentLimits {
    max_output: u64,
    /// Seconds.
    default_deadline: f64,
    max_stale_frames: u32,
}

impl From<AgentLimits> for PyAgentLimits {
    fn from(l: AgentLimits) -> Self {
        PyAgentLimits {
            max_output: l.max_output,
            default_deadline: l.default_deadline.as_secs_f64(),
            max_stale_frames: l.max_stale_frames,
        }
    }
}

/// Registers the classes (the package reads them; users never build them).
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyWasmOutcome>()?;
    m.add_class::<PyExitStatus>()?;
    m.add_class::<PyExecOutput>()?;
    m.add_class::<PyWasmOutput>()?;
    m.add_class::<PyAgentLimits>()?;
    Ok(())
}
