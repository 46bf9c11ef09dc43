//! The native sandbox class `_Sandbox`: one `kvmsandbox::Sandbox` shared (Arc)
//! with the worker threads that run its blocking calls.
//!
//! The class is `frozen` (no `&mut self`), so any number of Python threads may
//! call into one sandbox at once: the core's connection pool serialises nothing
//! but its own bookkeeping. Values cross as plain Python types (bytes, tuples,
//! dicts); `kvmsandbox/__init__.py` wraps them in result classes.

use crate::blocking;
use crate::errors::{to_py, KvmSandboxError, SandboxClosed};
use crate::results::{PyAgentLimits, PyExecOutput, PyWasmOutput};
use crate::snapshot::PySnapshot;
use crate::stream::EventStream;
use crate::wasm_dirs;
use kvmsandbox::agent::{AgentLimits, ExecRequest};
use kvmsandbox::config::SeccompPolicy;
use kvmsandbox::{Sandbox, SandboxKind, VmConfig, WasmCall, WasmRequest, WasmTemplate};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::os::fd::IntoRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Seconds from Python to a Duration, rejecting negative, NaN and infinite values.
pub fn seconds(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        PyValueError::new_err(format!("{what} = {s} is not a valid number of seconds"))
    })
}

pub fn opt_seconds(what: &str, s: Option<f64>) -> PyResult<Option<Duration>> {
    s.map(|s| seconds(what, s)).transpose()
}

/// Agent limits from Python: (max_output, default_deadline seconds,
/// max_stale_frames), each None for the core's default.
type LimitsArg = (Option<u64>, Option<f64>, Option<u32>);

fn agent_limits(l: Option<LimitsArg>) -> PyResult<AgentLimits> {
    let mut limits = AgentLimits::default();
    let Some((max_output, deadline, stale)) = l else {
        return Ok(limits);
    };
    if let Some(m) = max_output {
        limits.max_output = m;
    }
    if let Some(d) = opt_seconds("default_deadline", deadline)? {
        limits.default_deadline = d;
    }
    if let Some(n) = stale {
        limits.max_stale_frames = n;
    }
    Ok(limits)
}

pub fn seccomp_policy(name: &str) -> PyResult<SeccompPolicy> {
    Ok(match name {
        "kill" => SeccompPolicy::Kill,
        "trap" => SeccompPolicy::Trap,
        "log" => SeccompPolicy::Log,
        "disabled" => SeccompPolicy::Disabled,
        other => {
            return Err(PyValueError::new_err(format!(
                "seccomp = {other:?}: expected \"kill\", \"trap\", \"log\" or \"disabled\""
            )))
        }
    })
}

/// A per-call answer timeout: None keeps the sandbox's (see docs/timeouts.md).
pub(crate) fn answer_timeout(s: Option<f64>) -> PyResult<Option<Duration>> {
    opt_seconds("timeout", s)
}

fn bytes(py: Python<'_>, data: &[u8]) -> Py<PyBytes> {
    PyBytes::new(py, data).unbind()
}

/// What `start` boots, kept so a pool can build the same config again.
#[derive(Clone, Debug)]
pub struct StartArgs {
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub cmdline: Option<String>,
    pub vcpus: u32,
    pub memory_mib: Option<u64>,
    pub disks: Vec<(PathBuf, bool)>,
    pub start_timeout: Option<Duration>,
    pub micro_image: Option<PathBuf>,
    pub seccomp: Option<SeccompPolicy>,
}

impl StartArgs {
    /// The VM config these arguments describe.
    pub fn config(&self) -> VmConfig {
        let mut cfg = match &self.kernel {
            Some(k) => {
                let mut c = VmConfig::linux(k);
                if let Some(i) = &self.initrd {
                    c = c.initrd(i);
                }
                c
            }
            None => match &self.micro_image {
                Some(img) => VmConfig::micro().micro_image(img),
                None => VmConfig::micro(),
            },
        };
        cfg = cfg.vcpus(self.vcpus);
        if let Some(m) = self.memory_mib {
            cfg = cfg.memory_mib(m);
        }
        if let Some(c) = &self.cmdline {
            cfg = cfg.cmdline(c);
        }
        for (path, ro) in &self.disks {
            cfg = cfg.disk(path, *ro);
        }
        if let Some(t) = self.start_timeout {
            cfg = cfg.start_timeout(t);
        }
        if let Some(p) = self.seccomp {
            cfg = cfg.seccomp(p);
        }
        cfg
    }
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

