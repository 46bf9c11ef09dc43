//! Preopened directories of `run_wasm` as Python hands them over and gets
//! them back: plain tuples and lists, which `kvmsandbox/__init__.py` builds
//! from (and turns into) `dirs={"/data": "./input"}` and `WasmResult.files`.

use kvmsandbox::{ErrorKind, WasmDir, WasmDirOutput, WasmFileKind, WasmFsLimits};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::kind_err;

/// One directory from Python: (guest path, read-only, host directory to
/// copy in or None, files as (relative path, bytes)).
pub type DirTuple = (String, bool, Option<String>, Vec<(String, Vec<u8>)>);

/// The writable directories after a run: (guest path, [(relative path, bytes)]) for files.
pub type DirsOut = Vec<(String, Vec<(String, Py<PyBytes>)>)>;

/// The core's directories for `dirs`, copying host directories in (at most
/// `max_bytes` each, the tree's cap, or the core's default).
pub fn wasm_dirs(dirs: Vec<DirTuple>, max_bytes: Option<u64>) -> PyResult<Vec<WasmDir>> {
    let cap = max_bytes.unwrap_or(kvmsandbox::agent::DEFAULT_MAX_COPY);
    dirs.into_iter()
        .map(|(guest_path, read_only, host, files)| {
            let mut dir = match host {
                Some(host) => WasmDir::from_host(guest_path, &host, read_only, cap)
                    .map_err(|e| kind_err(ErrorKind::Io, format!("{e}")))?,
                None => WasmDir::new(guest_path, read_only),
            };
            for (path, bytes) in files {
                dir = dir.with_file(path, bytes);
            }
            Ok(dir)
        })
        .collect()
}

/// The tree's caps.
pub fn limits(max_bytes: Option<u64>, max_inodes: Option<u64>) -> WasmFsLimits {
    WasmFsLimits {
        max_bytes,
        max_inodes,
    }
}

/// Writes each `(guest path, host directory)` of `write_back` from `out`.
pub fn write_back(out: &[WasmDirOutput], write_back: &[(String, String)]) -> PyResult<()> {
    for (guest, host) in write_back {
        let dir = out
            .iter()
            .find(|dir| &dir.guest_path == guest)
            .ok_or_else(|| {
                kind_err(
                    ErrorKind::InvalidArgument,
                    format!(
                        "write_back names {guest:?}, which is not a writable directory of this run"
                    ),
                )
            })?;
        dir.write_to(host)
            .map_err(|e| kind_err(ErrorKind::Io, format!("{e}")))?;
    }
    Ok(())
}

/// The files of `out`, for Python.
pub fn files_of(py: Python<'_>, out: &[WasmDirOutput]) -> DirsOut {
    out.iter()
        .map(|dir| {
            let files = dir
                .files
                .iter()
                .filter_map(|file| match &file.kind {
                    WasmFileKind::File(bytes) => {
                        Some((file.path.clone(), PyBytes::new(py, bytes).unbind()))
                    }
                    _ => None,
                })
                .collect();
            (dir.guest_path.clone(), files)
        })
        .collect()
}
