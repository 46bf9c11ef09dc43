//! The files API of the native sandbox class (a second `#[pymethods]` block, so
//! the file of `_Sandbox` stays about its life cycle and commands). A description
//! crosses as a tuple `(name, kind, size, mode, mtime_ns, link_target)` that
//! `kvmsandbox/__init__.py` wraps in `FileInfo`. `timeout` (seconds) is each
//! call's wait for every answer of the agent, as for `read_file`; `None` keeps
//! the sandbox's own (docs/timeouts.md).

use crate::sandbox::{answer_timeout, PySandbox};
use kvmsandbox::FileInfo;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::time::UNIX_EPOCH;

/// A [`FileInfo`] as Python sees it.
pub type FileInfoTuple = (String, &'static str, u64, u32, i128, Option<String>);

fn tuple(i: FileInfo) -> FileInfoTuple {
    let mtime_ns = match i.modified.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    (
        i.name,
        i.kind.name(),
        i.size,
        i.mode,
        mtime_ns,
        i.link_target,
    )
}

#[pymethods]
impl PySandbox {
    /// Describes a guest path (`follow`: a link's target rather than the link).
    #[pyo3(signature = (path, follow=true, timeout=None))]
    fn stat(
        &self,
        py: Python<'_>,
        path: String,
        follow: bool,
        timeout: Option<f64>,
    ) -> PyResult<FileInfoTuple> {
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| sb.within(t).stat(&path, follow))
            .map(tuple)
    }

    /// Lists a guest directory.
    #[pyo3(signature = (path, timeout=None))]
    fn list_dir(
        &self,
        py: Python<'_>,
        path: String,
        timeout: Option<f64>,
    ) -> PyResult<Vec<FileInfoTuple>> {
        let t = answer_timeout(timeout)?;
        let entries = self.call(py, move |sb| sb.within(t).list_dir(&path))?;
        Ok(entries.into_iter().map(tuple).collect())
    }

    /// Creates a guest directory (`parents`: like `mkdir -p`).
    #[pyo3(signature = (path, mode=0o755, parents=false, timeout=None))]
    fn make_dir(
        &self,
        py: Python<'_>,
        path: String,
        mode: u32,
        parents: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| sb.within(t).make_dir(&path, mode, parents))
    }

    /// Removes a guest file, link or empty directory (`recursive`: a tree).
    #[pyo3(signature = (path, recursive=false, timeout=None))]
    fn remove(
        &self,
        py: Python<'_>,
        path: String,
        recursive: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| sb.within(t).remove(&path, recursive))
    }

    /// Renames a guest path.
    #[pyo3(signature = (src, dst, timeout=None))]
    fn rename(
        &self,
        py: Python<'_>,
        src: String,
        dst: String,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| sb.within(t).rename(&src, &dst))
    }

    /// Streams the host file `local` into the guest file `path`.
    #[pyo3(signature = (local, path, mode=0o644, timeout=None))]
    fn upload(
        &self,
        py: Python<'_>,
        local: PathBuf,
        path: String,
        mode: u32,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| sb.within(t).upload(&local, &path, mode))
    }

    /// Streams the guest file `path` into the host file `local`.
    #[pyo3(signature = (path, local, timeout=None))]
    fn download(
        &self,
        py: Python<'_>,
        path: String,
        local: PathBuf,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let t = answer_timeout(timeout)?;
        self.call(py, move |sb| sb.within(t).download(&path, &local))
    }
}
