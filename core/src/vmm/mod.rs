//! The machine: KVM VM, memory, vCPUs, boot.

pub mod boot;
pub mod layout;
