//! virtio-vsock (device id 19), host side, with Firecracker-compatible "hybrid"
//! Unix-socket backend.
//!
//! Split four ways: [`packet`] parses/writes `virtio_vsock_hdr` packets over
//! descriptor chains (pure, guest-facing, fuzzable); [`connection`] is one stream's
//! state machine and credit-based flow control; [`muxer`] owns the host Unix
//! sockets (the listener at `uds_path`, `<uds_path>_<port>` for guest-initiated
//! streams) and routes packets to connections; [`device`] implements
//! [`super::VirtioDevice`] and glues queues, the muxer and the event loop together.
//!
//! Host-initiated: connect to `uds_path`, write `CONNECT <port>\n`, read
//! `OK <local_port>\n`, then the stream is the guest's. Guest-initiated: a guest
//! connection to CID 2 port P reaches the Unix listener at `<uds_path>_P`.

pub mod connection;
pub mod device;
pub mod muxer;
pub mod packet;
mod unix;

#[cfg(test)]
mod e2e_tests;

pub use device::{Vsock, VsockConfig, VsockError};
pub use muxer::MuxerError;
pub use unix::BindError;

/// The host's context id: the only destination the guest may address.
pub const HOST_CID: u64 = 2;
/// Default guest context id (the first one a guest may have).
pub const DEFAULT_GUEST_CID: u64 = 3;
