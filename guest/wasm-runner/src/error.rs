//! Why a module could not be run at all (as opposed to how a run ended,
//! which is an [`Outcome`](crate::Outcome)).

use alloc::string::String;

/// A module that could not be loaded, linked or started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// The bytes are not a valid WebAssembly module (parse or validation).
    #[error("invalid wasm module: {0}")]
    InvalidModule(String),
    /// The module exports no `_start` function.
    #[error("module exports no _start function")]
    MissingEntry,
    /// `_start` exists but is not a `() -> ()` function.
    #[error("_start has the wrong type: {0}")]
    BadEntry(String),
    /// An import cannot be satisfied (a module other than
    /// `wasi_snapshot_preview1`, or a non-function WASI import).
    #[error("cannot link: {0}")]
    Link(String),
    /// Instantiation failed for a reason other than a trap or the memory cap
    /// (e.g. a data segment out of bounds, too many tables).
    #[error("cannot instantiate: {0}")]
    Instantiate(String),
    /// The preopened directories could not be set up (a bad path, or
    /// contents over the tree's caps).
    #[error("cannot preopen: {0}")]
    Preopen(String),
}
