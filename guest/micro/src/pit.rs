//! TSC calibration against the legacy PIT, for when KVM reports no TSC rate
//! (`tsc_khz = 0` in the boot info): without a rate every WASI clock would be
//! frozen. Channel 2 counts down a known number of 1.193182 MHz ticks in mode 0
//! (its output, read back in port 0x61 bit 5, rises at zero) while we watch the
//! TSC. The VMM gives every VM KVM's in-kernel PIT, so this costs no host
//! exits to user space; it takes [`CALIBRATION_MS`] of boot time, more when
//! the vCPU is descheduled at either end of a count and it is repeated.

use core::fmt;

use crate::io::{inb, outb};

/// PIT input clock (Hz).
const PIT_HZ: u64 = 1_193_182;
/// How long one count lasts (the longest the 16-bit counter allows).
pub const CALIBRATION_MS: u64 = 50;
/// Channel 2 reload value for [`CALIBRATION_MS`] (fits 16 bits).
const LATCH: u64 = PIT_HZ * CALIBRATION_MS / 1000;
const CHANNEL2: u16 = 0x42;
const COMMAND: u16 = 0x43;
/// NMI status and control: bit 0 gates channel 2, bit 1 drives the speaker,
/// bit 5 reads channel 2's output.
const PORT_61: u16 = 0x61;
const OUT2: u8 = 1 << 5;
/// Channel 2, low then high byte, mode 0 (interrupt on terminal count), binary.
const MODE0_CHANNEL2: u8 = 0xb0;
/// Most TSC ticks we wait for the count to end (a 50 ms count at 40 GHz):
/// without a PIT the output never rises.
const MAX_WAIT_TICKS: u64 = 2_000_000_000;
/// Counts tried before giving up on a certain one (each takes [`CALIBRATION_MS`]).
const ATTEMPTS: usize = 8;
/// Plausible TSC rates (kHz): 100 MHz to 20 GHz.
const PLAUSIBLE_KHZ: core::ops::RangeInclusive<u64> = 100_000..=20_000_000;

/// Why the TSC could not be calibrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalibrationError {
    /// Channel 2's output was already high when the count started (no PIT
    /// answers the ports).
    OutputStuckHigh,
    /// The count did not end within the wait bound.
    NoTerminalCount { ticks: u64 },
    /// The measured rate is not a real TSC's.
    Implausible { khz: u64 },
    /// Every count was disturbed by more than 10 % (the vCPU was descheduled).
    Uncertain { khz: u64, percent: u64 },
}

impl fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutputStuckHigh => write!(
                f,
                "PIT channel 2 output high before the count started (no PIT?)"
            ),
            Self::NoTerminalCount { ticks } => {
                write!(
                    f,
                    "PIT channel 2 count of {LATCH} did not end within {ticks} TSC ticks"
                )
            }
            Self::Implausible { khz } => write!(
                f,
                "measured TSC rate {khz} kHz is outside {PLAUSIBLE_KHZ:?} kHz"
            ),
            Self::Uncertain { khz, percent } => {
                write!(f, "measured TSC rate {khz} kHz is uncertain by {percent}% after {ATTEMPTS} counts")
            }
        }
    }
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// One count of channel 2: TSC ticks from its start to its end, and how
/// uncertain both ends are (ticks), or why it failed.
fn measure() -> Result<(u64, u64), CalibrationError> {
    // Gate channel 2 on, speaker off.
    outb(PORT_61, (inb(PORT_61) & !0x02) | 0x01);
    outb(COMMAND, MODE0_CHANNEL2);
    outb(CHANNEL2, LATCH as u8);
    let s0 = rdtsc();
    outb(CHANNEL2, (LATCH >> 8) as u8); // counting starts with the high byte
    let s1 = rdtsc();
    if inb(PORT_61) & OUT2 != 0 {
        return Err(CalibrationError::OutputStuckHigh);
    }
    // The count ended after the last read that saw the output low began and
    // before the read that saw it high returned.
    let mut last_low = s1;
    let end = loop {
        let before = rdtsc();
        let high = inb(PORT_61) & OUT2 != 0;
        let after = rdtsc();
        if high {
            break after;
        }
        last_low = before;
        if after.wrapping_sub(s0) > MAX_WAIT_TICKS {
            return Err(CalibrationError::NoTerminalCount {
                ticks: MAX_WAIT_TICKS,
            });
        }
    };
    // Gate off again.
    outb(PORT_61, inb(PORT_61) & !0x03);
    let ticks = (end / 2 + last_low / 2).wrapping_sub(s0 / 2 + s1 / 2);
    let uncertainty = end.wrapping_sub(last_low) + s1.wrapping_sub(s0);
    Ok((ticks, uncertainty))
}

/// Measures the TSC rate in kHz against PIT channel 2. A count during which
/// the vCPU was descheduled at either end is uncertain by that long: such
/// counts are repeated (up to [`ATTEMPTS`]) and the most certain one is used.
pub fn calibrate_tsc() -> Result<u64, CalibrationError> {
    let mut best: Option<(u64, u64)> = None;
    for _ in 0..ATTEMPTS {
        let (ticks, uncertainty) = measure()?;
        if best.is_none_or(|(_, u)| uncertainty < u) {
            best = Some((ticks, uncertainty));
        }
        if uncertainty.saturating_mul(100) < ticks {
            break;
        }
    }
    let (ticks, uncertainty) = best.ok_or(CalibrationError::NoTerminalCount { ticks: 0 })?;
    let khz = ticks / CALIBRATION_MS;
    if !PLAUSIBLE_KHZ.contains(&khz) {
        return Err(CalibrationError::Implausible { khz });
    }
    // Both ends are midpoints of their windows: the rate is off by at most
    // half the uncertainty.
    if uncertainty.saturating_mul(10) > ticks {
        return Err(CalibrationError::Uncertain {
            khz,
            percent: uncertainty * 100 / ticks.max(1),
        });
    }
    Ok(khz)
}
