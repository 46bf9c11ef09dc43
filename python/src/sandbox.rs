//! The native sandbox class `_Sandbox`: one `kvmsandbox::Sandbox` shared (Arc)
//! with the worker threads that run its blocking calls.
//!
//! The class is `frozen` (no `&mut self`), so any number of Python threads may
//! call into one sandbox at once: the core's connection pool serialises nothing
//! but its own bookkeeping. Values cross as plain Python types (bytes, tuples,
//! dicts); `kvmsandbox/__init__.py` wraps them in result classes.

use crate::blocking;
use crate::errors::{to_py, SandboxClosed};
use crate::stream::EventStream;
use kvmsandbox::agent::{ExecRequest, WasmErrorKind};
use kvmsandbox::{Sandbox, SandboxKind, VmConfig, WasmOutcome, WasmRequest};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A WASM outcome as Python sees it: (kind, exit code, message, error kind).
pub type OutcomeTuple = (
    &'static str,
    Option<i32>,
    Option<String>,
    Option<&'static str>,
);

/// Flattens a [`WasmOutcome`] into an [`OutcomeTuple`].
pub fn outcome_tuple(o: WasmOutcome) -> OutcomeTuple {
    match o {
        WasmOutcome::Exit(code) => ("exit", Some(code), None, None),
        WasmOutcome::Trap(msg) => ("trap", None, Some(msg), None),
        WasmOutcome::OutOfFuel => ("out_of_fuel", None, None, None),
        WasmOutcome::Error { kind, message } => {
            ("error", None, Some(message), Some(wasm_error_kind(kind)))
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

/// Seconds from Python to a Duration, rejecting negative, NaN and infinite values.
pub fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!("{what} = {s} is not a valid number of seconds"))
    })
}

fn opt_seconds(what: &str, s: Option<f64>) -> PyResult<Option<Duration>> {
    s.map(|s| seconds(what, s)).transpose()
}

fn bytes(py: Python<'_>, data: &[u8]) -> Py<PyBytes> {
    PyBytes::new(py, data).unbind()
}

/// The native sandbox handle. Use `kvmsandbox.Sandbox` instead.
#[pyclass(module = "kvmsandbox._kvmsandbox", name = "_Sandbox", frozen)]
pub struct PySandbox {
    inner: Mutex<Option<Arc<Sandbox>>>,
}

impl PySandbox {
    fn new(sb: Sandbox) -> Self {
        PySandbox {
            inner: Mutex::new(Some(Arc::new(sb))),
        }
    }

    fn slot(&self) -> MutexGuard<'_, Option<Arc<Sandbox>>> {
        // A panic while holding this lock cannot leave the Option half-written.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live sandbox, or SandboxClosed.
    fn get(&self) -> PyResult<Arc<Sandbox>> {
        self.slot()
            .clone()
            .ok_or_else(|| SandboxClosed::new_err("the sandbox is closed"))
    }

    /// The two attach constructors: a sandbox without a VM of its own, whose
    /// agent `connect` reaches at `path`; each wait bounded by `timeout` seconds.
    fn attach(
        py: Python<'_>,
        path: PathBuf,
        timeout: f64,
        connect: fn(PathBuf, std::time::Duration) -> kvmsandbox::Result<Sandbox>,
    ) -> PyResult<Self> {
        let t = seconds("timeout", timeout)?;
        let sb = blocking::run(py, || {}, move || connect(path, t))?.map_err(|e| to_py(py, e))?;
        Ok(Self::new(sb))
    }

    /// Runs `f(sandbox)` off the GIL; Ctrl-C kills the sandbox (see `blocking`).
    fn call<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Sandbox) -> kvmsandbox::Result<T> + Send + 'static,
    {
        let sb = self.get()?;
        blocking::run(py, || self.close(), move || f(&sb))?.map_err(|e| to_py(py, e))
    }
}

