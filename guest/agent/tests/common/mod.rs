//! Starts the agent binary as a host process on a fresh Unix socket.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kvmsandbox::agent::AgentClient;

/// Client timeout used by the tests.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running agent process; killed on drop.
pub struct HostAgent {
    pub child: Child,
    pub sock: PathBuf,
}

static N: AtomicU32 = AtomicU32::new(0);

impl HostAgent {
    pub fn start() -> Self {
        let sock = std::env::temp_dir().join(format!(
            "kvms-agent-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_kvmsandbox-agent"))
            .arg("--unix")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while UnixStream::connect(&sock).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "agent did not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, sock }
    }

    pub fn client(&self) -> AgentClient {
        AgentClient::connect_unix(&self.sock, TIMEOUT).unwrap()
    }
}

impl Drop for HostAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}

/// FNV-1a 64: a checksum without a dependency.
pub fn fnv(data: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
