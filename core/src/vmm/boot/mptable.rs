//! An Intel MultiProcessor Specification (1.4) table, as Firecracker writes one:
//! without it (and without ACPI, which our Linux kernel omits) Linux sees a single
//! CPU and no IOAPIC. The table lists every vCPU, the ISA bus, the IOAPIC and an
//! interrupt entry per IRQ line, at the start of the EBDA (outside the e820 RAM
//! map), where Linux's MP scan looks.

use crate::vmm::layout::EBDA_START;
use crate::vmm::memory::GuestMemory;
use vm_memory::{Bytes, GuestAddress};

/// Where the floating pointer goes (the config table follows it).
pub const MPTABLE_START: u64 = EBDA_START;
const LAPIC_ADDR: u32 = 0xfee0_0000;
const IOAPIC_ADDR: u32 = 0xfec0_0000;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
/// IRQ lines described (the IOAPIC's 24 pins).
const IRQ_LINES: u8 = 24;
/// Bytes available for the whole table (up to 1 MiB would overlap the BIOS area).
const MAX_SIZE: usize = 0x400 * 4;

/// Errors writing the table.
#[derive(Debug, thiserror::Error)]
pub enum MpTableError {
    /// Too many CPUs for the space reserved.
    #[error("an MP table for {0} CPUs does not fit in {MAX_SIZE} bytes")]
    TooLarge(u8),
    /// Guest memory rejected the write.
    #[error("cannot write the MP table: {0}")]
    Write(#[from] vm_memory::GuestMemoryError),
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes
        .iter()
        .fold(0u8, |a, b| a.wrapping_add(*b))
        .wrapping_neg()
}

/// Builds the table bytes for `cpus` vCPUs, placed at `start`.
pub fn build(cpus: u8, start: u64) -> Result<Vec<u8>, MpTableError> {
    let table_addr = start + 16;
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    for id in 0..cpus {
        let mut e = [0u8; 20];
        e[0] = 0; // processor
        e[1] = id; // local APIC id
        e[2] = APIC_VERSION;
        e[3] = 1 | if id == 0 { 2 } else { 0 }; // enabled, BSP
        e[4..8].copy_from_slice(&0x600u32.to_le_bytes()); // family 6 signature
        e[8..12].copy_from_slice(&0x201u32.to_le_bytes()); // FPU + APIC present
        entries.extend_from_slice(&e);
        count += 1;
    }
    // ISA bus 0.
    entries.extend_from_slice(&[1, 0, b'I', b'S', b'A', b' ', b' ', b' ']);
    count += 1;
    let ioapic_id = cpus + 1;
    let mut io = [2u8, ioapic_id, IOAPIC_VERSION, 1, 0, 0, 0, 0];
    io[4..8].copy_from_slice(&IOAPIC_ADDR.to_le_bytes());
    entries.extend_from_slice(&io);
    count += 1;
    // Pin 0: ExtINT from the PIC; pins 1..24: ISA IRQ i, edge, conforming.
    entries.extend_from_slice(&[3, 3, 0, 0, 0, 0, ioapic_id, 0]);
    count += 1;
    for irq in 1..IRQ_LINES {
        entries.extend_from_slice(&[3, 0, 0, 0, 0, irq, ioapic_id, irq]);
        count += 1;
    }
    // Local interrupts: ExtINT on LINT0, NMI on LINT1, to all local APICs.
    entries.extend_from_slice(&[4, 3, 0, 0, 0, 0, 0xff, 0]);
    entries.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0xff, 1]);
    count += 2;

    let mut header = [0u8; 44];
    header[0..4].copy_from_slice(b"PCMP");
    let len = (44 + entries.len()) as u16;
    header[4..6].copy_from_slice(&len.to_le_bytes());
    header[6] = 4; // spec revision 1.4
    header[8..16].copy_from_slice(b"KVMSBOX ");
    header[16..28].copy_from_slice(b"KVMSANDBOX  ");
    header[34..36].copy_from_slice(&count.to_le_bytes());
    header[36..40].copy_from_slice(&LAPIC_ADDR.to_le_bytes());
    let mut table = header.to_vec();
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);

    let mut fp = [0u8; 16];
    fp[0..4].copy_from_slice(b"_MP_");
    fp[4..8].copy_from_slice(&(table_addr as u32).to_le_bytes());
    fp[8] = 1; // length in 16-byte units
    fp[9] = 4; // spec revision
    fp[10] = checksum(&fp);
    let mut out = fp.to_vec();
    out.extend_from_slice(&table);
    if out.len() > MAX_SIZE {
        return Err(MpTableError::TooLarge(cpus));
    }
    Ok(out)
}

/// Writes the table for `cpus` vCPUs at [`MPTABLE_START`].
pub fn write(mem: &GuestMemory, cpus: u8) -> Result<(), MpTableError> {
    let bytes = build(cpus, MPTABLE_START)?;
    mem.write_slice(&bytes, GuestAddress(MPTABLE_START))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_layout_are_valid() {
        for cpus in [1u8, 2, 16] {
            let b = build(cpus, MPTABLE_START).unwrap();
            assert_eq!(&b[0..4], b"_MP_");
            assert_eq!(
                b[..16].iter().fold(0u8, |a, x| a.wrapping_add(*x)),
                0,
                "floating pointer checksum"
            );
            let addr = u32::from_le_bytes(b[4..8].try_into().unwrap()) as u64;
            assert_eq!(addr, MPTABLE_START + 16);
            let table = &b[16..];
            assert_eq!(&table[0..4], b"PCMP");
            let len = u16::from_le_bytes([table[4], table[5]]) as usize;
            assert_eq!(len, table.len());
            assert_eq!(
                table.iter().fold(0u8, |a, x| a.wrapping_add(*x)),
                0,
                "table checksum"
            );
            let count = u16::from_le_bytes([table[34], table[35]]);
            assert_eq!(count as usize, cpus as usize + 1 + 1 + 24 + 2);
            // Processor entries come first, the first one is the BSP.
            assert_eq!(table[44], 0);
            assert_eq!(table[44 + 3], 3);
            if cpus > 1 {
                assert_eq!(table[64 + 1], 1);
                assert_eq!(table[64 + 3], 1);
            }
        }
    }

    #[test]
    fn writes_into_guest_memory_below_1mib() {
        let mem = crate::vmm::memory::create(2 << 20).unwrap();
        write(&mem, 2).unwrap();
        let mut sig = [0u8; 4];
        mem.read_slice(&mut sig, GuestAddress(MPTABLE_START))
            .unwrap();
        assert_eq!(&sig, b"_MP_");
        assert!(
            MPTABLE_START + build(16, MPTABLE_START).unwrap().len() as u64 <= 0xa0000 + 0x400 * 3
        );
    }
}
