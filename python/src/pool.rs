//! The native pool classes `_SandboxPool` and `_Lease`: a `kvmsandbox::SandboxPool`
//! and the sandboxes borrowed from it.
//!
//! The pool's threads are Rust threads that never touch Python, so they never
//! hold or wait for the GIL; the calls that wait here (acquire, wait_idle,
//! close) release it. A lease hands Python a `_Sandbox` sharing the pooled
//! sandbox; giving the lease back detaches that `_Sandbox` first (later calls on
//! it raise SandboxClosed), so a stale Python reference never reaches the next
//! borrower's sandbox.

use crate::blocking;
use crate::errors::{to_py, SandboxClosed};
use crate::sandbox::{opt_seconds, seccomp_policy, PySandbox, PyWasmTemplate, StartArgs};
use crate::snapshot::PySnapshot;
use kvmsandbox::{PoolConfig, PoolMetrics, PoolSource, PooledSandbox, SandboxPool};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the Option half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The native pool. Use `kvmsandbox.SandboxPool` instead.
#[pyclass(module = "kvmsandbox._kvmsandbox", name = "_SandboxPool", frozen)]
pub struct PyPool {
    inner: Mutex<Option<Arc<SandboxPool>>>,
}

impl PyPool {
    fn get(&self) -> PyResult<Arc<SandboxPool>> {
        lock(&self.inner)
            .clone()
            .ok_or_else(|| SandboxClosed::new_err("the sandbox pool is closed"))
    }
}

/// A borrowed sandbox: the Python `_Sandbox` handle and the pool's lease.
#[pyclass(module = "kvmsandbox._kvmsandbox", name = "_Lease", frozen)]
pub struct PyLease {
    lease: Mutex<Option<PooledSandbox>>,
    sandbox: Py<PySandbox>,
}

#[pymethods]
impl PyLease {
    /// The sandbox (a `_Sandbox`; it raises SandboxClosed once given back).
    #[getter]
    fn sandbox(&self, py: Python<'_>) -> Py<PySandbox> {
        self.sandbox.clone_ref(py)
    }

    /// Gives the sandbox back to be reset (`discard`: to be killed). Idempotent.
    #[pyo3(signature = (discard=false))]
    fn release(&self, py: Python<'_>, discard: bool) {
        self.sandbox.get().detach();
        let lease = lock(&self.lease).take();
        if let Some(l) = lease {
            // Quick unless the pool closed meanwhile (then this kills the VM).
            py.detach(move || if discard { l.discard() } else { l.release() });
        }
    }

    /// True once given back.
    #[getter]
    fn released(&self) -> bool {
        lock(&self.lease).is_none()
    }
}

