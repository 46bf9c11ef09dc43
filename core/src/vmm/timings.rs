//! Boot-phase timestamps, relative to the moment VM creation started. The
//! boot report and the benchmarks read these; nothing asserts on them.

use std::fmt;
use std::time::Duration;

/// When each boot phase completed, measured from the start of creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootTimings {
    /// KVM VM created.
    pub vm_created: Option<Duration>,
    /// Guest RAM mapped and registered, then the irqchip (and PIT) created.
    pub memory_mapped: Option<Duration>,
    /// Guest image, boot structures and command line written.
    pub image_loaded: Option<Duration>,
    /// The first vCPU is about to enter the guest.
    pub first_vcpu_entry: Option<Duration>,
    /// The guest's first serial byte arrived.
    pub first_serial_byte: Option<Duration>,
    /// The ready marker line arrived.
    pub ready: Option<Duration>,
    /// The guest agent answered its first hello (Sandbox only).
    pub agent_ready: Option<Duration>,
}

impl BootTimings {
    /// The phases in order, with names.
    pub fn phases(&self) -> [(&'static str, Option<Duration>); 7] {
        [
            ("vm created", self.vm_created),
            ("memory mapped", self.memory_mapped),
            ("image loaded", self.image_loaded),
            ("first vcpu entry", self.first_vcpu_entry),
            ("first serial byte", self.first_serial_byte),
            ("ready marker", self.ready),
            ("agent ready", self.agent_ready),
        ]
    }
}

impl fmt::Display for BootTimings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, t) in self.phases() {
            if let Some(t) = t {
                writeln!(f, "  {name:<18} {:>10.3} ms", t.as_secs_f64() * 1e3)?;
            }
        }
        Ok(())
    }
}
