//! kvmsandbox's virtio-vsock device, served over vhost-user so another VMM (QEMU's
//! `vhost-user-vsock-device`, cloud-hypervisor…) can give its guest the very device
//! our own VMM uses, with the same Firecracker-style hybrid Unix socket on the host.
//! Our test harness uses it to run the Linux guest under QEMU TCG where KVM cannot
//! run Linux user space (docs/linux-tcg.md).

pub mod args;
pub mod backend;
pub mod serve;

pub use backend::{BackendError, VsockBackend};
