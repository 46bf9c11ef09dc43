//! The descriptor table of the file system: fds 3 and up (0-2 stay stdio,
//! in `ctx.rs`). A descriptor is a directory or a file of the tree, its
//! rights, its flags and, for a file, its position. The table is capped at
//! [`MAX_FDS`] (`EMFILE`), so a module cannot grow it without bound.

use alloc::vec::Vec;

use super::tree::{Ino, Tree};
use crate::wasi::abi::Errno;

/// The first descriptor number the file system hands out.
pub const FIRST_FD: u32 = 3;
/// Most descriptors open at once (preopens included).
pub const MAX_FDS: usize = 1024;

/// One open descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The inode it holds open.
    pub ino: Ino,
    /// A directory (else a regular file).
    pub is_dir: bool,
    /// The preopen name, for a preopened directory that was never renumbered.
    pub preopen: Option<Vec<u8>>,
    /// Its tree is read-only: changes through it are `EROFS`.
    pub read_only: bool,
    /// `rights_base`.
    pub base: u64,
    /// `rights_inheriting`.
    pub inheriting: u64,
    /// `fdflags`.
    pub flags: u16,
    /// A file's position.
    pub pos: u64,
    /// Stdio (0-2) renumbered to this descriptor: then nothing above applies.
    pub stdio: Option<u32>,
}

impl Entry {
    /// `EBADF`/`ENOTCAPABLE` unless the descriptor has `right`.
    pub fn need(&self, right: u64) -> Result<(), Errno> {
        if self.base & right == right {
            Ok(())
        } else {
            Err(Errno::NOTCAPABLE)
        }
    }
}

/// The table: slot `i` is fd `i + 3`.
#[derive(Debug, Default)]
pub struct Fds {
    slots: Vec<Option<Entry>>,
}

impl Fds {
    /// The descriptor `fd`.
    pub fn get(&self, fd: u32) -> Result<&Entry, Errno> {
        let index = fd.checked_sub(FIRST_FD).ok_or(Errno::BADF)? as usize;
        self.slots
            .get(index)
            .and_then(Option::as_ref)
            .ok_or(Errno::BADF)
    }

    /// The descriptor `fd`, for changing.
    pub fn get_mut(&mut self, fd: u32) -> Result<&mut Entry, Errno> {
        let index = fd.checked_sub(FIRST_FD).ok_or(Errno::BADF)? as usize;
        self.slots
            .get_mut(index)
            .and_then(Option::as_mut)
            .ok_or(Errno::BADF)
    }

    /// Whether `fd` is one of ours and open.
    pub fn is_open(&self, fd: u32) -> bool {
        self.get(fd).is_ok()
    }

    /// Opens `entry` at the lowest free number (holding its inode open).
    pub fn insert(&mut self, tree: &mut Tree, entry: Entry) -> Result<u32, Errno> {
        let index = match self.slots.iter().position(Option::is_none) {
            Some(index) => index,
            None if self.slots.len() < MAX_FDS => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(Errno::MFILE),
        };
        tree.retain(entry.ino);
        self.slots[index] = Some(entry);
        Ok(index as u32 + FIRST_FD)
    }

    /// Closes `fd`.
    pub fn remove(&mut self, tree: &mut Tree, fd: u32) -> Result<(), Errno> {
        self.get(fd)?;
        let index = (fd - FIRST_FD) as usize;
        if let Some(entry) = self.slots[index].take() {
            tree.close(entry.ino);
        }
        Ok(())
    }

    /// `fd_renumber(from, to)`: `to` (closed first if open) becomes `from`.
    pub fn renumber(&mut self, tree: &mut Tree, from: u32, to: u32) -> Result<(), Errno> {
        self.get(from)?;
        self.get(to)?;
        if from == to {
            return Ok(());
        }
        self.remove(tree, to)?;
        let entry = self.slots[(from - FIRST_FD) as usize].take();
        self.slots[(to - FIRST_FD) as usize] = entry;
        Ok(())
    }

    /// The stdio stream `fd` stands for, if stdio was renumbered to it.
    pub fn stdio_alias(&self, fd: u32) -> Option<u32> {
        self.get(fd).ok().and_then(|entry| entry.stdio)
    }

    /// `fd_renumber(stdio, to)`: `to` (open, closed first) becomes stream
    /// `stdio`; the caller closes the stdio number.
    pub fn take_stdio(&mut self, tree: &mut Tree, stdio: u32, to: u32) -> Result<(), Errno> {
        self.remove(tree, to)?;
        self.slots[(to - FIRST_FD) as usize] = Some(Entry {
            ino: 0,
            is_dir: false,
            preopen: None,
            read_only: true,
            base: 0,
            inheriting: 0,
            flags: 0,
            pos: 0,
            stdio: Some(stdio),
        });
        Ok(())
    }

    /// Every open descriptor's inode (to close them all at the end).
    pub fn inodes(&self) -> impl Iterator<Item = Ino> + '_ {
        self.slots.iter().flatten().map(|entry| entry.ino)
    }
}
