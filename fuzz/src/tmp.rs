//! A fresh directory per execution for the vsock targets' Unix sockets, removed
//! when the execution ends, so parallel jobs and repeated runs never collide and
//! nothing is left in the temp dir.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// `<tmp>/kvmsandbox-fuzz-<pid>-<n>`; removed (with its contents) on drop. Keep it
/// alive longer than any device bound inside it.
pub struct SocketDir(PathBuf);

impl SocketDir {
    /// Creates the next directory.
    pub fn new() -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("kvmsandbox-fuzz-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).expect("fuzz harness: create socket dir");
        Self(d)
    }

    /// The vsock device's socket path inside it.
    pub fn socket(&self) -> PathBuf {
        self.0.join("v.sock")
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for SocketDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