#[pymethods]
impl PySandbox {
    /// Boots a micro guest (`kernel` None) or a Linux guest and waits for its agent.
    #[staticmethod]
    #[pyo3(signature = (*, kernel=None, initrd=None, cmdline=None, vcpus=1, memory_mib=None, disks=Vec::new(), start_timeout=None, micro_image=None))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        py: Python<'_>,
        kernel: Option<PathBuf>,
        initrd: Option<PathBuf>,
        cmdline: Option<String>,
        vcpus: u32,
        memory_mib: Option<u64>,
        disks: Vec<(PathBuf, bool)>,
        start_timeout: Option<f64>,
        micro_image: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut cfg = match kernel {
            Some(k) => {
                let mut c = VmConfig::linux(k);
                if let Some(i) = initrd {
                    c = c.initrd(i);
                }
                c
            }
            None => match micro_image {
                Some(img) => VmConfig::micro().micro_image(img),
                None => VmConfig::micro(),
            },
        };
        cfg = cfg.vcpus(vcpus);
        if let Some(m) = memory_mib {
            cfg = cfg.memory_mib(m);
        }
        if let Some(c) = cmdline {
            cfg = cfg.cmdline(&c);
        }
        for (path, ro) in disks {
            cfg = cfg.disk(path, ro);
        }
        if let Some(t) = start_timeout {
            cfg = cfg.start_timeout(seconds("start_timeout", t)?);
        }
        // Interrupted boots are dropped by the worker (Drop kills the VM).
        let sb =
            blocking::run(py, || {}, move || Sandbox::start(cfg))?.map_err(|e| to_py(py, e))?;
        Ok(Self::new(sb))
    }

    /// Drives a `kvmsandbox-agent --unix PATH` running as a host process (no VM, no isolation).
    #[staticmethod]
    #[pyo3(signature = (path, timeout=10.0))]
    fn attach_host_agent(py: Python<'_>, path: PathBuf, timeout: f64) -> PyResult<Self> {
        Self::attach(py, path, timeout, Sandbox::attach_host_agent)
    }

    /// Drives the agent of a VM run by another VMM through its Firecracker-style
    /// hybrid vsock socket (`CONNECT <port>`), e.g. QEMU with kvmsandbox-vhost-vsock.
    #[staticmethod]
    #[pyo3(signature = (path, timeout=10.0))]
    fn attach_vsock(py: Python<'_>, path: PathBuf, timeout: f64) -> PyResult<Self> {
        Self::attach(py, path, timeout, Sandbox::attach_vsock)
    }

    /// "micro", "linux" or "host_agent".
    #[getter]
    fn kind(&self) -> PyResult<&'static str> {
        Ok(match self.get()?.kind() {
            SandboxKind::Micro => "micro",
            SandboxKind::Linux => "linux",
            SandboxKind::HostAgent => "host_agent",
        })
    }

    /// True once close() ran.
    #[getter]
    fn closed(&self) -> bool {
        self.slot().is_none()
    }

    /// Round trip to the agent, in seconds.
    fn ping(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.call(py, |sb| sb.ping())?.as_secs_f64())
    }

    /// Sends bytes through the agent and returns what came back.
    fn echo(&self, py: Python<'_>, data: &[u8]) -> PyResult<Py<PyBytes>> {
        let data = data.to_vec();
        let back = self.call(py, move |sb| sb.echo(&data))?;
        Ok(bytes(py, &back))
    }

    /// Runs a module to the end: (outcome tuple, stdout, stderr).
    #[pyo3(signature = (module, args, env, stdin, fuel, max_memory_bytes, timeout))]
    #[allow(clippy::too_many_arguments)]
    fn run_wasm(
        &self,
        py: Python<'_>,
        module: &[u8],
        args: Vec<String>,
        env: Vec<(String, String)>,
        stdin: &[u8],
        fuel: Option<u64>,
        max_memory_bytes: Option<u64>,
        timeout: Option<f64>,
    ) -> PyResult<(OutcomeTuple, Py<PyBytes>, Py<PyBytes>)> {
        let req = wasm_request(module, args, env, stdin, fuel, max_memory_bytes);
        let t = opt_seconds("timeout", timeout)?;
        let out = self.call(py, move |sb| sb.run_wasm(&req, t))?;
        Ok((
            outcome_tuple(out.outcome),
            bytes(py, &out.stdout),
            bytes(py, &out.stderr),
        ))
    }

    /// Starts a module and returns a stream of its output events.
    #[pyo3(signature = (module, args, env, stdin, fuel, max_memory_bytes, timeout))]
    #[allow(clippy::too_many_arguments)]
    fn run_wasm_stream(
        &self,
        module: &[u8],
        args: Vec<String>,
        env: Vec<(String, String)>,
        stdin: &[u8],
        fuel: Option<u64>,
        max_memory_bytes: Option<u64>,
        timeout: Option<f64>,
    ) -> PyResult<EventStream> {
        let req = wasm_request(module, args, env, stdin, fuel, max_memory_bytes);
        let t = opt_seconds("timeout", timeout)?;
        EventStream::wasm(self.get()?, req, t)
    }

    /// Runs a command to the end: (pid, code, signal, timed_out, stdout, stderr).
    #[pyo3(signature = (argv, env, cwd, stdin, timeout))]
    #[allow(clippy::type_complexity)]
    fn exec(
        &self,
        py: Python<'_>,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<String>,
        stdin: Option<&[u8]>,
        timeout: Option<f64>,
    ) -> PyResult<(
        u32,
        Option<i32>,
        Option<i32>,
        bool,
        Py<PyBytes>,
        Py<PyBytes>,
    )> {
        let req = exec_request(argv, env, cwd, stdin, opt_seconds("timeout", timeout)?);
        let out = self.call(py, move |sb| sb.exec(&req))?;
        let st = out.status;
        Ok((
            out.pid,
            st.code,
            st.signal,
            st.timed_out,
            bytes(py, &out.stdout),
            bytes(py, &out.stderr),
        ))
    }

    /// Starts a command and returns a stream of its output events (stdin stays open unless given).
    #[pyo3(signature = (argv, env, cwd, stdin, timeout))]
    fn spawn(
        &self,
        py: Python<'_>,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<String>,
        stdin: Option<&[u8]>,
        timeout: Option<f64>,
    ) -> PyResult<EventStream> {
        let req = exec_request(argv, env, cwd, stdin, opt_seconds("timeout", timeout)?);
        let sb = self.get()?;
        let handle = self.call(py, move |sb| sb.spawn(&req))?;
        EventStream::process(sb, handle)
    }

    /// Writes a guest file; returns the bytes written.
    #[pyo3(signature = (path, data, mode=0o644))]
    fn write_file(&self, py: Python<'_>, path: String, data: &[u8], mode: u32) -> PyResult<u64> {
        let data = data.to_vec();
        self.call(py, move |sb| sb.write_file(&path, data.as_slice(), mode))
    }

    /// Reads a whole guest file.
    fn read_file(&self, py: Python<'_>, path: String) -> PyResult<Py<PyBytes>> {
        let data = self.call(py, move |sb| {
            let mut out = Vec::new();
            sb.read_file(&path, &mut out)?;
            Ok(out)
        })?;
        Ok(bytes(py, &data))
    }

    /// Reads `length` bytes at `offset` of disk number `disk`.
    fn disk_read(
        &self,
        py: Python<'_>,
        disk: u32,
        offset: u64,
        length: u32,
    ) -> PyResult<Py<PyBytes>> {
        let data = self.call(py, move |sb| sb.disk_read(disk, offset, length))?;
        Ok(bytes(py, &data))
    }

    /// Writes `data` at `offset` of disk number `disk`.
    fn disk_write(&self, py: Python<'_>, disk: u32, offset: u64, data: &[u8]) -> PyResult<()> {
        let data = data.to_vec();
        self.call(py, move |sb| sb.disk_write(disk, offset, &data))
    }

    /// Flushes disk number `disk` to the host file.
    fn disk_flush(&self, py: Python<'_>, disk: u32) -> PyResult<()> {
        self.call(py, move |sb| sb.disk_flush(disk))
    }

    /// Opens a stream to guest vsock `port`; returns a file descriptor the caller owns.
    fn connect(&self, py: Python<'_>, port: u32) -> PyResult<i32> {
        let stream = self.call(py, move |sb| sb.connect(port))?;
        Ok(stream.into_raw_fd())
    }

    /// Boot phases reached so far, in order: name -> seconds since creation started.
    fn timings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, t) in self.get()?.timings().phases() {
            if let Some(t) = t {
                d.set_item(name.replace(' ', "_"), t.as_secs_f64())?;
            }
        }
        Ok(d)
    }

    /// The guest's console output so far.
    fn console_output(&self) -> PyResult<String> {
        Ok(self.get()?.console_output())
    }

    /// Asks the agent to shut down, waits (bounded) for the VM to stop, then closes.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let r = self.call(py, |sb| sb.shutdown());
        self.close();
        r
    }

    /// Stops the VM now and closes the handle. Idempotent.
    fn kill(&self) {
        self.close();
    }

    /// Kills the VM and releases it; later calls raise SandboxClosed. Idempotent.
    fn close(&self) {
        let sb = self.slot().take();
        if let Some(sb) = sb {
            // Worker threads may still hold a clone: kill now, free when the last goes.
            sb.kill();
        }
    }
}

// `..default()`: the core's request structs grow fields; new ones keep their defaults.
#[allow(clippy::needless_update)]
fn wasm_request(
    module: &[u8],
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: &[u8],
    fuel: Option<u64>,
    max_memory_bytes: Option<u64>,
) -> WasmRequest {
    WasmRequest {
        module: module.to_vec(),
        args,
        env,
        stdin: stdin.to_vec(),
        fuel,
        max_memory_bytes,
        ..WasmRequest::default()
    }
}

#[allow(clippy::needless_update)]
fn exec_request(
    argv: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    stdin: Option<&[u8]>,
    timeout: Option<Duration>,
) -> ExecRequest {
    ExecRequest {
        argv,
        env,
        cwd,
        stdin: stdin.map(<[u8]>::to_vec),
        timeout,
        ..ExecRequest::default()
    }
}
