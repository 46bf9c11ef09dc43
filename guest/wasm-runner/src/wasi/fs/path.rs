//! Path resolution beneath a directory descriptor, as WASI demands: no
//! absolute paths, no `..` above the descriptor's directory (even through a
//! symlink), symlinks followed at most [`MAX_SYMLINKS`] times (`ELOOP`).

use alloc::vec::Vec;

use super::tree::{Ino, Kind, Tree, MAX_SYMLINK};
use crate::wasi::abi::Errno;

/// Most symlinks one resolution follows.
pub const MAX_SYMLINKS: u32 = 40;
/// Longest path a module may pass, in bytes.
pub const MAX_PATH: usize = 4096;

/// Where a path leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Walked {
    /// The directory holding the last component.
    pub parent: Ino,
    /// The last component; `None` when the path ends in `.` or `..` (then
    /// `target` is that directory).
    pub name: Option<Vec<u8>>,
    /// The inode the path names (not following a final symlink unless asked).
    pub target: Option<Ino>,
    /// The path (or the final symlink's target) ended with a slash.
    pub trailing_slash: bool,
}

/// Resolves `path` beneath directory `base`; a final symlink is followed if
/// `follow` (or if the path ends with a slash).
pub fn walk(tree: &Tree, base: Ino, path: &[u8], follow: bool) -> Result<Walked, Errno> {
    if path.len() > MAX_PATH {
        return Err(Errno::NAMETOOLONG);
    }
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    if path[0] == b'/' {
        return Err(Errno::PERM);
    }
    let mut stack: Vec<Ino> = Vec::new();
    stack.push(base);
    let mut pending: Vec<Vec<u8>> = components(path);
    let mut trailing = path.ends_with(b"/");
    let mut links = 0u32;
    loop {
        let top = *stack.last().ok_or(Errno::NOTCAPABLE)?;
        let Some(comp) = pending.pop() else {
            return Ok(dot(top));
        };
        let last = pending.is_empty();
        match comp.as_slice() {
            b"." => {
                if !matches!(tree.get(top).map(|n| &n.kind), Some(Kind::Dir(_))) {
                    return Err(Errno::NOTDIR);
                }
                if last {
                    return Ok(dot(top));
                }
            }
            b".." => {
                if stack.len() == 1 {
                    return Err(Errno::NOTCAPABLE);
                }
                stack.pop();
                if last {
                    return Ok(dot(*stack.last().ok_or(Errno::NOTCAPABLE)?));
                }
            }
            name => {
                let child = tree.lookup(top, name)?;
                let kind = child.and_then(|ino| tree.get(ino)).map(|node| &node.kind);
                let expand = match kind {
                    Some(Kind::Symlink(target)) if !last || follow || trailing => target,
                    Some(Kind::Dir(_)) if !last => {
                        stack.push(child.ok_or(Errno::NOENT)?);
                        continue;
                    }
                    Some(Kind::File(_)) if !last => return Err(Errno::NOTDIR),
                    None if !last => return Err(Errno::NOENT),
                    _ => {
                        return Ok(Walked {
                            parent: top,
                            name: Some(comp),
                            target: child,
                            trailing_slash: trailing,
                        })
                    }
                };
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::LOOP);
                }
                if expand.is_empty() || expand.len() > MAX_SYMLINK {
                    return Err(Errno::NOENT);
                }
                if expand[0] == b'/' {
                    return Err(Errno::NOTCAPABLE);
                }
                if last {
                    trailing = trailing || expand.ends_with(b"/");
                }
                pending.extend(components(expand));
            }
        }
    }
}

fn dot(dir: Ino) -> Walked {
    Walked {
        parent: dir,
        name: None,
        target: Some(dir),
        trailing_slash: true,
    }
}

/// The non-empty components of `path`, last first (a stack to pop from).
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|byte| *byte == b'/')
        .filter(|part| !part.is_empty())
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasi::fs::tree::Limits;
    use alloc::collections::BTreeMap;

    fn tree() -> (Tree, Ino, Ino, Ino) {
        let mut tree = Tree::new(Limits::default());
        let root = tree.new_root().unwrap();
        let dir = tree.create(root, b"d", Kind::Dir(BTreeMap::new())).unwrap();
        let file = tree.create(dir, b"f", Kind::File(Vec::new())).unwrap();
        tree.create(root, b"up", Kind::Symlink(b"../x".to_vec()))
            .unwrap();
        tree.create(root, b"loop", Kind::Symlink(b"loop".to_vec()))
            .unwrap();
        tree.create(dir, b"back", Kind::Symlink(b"../d/f".to_vec()))
            .unwrap();
        (tree, root, dir, file)
    }

    #[test]
    fn stays_beneath_the_base() {
        let (tree, root, dir, file) = tree();
        assert_eq!(walk(&tree, root, b"d/f", false).unwrap().target, Some(file));
        assert_eq!(
            walk(&tree, root, b"d/../d/./f", false).unwrap().target,
            Some(file)
        );
        assert_eq!(
            walk(&tree, root, b"d/back", true).unwrap().target,
            Some(file)
        );
        assert_eq!(walk(&tree, dir, b"back", true), Err(Errno::NOTCAPABLE));
        assert_eq!(walk(&tree, root, b"../d", false), Err(Errno::NOTCAPABLE));
        assert_eq!(walk(&tree, root, b"up", true), Err(Errno::NOTCAPABLE));
        assert_eq!(walk(&tree, root, b"/d", false), Err(Errno::PERM));
        assert_eq!(walk(&tree, root, b"loop", true), Err(Errno::LOOP));
        assert_eq!(walk(&tree, root, b"d/f/x", false), Err(Errno::NOTDIR));
        assert_eq!(walk(&tree, root, b"x/f", false), Err(Errno::NOENT));
        assert_eq!(walk(&tree, root, b"", false), Err(Errno::NOENT));
        let walked = walk(&tree, root, b"d/f/", false).unwrap();
        assert!(walked.trailing_slash);
        assert_eq!(
            walk(&tree, root, b"d/..", false).unwrap().target,
            Some(root)
        );
    }
}
