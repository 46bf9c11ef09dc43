//! The in-memory file tree behind the preopened directories: inodes holding
//! files, directories and symlinks, with sizes, link counts and times.
//!
//! Everything in it is sized by the module (file lengths, names, how many
//! entries), so the tree holds two caps the host sets per run: total bytes
//! (file contents plus symlink targets plus names) and inode count. Going
//! past either is an errno for the module (`ENOSPC`, `EDQUOT`), and file
//! contents grow with fallible allocation (`ENOMEM` if the guest heap says
//! no), so a module can never make the runner abort.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::wasi::abi::Errno;

/// An inode number (never 0; the root of each preopen gets its own).
pub type Ino = u64;

/// Longest name of one directory entry, in bytes (`ENAMETOOLONG` beyond).
pub const MAX_NAME: usize = 255;
/// Longest symlink target, in bytes.
pub const MAX_SYMLINK: usize = 4096;

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A directory: name -> inode, in name order (readdir's order).
    Dir(BTreeMap<Vec<u8>, Ino>),
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
}

/// One inode.
#[derive(Clone, Debug)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Directory entries naming it (a directory: 1 while it is linked).
    pub nlink: u64,
    /// Open descriptors on it: an unlinked file lives until the last closes.
    pub open: u32,
    /// The directory holding it (a directory's `..`; the root's is itself).
    pub parent: Ino,
    /// Access time, ns since the epoch.
    pub atim: u64,
    /// Modification time.
    pub mtim: u64,
    /// Status change time.
    pub ctim: u64,
    /// Created or changed by the module (what the caller gets back).
    pub dirty: bool,
}

impl Node {
    /// Bytes this inode counts against the byte cap (contents or target).
    fn bytes(&self) -> u64 {
        match &self.kind {
            Kind::File(data) => data.len() as u64,
            Kind::Symlink(target) => target.len() as u64,
            Kind::Dir(_) => 0,
        }
    }
}

/// The per-run caps.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of contents, symlink targets and names together.
    pub max_bytes: u64,
    /// Most inodes (files, directories, symlinks) together.
    pub max_inodes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 20,
            max_inodes: 65_536,
        }
    }
}

/// The tree: all inodes of all preopens of one run.
#[derive(Debug, Default)]
pub struct Tree {
    nodes: BTreeMap<Ino, Node>,
    last_ino: Ino,
    bytes: u64,
    limits: Limits,
    /// The time new changes are stamped with (set by the caller per call).
    pub now: u64,
}

impl Tree {
    /// An empty tree with these caps.
    pub fn new(limits: Limits) -> Self {
        Tree {
            limits,
            ..Tree::default()
        }
    }

    /// Bytes in use against the cap.
    pub fn bytes_used(&self) -> u64 {
        self.bytes
    }

    /// Inodes in use against the cap.
    pub fn inodes_used(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// The inode `ino`, if it exists.
    pub fn get(&self, ino: Ino) -> Option<&Node> {
        self.nodes.get(&ino)
    }

    /// The inode `ino` for changing, if it exists.
    pub fn get_mut(&mut self, ino: Ino) -> Option<&mut Node> {
        self.nodes.get_mut(&ino)
    }

    /// Reserves `extra` bytes against the cap (`ENOSPC` if over).
    fn reserve_bytes(&mut self, extra: u64) -> Result<(), Errno> {
        let total = self.bytes.checked_add(extra).ok_or(Errno::NOSPC)?;
        if total > self.limits.max_bytes {
            return Err(Errno::NOSPC);
        }
        self.bytes = total;
        Ok(())
    }

    /// A new root directory (one per preopen).
    pub fn new_root(&mut self) -> Result<Ino, Errno> {
        let ino = self.alloc(Kind::Dir(BTreeMap::new()), 0)?;
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.parent = ino;
            node.nlink = 1;
            node.dirty = false;
        }
        Ok(ino)
    }

