//! Guest RAM: one anonymous mapping from guest-physical 0, registered with KVM as
//! slot 0. RAM never reaches the MMIO hole (layout.rs), so one region suffices.

use kvm_ioctls::VmFd;
use vm_memory::{GuestAddress, GuestMemoryBackend as _, GuestMemoryRegion as _};

/// The guest memory type used throughout the VMM.
pub type GuestMemory = vm_memory::GuestMemoryMmap<()>;

/// Errors creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The host refused the mapping (usually: not enough memory).
    #[error("cannot map {size} bytes of guest memory: {source}")]
    Map {
        /// Requested size.
        size: u64,
        /// What vm-memory said.
        source: vm_memory::mmap::FromRangesError,
    },
    /// KVM refused the memory slot.
    #[error("KVM refused guest memory slot {slot} ({size} bytes): {source}")]
    Slot {
        /// Slot number.
        slot: u32,
        /// Region size.
        size: u64,
        /// The KVM error.
        source: kvm_ioctls::Error,
    },
}

/// Maps `size` bytes of RAM at guest-physical 0.
pub fn create(size: u64) -> Result<GuestMemory, MemoryError> {
    GuestMemory::from_ranges(&[(GuestAddress(0), size as usize)])
        .map_err(|source| MemoryError::Map { size, source })
}

/// Deletes and re-adds every memory slot, so KVM drops whatever it mapped of the
/// old host pages. Used after guest RAM was re-mapped in place (snapshots) on PVM
/// hosts, where we once saw a guest keep writing to the replaced pages; hardware
/// KVM follows the re-map through its MMU notifiers. The vCPUs must be paused.
pub fn refresh_slots(vm: &VmFd, mem: &GuestMemory) -> Result<(), MemoryError> {
    for (slot, region) in mem.iter().enumerate() {
        let gone = kvm_bindings::kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: 0,
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: a zero-sized region deletes the slot; no memory is handed over.
        unsafe { vm.set_user_memory_region(gone) }.map_err(|source| MemoryError::Slot {
            slot: slot as u32,
            size: 0,
            source,
        })?;
    }
    register(vm, mem)
}

/// Registers every region of `mem` with KVM.
pub fn register(vm: &VmFd, mem: &GuestMemory) -> Result<(), MemoryError> {
    for (slot, region) in mem.iter().enumerate() {
        let size = region.len();
        let mr = kvm_bindings::kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: size,
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the region's host mapping lives as long as `mem`, which the VM
        // handle keeps alive until after the VM fd (and so the slot) is closed.
        unsafe { vm.set_user_memory_region(mr) }.map_err(|source| MemoryError::Slot {
            slot: slot as u32,
            size,
            source,
        })?;
    }
    Ok(())
}
