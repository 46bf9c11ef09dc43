//! Guest memory and guest-address choices shared by the device targets.
//!
//! Memory has two regions with a hole between them, so descriptors can straddle a
//! region end, fall in the hole or past the end: all cases a hostile guest can
//! produce and the devices must reject without panicking.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use crate::input::Input;

/// First region: [0, 0x8000).
pub const LOW_END: u64 = 0x8000;
/// Second region: [0x10000, 0x18000); [0x8000, 0x10000) is a hole.
pub const HIGH_START: u64 = 0x1_0000;
/// Size of each region.
pub const REGION_LEN: usize = 0x8000;
/// Where targets put the guest's buffers (headers, payloads).
pub const DATA_START: u64 = 0x1000;

/// Fresh guest memory (two 32 KiB regions around a hole).
pub fn guest_memory() -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), REGION_LEN),
        (GuestAddress(HIGH_START), REGION_LEN),
    ])
    .expect("fuzz harness: two small anonymous mappings")
}

/// A guest address for a buffer: usually near guest RAM (data area, ring area,
/// region ends, the hole), sometimes any 64-bit value.
pub fn address(inp: &mut Input) -> u64 {
    let mode = inp.u8();
    match mode >> 6 {
        0 | 1 => DATA_START + u64::from(inp.u16() & 0x7fff),
        2 => {
            let bases = [
                0,
                LOW_END - 16,
                HIGH_START,
                HIGH_START + REGION_LEN as u64 - 16,
            ];
            bases[usize::from(mode & 3)] + u64::from(inp.u8())
        }
        _ => inp.u64(),
    }
}

/// A buffer length: usually small, sometimes any u32.
pub fn length(inp: &mut Input) -> u32 {
    let mode = inp.u8();
    match mode >> 6 {
        0 | 1 => u32::from(inp.u8()),
        2 => u32::from(inp.u16()),
        _ => inp.u32(),
    }
}