    fn alloc(&mut self, kind: Kind, parent: Ino) -> Result<Ino, Errno> {
        if self.nodes.len() as u64 >= self.limits.max_inodes {
            return Err(Errno::DQUOT);
        }
        let node = Node {
            kind,
            nlink: 0,
            open: 0,
            parent,
            atim: self.now,
            mtim: self.now,
            ctim: self.now,
            dirty: true,
        };
        self.reserve_bytes(node.bytes())?;
        self.last_ino += 1;
        self.nodes.insert(self.last_ino, node);
        Ok(self.last_ino)
    }

    /// The entry `name` of directory `dir`.
    pub fn lookup(&self, dir: Ino, name: &[u8]) -> Result<Option<Ino>, Errno> {
        match self.nodes.get(&dir).map(|node| &node.kind) {
            Some(Kind::Dir(entries)) => Ok(entries.get(name).copied()),
            Some(_) => Err(Errno::NOTDIR),
            None => Err(Errno::NOENT),
        }
    }

    /// Creates `kind` as `dir/name` (`EEXIST` if the name is taken).
    pub fn create(&mut self, dir: Ino, name: &[u8], kind: Kind) -> Result<Ino, Errno> {
        check_name(name)?;
        if self.lookup(dir, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        if self.get(dir).is_some_and(|node| node.nlink == 0) {
            return Err(Errno::NOENT); // a removed directory takes no entries
        }
        self.reserve_bytes(name.len() as u64)?;
        let ino = match self.alloc(kind, dir) {
            Ok(ino) => ino,
            Err(errno) => {
                self.bytes -= name.len() as u64;
                return Err(errno);
            }
        };
        self.link(dir, name, ino);
        Ok(ino)
    }

    /// Adds the entry `dir/name -> ino` (the name's bytes already counted).
    fn link(&mut self, dir: Ino, name: &[u8], ino: Ino) {
        let now = self.now;
        if let Some(Kind::Dir(entries)) = self.nodes.get_mut(&dir).map(|node| &mut node.kind) {
            entries.insert(name.to_vec(), ino);
        }
        if let Some(node) = self.nodes.get_mut(&dir) {
            node.mtim = now;
            node.ctim = now;
            node.dirty = true;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlink += 1;
            node.ctim = now;
            if matches!(node.kind, Kind::Dir(_)) {
                node.parent = dir;
            }
        }
    }

    /// A hard link `dir/name` to the existing inode `ino`.
    pub fn hard_link(&mut self, dir: Ino, name: &[u8], ino: Ino) -> Result<(), Errno> {
        check_name(name)?;
        if self.lookup(dir, name)?.is_some() {
            return Err(Errno::EXIST);
        }
        self.reserve_bytes(name.len() as u64)?;
        self.link(dir, name, ino);
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.dirty = true; // now also at a path it was not loaded from
        }
        Ok(())
    }

    /// Marks everything as loaded, not changed (after filling the tree).
    pub fn clear_dirty(&mut self) {
        for node in self.nodes.values_mut() {
            node.dirty = false;
        }
    }

    /// Removes the entry `dir/name` (no type checks: the caller made them),
    /// freeing the inode once nothing names it or holds it open.
    pub fn unlink(&mut self, dir: Ino, name: &[u8]) -> Result<Ino, Errno> {
        let now = self.now;
        let ino = match self.nodes.get_mut(&dir).map(|node| &mut node.kind) {
            Some(Kind::Dir(entries)) => entries.remove(name).ok_or(Errno::NOENT)?,
            Some(_) => return Err(Errno::NOTDIR),
            None => return Err(Errno::NOENT),
        };
        self.bytes = self.bytes.saturating_sub(name.len() as u64);
        if let Some(node) = self.nodes.get_mut(&dir) {
            node.mtim = now;
            node.ctim = now;
            node.dirty = true;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlink = node.nlink.saturating_sub(1);
            node.ctim = now;
        }
        self.release(ino);
        Ok(ino)
    }

