//! virtio drivers over virtio-mmio (version 2, "modern"): the transport, split
//! virtqueues, virtio-blk and virtio-vsock. Memory is identity-mapped, so a
//! buffer's address is its guest-physical address.

pub mod blk;
pub mod mmio;
pub mod queue;
pub mod vsock;

/// `VIRTIO_F_VERSION_1`.
pub const F_VERSION_1: u64 = 1 << 32;
