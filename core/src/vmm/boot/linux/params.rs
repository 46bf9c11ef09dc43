//! The command line and the zero page (`struct boot_params`).
//!
//! Because we enter at the 64-bit entry point, nobody runs the bzImage's real-mode
//! setup code: the zero page must already hold what it would have filled in — the
//! image's setup header plus our loader fields and an e820 map.

use linux_loader::cmdline::Cmdline;
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::{load_cmdline, Error as LoaderError};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::initrd::InitrdPlacement;
use super::LinuxBootError;
use crate::vmm::layout::{CMDLINE_START, EBDA_START, HIMEM_START, ZERO_PAGE_START};

/// `boot_flag` value every boot sector carries.
pub(super) const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// "HdrS".
pub(super) const HDR_MAGIC: u32 = 0x5372_6448;
/// `type_of_loader` for a loader without an assigned id.
pub(super) const LOADER_UNDEFINED: u8 = 0xff;
/// Alignment an ELF kernel is told it was loaded with (its CONFIG_PHYSICAL_ALIGN
/// default, 16 MiB; Firecracker passes the same).
pub(super) const ELF_KERNEL_ALIGNMENT: u32 = 0x0100_0000;
/// e820 type of usable RAM.
pub(super) const E820_RAM: u32 = 1;

/// Checks the command line and writes it NUL-terminated at [`CMDLINE_START`].
/// Returns the number of bytes written before the NUL (linux-loader's `Cmdline` trims
/// leading/trailing blanks and the blanks around a ` -- ` init-argument separator).
pub(super) fn write_cmdline(
    mem: &GuestMemoryMmap<()>,
    cmdline: &str,
    max_len: usize,
) -> Result<usize, LinuxBootError> {
    if let Some((offset, &byte)) = cmdline
        .as_bytes()
        .iter()
        .enumerate()
        .find(|(_, b)| !(b' '..=b'~').contains(*b))
    {
        return Err(LinuxBootError::InvalidCmdline { offset, byte });
    }
    let trimmed = cmdline.trim();
    if trimmed.len() > max_len {
        return Err(LinuxBootError::CmdlineTooLong {
            len: trimmed.len(),
            max: max_len,
        });
    }
    // Capacity counts the NUL. Cmdline re-checks what we checked; map any residue.
    let too_long = |_| LinuxBootError::CmdlineTooLong {
        len: trimmed.len(),
        max: max_len,
    };
    let cl = Cmdline::try_from(trimmed, max_len + 1).map_err(too_long)?;
    let written = cl
        .as_cstring()
        .map_err(|_| LinuxBootError::CmdlineWrite(LoaderError::InvalidCommandLine))?
        .as_bytes()
        .len();
    load_cmdline(mem, GuestAddress(CMDLINE_START), &cl).map_err(LinuxBootError::CmdlineWrite)?;
    Ok(written)
}

/// Builds the zero page. `image_header` is the bzImage's setup header, `None` for an
/// ELF kernel (which then gets a minimal header, as Firecracker does).
pub(super) fn build_boot_params(
    image_header: Option<&setup_header>,
    cmdline_len: usize,
    initrd: Option<InitrdPlacement>,
    mem_end: u64,
) -> boot_params {
    let mut params = boot_params::default();
    match image_header {
        Some(hdr) => params.hdr = *hdr,
        None => {
            params.hdr.kernel_alignment = ELF_KERNEL_ALIGNMENT;
            // For an ELF kernel this is informational only; keep Firecracker's habit of
            // passing the written size including the NUL. A bzImage's own value (the
            // most it accepts) is left as the image declares it.
            params.hdr.cmdline_size = u32::try_from(cmdline_len + 1).unwrap_or(u32::MAX);
        }
    }
    params.hdr.boot_flag = BOOT_FLAG_MAGIC;
    params.hdr.header = HDR_MAGIC;
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    // CMDLINE_START is below 1 MiB (layout.rs): it fits.
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    if let Some(initrd) = initrd {
        // The initrd ends below mem_end <= MMIO_START < 4 GiB: both fit in 32 bits.
        params.hdr.ramdisk_image = initrd.addr as u32;
        params.hdr.ramdisk_size = initrd.size as u32;
    }

    let ram = [(0, EBDA_START), (HIMEM_START, mem_end)];
    for (i, (start, end)) in ram.iter().enumerate() {
        params.e820_table[i] = boot_e820_entry {
            addr: *start,
            size: end - start,
            r#type: E820_RAM,
        };
    }
    params.e820_entries = ram.len() as u8;
    params
}

/// Writes the zero page at [`ZERO_PAGE_START`].
pub(super) fn write_boot_params(
    mem: &GuestMemoryMmap<()>,
    params: &boot_params,
) -> Result<(), LinuxBootError> {
    let bp = BootParams::new::<boot_params>(params, GuestAddress(ZERO_PAGE_START));
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap<()>>(&bp, mem)
        .map_err(LinuxBootError::BootParamsWrite)
}