    /// A handle on a sandbox someone else also holds (a pool's lease).
    pub fn from_shared(sb: Arc<Sandbox>) -> Self {
        PySandbox {
            inner: Mutex::new(Some(sb)),
        }
    }

    /// Gives up this handle without stopping the sandbox (it goes back to its
    /// pool); later calls raise SandboxClosed.
    pub fn detach(&self) {
        drop(self.slot().take());
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
        timeout: Option<f64>,
        limits: Option<LimitsArg>,
        connect: fn(PathBuf, std::time::Duration) -> kvmsandbox::Result<Sandbox>,
    ) -> PyResult<Self> {
        let t = opt_seconds("timeout", timeout)?.unwrap_or(kvmsandbox::timeouts::ATTACH);
        let limits = agent_limits(limits)?;
        let mut sb =
            blocking::run(py, || {}, move || connect(path, t))?.map_err(|e| to_py(py, e))?;
        sb.set_agent_limits(limits);
        Ok(Self::new(sb))
    }

    /// Runs `f(sandbox)` off the GIL; Ctrl-C kills the sandbox (see `blocking`).
    pub(crate) fn call<T, F>(&self, py: Python<'_>, f: F) -> PyResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Sandbox) -> kvmsandbox::Result<T> + Send + 'static,
    {
        let sb = self.get()?;
        // From a host function of this sandbox: the worker thread below would
        // hide that from the core's check.
        if sb.in_host_function() {
            return Err(to_py(py, kvmsandbox::Error::Reentrant { op: "call" }));
        }
        blocking::run(py, || self.close(), move || f(&sb))?.map_err(|e| to_py(py, e))
    }
}

#[pymethods]
impl PySandbox {
    /// Boots a micro guest (`kernel` None) or a Linux guest and waits for its agent.
    #[staticmethod]
    #[pyo3(signature = (*, kernel=None, initrd=None, cmdline=None, vcpus=1, memory_mib=None, disks=Vec::new(), start_timeout=None, micro_image=None, seccomp=None, vsock=None, limits=None))]
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
        seccomp: Option<String>,
        vsock: Option<PathBuf>,
        limits: Option<LimitsArg>,
    ) -> PyResult<Self> {
        let args = StartArgs {
            kernel,
            initrd,
            cmdline,
            vcpus,
            memory_mib,
            disks,
            start_timeout: opt_seconds("start_timeout", start_timeout)?,
            micro_image,
            seccomp: seccomp.as_deref().map(seccomp_policy).transpose()?,
        };
        let mut cfg = args.config();
        if let Some(v) = vsock {
            cfg = cfg.vsock(v);
        }
        let limits = agent_limits(limits)?;
        // Interrupted boots are dropped by the worker (Drop kills the VM).
        let mut sb =
            blocking::run(py, || {}, move || Sandbox::start(cfg))?.map_err(|e| to_py(py, e))?;
        sb.set_agent_limits(limits);
        Ok(Self::new(sb))
    }

    /// Drives a `kvmsandbox-agent --unix PATH` running as a host process (no VM, no isolation).
    #[staticmethod]
    #[pyo3(signature = (path, timeout=None, limits=None))]
    fn attach_host_agent(
        py: Python<'_>,
        path: PathBuf,
        timeout: Option<f64>,
        limits: Option<LimitsArg>,
    ) -> PyResult<Self> {
        Self::attach(py, path, timeout, limits, Sandbox::attach_host_agent)
    }

    /// Drives the agent of a VM run by another VMM through its Firecracker-style
    /// hybrid vsock socket (`CONNECT <port>`), e.g. QEMU with kvmsandbox-vhost-vsock.
    #[staticmethod]
    #[pyo3(signature = (path, timeout=None, limits=None))]
    fn attach_vsock(
        py: Python<'_>,
        path: PathBuf,
        timeout: Option<f64>,
        limits: Option<LimitsArg>,
    ) -> PyResult<Self> {
        Self::attach(py, path, timeout, limits, Sandbox::attach_vsock)
    }

