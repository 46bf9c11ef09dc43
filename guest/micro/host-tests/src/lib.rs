//! Host-side tests of the micro guest's hardware-free code. The guest is a
//! `no_main` kernel for x86_64-unknown-none, so its own crate cannot run
//! `cargo test`; this crate compiles the very same source files (by path)
//! for the host.

extern crate alloc;

#[path = "../../src/heap/classes.rs"]
pub mod heap_classes;

/// The split virtqueue (driver side): its rings live in ordinary heap memory,
/// so a test can play the device by reading and writing them.
#[path = "../../src/virtio/queue.rs"]
pub mod queue;

// The vsock driver's per-connection state and credit accounting (the parts
// of `virtio/vsock` that do not touch the device). `conn.rs` names its
// siblings as `super::chunk` and `super::packet`: here that is the crate root.
#[path = "../../src/virtio/vsock/chunk.rs"]
pub mod chunk;
#[path = "../../src/virtio/vsock/conn.rs"]
pub mod conn;
#[path = "../../src/virtio/vsock/packet.rs"]
pub mod packet;
