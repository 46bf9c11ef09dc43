//! The native snapshot class `_Snapshot`: one `kvmsandbox::SandboxSnapshot`
//! (cheap to clone, immutable). Saving and loading run off the GIL: loading
//! reads the whole file to check its checksums.

use crate::blocking;
use crate::errors::to_py;
use kvmsandbox::SandboxSnapshot;
use pyo3::prelude::*;
use std::path::PathBuf;

/// The native snapshot handle. Use `kvmsandbox.Snapshot` instead.
#[pyclass(module = "kvmsandbox._kvmsandbox", name = "_Snapshot", frozen)]
pub struct PySnapshot {
    pub(crate) inner: SandboxSnapshot,
}

#[pymethods]
impl PySnapshot {
    /// Loads and checks a snapshot file (its memory image is mapped, not copied).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let s = blocking::run(py, || {}, move || SandboxSnapshot::load(path))?
            .map_err(|e| to_py(py, e.into()))?;
        Ok(PySnapshot { inner: s })
    }

    /// Writes the snapshot to `path` (a new file renamed into place).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let s = self.inner.clone();
        blocking::run(py, || {}, move || s.save(path))?.map_err(|e| to_py(py, e.into()))
    }

    /// "micro" or "linux".
    #[getter]
    fn guest(&self) -> &'static str {
        match self.inner.guest() {
            kvmsandbox::snapshot::GuestKind::Micro => "micro",
            kvmsandbox::snapshot::GuestKind::Linux => "linux",
        }
    }

    /// Guest RAM in bytes.
    #[getter]
    fn memory_bytes(&self) -> u64 {
        self.inner.meta().mem_size
    }

    /// vCPUs.
    #[getter]
    fn vcpus(&self) -> u32 {
        self.inner.meta().vcpus
    }
}