    /// Moves the entry `from_dir/from` to `to_dir/to`, replacing what `to`
    /// named (the caller checked that replacing it is allowed).
    pub fn rename(
        &mut self,
        from_dir: Ino,
        from: &[u8],
        to_dir: Ino,
        to: &[u8],
    ) -> Result<(), Errno> {
        check_name(to)?;
        let ino = self.lookup(from_dir, from)?.ok_or(Errno::NOENT)?;
        if self.lookup(to_dir, to)? == Some(ino) {
            return Ok(());
        }
        if self.lookup(to_dir, to)?.is_some() {
            self.unlink(to_dir, to)?;
        }
        self.reserve_bytes(to.len() as u64)?;
        self.link(to_dir, to, ino);
        if let Some(node) = self.nodes.get_mut(&ino) {
            // `unlink` below takes back the link `link` added.
            node.open += 1;
        }
        self.unlink(from_dir, from)?;
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open -= 1;
            if matches!(node.kind, Kind::Dir(_)) {
                node.parent = to_dir;
            }
            node.dirty = true;
        }
        Ok(())
    }

    /// One more descriptor holds `ino` open.
    pub fn retain(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open = node.open.saturating_add(1);
        }
    }

    /// A descriptor on `ino` closed.
    pub fn close(&mut self, ino: Ino) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.open = node.open.saturating_sub(1);
        }
        self.release(ino);
    }

    /// Frees `ino` if nothing names it or holds it open.
    fn release(&mut self, ino: Ino) {
        let gone = self
            .nodes
            .get(&ino)
            .is_some_and(|node| node.nlink == 0 && node.open == 0);
        if gone {
            if let Some(node) = self.nodes.remove(&ino) {
                self.bytes = self.bytes.saturating_sub(node.bytes());
            }
        }
    }

    /// Sets file `ino`'s length to `len` (zero-filling when it grows).
    pub fn set_len(&mut self, ino: Ino, len: u64) -> Result<(), Errno> {
        let old = self.file(ino)?.len() as u64;
        if len > old {
            self.reserve_bytes(len - old)?;
        }
        let now = self.now;
        let result = match self.nodes.get_mut(&ino).map(|node| &mut node.kind) {
            Some(Kind::File(data)) => grow(data, len),
            _ => Err(Errno::BADF),
        };
        match result {
            Ok(()) => {
                self.bytes = self.bytes - old.min(self.bytes) + old.min(len);
                self.touch(ino, now);
                Ok(())
            }
            Err(errno) => {
                self.bytes -= len.saturating_sub(old);
                Err(errno)
            }
        }
    }

    /// Writes `bytes` into file `ino` at `offset`, growing it as needed.
    pub fn write(&mut self, ino: Ino, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        let end = offset.checked_add(bytes.len() as u64).ok_or(Errno::FBIG)?;
        if end > self.file(ino)?.len() as u64 {
            self.set_len(ino, end)?;
        }
        let now = self.now;
        if let Some(Kind::File(data)) = self.nodes.get_mut(&ino).map(|node| &mut node.kind) {
            // set_len made the file at least `end` bytes long, and `end`
            // fits a usize because the allocation succeeded.
            data[offset as usize..end as usize].copy_from_slice(bytes);
        }
        self.touch(ino, now);
        Ok(())
    }

    /// File `ino`'s bytes.
    pub fn file(&self, ino: Ino) -> Result<&[u8], Errno> {
        match self.nodes.get(&ino).map(|node| &node.kind) {
            Some(Kind::File(data)) => Ok(data),
            Some(Kind::Dir(_)) => Err(Errno::ISDIR),
            _ => Err(Errno::BADF),
        }
    }

    fn touch(&mut self, ino: Ino, now: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.mtim = now;
            node.ctim = now;
            node.dirty = true;
        }
    }

    /// Every inode below directory `root`, depth first, with its path
    /// relative to `root` (for handing the tree back to the caller).
    pub fn walk(&self, root: Ino) -> Vec<(Vec<u8>, Ino)> {
        let mut out = Vec::new();
        let mut stack: Vec<(Vec<u8>, Ino)> = Vec::new();
        stack.push((Vec::new(), root));
        while let Some((path, ino)) = stack.pop() {
            if let Some(Kind::Dir(entries)) = self.nodes.get(&ino).map(|node| &node.kind) {
                for (name, child) in entries.iter().rev() {
                    let mut child_path = path.clone();
                    if !child_path.is_empty() {
                        child_path.push(b'/');
                    }
                    child_path.extend_from_slice(name);
                    stack.push((child_path, *child));
                }
            }
            if ino != root {
                out.push((path, ino));
            }
        }
        out
    }
}

