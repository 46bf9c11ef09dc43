//! The machine: KVM VM, memory, vCPUs, boot.

pub mod boot;
pub mod console;
pub mod console_delivery;
pub mod cpuid;
pub mod device_manager;
mod fail_point;
pub mod host;
pub mod kick;
pub mod kvm;
pub mod layout;
pub mod memory;
pub mod pvm_linux;
pub mod reaper;
pub mod regs;
pub mod run_state;
pub mod snapshot;
pub mod timings;
pub mod vcpu;
pub mod vm;
