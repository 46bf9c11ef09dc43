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

/// A connection speaking raw frames, for what the host client never sends.
pub struct Raw {
    pub s: UnixStream,
    dec: kvmsandbox_proto::FrameDecoder,
}

impl Raw {
    /// Connects and reads the Hello.
    pub fn connect(agent: &HostAgent) -> Self {
        let s = UnixStream::connect(&agent.sock).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut r = Self {
            s,
            dec: kvmsandbox_proto::FrameDecoder::new(),
        };
        let hello = r.recv();
        assert!(matches!(hello.msg, kvmsandbox_proto::Message::Hello(_)));
        r
    }

    pub fn send(&mut self, id: u32, msg: kvmsandbox_proto::Message) {
        use std::io::Write;
        let bytes = kvmsandbox_proto::Frame::new(id, msg).encode().unwrap();
        self.s.write_all(&bytes).unwrap();
    }

    /// The next frame (panics after TIMEOUT of silence).
    pub fn recv(&mut self) -> kvmsandbox_proto::Frame {
        use std::io::Read;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(f) = self.dec.next_frame().unwrap() {
                return f;
            }
            let n = self.s.read(&mut buf).expect("agent silent");
            assert!(n > 0, "agent hung up");
            self.dec.feed(&buf[..n]);
        }
    }

    /// The next frame for `id` that is not a `StdinAck`.
    pub fn recv_for(&mut self, id: u32) -> kvmsandbox_proto::Message {
        loop {
            let f = self.recv();
            if f.request_id == id && !matches!(f.msg, kvmsandbox_proto::Message::StdinAck { .. }) {
                return f.msg;
            }
        }
    }
}

/// One line of /proc/<pid>/stat: (state, ppid), or `None` if there is no such process.
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` runs (a zombie is dead).
pub fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((st, _)) if st != 'Z')
}

/// Pids whose parent is `parent` (zombies included).
pub fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| stat(*p).is_some_and(|(_, pp)| pp == parent))
        .collect()
}

/// Polls `cond` until it holds, panicking with `what` after `bound`.
pub fn eventually(bound: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < bound,
            "{what} (after {:?})",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The decimal pids printed one per line in `out`.
pub fn pids_in(out: &[u8]) -> Vec<u32> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}
