//! What can go wrong talking to an agent. Every variant names the operation, so
//! a caller (and the FFI/Python faces mapping these to codes) can tell a slow
//! agent from a dead one from a refusal.

use std::io;
use std::time::Duration;

use kvmsandbox_proto::{ErrorCode, ProtoError};

/// An agent operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// Local socket I/O failed (not a timeout, not the peer hanging up).
    #[error("agent I/O during {op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The agent sent bytes that are not a valid frame.
    #[error("agent sent a malformed frame during {op}: {source}")]
    Protocol {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        source: ProtoError,
    },
    /// The agent said nothing for too long.
    #[error("agent did not answer {op} within {after:?}")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The silence that was tolerated.
        after: Duration,
    },
    /// The agent refused or failed the request.
    #[error("agent failed {op}: {code:?}: {message}")]
    Remote {
        /// The operation.
        op: &'static str,
        /// Stable error code.
        code: ErrorCode,
        /// The agent's message.
        message: String,
    },
    /// This agent does not implement the request (e.g. WASM on the Linux agent).
    #[error("agent does not support {op}: {message}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The agent's message.
        message: String,
    },
    /// The connection closed mid-operation (the agent or the guest died).
    #[error("agent disconnected during {op}")]
    Disconnected {
        /// The operation.
        op: &'static str,
    },
    /// A valid frame that makes no sense at this point of the conversation.
    #[error("agent sent an unexpected {got} during {op}")]
    Unexpected {
        /// The operation.
        op: &'static str,
        /// The message received.
        got: &'static str,
    },
    /// The agent speaks another protocol version.
    #[error("agent speaks protocol version {got}, this host speaks {want}")]
    Version {
        /// The agent's version.
        got: u16,
        /// Ours.
        want: u16,
    },
    /// The call would collect more than [`AgentLimits::max_output`](super::AgentLimits::max_output)
    /// bytes of one stream (the agent is flooding, or the output is just large).
    #[error("{op} produced more than {limit} bytes of output (the host's limit)")]
    OutputLimit {
        /// The operation.
        op: &'static str,
        /// The limit in bytes.
        limit: u64,
    },
    /// The agent kept sending frames for other requests instead of the answer.
    #[error("agent sent {frames} frames for other requests during {op}")]
    StaleFrames {
        /// The operation.
        op: &'static str,
        /// How many were skipped before giving up.
        frames: u32,
    },
    /// The agent could not prepare a WASM module (invalid, unlinkable, no `_start`).
    #[error("{op} failed: {kind:?}: {message}")]
    Wasm {
        /// The operation.
        op: &'static str,
        /// Why, as the agent classified it.
        kind: kvmsandbox_proto::msg::WasmErrorKind,
        /// The agent's message.
        message: String,
    },
    /// The operation needs a new connection and this client cannot open one.
    #[error("{op} needs a new connection but this client was built from a single stream")]
    NoConnector {
        /// The operation.
        op: &'static str,
    },
}

impl AgentError {
    /// Maps an I/O error of `op` to the right variant (timeouts and hang-ups are typed).
    pub(crate) fn from_io(op: &'static str, e: io::Error, after: Option<Duration>) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::Timeout {
                op,
                after: after.unwrap_or_default(),
            },
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected => Self::Disconnected { op },
            _ => Self::Io { op, source: e },
        }
    }

    /// The agent's error code, for [`AgentError::Remote`].
    pub fn remote_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Remote { code, .. } => Some(*code),
            Self::Unsupported { .. } => Some(ErrorCode::Unsupported),
            _ => None,
        }
    }
}
