//! The file-system requests besides transfers: `Stat`, `ListDir`, `MakeDir`,
//! `Remove`, `Rename`. A listing is streamed a frame of entries at a time, so a
//! directory of any size costs the agent one frame of memory.

use std::fs::{self, DirBuilder, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use kvmsandbox_proto::msg::{FileKind, FileStat, MAX_DIR_ENTRIES_PER_FRAME};
use kvmsandbox_proto::Message;

use crate::wire::{code_of, Writer};

/// Serves `Stat`. Returns an error only if the connection failed.
pub fn stat(path: &str, follow: bool, id: u32, out: &Writer) -> io::Result<()> {
    let p = Path::new(path);
    let meta = if follow {
        fs::metadata(p)
    } else {
        fs::symlink_metadata(p)
    };
    match meta {
        Ok(m) => {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.to_string());
            out.send(id, Message::FileInfo(describe(name, p, &m)))
        }
        Err(e) => out.error(id, code_of(&e), format!("stat {path}: {e}")),
    }
}

/// Serves `ListDir`: `DirEntries` frames, then `DataEnd`.
pub fn list(path: &str, id: u32, out: &Writer) -> io::Result<()> {
    let dir = match fs::read_dir(path) {
        Ok(d) => d,
        Err(e) => return out.error(id, code_of(&e), format!("list {path}: {e}")),
    };
    let mut batch = Vec::new();
    for entry in dir {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return out.error(id, code_of(&e), format!("list {path}: {e}")),
        };
        let full = entry.path();
        // An entry removed between readdir and lstat is simply not listed.
        let Ok(meta) = fs::symlink_metadata(&full) else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        batch.push(describe(name, &full, &meta));
        if batch.len() == MAX_DIR_ENTRIES_PER_FRAME {
            out.send(
                id,
                Message::DirEntries {
                    entries: std::mem::take(&mut batch),
                },
            )?;
        }
    }
    if !batch.is_empty() {
        out.send(id, Message::DirEntries { entries: batch })?;
    }
    out.send(id, Message::DataEnd)
}

/// Serves `MakeDir`.
pub fn make_dir(path: &str, mode: u32, parents: bool, id: u32, out: &Writer) -> io::Result<()> {
    // `mkdir -p` leaves an existing directory (and its mode) alone.
    if parents && fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return out.send(id, Message::Ok);
    }
    let r = DirBuilder::new()
        .recursive(parents)
        .mode(mode & 0o7777)
        .create(path)
        // The mode given to mkdir is masked by the umask: make it exact.
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777)));
    reply(r, "mkdir", path, id, out)
}

/// Serves `Remove`: a file or link, an empty directory, or a tree if `recursive`.
pub fn remove(path: &str, recursive: bool, id: u32, out: &Writer) -> io::Result<()> {
    let r = fs::symlink_metadata(path).and_then(|m| {
        if !m.is_dir() {
            fs::remove_file(path)
        } else if recursive {
            fs::remove_dir_all(path)
        } else {
            fs::remove_dir(path)
        }
    });
    reply(r, "remove", path, id, out)
}

/// Serves `Rename`.
pub fn rename(from: &str, to: &str, id: u32, out: &Writer) -> io::Result<()> {
    match fs::rename(from, to) {
        Ok(()) => out.send(id, Message::Ok),
        Err(e) => out.error(id, code_of(&e), format!("rename {from} -> {to}: {e}")),
    }
}

fn reply(r: io::Result<()>, what: &str, path: &str, id: u32, out: &Writer) -> io::Result<()> {
    match r {
        Ok(()) => out.send(id, Message::Ok),
        Err(e) => out.error(id, code_of(&e), format!("{what} {path}: {e}")),
    }
}

fn describe(name: String, path: &Path, m: &Metadata) -> FileStat {
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    let link_target = if ft.is_symlink() {
        fs::read_link(path)
            .ok()
            .map(|t| t.to_string_lossy().into_owned())
    } else {
        None
    };
    FileStat {
        name,
        kind,
        size: m.len(),
        mode: m.mode() & 0o7777,
        mtime_sec: m.mtime(),
        mtime_nsec: u32::try_from(m.mtime_nsec()).unwrap_or(0),
        link_target,
    }
}