#[pymethods]
impl PyPool {
    /// A pool booting sandboxes from the same arguments as `_Sandbox.start`.
    #[staticmethod]
    #[pyo3(signature = (*, min_idle, max_size, threads, kernel=None, initrd=None, cmdline=None, vcpus=1, memory_mib=None, disks=Vec::new(), start_timeout=None, micro_image=None, seccomp=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_config(
        py: Python<'_>,
        min_idle: usize,
        max_size: usize,
        threads: usize,
        kernel: Option<PathBuf>,
        initrd: Option<PathBuf>,
        cmdline: Option<String>,
        vcpus: u32,
        memory_mib: Option<u64>,
        disks: Vec<(PathBuf, bool)>,
        start_timeout: Option<f64>,
        micro_image: Option<PathBuf>,
        seccomp: Option<String>,
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
        let source = PoolSource::config(move || args.config());
        Self::new(py, source, min_idle, max_size, threads)
    }

    /// A pool of forks of `snapshot`, reset in place to it when released;
    /// `seccomp` (None: the default) is the forks' policy.
    #[staticmethod]
    #[pyo3(signature = (snapshot, *, min_idle, max_size, threads, seccomp=None))]
    fn from_snapshot(
        py: Python<'_>,
        snapshot: PyRef<'_, PySnapshot>,
        min_idle: usize,
        max_size: usize,
        threads: usize,
        seccomp: Option<String>,
    ) -> PyResult<Self> {
        let source = PoolSource::from_snapshot(&snapshot.inner);
        let source = with_seccomp(py, source, Some(&snapshot.inner), seccomp)?;
        Self::new(py, source, min_idle, max_size, threads)
    }

    /// A pool of forks of `template`'s snapshot, each ready to run it.
    #[staticmethod]
    #[pyo3(signature = (template, *, min_idle, max_size, threads, seccomp=None))]
    fn from_template(
        py: Python<'_>,
        template: PyRef<'_, PyWasmTemplate>,
        min_idle: usize,
        max_size: usize,
        threads: usize,
        seccomp: Option<String>,
    ) -> PyResult<Self> {
        let source = PoolSource::from_template(&template.inner);
        let source = with_seccomp(py, source, template.inner.snapshot(), seccomp)?;
        Self::new(py, source, min_idle, max_size, threads)
    }

    /// Borrows a clean sandbox, waiting at most `timeout` seconds (None: no limit).
    #[pyo3(signature = (timeout=None))]
    fn acquire(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLease> {
        let pool = self.get()?;
        let t = opt_seconds("timeout", timeout)?.unwrap_or(Duration::MAX);
        // Interrupted: the worker's lease is dropped, which gives it back.
        let lease = blocking::run(py, || {}, move || pool.acquire(t))?.map_err(|e| to_py(py, e))?;
        let sandbox = Py::new(py, PySandbox::from_shared(lease.shared()))?;
        Ok(PyLease {
            lease: Mutex::new(Some(lease)),
            sandbox,
        })
    }

    /// Waits up to `timeout` seconds until `count` sandboxes are idle; whether they are.
    fn wait_idle(&self, py: Python<'_>, count: usize, timeout: f64) -> PyResult<bool> {
        let pool = self.get()?;
        let t = opt_seconds("timeout", Some(timeout))?.unwrap_or_default();
        blocking::run(py, || {}, move || pool.wait_idle(count, t))
    }

    /// The counters, as a dict (durations in seconds).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        metrics_dict(py, &self.get()?.metrics())
    }

    /// (min_idle, max_size, threads).
    #[getter]
    fn config(&self) -> PyResult<(usize, usize, usize)> {
        let c = self.get()?.config();
        Ok((c.min_idle, c.max_size, c.threads))
    }

    /// True once close() ran.
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.inner).is_none()
    }

    /// Kills idle sandboxes and joins the pool threads; borrowed sandboxes stay
    /// usable until given back (then they are killed). Idempotent.
    fn close(&self, py: Python<'_>) {
        let pool = lock(&self.inner).take();
        if let Some(p) = pool {
            py.detach(move || p.close());
        }
    }
}

/// `source` whose forks of `snap` run under the `seccomp` policy (None: as is).
fn with_seccomp(
    py: Python<'_>,
    source: PoolSource,
    snap: Option<&kvmsandbox::SandboxSnapshot>,
    seccomp: Option<String>,
) -> PyResult<PoolSource> {
    let (Some(policy), Some(snap)) = (seccomp, snap) else {
        return Ok(source);
    };
    let policy = seccomp_policy(&policy)?;
    let cfg = snap
        .fork_config()
        .map_err(|e| to_py(py, e))?
        .seccomp(policy);
    Ok(source.with_config(move || cfg.clone()))
}

impl PyPool {
    fn new(
        py: Python<'_>,
        source: PoolSource,
        min_idle: usize,
        max_size: usize,
        threads: usize,
    ) -> PyResult<Self> {
        let cfg = PoolConfig {
            min_idle,
            max_size,
            threads,
        };
        let pool = py
            .detach(move || SandboxPool::new(source, cfg))
            .map_err(|e| to_py(py, e))?;
        Ok(PyPool {
            inner: Mutex::new(Some(Arc::new(pool))),
        })
    }
}

fn metrics_dict<'py>(py: Python<'py>, m: &PoolMetrics) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("created", m.created)?;
    d.set_item("create_failures", m.create_failures)?;
    d.set_item("acquired", m.acquired)?;
    d.set_item("released", m.released)?;
    d.set_item("resets", m.resets)?;
    d.set_item("reset_failures", m.reset_failures)?;
    d.set_item("discarded", m.discarded)?;
    d.set_item("acquire_timeouts", m.acquire_timeouts)?;
    d.set_item("idle", m.idle)?;
    d.set_item("busy", m.busy)?;
    d.set_item("in_flight", m.in_flight)?;
    d.set_item("acquire_wait_total", m.acquire_wait_total.as_secs_f64())?;
    d.set_item("acquire_wait_max", m.acquire_wait_max.as_secs_f64())?;
    Ok(d)
}
