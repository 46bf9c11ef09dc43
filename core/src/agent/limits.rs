//! How much of the host one agent call may use: the agent is guest code, so
//! everything it sends is hostile until proven otherwise. Output is capped per
//! call, every call ends by an absolute deadline (a silence timeout alone restarts
//! on each frame, so a guest dribbling bytes could hold a call forever), and
//! frames answering other requests are skipped only a bounded number of times.
//!
//! One rule for every face (Rust, C, Python): a call that would collect more than
//! [`AgentLimits::max_output`] fails with [`AgentError::OutputLimit`] — nothing is
//! silently truncated — and the connection is dropped (the agent may still be
//! sending). Use [`AgentClient::exec_streaming`] to consume output of any size.
//!
//! [`AgentError::OutputLimit`]: super::AgentError::OutputLimit
//! [`AgentClient::exec_streaming`]: super::AgentClient::exec_streaming

use std::time::Duration;

/// Default for [`AgentLimits::max_output`]: 64 MiB.
pub const DEFAULT_MAX_OUTPUT: u64 = 64 << 20;
/// Default for [`AgentLimits::default_deadline`]: one hour.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(3600);
/// Default for [`AgentLimits::max_stale_frames`].
pub const DEFAULT_MAX_STALE_FRAMES: u32 = 1024;

/// Host-side bounds on what one agent call may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentLimits {
    /// Most bytes one call collects per stream: exec stdout and stderr each,
    /// run_wasm stdout and stderr each (collected by `Sandbox::run_wasm`), an
    /// echo reply, a disk_read, a read_file (whatever `out` is).
    pub max_output: u64,
    /// The absolute deadline of a call that has none of its own: a read_file or
    /// write_file, an exec without a timeout, a run_wasm without a wall-clock
    /// timeout. Calls waiting for one answer (ping, disk I/O, exec start) end
    /// within the client timeout; an exec with a timeout within that timeout plus
    /// the client timeout.
    pub default_deadline: Duration,
    /// Most frames of other requests skipped while waiting for an answer before
    /// the call fails with `AgentError::StaleFrames`.
    pub max_stale_frames: u32,
}

/// Builders: the struct is `#[non_exhaustive]` (it may gain bounds), so other
/// crates start from `AgentLimits::default()` and change what they need.
impl AgentLimits {
    /// Sets [`max_output`](Self::max_output).
    pub fn with_max_output(mut self, bytes: u64) -> Self {
        self.max_output = bytes;
        self
    }

    /// Sets [`default_deadline`](Self::default_deadline).
    pub fn with_default_deadline(mut self, deadline: Duration) -> Self {
        self.default_deadline = deadline;
        self
    }

    /// Sets [`max_stale_frames`](Self::max_stale_frames).
    pub fn with_max_stale_frames(mut self, frames: u32) -> Self {
        self.max_stale_frames = frames;
        self
    }
}

impl Default for AgentLimits {
    fn default() -> Self {
        Self {
            max_output: DEFAULT_MAX_OUTPUT,
            default_deadline: DEFAULT_DEADLINE,
            max_stale_frames: DEFAULT_MAX_STALE_FRAMES,
        }
    }
}
