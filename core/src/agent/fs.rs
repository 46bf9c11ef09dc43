//! Directory operations over the control connection (Linux agent and host agent;
//! the micro guest answers Unsupported). A listing arrives in frames of entries
//! and is capped like any collected output (`AgentLimits::max_output`, counting
//! each entry's encoded size), so a directory with millions of entries ends in
//! `OutputLimit`, not in unbounded host memory.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kvmsandbox_proto::msg::{FileKind as WireKind, FileStat};
use kvmsandbox_proto::Message;

use super::client::AgentClient;
use super::conn::Wait;
use super::error::AgentError;

/// The type of a guest file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (as `stat(..., follow = false)` and listings see it).
    Symlink,
    /// A device, FIFO or socket.
    Other,
}

impl FileKind {
    /// A lower-case name (`"file"`, `"dir"`, `"symlink"`, `"other"`) the C and
    /// Python faces use too.
    pub fn name(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Dir => "dir",
            Self::Symlink => "symlink",
            Self::Other => "other",
        }
    }
}

/// What the guest reports about one file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// The entry's name (for `stat`: the last component of the path).
    pub name: String,
    /// Its type.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Last modification.
    pub modified: SystemTime,
    /// A symbolic link's target.
    pub link_target: Option<String>,
}

impl From<FileStat> for FileInfo {
    fn from(s: FileStat) -> Self {
        let nanos = Duration::from_nanos(u64::from(s.mtime_nsec.min(999_999_999)));
        let modified = if s.mtime_sec >= 0 {
            UNIX_EPOCH + Duration::from_secs(s.mtime_sec.unsigned_abs()) + nanos
        } else {
            UNIX_EPOCH - Duration::from_secs(s.mtime_sec.unsigned_abs()) + nanos
        };
        FileInfo {
            name: s.name,
            kind: match s.kind {
                WireKind::File => FileKind::File,
                WireKind::Dir => FileKind::Dir,
                WireKind::Symlink => FileKind::Symlink,
                WireKind::Other => FileKind::Other,
            },
            size: s.size,
            mode: s.mode,
            modified,
            link_target: s.link_target,
        }
    }
}

/// Bytes an entry is counted as against the output cap (its fields plus name).
fn charged_size(s: &FileStat) -> u64 {
    64 + s.name.len() as u64 + s.link_target.as_ref().map_or(0, |t| t.len() as u64)
}

impl AgentClient {
    /// Describes `path` (`follow`: a symbolic link's target instead of the link).
    pub fn stat(&mut self, path: &str, follow: bool) -> Result<FileInfo, AgentError> {
        let op = "stat";
        let id = self.request(
            op,
            Message::Stat {
                path: path.to_string(),
                follow,
            },
        )?;
        match self.answer(op, id)? {
            Message::FileInfo(s) => Ok(s.into()),
            other => Err(AgentError::Unexpected {
                op,
                got: other.name(),
            }),
        }
    }

    /// Lists the directory `path` (entries in the guest's order, without `.`/`..`).
    pub fn list_dir(&mut self, path: &str) -> Result<Vec<FileInfo>, AgentError> {
        let op = "list_dir";
        let id = self.request(
            op,
            Message::ListDir {
                path: path.to_string(),
            },
        )?;
        let wait = Wait::within(Some(self.timeout), Some(self.limits.default_deadline));
        let mut entries = Vec::new();
        let mut charged = 0u64;
        loop {
            match self.conn.recv_for(op, id, wait)? {
                Message::DirEntries { entries: batch } => {
                    for s in batch {
                        charged += charged_size(&s);
                        self.check_output(op, charged)?;
                        entries.push(s.into());
                    }
                }
                Message::DataEnd => return Ok(entries),
                other => {
                    return Err(AgentError::Unexpected {
                        op,
                        got: other.name(),
                    })
                }
            }
        }
    }

    /// Creates the directory `path` with permission bits `mode`; with `parents`,
    /// also its missing parents, and an existing directory is not an error.
    pub fn make_dir(&mut self, path: &str, mode: u32, parents: bool) -> Result<(), AgentError> {
        let op = "make_dir";
        let id = self.request(
            op,
            Message::MakeDir {
                path: path.to_string(),
                mode,
                parents,
            },
        )?;
        self.expect_ok(op, id)
    }

    /// Removes a file, link or empty directory (`recursive`: a directory tree).
    pub fn remove(&mut self, path: &str, recursive: bool) -> Result<(), AgentError> {
        let op = "remove";
        let id = self.request(
            op,
            Message::Remove {
                path: path.to_string(),
                recursive,
            },
        )?;
        self.expect_ok(op, id)
    }

    /// Renames `from` to `to`.
    pub fn rename(&mut self, from: &str, to: &str) -> Result<(), AgentError> {
        let op = "rename";
        let id = self.request(
            op,
            Message::Rename {
                from: from.to_string(),
                to: to.to_string(),
            },
        )?;
        self.expect_ok(op, id)
    }
}