/// Grows or shrinks `data` to `len` bytes with fallible allocation.
fn grow(data: &mut Vec<u8>, len: u64) -> Result<(), Errno> {
    let len = usize::try_from(len).map_err(|_| Errno::FBIG)?;
    if len > data.len() {
        data.try_reserve(len - data.len())
            .map_err(|_| Errno::NOMEM)?;
    }
    data.resize(len, 0);
    Ok(())
}

/// A name one directory entry may have.
pub fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.len() > MAX_NAME {
        return Err(Errno::NAMETOOLONG);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::INVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> (Tree, Ino) {
        let mut tree = Tree::new(Limits {
            max_bytes: 100,
            max_inodes: 4,
        });
        let root = tree.new_root().unwrap();
        (tree, root)
    }

    #[test]
    fn byte_cap_is_enospc_and_leaves_the_file_as_it_was() {
        let (mut tree, root) = small();
        let file = tree.create(root, b"f", Kind::File(Vec::new())).unwrap();
        tree.write(file, 0, &[7; 90]).unwrap();
        assert_eq!(tree.write(file, 90, &[1; 20]), Err(Errno::NOSPC));
        assert_eq!(tree.file(file).unwrap().len(), 90);
        assert_eq!(tree.bytes_used(), 91);
        tree.set_len(file, 10).unwrap();
        assert_eq!(tree.bytes_used(), 11);
        tree.write(file, 50, &[1; 40]).unwrap();
        assert_eq!(tree.file(file).unwrap()[10..50], [0; 40]);
        assert_eq!(tree.set_len(file, u64::MAX), Err(Errno::NOSPC));
    }

    #[test]
    fn inode_cap_is_edquot() {
        let (mut tree, root) = small();
        for name in [b"a", b"b", b"c"] {
            tree.create(root, name, Kind::Dir(BTreeMap::new())).unwrap();
        }
        assert_eq!(
            tree.create(root, b"d", Kind::File(Vec::new())),
            Err(Errno::DQUOT)
        );
        assert_eq!(tree.bytes_used(), 3);
        tree.unlink(root, b"a").unwrap();
        tree.create(root, b"d", Kind::File(Vec::new())).unwrap();
    }

    #[test]
    fn unlinked_open_file_lives_until_closed() {
        let (mut tree, root) = small();
        let file = tree.create(root, b"f", Kind::File(Vec::new())).unwrap();
        tree.write(file, 0, b"hello").unwrap();
        tree.retain(file);
        tree.unlink(root, b"f").unwrap();
        assert_eq!(tree.file(file), Ok(&b"hello"[..]));
        tree.close(file);
        assert!(tree.get(file).is_none());
        assert_eq!((tree.bytes_used(), tree.inodes_used()), (0, 1));
    }

    #[test]
    fn rename_replaces_and_walk_lists_paths() {
        let (mut tree, root) = small();
        let dir = tree.create(root, b"d", Kind::Dir(BTreeMap::new())).unwrap();
        let a = tree.create(root, b"a", Kind::File(Vec::new())).unwrap();
        tree.create(dir, b"b", Kind::File(Vec::new())).unwrap();
        tree.rename(root, b"a", dir, b"b").unwrap();
        assert_eq!(tree.lookup(dir, b"b"), Ok(Some(a)));
        assert_eq!(tree.inodes_used(), 3);
        let paths: Vec<Vec<u8>> = tree.walk(root).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, [b"d".to_vec(), b"d/b".to_vec()]);
        assert_eq!(check_name(&[b'x'; 256]), Err(Errno::NAMETOOLONG));
    }
}
