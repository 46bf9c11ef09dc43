//! Preopened directories for WASI modules: an in-memory file tree filled
//! from the request before the run and handed back after it. The module
//! never sees the host's file system, only this copy; what it changed comes
//! back as data for the embedder to return (or write out) as it likes.
//!
//! `tree` holds the inodes and the caps, `path` resolves paths beneath a
//! descriptor, `fds` is the descriptor table, `calls` the WASI functions,
//! `link` their wasmi glue and `consts` the ABI numbers they use.

pub mod calls;
pub mod consts;
pub mod fds;
pub mod link;
pub mod path;
pub mod tree;

#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::wasi::abi::Errno;
use consts::{DIR_RIGHTS, FILE_RIGHTS};
use fds::{Entry, Fds};
use tree::{Ino, Kind, Limits, Tree};

/// One directory to preopen for a run.
#[derive(Clone, Copy, Debug)]
pub struct Preopen<'a> {
    /// The name the module sees (`fd_prestat_dir_name`), e.g. `/data`.
    pub guest_path: &'a [u8],
    /// Refuse every change (`EROFS`).
    pub read_only: bool,
    /// Its contents; parents come before their children or are made on
    /// the way (as directories).
    pub entries: &'a [FsEntry<'a>],
}

/// One item of a preopen's contents.
#[derive(Clone, Copy, Debug)]
pub struct FsEntry<'a> {
    /// Its path relative to the preopen, `/`-separated, without `.`/`..`.
    pub path: &'a [u8],
    /// What it is.
    pub kind: EntryKind<'a>,
}

/// What an item of a preopen is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind<'a> {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(&'a [u8]),
    /// A symbolic link and its target.
    Symlink(&'a [u8]),
}

/// The file system setup of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dirs<'a> {
    /// The directories, preopened as fds 3, 4, ... in this order.
    pub preopens: &'a [Preopen<'a>],
    /// Caps on the whole tree (the loaded contents count too).
    pub limits: Limits,
}

/// A writable preopen's contents after the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirOutput {
    /// The preopen's guest path.
    pub guest_path: Vec<u8>,
    /// Everything in it now, parents before children.
    pub entries: Vec<OutEntry>,
}

/// One item of a [`DirOutput`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutEntry {
    /// Path relative to the preopen.
    pub path: Vec<u8>,
    /// What it is now.
    pub kind: OutKind,
}

/// What an item is after the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutKind {
    /// A directory.
    Dir,
    /// A file the module wrote (or created): its bytes.
    File(Vec<u8>),
    /// A file the module did not change: the path it was loaded from (the
    /// caller has its bytes already).
    Unchanged(Vec<u8>),
    /// A symbolic link.
    Symlink(Vec<u8>),
}

/// Why a run's directories could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreopenError {
    /// A preopen's guest path is empty or longer than a path may be.
    #[error("preopen name {name:?} is empty or too long")]
    BadName {
        /// The name given.
        name: String,
    },
    /// An entry's path is empty, absolute, has `.`/`..`/empty components,
    /// or names something twice.
    #[error("entry {path:?} of preopen {preopen:?} is not a fresh relative path")]
    BadPath {
        /// The preopen.
        preopen: String,
        /// The entry's path.
        path: String,
    },
    /// The contents do not fit the tree's caps.
    #[error(
        "entry {path:?} of preopen {preopen:?} does not fit the caps ({limits:?}): errno {errno}"
    )]
    TooBig {
        /// The preopen.
        preopen: String,
        /// The first entry that did not fit.
        path: String,
        /// The caps.
        limits: Limits,
        /// The tree's errno (`ENOSPC`, `EDQUOT`, `ENOMEM`).
        errno: u16,
    },
    /// More preopens than the descriptor table holds.
    #[error("{count} preopens: more than the descriptor table holds")]
    TooMany {
        /// How many were given.
        count: usize,
    },
}

