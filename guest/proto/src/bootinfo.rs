//! The micro guest's entry contract with the VMM: the one place it is written down.
//!
//! The VMM loads the micro guest ELF at its physical addresses, builds identity
//! page tables for the first 4 GiB (2 MiB pages), a flat GDT (code 0x8, data 0x10),
//! enters every vCPU directly in 64-bit long mode at the ELF entry with
//! interrupts off and:
//!   * `rdi` = guest-physical address of a [`BootInfo`],
//!   * `rsi` = the vCPU index (0 = bootstrap processor),
//!   * `rsp` = top of a 16 KiB boot stack of that vCPU's own.
//!
//! The guest stops the VM by writing a 32-bit status to [`EXIT_PORT`]
//! (0 = clean shutdown, [`EXIT_PANIC`] = the guest panicked).
//!
//! The structure is versioned: a guest must check `magic` and `version` and may use
//! fields up to `size` bytes; new fields are only ever appended.

/// `"KVMSBOOT"` as a little-endian u64.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"KVMSBOOT");
/// Current structure version.
pub const BOOT_VERSION: u32 = 1;
/// Most devices described in one [`BootInfo`].
pub const MAX_DEVICES: usize = 8;
/// Port the guest writes its exit status to (32-bit `out`).
pub const EXIT_PORT: u16 = 0x501;
/// Exit status that means "the guest panicked" (message on serial before it).
pub const EXIT_PANIC: u32 = 101;
/// Serial line the micro guest prints when it is ready for work.
pub const READY_MARKER: &str = "KVMSANDBOX-READY";

/// Device kinds in [`DeviceInfo::kind`].
pub mod device_kind {
    /// virtio-blk behind virtio-mmio.
    pub const VIRTIO_BLK: u32 = 2;
    /// virtio-vsock behind virtio-mmio.
    pub const VIRTIO_VSOCK: u32 = 19;
}

/// Flags in [`BootInfo::flags`].
pub mod flags {
    /// The host is PVM (guest instructions are emulated; avoid exotic ones).
    pub const HOST_PVM: u64 = 1 << 0;
}

/// One virtio-mmio device.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// One of [`device_kind`]; 0 = empty slot.
    pub kind: u32,
    /// IRQ line (legacy PIC / IOAPIC pin).
    pub irq: u32,
    /// Guest-physical base of the virtio-mmio window.
    pub mmio_base: u64,
    /// Size of the window.
    pub mmio_size: u64,
}

/// What the VMM tells the micro guest at entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// [`BOOT_MAGIC`].
    pub magic: u64,
    /// [`BOOT_VERSION`].
    pub version: u32,
    /// `size_of::<BootInfo>()` as written by the VMM.
    pub size: u32,
    /// Bytes of RAM, starting at guest-physical 0.
    pub mem_size: u64,
    /// Number of vCPUs started.
    pub num_cpus: u32,
    /// Number of valid entries in `devices`.
    pub num_devices: u32,
    /// Guest-physical address of the command line (UTF-8, no NUL needed).
    pub cmdline_addr: u64,
    /// Length of the command line in bytes.
    pub cmdline_len: u64,
    /// See [`flags`].
    pub flags: u64,
    /// Host wall-clock time at boot, nanoseconds since the Unix epoch.
    pub boot_time_ns: u64,
    /// Seed for the guest's random numbers, from the host's RNG.
    pub random_seed: [u8; 32],
    /// Devices, `num_devices` of them valid.
    pub devices: [DeviceInfo; MAX_DEVICES],
    /// TSC frequency in kHz as KVM reports it (0 = unknown). Lets the guest turn
    /// `rdtsc` into wall-clock time since `boot_time_ns` without a clock device.
    pub tsc_khz: u64,
}

impl BootInfo {
    /// An empty, valid structure for `mem_size` bytes and `num_cpus` vCPUs.
    pub fn new(mem_size: u64, num_cpus: u32) -> Self {
        BootInfo {
            magic: BOOT_MAGIC,
            version: BOOT_VERSION,
            size: core::mem::size_of::<BootInfo>() as u32,
            mem_size,
            num_cpus,
            num_devices: 0,
            cmdline_addr: 0,
            cmdline_len: 0,
            flags: 0,
            boot_time_ns: 0,
            random_seed: [0; 32],
            devices: [DeviceInfo::default(); MAX_DEVICES],
            tsc_khz: 0,
        }
    }

    /// The raw bytes the VMM writes into guest memory.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: BootInfo is repr(C), Copy, made only of integers with no padding
        // (checked by the layout test below), so every byte is initialised.
        unsafe {
            core::slice::from_raw_parts(
                (self as *const BootInfo).cast::<u8>(),
                core::mem::size_of::<BootInfo>(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_stable_and_padding_free() {
        assert_eq!(core::mem::size_of::<DeviceInfo>(), 24);
        assert_eq!(
            core::mem::size_of::<BootInfo>(),
            8 + 4 + 4 + 8 + 4 + 4 + 8 + 8 + 8 + 8 + 32 + 24 * 8 + 8
        );
        let b = BootInfo::new(64 << 20, 2);
        assert_eq!(&b.as_bytes()[..8], b"KVMSBOOT");
    }
}
