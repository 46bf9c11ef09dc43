//! Loading the micro guest: its ELF at its physical addresses (linux-loader),
//! the command line, and the versioned boot-info structure whose address goes
//! in `rdi` (contract: `kvmsandbox_proto::bootinfo`).

use crate::vmm::layout::{BOOT_INFO_START, CMDLINE_MAX_SIZE, CMDLINE_START, HIMEM_START};
use crate::vmm::memory::GuestMemory;
use kvmsandbox_proto::bootinfo::{BootInfo, DeviceInfo, MAX_DEVICES};
use linux_loader::loader::{elf::Elf, KernelLoader};
use std::io::Cursor;
use vm_memory::{Bytes, GuestAddress};

/// Errors loading the micro guest.
#[derive(Debug, thiserror::Error)]
pub enum MicroBootError {
    /// linux-loader rejected the ELF.
    #[error("cannot load the micro guest ELF: {0}")]
    Load(#[from] linux_loader::loader::Error),
    /// The command line does not fit its slot.
    #[error("micro guest command line is {len} bytes, more than {max}")]
    CmdlineTooLong {
        /// Length given.
        len: usize,
        /// Largest allowed.
        max: usize,
    },
    /// More devices than the boot info can describe.
    #[error("{0} devices configured, the micro guest's boot info holds at most {MAX_DEVICES}")]
    TooManyDevices(usize),
    /// Writing the boot structures failed.
    #[error("cannot write micro guest boot structures: {0}")]
    Write(#[from] vm_memory::GuestMemoryError),
}

/// Where execution starts.
pub struct MicroEntry {
    /// ELF entry point.
    pub entry: u64,
    /// Guest-physical address of the boot info (goes in rdi).
    pub boot_info: u64,
}

/// Loads `elf` and writes the boot info describing `mem_size`, `cpus`, `devices`, `cmdline`.
pub fn load(
    mem: &GuestMemory,
    elf: &[u8],
    cmdline: &str,
    cpus: u32,
    devices: &[DeviceInfo],
    flags: u64,
    random_seed: [u8; 32],
) -> Result<MicroEntry, MicroBootError> {
    if cmdline.len() >= CMDLINE_MAX_SIZE {
        return Err(MicroBootError::CmdlineTooLong {
            len: cmdline.len(),
            max: CMDLINE_MAX_SIZE - 1,
        });
    }
    if devices.len() > MAX_DEVICES {
        return Err(MicroBootError::TooManyDevices(devices.len()));
    }
    let loaded = Elf::load(
        mem,
        None,
        &mut Cursor::new(elf),
        Some(GuestAddress(HIMEM_START)),
    )?;
    mem.write_slice(cmdline.as_bytes(), GuestAddress(CMDLINE_START))?;
    let mem_size = vm_memory::GuestMemoryBackend::last_addr(mem).0 + 1;
    let mut info = BootInfo::new(mem_size, cpus);
    info.cmdline_addr = CMDLINE_START;
    info.cmdline_len = cmdline.len() as u64;
    info.flags = flags;
    info.random_seed = random_seed;
    info.boot_time_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    info.num_devices = devices.len() as u32;
    info.devices[..devices.len()].copy_from_slice(devices);
    mem.write_slice(info.as_bytes(), GuestAddress(BOOT_INFO_START))?;
    Ok(MicroEntry {
        entry: loaded.kernel_load.0,
        boot_info: BOOT_INFO_START,
    })
}

/// Fills in the boot info's TSC rate once a vCPU exists to ask KVM.
pub fn set_tsc_khz(mem: &GuestMemory, khz: u64) -> Result<(), MicroBootError> {
    let at = BOOT_INFO_START + core::mem::offset_of!(BootInfo, tsc_khz) as u64;
    mem.write_obj(khz, GuestAddress(at))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmsandbox_proto::bootinfo::{device_kind, BOOT_MAGIC};

    #[test]
    fn loads_embedded_guest_and_boot_info() {
        let mem = crate::vmm::memory::create(16 << 20).unwrap();
        let dev = DeviceInfo {
            kind: device_kind::VIRTIO_BLK,
            irq: 5,
            mmio_base: 0xd000_0000,
            mmio_size: 0x1000,
        };
        let e = load(
            &mem,
            crate::config::MICRO_GUEST_ELF,
            "test=exit",
            2,
            &[dev],
            1,
            [7; 32],
        )
        .unwrap();
        assert_eq!(e.entry, 0x100000);
        let mut info = [0u8; std::mem::size_of::<BootInfo>()];
        mem.read_slice(&mut info, GuestAddress(e.boot_info))
            .unwrap();
        assert_eq!(
            u64::from_le_bytes(info[..8].try_into().unwrap()),
            BOOT_MAGIC
        );
        let mut expect = BootInfo::new(16 << 20, 2);
        expect.cmdline_addr = CMDLINE_START;
        expect.cmdline_len = 9;
        expect.flags = 1;
        expect.random_seed = [7; 32];
        expect.num_devices = 1;
        expect.devices[0] = dev;
        // boot_time_ns (offset 56) varies; compare around it.
        assert_eq!(info[..56], expect.as_bytes()[..56]);
        assert_eq!(info[64..], expect.as_bytes()[64..]);
        let mut cmd = [0u8; 9];
        mem.read_slice(&mut cmd, GuestAddress(CMDLINE_START))
            .unwrap();
        assert_eq!(&cmd, b"test=exit");
    }

    #[test]
    fn rejects_garbage_and_limits() {
        let mem = crate::vmm::memory::create(16 << 20).unwrap();
        assert!(matches!(
            load(&mem, b"not an elf at all, really", "", 1, &[], 0, [0; 32]),
            Err(MicroBootError::Load(_))
        ));
        let long = "x".repeat(CMDLINE_MAX_SIZE);
        assert!(matches!(
            load(
                &mem,
                crate::config::MICRO_GUEST_ELF,
                &long,
                1,
                &[],
                0,
                [0; 32]
            ),
            Err(MicroBootError::CmdlineTooLong { .. })
        ));
        let many = [DeviceInfo::default(); MAX_DEVICES + 1];
        assert!(matches!(
            load(
                &mem,
                crate::config::MICRO_GUEST_ELF,
                "",
                1,
                &many,
                0,
                [0; 32]
            ),
            Err(MicroBootError::TooManyDevices(9))
        ));
    }
}
