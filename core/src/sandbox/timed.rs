//! Per-call timeouts for the calls that wait for one answer of the agent
//! (ping, echo, connect, files, disks): `sandbox.with_timeout(t).ping()`. A view rather
//! than a `timeout` argument on each method keeps the plain methods (which use
//! [`crate::timeouts::AGENT_ANSWER`]) as they are. Exec and run_wasm carry their
//! own timeouts in their requests.

use super::{Sandbox, SandboxKind};
use crate::agent::{AgentClient, AgentError, FileInfo};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A sandbox whose calls wait `timeout` for each answer instead of the default;
/// silence that long fails the call with [`crate::Error::Agent`] of kind Timeout.
#[derive(Clone, Copy)]
pub struct Timed<'a> {
    sandbox: &'a Sandbox,
    timeout: Option<Duration>,
}

impl Sandbox {
    /// This sandbox with a per-call timeout for the calls of [`Timed`].
    pub fn with_timeout(&self, timeout: Duration) -> Timed<'_> {
        self.within(Some(timeout))
    }

    /// [`with_timeout`](Self::with_timeout) where `None` keeps the sandbox's
    /// own answer timeout (for faces whose timeout argument is optional).
    pub fn within(&self, timeout: Option<Duration>) -> Timed<'_> {
        Timed {
            sandbox: self,
            timeout,
        }
    }
}

impl Timed<'_> {
    fn t(&self) -> Option<Duration> {
        self.timeout
    }

    /// [`Sandbox::ping`] within the timeout.
    pub fn ping(&self) -> Result<Duration> {
        self.sandbox
            .with_client_within("ping", self.t(), |c| c.ping())
    }

    /// [`Sandbox::connect`], waiting the timeout for the guest to accept.
    pub fn connect(&self, port: u32) -> Result<UnixStream> {
        self.sandbox.connect_within(port, self.t())
    }

    /// [`Sandbox::echo`] within the timeout.
    pub fn echo(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.sandbox
            .with_client_within("echo", self.t(), |c| c.echo(data))
    }

    /// A files call: refused on a micro guest (no file system), else `f` on a
    /// client waiting the timeout for each answer.
    fn files<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut AgentClient) -> std::result::Result<T, AgentError>,
    ) -> Result<T> {
        let sb = self.sandbox;
        sb.require(op, sb.kind != SandboxKind::Micro)?;
        sb.with_client_within(op, self.t(), f)
    }

    /// [`Sandbox::write_file`], each answer within the timeout.
    pub fn write_file(&self, path: &str, data: impl Read, mode: u32) -> Result<u64> {
        self.files("write_file", |c| c.write_file(path, data, mode))
    }

    /// [`Sandbox::read_file`], each answer within the timeout.
    pub fn read_file(&self, path: &str, out: impl Write) -> Result<u64> {
        self.files("read_file", |c| c.read_file(path, out))
    }

    /// [`Sandbox::upload`], each answer within the timeout.
    pub fn upload(&self, local: &Path, path: &str, mode: u32) -> Result<u64> {
        let f = File::open(local).map_err(|source| Error::HostFile {
            path: local.to_path_buf(),
            source,
        })?;
        self.write_file(path, BufReader::new(f), mode)
    }

    /// [`Sandbox::download`], each answer within the timeout.
    pub fn download(&self, path: &str, local: &Path) -> Result<u64> {
        let f = File::create(local).map_err(|source| Error::HostFile {
            path: local.to_path_buf(),
            source,
        })?;
        let mut w = BufWriter::new(f);
        let n = self.read_file(path, &mut w)?;
        w.flush().map_err(|source| Error::HostFile {
            path: local.to_path_buf(),
            source,
        })?;
        Ok(n)
    }

    /// [`Sandbox::stat`] within the timeout.
    pub fn stat(&self, path: &str, follow: bool) -> Result<FileInfo> {
        self.files("stat", |c| c.stat(path, follow))
    }

    /// [`Sandbox::list_dir`] within the timeout.
    pub fn list_dir(&self, path: &str) -> Result<Vec<FileInfo>> {
        self.files("list_dir", |c| c.list_dir(path))
    }

    /// [`Sandbox::make_dir`] within the timeout.
    pub fn make_dir(&self, path: &str, mode: u32, parents: bool) -> Result<()> {
        self.files("make_dir", |c| c.make_dir(path, mode, parents))
    }

    /// [`Sandbox::remove`] within the timeout.
    pub fn remove(&self, path: &str, recursive: bool) -> Result<()> {
        self.files("remove", |c| c.remove(path, recursive))
    }

    /// [`Sandbox::rename`] within the timeout.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.files("rename", |c| c.rename(from, to))
    }

    /// [`Sandbox::disk_read`] within the timeout.
    pub fn disk_read(&self, disk: u32, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.sandbox
            .with_client_within("disk_read", self.t(), |c| c.disk_read(disk, offset, len))
    }

    /// [`Sandbox::disk_write`] within the timeout.
    pub fn disk_write(&self, disk: u32, offset: u64, data: &[u8]) -> Result<()> {
        self.sandbox
            .with_client_within("disk_write", self.t(), |c| c.disk_write(disk, offset, data))
    }

    /// [`Sandbox::disk_flush`] within the timeout.
    pub fn disk_flush(&self, disk: u32) -> Result<()> {
        self.sandbox
            .with_client_within("disk_flush", self.t(), |c| c.disk_flush(disk))
    }
}
