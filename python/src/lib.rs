//! Python bindings: the private native module `kvmsandbox._kvmsandbox`.
//!
//! This layer only moves values across the boundary, releases the GIL around
//! everything that blocks and maps errors to exception classes. The Pythonic
//! API (result objects, context managers, `check=`) lives in the thin package
//! `python/kvmsandbox/__init__.py`, which is easier to read and type-check there.

mod blocking;
mod errors;
mod files;
mod host_fn;
mod pool;
mod results;
mod sandbox;
mod snapshot;
mod stream;
mod wasm_dirs;

use pyo3::prelude::*;

/// The native module. Its name must match `module-name` in pyproject.toml.
#[pymodule]
fn _kvmsandbox(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    results::register(m)?;
    m.add_class::<sandbox::PySandbox>()?;
    m.add_class::<sandbox::PyWasmTemplate>()?;
    m.add_class::<stream::EventStream>()?;
    m.add_class::<pool::PyPool>()?;
    m.add_class::<pool::PyLease>()?;
    m.add_class::<snapshot::PySnapshot>()?;
    m.add("ECHO_PORT", kvmsandbox::ECHO_PORT)?;
    m.add("SINK_PORT", kvmsandbox::SINK_PORT)?;
    m.add(
        "DEFAULT_AGENT_PORT",
        kvmsandbox::sandbox::DEFAULT_AGENT_PORT,
    )?;
    Ok(())
}
