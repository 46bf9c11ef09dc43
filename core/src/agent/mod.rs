//! Host side of the agent protocol (`kvmsandbox-proto`).
//!
//! [`AgentClient`] speaks to either agent — the micro guest's or the Linux guest's
//! PID 1 — over a Unix stream: the agent's own socket when it runs as a host
//! process, or a guest vsock port reached through the VMM's hybrid vsock socket
//! ([`connect_hybrid`]). One request at a time per connection; operations that
//! must run alongside others ([`AgentClient::exec_streaming`]) open their own
//! connection through the client's connector. Every wait is bounded by socket
//! timeouts and an absolute deadline, so a silent or dribbling agent yields
//! [`AgentError::Timeout`] and a dead one [`AgentError::Disconnected`]; what one
//! call collects is capped by [`AgentLimits`].
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//! use kvmsandbox::agent::{AgentClient, ExecRequest};
//!
//! let mut agent = AgentClient::connect_unix(Path::new("/tmp/agent.sock"), Duration::from_secs(5))?;
//! let out = agent.exec(&ExecRequest::new(["echo", "hi"]).timeout(Duration::from_secs(10)))?;
//! assert_eq!(out.stdout, b"hi\n");
//! let mut bytes = Vec::new();
//! agent.read_file("/etc/hostname", &mut bytes)?;
//! # Ok::<(), kvmsandbox::agent::AgentError>(())
//! ```

mod client;
mod conn;
mod error;
mod exec;
mod files;
mod fs;
pub mod host_fn;
mod hybrid;
mod limits;
mod stdin_window;
mod template;
mod wasm;
mod wasm_dirs;

pub use client::{AgentClient, Connector};
pub use error::AgentError;
pub use exec::{
    ExecEvent, ExecOutput, ExecRequest, ExitStatus, ProcessHandle, ProcessKiller, ProcessStdin,
    Stream,
};
pub use fs::{FileInfo, FileKind};
pub use host_fn::{HostCall, HostCallback, HostFnError, HostFunctions, HostReturn, HostType, Val};
pub use hybrid::connect_hybrid;
pub(crate) use hybrid::hybrid_handshake;
pub use kvmsandbox_proto::msg::{Hello, WasmErrorKind};
pub use kvmsandbox_proto::ErrorCode;
pub use limits::{AgentLimits, DEFAULT_DEADLINE, DEFAULT_MAX_OUTPUT, DEFAULT_MAX_STALE_FRAMES};
pub use template::WasmCall;
pub use wasm::{WasmOutcome, WasmRequest};
pub use wasm_dirs::{
    WasmDir, WasmDirError, WasmDirOutput, WasmFile, WasmFileKind, WasmFsLimits, DEFAULT_MAX_COPY,
};