/// The file system of one run.
#[derive(Debug, Default)]
pub struct Fs {
    /// The inodes.
    pub tree: Tree,
    /// Descriptors 3 and up.
    pub fds: Fds,
    /// Each preopen's name, root and whether it is read-only.
    roots: Vec<(Vec<u8>, Ino, bool)>,
    /// Loaded files and where they came from (for [`OutKind::Unchanged`]).
    origins: BTreeMap<Ino, Vec<u8>>,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Fs {
    /// A tree holding `dirs`, each preopened (fds 3, 4, ...).
    pub fn load(dirs: &Dirs) -> Result<Fs, PreopenError> {
        let mut fs = Fs {
            tree: Tree::new(dirs.limits),
            ..Fs::default()
        };
        if dirs.preopens.len() >= fds::MAX_FDS {
            return Err(PreopenError::TooMany {
                count: dirs.preopens.len(),
            });
        }
        for preopen in dirs.preopens {
            fs.load_one(preopen, dirs.limits)?;
        }
        fs.tree.clear_dirty();
        Ok(fs)
    }

    fn load_one(&mut self, preopen: &Preopen, limits: Limits) -> Result<(), PreopenError> {
        let name = preopen.guest_path;
        if name.is_empty() || name.len() > path::MAX_PATH {
            return Err(PreopenError::BadName { name: lossy(name) });
        }
        let too_big = |path: &[u8], errno: Errno| PreopenError::TooBig {
            preopen: lossy(name),
            path: lossy(path),
            limits,
            errno: errno.0,
        };
        let root = self.tree.new_root().map_err(|e| too_big(b"", e))?;
        for entry in preopen.entries {
            let bad = || PreopenError::BadPath {
                preopen: lossy(name),
                path: lossy(entry.path),
            };
            let parts: Vec<&[u8]> = entry.path.split(|b| *b == b'/').collect();
            let Some((last, dirs)) = parts.split_last() else {
                return Err(bad());
            };
            let mut dir = root;
            for part in dirs {
                tree::check_name(part).map_err(|_| bad())?;
                dir = match self.tree.lookup(dir, part).map_err(|_| bad())? {
                    Some(ino)
                        if matches!(self.tree.get(ino).map(|n| &n.kind), Some(Kind::Dir(_))) =>
                    {
                        ino
                    }
                    Some(_) => return Err(bad()),
                    None => self
                        .tree
                        .create(dir, part, Kind::Dir(BTreeMap::new()))
                        .map_err(|e| too_big(entry.path, e))?,
                };
            }
            tree::check_name(last).map_err(|_| bad())?;
            let existing = self.tree.lookup(dir, last).map_err(|_| bad())?;
            let is_dir =
                |ino: Ino| matches!(self.tree.get(ino).map(|n| &n.kind), Some(Kind::Dir(_)));
            match (entry.kind, existing) {
                (EntryKind::Dir, Some(ino)) if is_dir(ino) => continue,
                (_, Some(_)) => return Err(bad()),
                _ => {}
            }
            let kind = match entry.kind {
                EntryKind::Dir => Kind::Dir(BTreeMap::new()),
                EntryKind::File(_) => Kind::File(Vec::new()),
                EntryKind::Symlink(target) => Kind::Symlink(target.to_vec()),
            };
            let ino = self
                .tree
                .create(dir, last, kind)
                .map_err(|e| too_big(entry.path, e))?;
            if let EntryKind::File(bytes) = entry.kind {
                self.tree
                    .write(ino, 0, bytes)
                    .map_err(|e| too_big(entry.path, e))?;
                self.origins.insert(ino, entry.path.to_vec());
            }
        }
        // A read-only tree keeps its rights: changes are refused with
        // EROFS, which says why, rather than ENOTCAPABLE.
        let entry = Entry {
            ino: root,
            is_dir: true,
            preopen: Some(name.to_vec()),
            read_only: preopen.read_only,
            base: DIR_RIGHTS,
            inheriting: DIR_RIGHTS | FILE_RIGHTS,
            flags: 0,
            pos: 0,
            stdio: None,
        };
        self.fds
            .insert(&mut self.tree, entry)
            .map_err(|_| PreopenError::TooMany {
                count: self.roots.len() + 1,
            })?;
        self.roots.push((name.to_vec(), root, preopen.read_only));
        Ok(())
    }

    /// The writable preopens' contents now, moving file bytes out of the
    /// tree (which is finished with).
    pub fn finish(mut self) -> Vec<DirOutput> {
        let mut out = Vec::new();
        let roots = core::mem::take(&mut self.roots);
        for (name, root, read_only) in roots {
            if read_only {
                continue;
            }
            let mut entries = Vec::new();
            for (path, ino) in self.tree.walk(root) {
                let Some(node) = self.tree.get_mut(ino) else {
                    continue;
                };
                let kind = match &mut node.kind {
                    Kind::Dir(_) => OutKind::Dir,
                    Kind::Symlink(target) => OutKind::Symlink(target.clone()),
                    Kind::File(data) => match self.origins.get(&ino) {
                        Some(origin) if !node.dirty => OutKind::Unchanged(origin.clone()),
                        _ if node.nlink > 1 => OutKind::File(data.clone()),
                        _ => OutKind::File(core::mem::take(data)),
                    },
                };
                entries.push(OutEntry { path, kind });
            }
            out.push(DirOutput {
                guest_path: name,
                entries,
            });
        }
        out
    }
}
