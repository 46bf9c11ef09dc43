//! kvmsandbox: hardware-isolated microVM sandboxes on KVM, inside the caller's process.

pub mod devices;
pub mod vmm;
pub mod seccomp;
pub mod agent;
