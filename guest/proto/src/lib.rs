//! Contracts shared by the host and the guests: the micro guest's boot-info
//! structure and the agent wire protocol. `no_std` + `alloc` so the micro guest
//! links the very same code the host uses.
//!
//! The agent protocol, in short (details in [`frame`] and [`msg`]):
//! * every frame is a 14-byte header (magic `"KS"`, version, flags, type, request
//!   id, payload length) plus at most [`frame::MAX_FRAME`] bytes of payload;
//! * on each new connection the agent speaks first with [`msg::Message::Hello`];
//! * the host sends requests, each with a fresh request id; every response frame
//!   carries the id of the request it answers, so frames of several requests may be
//!   interleaved on one connection. The host client keeps it simple: one request at
//!   a time per connection, and a new connection for each concurrent operation;
//! * bulk data (files, WASM modules, process output) is streamed as several frames
//!   ([`msg::Message::Data`] ... [`msg::Message::DataEnd`], or
//!   `Stdout`/`Stderr` chunks), never as one big frame.
#![no_std]

extern crate alloc;

pub mod bootinfo;
pub mod error;
pub mod file_stat;
pub mod frame;
pub mod msg;
pub mod vsock;
pub mod wasmfs;

pub use error::ProtoError;
pub use frame::{Frame, FrameDecoder, HEADER_LEN, MAX_FRAME, PROTOCOL_VERSION};
pub use msg::{ErrorCode, Message};

/// vsock port the agents listen on unless told otherwise.
pub const DEFAULT_AGENT_PORT: u32 = 1024;
