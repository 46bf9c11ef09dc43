//! What a pool itself can refuse; failures of the sandboxes it makes keep their
//! own [`Error`](crate::Error) variants.

use crate::error_kind::ErrorKind;
use std::time::Duration;

/// Errors of [`SandboxPool`](super::SandboxPool).
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The pool settings contradict each other or are out of range.
    #[error("invalid pool setting {what} = {value}: {why}")]
    InvalidConfig {
        /// The setting.
        what: &'static str,
        /// Its value.
        value: u64,
        /// What it must be.
        why: &'static str,
    },
    /// A config source names a vsock socket: pooled sandboxes each need their own.
    #[error("the pool's VM config sets the vsock socket {path:?}; leave it unset so every pooled sandbox gets a private one")]
    SharedVsockPath {
        /// The socket path the config named.
        path: std::path::PathBuf,
    },
    /// A template without a snapshot (prepared in a sandbox without its own VM)
    /// cannot make new sandboxes.
    #[error("WASM template {id} has no snapshot (it was prepared in a sandbox without its own VM), so a pool cannot fork it")]
    TemplateWithoutSnapshot {
        /// The template's id.
        id: u64,
    },
    /// No sandbox became free within the acquire timeout.
    #[error(
        "no pooled sandbox became free within {after:?} ({busy} of max_size {max_size} borrowed)"
    )]
    AcquireTimeout {
        /// The timeout.
        after: Duration,
        /// Sandboxes borrowed when it passed.
        busy: usize,
        /// The pool's bound.
        max_size: usize,
    },
    /// The pool was closed before or during the call.
    #[error("the sandbox pool is closed")]
    Closed,
}

impl PoolError {
    /// What kind of failure this is (the same in the C and Python faces).
    pub fn kind(&self) -> ErrorKind {
        self.leaf().1
    }

    /// The variant's name and kind (the error table's row for it).
    pub(crate) fn leaf(&self) -> (&'static str, ErrorKind) {
        match self {
            PoolError::InvalidConfig { .. } => ("InvalidConfig", ErrorKind::Config),
            PoolError::SharedVsockPath { .. } => ("SharedVsockPath", ErrorKind::Config),
            PoolError::TemplateWithoutSnapshot { .. } => {
                ("TemplateWithoutSnapshot", ErrorKind::Unsupported)
            }
            PoolError::AcquireTimeout { .. } => ("AcquireTimeout", ErrorKind::Timeout),
            PoolError::Closed => ("Closed", ErrorKind::Stopped),
        }
    }
}
