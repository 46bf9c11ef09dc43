//! Containment: every command runs in a cgroup v2 of its own, so killing it
//! (`cgroup.kill`) reaches every process it started, including those that left its
//! process group with `setsid`/`setpgid`. The agent keeps its commands' cgroups in
//! a private subtree: as PID 1 under the cgroup2 mount it made, in host mode under
//! its own cgroup (or a root given with `--cgroup-root`). Without a usable cgroup2
//! the agent falls back to process groups and says so on stderr.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why cgroups cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 mount in /proc/self/mountinfo.
    #[error("no cgroup2 file system is mounted")]
    NotMounted,
    /// /proc/self/cgroup has no `0::` line.
    #[error("the agent's own cgroup v2 path is not in /proc/self/cgroup")]
    NoOwnCgroup,
    /// A directory given as the root is not a cgroup2 directory.
    #[error(
        "{0} is not a cgroup v2 directory (no cgroup.procs, or no cgroup.kill: kernel < 5.14)"
    )]
    NotCgroup2(PathBuf),
    /// A cgroup file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

static ROOT: OnceLock<Option<Subtree>> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Sets up the agent's subtree under `root` (or, if `None`, under the agent's own
/// cgroup). Logs and falls back to process groups when that fails.
pub fn init(root: Option<&Path>) {
    ROOT.get_or_init(|| {
        let r = match root {
            Some(r) => Subtree::create(r),
            None => own_cgroup_dir().and_then(|d| Subtree::create(&d)),
        };
        match r {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!(
                    "kvmsandbox-agent: cgroups unavailable ({e}); commands are contained by process group only"
                );
                None
            }
        }
    });
}

/// The agent's subtree, if cgroups are in use.
pub fn subtree() -> Option<&'static Subtree> {
    ROOT.get().and_then(Option::as_ref)
}

/// The agent's own cgroup directory: cgroup2 mount point + `0::` path.
fn own_cgroup_dir() -> Result<PathBuf, CgroupError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    let mount = cgroup2_mount(&mountinfo).ok_or(CgroupError::NotMounted)?;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(io_err("read", Path::new("/proc/self/cgroup")))?;
    let rel = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or(CgroupError::NoOwnCgroup)?;
    Ok(mount.join(rel.trim_start_matches('/')))
}

/// The mount point of the first cgroup2 file system in a mountinfo text.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        // Fields: id parent maj:min root mountpoint opts [optional...] - fstype src opts
        let (pre, post) = l.split_once(" - ")?;
        if post.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        pre.split_whitespace().nth(4).map(PathBuf::from)
    })
}

/// The agent's private directory of command cgroups.
#[derive(Debug)]
pub struct Subtree {
    dir: PathBuf,
}

impl Subtree {
    /// Makes `<root>/kvmsandbox-agent-<pid>`, first killing and removing those of
    /// agents that are gone (their commands would otherwise live on).
    pub fn create(root: &Path) -> Result<Self, CgroupError> {
        if !root.join("cgroup.procs").exists() {
            return Err(CgroupError::NotCgroup2(root.to_path_buf()));
        }
        sweep_stale(root);
        let dir = root.join(format!("kvmsandbox-agent-{}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("mkdir", &dir)(e)),
        }
        if !dir.join("cgroup.kill").exists() {
            let _ = std::fs::remove_dir(&dir);
            return Err(CgroupError::NotCgroup2(dir));
        }
        Ok(Self { dir })
    }

    /// A fresh cgroup for one command.
    pub fn new_cgroup(&self) -> Result<Cgroup, CgroupError> {
        let dir = self
            .dir
            .join(format!("cmd-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&dir).map_err(io_err("mkdir", &dir))?;
        let procs_path = dir.join("cgroup.procs");
        let procs = OpenOptions::new()
            .write(true)
            .open(&procs_path)
            .map_err(io_err("open", &procs_path));
        match procs {
            Ok(procs) => Ok(Cgroup { dir, procs }),
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                Err(e)
            }
        }
    }

    /// Kills whatever is left and removes the subtree (host-mode shutdown).
    pub fn remove(&self) {
        remove_tree(&self.dir);
    }
}

fn sweep_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("kvmsandbox-agent-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            remove_tree(&e.path());
        }
    }
}

/// Kills every process below `dir` and removes the directories, deepest first.
fn remove_tree(dir: &Path) {
    let _ = write_file(&dir.join("cgroup.kill"), b"1");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    wait_empty(dir, Duration::from_secs(2));
    let _ = std::fs::remove_dir(dir);
}

fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    OpenOptions::new().write(true).open(path)?.write_all(data)
}

/// Whether `cgroup.events` says nothing runs in `dir` (or below).
fn is_empty(dir: &Path) -> bool {
    let mut s = String::new();
    match File::open(dir.join("cgroup.events")).and_then(|mut f| f.read_to_string(&mut s)) {
        Ok(_) => s.lines().any(|l| l == "populated 0"),
        // Gone already.
        Err(_) => true,
    }
}

fn wait_empty(dir: &Path, bound: Duration) -> bool {
    let start = Instant::now();
    loop {
        if is_empty(dir) {
            return true;
        }
        if start.elapsed() > bound {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One command's cgroup; removed (after killing what is left) on drop.
#[derive(Debug)]
pub struct Cgroup {
    dir: PathBuf,
    procs: File,
}

impl Cgroup {
    /// The open `cgroup.procs`: the child writes "0" to it between fork and exec,
    /// so the command is inside the cgroup before any of its code runs.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// SIGKILLs every process in the cgroup.
    pub fn kill(&self) -> io::Result<()> {
        write_file(&self.dir.join("cgroup.kill"), b"1")
    }

    /// Whether no process is left.
    pub fn is_empty(&self) -> bool {
        is_empty(&self.dir)
    }

    /// The directory (for logs and tests).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.is_empty() {
            let _ = self.kill();
            if !wait_empty(&self.dir, Duration::from_secs(2)) {
                eprintln!(
                    "kvmsandbox-agent: {} still populated after cgroup.kill",
                    self.dir.display()
                );
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Joins the calling process to the cgroup whose `cgroup.procs` is open as `fd`.
/// Called in the child between fork and exec: only async-signal-safe calls.
pub fn join_in_child(fd: RawFd) -> io::Result<()> {
    // SAFETY: write(2) of a 1-byte static buffer to an fd that is open in this process.
    let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    if n != 1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount() {
        let mi = "22 1 0:21 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw\n\
                  30 22 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("22 1 0:21 / /x rw - tmpfs tmpfs rw\n"), None);
    }
}
