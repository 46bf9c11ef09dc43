//! The private directory a sandbox keeps its vsock socket in (and where
//! guest-initiated connections look for `<socket>_<port>` listeners). Whoever can
//! write there can impersonate the agent or read what the host sends it, so the
//! directory is made by one mkdir(2) with mode 0700 under an unpredictable name,
//! never reused when something is already there, and checked (through a
//! descriptor opened with O_NOFOLLOW) to be a directory this user owns.

use std::ffi::CString;
use std::fs::DirBuilder;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Fresh names tried before giving up (a collision with 64 random bits means
/// someone is planting names on purpose).
pub const MAX_ATTEMPTS: usize = 16;

/// Why the runtime directory could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeDirError {
    /// mkdir(2) or a check on the new directory failed.
    #[error("cannot create the sandbox runtime directory {path}: {source}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Every name tried already existed.
    #[error("{attempts} fresh names under {base} all existed already; refusing to reuse one")]
    Exhausted {
        /// Where the names were tried.
        base: PathBuf,
        /// How many were tried.
        attempts: usize,
    },
    /// What mkdir created is not a directory owned by this user (swapped under us).
    #[error("{path} is not a directory owned by uid {uid}")]
    NotOurs {
        /// The directory.
        path: PathBuf,
        /// Our effective uid.
        uid: u32,
    },
    /// No random bytes for the name.
    #[error("cannot get random bytes for the runtime directory name: {0}")]
    Random(io::Error),
}

/// A private directory, removed with everything in it on drop.
#[derive(Debug)]
pub struct RuntimeDir {
    path: PathBuf,
}

impl RuntimeDir {
    /// A fresh directory under `$XDG_RUNTIME_DIR` if that is a usable directory of
    /// ours, else under the temporary directory.
    pub fn create() -> Result<RuntimeDir, RuntimeDirError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| usable_base(p))
            .unwrap_or_else(std::env::temp_dir);
        let pid = std::process::id();
        let names =
            std::iter::repeat_with(|| random_hex().map(|r| format!("kvmsandbox-{pid}-{r}")));
        Self::create_in(&base, names.take(MAX_ATTEMPTS))
    }

    /// The first of `names` under `base` that did not exist yet.
    pub(crate) fn create_in(
        base: &Path,
        names: impl Iterator<Item = Result<String, RuntimeDirError>>,
    ) -> Result<RuntimeDir, RuntimeDirError> {
        let mut attempts = 0;
        for name in names {
            attempts += 1;
            let path = base.join(name?);
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(RuntimeDirError::Create { path, source }),
            }
            // Ours from here on: drop removes it if a check fails.
            let dir = RuntimeDir { path };
            dir.secure()?;
            return Ok(dir);
        }
        Err(RuntimeDirError::Exhausted {
            base: base.to_path_buf(),
            attempts,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks, through a descriptor that cannot follow a symlink, that the path is
    /// a directory we own, and sets its mode to exactly 0700 (the umask may have
    /// narrowed it).
    fn secure(&self) -> Result<(), RuntimeDirError> {
        let err = |source| RuntimeDirError::Create {
            path: self.path.clone(),
            source,
        };
        let c = CString::new(self.path.as_os_str().as_bytes())
            .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        // SAFETY: `c` is a valid NUL-terminated path; open(2) only reads it.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor we exclusively own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `stat` is plain old data; all-zero is a valid value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open and `st` is a writable stat buffer.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: geteuid cannot fail and touches no memory.
        let uid = unsafe { libc::geteuid() };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR || st.st_uid != uid {
            return Err(RuntimeDirError::NotOurs {
                path: self.path.clone(),
                uid,
            });
        }
        // SAFETY: fchmod on a descriptor we own; no memory is passed.
        if st.st_mode & 0o7777 != 0o700 && unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) } < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `$XDG_RUNTIME_DIR` is used only if it is a directory owned by us that nobody
/// else can write to (as the XDG spec requires).
fn usable_base(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail and touches no memory.
    let uid = unsafe { libc::geteuid() };
    p.is_absolute()
        && std::fs::metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0)
}

/// 64 random bits as 16 hex digits.
fn random_hex() -> Result<String, RuntimeDirError> {
    let mut b = [0u8; 8];
    let mut got = 0;
    while got < b.len() {
        // SAFETY: the buffer pointer and length describe the unfilled tail of `b`.
        let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(RuntimeDirError::Random(e));
        }
        got += n as usize;
    }
    Ok(format!("{:016x}", u64::from_ne_bytes(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kvmsb-rtdir-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        d
    }

    fn names(list: &[&str]) -> impl Iterator<Item = Result<String, RuntimeDirError>> {
        list.iter()
            .map(|s| Ok(s.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn planted_directory_and_symlink_are_never_used() {
        let base = scratch("planted");
        // Another user's (here: a world-writable) directory, and a symlink to one.
        let planted = base.join("a");
        std::fs::create_dir(&planted).unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o777)).unwrap();
        let target = base.join("elsewhere");
        std::fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, base.join("b")).unwrap();

        let dir = RuntimeDir::create_in(&base, names(&["a", "b", "c"])).unwrap();
        assert_eq!(dir.path(), base.join("c"));
        let m = std::fs::symlink_metadata(dir.path()).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o700);
        // The planted ones are untouched.
        assert_eq!(std::fs::metadata(&planted).unwrap().mode() & 0o777, 0o777);
        assert!(std::fs::symlink_metadata(base.join("b"))
            .unwrap()
            .file_type()
            .is_symlink());
        drop(dir);
        assert!(!base.join("c").exists(), "removed on drop");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn only_planted_names_is_an_error_not_a_reuse() {
        let base = scratch("exhausted");
        std::fs::create_dir(base.join("x")).unwrap();
        std::os::unix::fs::symlink("/tmp", base.join("y")).unwrap();
        let e = RuntimeDir::create_in(&base, names(&["x", "y"])).unwrap_err();
        assert!(
            matches!(e, RuntimeDirError::Exhausted { attempts: 2, .. }),
            "{e}"
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn names_are_fresh_and_unpredictable() {
        let a = RuntimeDir::create().unwrap();
        let b = RuntimeDir::create().unwrap();
        let (na, nb) = (a.path().file_name().unwrap(), b.path().file_name().unwrap());
        assert_ne!(na, nb);
        let suffix =
            |n: &std::ffi::OsStr| n.to_str().unwrap().rsplit('-').next().unwrap().to_string();
        // 16 hex digits of randomness, not a counter.
        assert_eq!(suffix(na).len(), 16, "{na:?}");
        assert!(suffix(na).bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(std::fs::metadata(a.path()).unwrap().mode() & 0o7777, 0o700);
    }
}
