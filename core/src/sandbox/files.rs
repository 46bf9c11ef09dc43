//! The files API of a sandbox (Linux guests and the host agent; a micro guest has
//! no file system and answers `Unsupported`): transfers streamed in chunks both
//! ways, plus directory operations. Host-path helpers (`upload`/`download`) stream
//! through the same calls, so no file is ever held whole in memory. Each method is
//! its [`Timed`](super::Timed) twin with the sandbox's own answer timeout.

use std::io::{Read, Write};
use std::path::Path;

use super::Sandbox;
use crate::agent::FileInfo;
use crate::error::Result;

impl Sandbox {
    /// Writes a file in the guest from `data`, created or truncated with permission
    /// bits `mode`; returns the bytes written.
    pub fn write_file(&self, path: &str, data: impl Read, mode: u32) -> Result<u64> {
        self.within(None).write_file(path, data, mode)
    }

    /// Reads a guest file into `out`; returns the bytes read.
    pub fn read_file(&self, path: &str, out: impl Write) -> Result<u64> {
        self.within(None).read_file(path, out)
    }

    /// Copies the host file `local` to the guest file `path` (mode `mode`).
    pub fn upload(&self, local: &Path, path: &str, mode: u32) -> Result<u64> {
        self.within(None).upload(local, path, mode)
    }

    /// Copies the guest file `path` to the host file `local` (created or truncated).
    pub fn download(&self, path: &str, local: &Path) -> Result<u64> {
        self.within(None).download(path, local)
    }

    /// Describes the guest path `path` (`follow`: a link's target, not the link).
    pub fn stat(&self, path: &str, follow: bool) -> Result<FileInfo> {
        self.within(None).stat(path, follow)
    }

    /// Lists the guest directory `path`.
    pub fn list_dir(&self, path: &str) -> Result<Vec<FileInfo>> {
        self.within(None).list_dir(path)
    }

    /// Creates the guest directory `path` (`parents`: like `mkdir -p`).
    pub fn make_dir(&self, path: &str, mode: u32, parents: bool) -> Result<()> {
        self.within(None).make_dir(path, mode, parents)
    }

    /// Removes a guest file, link or empty directory (`recursive`: a whole tree).
    pub fn remove(&self, path: &str, recursive: bool) -> Result<()> {
        self.within(None).remove(path, recursive)
    }

    /// Renames the guest path `from` to `to`.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.within(None).rename(from, to)
    }
}
