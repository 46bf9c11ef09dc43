//! Snapshots at the VMM level: what a VM is made of at one instant, one plain
//! versioned state struct per component (each owned by its file here), and the
//! sealed memory image they go with. `Vm::snapshot` and `Vm::restore` (vm.rs)
//! pause the vCPUs at a safe point and use these; `Vm::from_snapshot` builds a
//! new VM from one. Device state is owned by the devices
//! (crate::devices::virtio::state); a device that is not quiescent is refused.

pub mod clock;
pub mod irqchip;
pub mod memory;
pub mod pit;
mod raw;
pub mod vcpu;

use crate::devices::virtio::{DeviceState, DeviceStateError};
use clock::{ClockError, ClockState};
use irqchip::{IrqchipError, IrqchipState};
use memory::{MemorySnapshot, MemorySnapshotError};
use pit::{PitError, PitState};
use std::sync::Arc;
use std::time::Duration;
use vcpu::{VcpuState, VcpuStateError};

/// Layout version of [`VmSnapshot`] itself (component versions are separate).
pub const VM_SNAPSHOT_VERSION: u32 = 2;

/// Errors taking or restoring a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The VM has stopped (or stopped while pausing).
    #[error("the VM is not running")]
    Stopped,
    /// KVM does not follow changes of the host mapping behind guest memory
    /// (no KVM_CAP_SYNC_MMU), which reverting memory relies on.
    #[error("this KVM lacks KVM_CAP_SYNC_MMU: guest memory cannot be reverted in place")]
    NoSyncMmu,
    /// A virtio device is not quiescent (snapshot), or the snapshot's state of it
    /// does not fit this VM's device (restore, fork).
    #[error("virtio device {index} (type {device_type}): {source}")]
    Device {
        /// The device's index (placement order: disks, then vsock).
        index: usize,
        /// Its virtio type id (2 = blk, 19 = vsock).
        device_type: u32,
        /// What is wrong.
        #[source]
        source: DeviceStateError,
    },
    /// The snapshot was taken of a VM with another number of virtio devices.
    #[error("the snapshot has {snapshot} virtio device(s), this VM has {vm}")]
    DeviceCount {
        /// Devices in the snapshot.
        snapshot: usize,
        /// Devices of the VM (or its config).
        vm: usize,
    },
    /// Building a VM from a snapshot failed before it ran.
    #[error("creating a VM from the snapshot failed: {0}")]
    Create(Box<crate::error::Error>),
    /// A vCPU did not reach the pause gate, or did not run its job, in time.
    #[error("vCPU {index} did not {what} within {after:?}")]
    VcpuUnresponsive {
        /// The vCPU (the first one missing).
        index: usize,
        /// What it failed to do.
        what: &'static str,
        /// The bound.
        after: Duration,
    },
    /// The snapshot was taken of a VM with another number of vCPUs.
    #[error("the snapshot has {snapshot} vCPU(s), this VM has {vm}")]
    VcpuCount {
        /// vCPUs in the snapshot.
        snapshot: usize,
        /// vCPUs of the VM.
        vm: usize,
    },
    /// One of the snapshot and the VM has a PIT and the other not.
    #[error("the snapshot {} a PIT, this VM {}", if *snapshot { "has" } else { "has no" }, if *vm { "has one" } else { "has none" })]
    PitMismatch {
        /// The snapshot has a PIT.
        snapshot: bool,
        /// The VM has a PIT.
        vm: bool,
    },
    /// The snapshot was made by another layout version.
    #[error("VM snapshot version {found}, this build reads {VM_SNAPSHOT_VERSION}")]
    Version {
        /// Version in the snapshot.
        found: u32,
    },
    /// Guest memory could not be captured, mapped or reverted.
    #[error(transparent)]
    Memory(#[from] MemorySnapshotError),
    /// Guest memory could not be re-registered with KVM after a re-map.
    #[error("re-registering guest memory after the re-map failed: {0}")]
    Slots(#[from] crate::vmm::memory::MemoryError),
    /// A vCPU's state could not be captured or applied.
    #[error(transparent)]
    Vcpu(#[from] VcpuStateError),
    /// The irqchip state could not be captured or applied.
    #[error(transparent)]
    Irqchip(#[from] IrqchipError),
    /// The PIT state could not be captured or applied.
    #[error(transparent)]
    Pit(#[from] PitError),
    /// The clock could not be read or set.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// Restoring failed after the VM was changed; the VM was stopped rather than
    /// left half-restored.
    #[error("restore failed part-way, the VM was stopped: {0}")]
    RestoreFailed(Box<SnapshotError>),
}

/// A VM at one instant: memory image plus every component's state.
#[derive(Clone, Debug)]
pub struct VmSnapshot {
    /// [`VM_SNAPSHOT_VERSION`] when taken.
    pub version: u32,
    /// Guest RAM (shared by every VM mapped from it).
    pub memory: Arc<MemorySnapshot>,
    /// Each vCPU's state, by index.
    pub vcpus: Vec<VcpuState>,
    /// PICs and IOAPIC.
    pub irqchip: IrqchipState,
    /// The PIT, if the VM has one.
    pub pit: Option<PitState>,
    /// kvmclock.
    pub clock: ClockState,
    /// Every virtio device, by index (placement order: disks, then vsock).
    pub devices: Vec<DeviceState>,
}

/// A bare KVM VM (RAM, irqchip, optional PIT, one vCPU set up as our VMs set it
/// up) for the state round-trip tests. Needs /dev/kvm.
#[cfg(test)]
pub(crate) mod test_vm {
    use crate::vmm::{cpuid, host::HostKind, memory, regs};
    use kvm_ioctls::{Kvm, VcpuFd, VmFd};

    pub struct TestVm {
        pub vcpu: VcpuFd,
        pub vm: VmFd,
        pub kvm: Kvm,
        _mem: memory::GuestMemory,
    }

    pub fn new(pit: bool) -> TestVm {
        let kvm = Kvm::new().unwrap();
        let vm = kvm.create_vm().unwrap();
        vm.set_tss_address(0xfffb_d000).unwrap();
        let mem = memory::create(16 << 20).unwrap();
        memory::register(&vm, &mem).unwrap();
        vm.create_irq_chip().unwrap();
        if pit {
            vm.create_pit2(kvm_bindings::kvm_pit_config::default())
                .unwrap();
        }
        let vcpu = vm.create_vcpu(0).unwrap();
        let mut id = kvm
            .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
            .unwrap();
        cpuid::filter(&mut id, 0, 1, HostKind::detect());
        vcpu.set_cpuid2(&id).unwrap();
        regs::setup_lapic(&vcpu).unwrap();
        TestVm {
            vcpu,
            vm,
            kvm,
            _mem: mem,
        }
    }
}