    /// "micro", "linux" or "host_agent".
    #[getter]
    fn kind(&self) -> PyResult<&'static str> {
        Ok(match self.get()?.kind() {
            SandboxKind::Micro => "micro",
            SandboxKind::Linux => "linux",
            SandboxKind::HostAgent => "host_agent",
            other => {
                return Err(KvmSandboxError::new_err(format!(
                    "a sandbox kind these bindings do not know: {other:?}"
                )))
            }
        })
    }

    /// The hybrid vsock socket of the sandbox's VM (None for a host agent).
    #[getter]
    fn vsock_path(&self) -> PyResult<Option<String>> {
        Ok(self
            .get()?
            .vsock_path()
            .map(|p| p.to_string_lossy().into_owned()))
    }

    /// The agent limits in force.
    #[getter]
    fn limits(&self) -> PyResult<PyAgentLimits> {
        Ok(self.get()?.agent_limits().into())
    }

    /// True once close() ran.
    #[getter]
    fn closed(&self) -> bool {
        self.slot().is_none()
    }

    /// Round trip to the agent, in seconds.
    #[pyo3(signature = (timeout=None))]
    fn ping(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<f64> {
        let t = answer_timeout(timeout)?;
        Ok(self.call(py, move |sb| sb.within(t).ping())?.as_secs_f64())
    }

    /// Sends bytes through the agent and returns what came back.
    #[pyo3(signature = (data, timeout=None))]
    fn echo(&self, py: Python<'_>, data: &[u8], timeout: Option<f64>) -> PyResult<Py<PyBytes>> {
        let data = data.to_vec();
        let t = answer_timeout(timeout)?;
        let back = self.call(py, move |sb| sb.within(t).echo(&data))?;
        Ok(bytes(py, &back))
    }

    /// Runs a module to the end (with the writable directories' files). `dirs`: see `wasm_dirs::DirTuple`;
    /// `write_back`: (guest path, host directory) to write results into.
    #[pyo3(signature = (module, args, env, stdin, fuel, max_memory_bytes, timeout, dirs=Vec::new(), fs_max_bytes=None, fs_max_inodes=None, write_back=Vec::new(), host_functions=None))]
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
        dirs: Vec<wasm_dirs::DirTuple>,
        fs_max_bytes: Option<u64>,
        fs_max_inodes: Option<u64>,
        write_back: Vec<(String, String)>,
        host_functions: Option<Vec<crate::host_fn::HostFnArg>>,
    ) -> PyResult<PyWasmOutput> {
        let mut req = wasm_request(module, args, env, stdin, fuel, max_memory_bytes);
        req.dirs = wasm_dirs::wasm_dirs(dirs, fs_max_bytes)?;
        req.fs_limits = wasm_dirs::limits(fs_max_bytes, fs_max_inodes);
        req.host_functions = crate::host_fn::host_functions(host_functions.unwrap_or_default())?;
        let t = opt_seconds("timeout", timeout)?;
        let out = self.call(py, move |sb| sb.run_wasm(&req, t))?;
        wasm_dirs::write_back(&out.dirs, &write_back)?;
        PyWasmOutput::new(py, out)
    }

    /// Validates and compiles a module once in the guest and snapshots the sandbox there.
    #[pyo3(signature = (module, max_memory_bytes))]
    fn prepare_wasm(
        &self,
        py: Python<'_>,
        module: &[u8],
        max_memory_bytes: Option<u64>,
    ) -> PyResult<PyWasmTemplate> {
        let module = module.to_vec();
        let inner = self.call(py, move |sb| sb.prepare_wasm(&module, max_memory_bytes))?;
        Ok(PyWasmTemplate { inner })
    }

    /// Runs a prepared template in this sandbox: (outcome tuple, stdout, stderr).
    #[pyo3(signature = (template, args, env, stdin, fuel, timeout))]
    #[allow(clippy::too_many_arguments)]
    fn run_template(
        &self,
        py: Python<'_>,
        template: &PyWasmTemplate,
        args: Vec<String>,
        env: Vec<(String, String)>,
        stdin: &[u8],
        fuel: Option<u64>,
        timeout: Option<f64>,
    ) -> PyResult<PyWasmOutput> {
        let call = WasmCall {
            args,
            env,
            stdin: stdin.to_vec(),
            fuel,
            timeout: None,
        };
        let t = opt_seconds("timeout", timeout)?;
        let template = template.inner.clone();
        let out = self.call(py, move |sb| template.run(sb, &call, t))?;
        PyWasmOutput::new(py, out)
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

    /// Runs a command to the end.
    #[pyo3(signature = (argv, env, cwd, stdin, timeout))]
    fn exec(
        &self,
        py: Python<'_>,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        cwd: Option<String>,
        stdin: Option<&[u8]>,
        timeout: Option<f64>,
    ) -> PyResult<PyExecOutput> {
        let req = exec_request(argv, env, cwd, stdin, opt_seconds("timeout", timeout)?);
        let out = self.call(py, move |sb| sb.exec(&req))?;
        PyExecOutput::new(py, out)
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
    #[pyo3(signature = (path, data, mode=0o644, timeout=None))]
    fn write_file(
        &self,
        py: Python<'_>,
        path: String,
        data: &[u8],
        mode: u32,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let data = data.to_vec();
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| {
            sb.within(t).write_file(&path, data.as_slice(), mode)
        })
    }

    /// Reads a whole guest file.
    #[pyo3(signature = (path, timeout=None))]
    fn read_file(
        &self,
        py: Python<'_>,
        path: String,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyBytes>> {
        let t = answer_timeout(timeout)?;
        let data = self.call(py, move |sb| {
            let mut out = Vec::new();
            sb.within(t).read_file(&path, &mut out)?;
            Ok(out)
        })?;
        Ok(bytes(py, &data))
    }

    /// Reads `length` bytes at `offset` of disk number `disk`.
    #[pyo3(signature = (disk, offset, length, timeout=None))]
    fn disk_read(
        &self,
        py: Python<'_>,
        disk: u32,
        offset: u64,
        length: u32,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyBytes>> {
        let t = answer_timeout(timeout)?;
        let data = self.call(py, move |sb| sb.within(t).disk_read(disk, offset, length))?;
        Ok(bytes(py, &data))
    }

    /// Writes `data` at `offset` of disk number `disk`.
    #[pyo3(signature = (disk, offset, data, timeout=None))]
    fn disk_write(
        &self,
        py: Python<'_>,
        disk: u32,
        offset: u64,
        data: &[u8],
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let data = data.to_vec();
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| sb.within(t).disk_write(disk, offset, &data))
    }

    /// Flushes disk number `disk` to the host file.
    #[pyo3(signature = (disk, timeout=None))]
    fn disk_flush(&self, py: Python<'_>, disk: u32, timeout: Option<f64>) -> PyResult<()> {
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| sb.within(t).disk_flush(disk))
    }

    /// Opens a stream to guest vsock `port`, waiting `timeout` seconds (None:
    /// the sandbox's answer timeout) for the guest to accept; returns a file
    /// descriptor the caller owns.
    #[pyo3(signature = (port, timeout=None))]
    fn connect(&self, py: Python<'_>, port: u32, timeout: Option<f64>) -> PyResult<i32> {
        let t = answer_timeout(timeout)?;
        let stream = self.call(py, move |sb| sb.within(t).connect(port))?;
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

    /// Takes a snapshot at a quiescent point (Busy while a call runs or a stream is open).
    fn snapshot(&self, py: Python<'_>) -> PyResult<PySnapshot> {
        let s = self.call(py, |sb| sb.snapshot())?;
        Ok(PySnapshot { inner: s })
    }

    /// Puts the sandbox back to `snapshot` in place.
    fn restore(&self, py: Python<'_>, snapshot: &PySnapshot) -> PyResult<()> {
        let s = snapshot.inner.clone();
        self.call(py, move |sb| sb.restore(&s))
    }

    /// A new sandbox continuing from `snapshot`; `disks` (path, read-only)
    /// replaces the recorded ones (required for a loaded file that has disks).
    #[staticmethod]
    #[pyo3(signature = (snapshot, disks=None))]
    fn from_snapshot(
        py: Python<'_>,
        snapshot: &PySnapshot,
        disks: Option<Vec<(PathBuf, bool)>>,
    ) -> PyResult<Self> {
        let s = snapshot.inner.clone();
        let sb = blocking::run(
            py,
            || {},
            move || match disks {
                None => Sandbox::from_snapshot(&s),
                Some(d) => Sandbox::from_snapshot_disks(&s, &d),
            },
        )?
        .map_err(|e| to_py(py, e))?;
        Ok(Self::new(sb))
    }

    /// Per-call isolation from `snapshot` (restores now and after every call), or off (None).
    #[pyo3(signature = (snapshot))]
    fn set_call_isolation(&self, py: Python<'_>, snapshot: Option<&PySnapshot>) -> PyResult<()> {
        let s = snapshot.map(|s| s.inner.clone());
        self.call(py, move |sb| sb.set_call_isolation(s.as_ref()))
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

/// A prepared WASM module (and the snapshot taken after preparing it). Use
/// `kvmsandbox.WasmTemplate` instead.
#[pyclass(module = "kvmsandbox._kvmsandbox", name = "_WasmTemplate", frozen)]
pub struct PyWasmTemplate {
    pub(crate) inner: WasmTemplate,
}

#[pymethods]
impl PyWasmTemplate {
    /// The guest's id for the template.
    #[getter]
    fn id(&self) -> u64 {
        self.inner.id()
    }
}
