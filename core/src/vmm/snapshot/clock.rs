//! The VM's kvmclock (KVM_GET_CLOCK). Restoring never moves it backwards: the
//! clock is set to the snapshot's value only if that is ahead of the VM's current
//! one (a fresh VM), and otherwise left running (restoring in place, where the
//! clock has moved on since the snapshot). A guest therefore sees time pass across
//! a restore, as after a suspend, never a jump into the past. The guest TSC follows
//! the same rule (vcpu.rs).

use kvm_bindings::kvm_clock_data;
use kvm_ioctls::VmFd;

/// Layout version of [`ClockState`].
pub const CLOCK_STATE_VERSION: u32 = 1;

/// Errors capturing or applying the clock.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// KVM_GET_CLOCK or KVM_SET_CLOCK failed.
    #[error("{what} failed: {source}")]
    Ioctl {
        /// The ioctl.
        what: &'static str,
        /// KVM's error.
        source: kvm_ioctls::Error,
    },
    /// The state was made by another layout version.
    #[error("clock state version {found}, this build reads {CLOCK_STATE_VERSION}")]
    Version {
        /// Version in the state.
        found: u32,
    },
}

/// The kvmclock value, in nanoseconds of guest time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockState {
    /// [`CLOCK_STATE_VERSION`] when captured.
    pub version: u32,
    /// Guest nanoseconds.
    pub clock_ns: u64,
}

/// Reads `vm`'s kvmclock.
pub fn now(vm: &VmFd) -> Result<u64, ClockError> {
    vm.get_clock()
        .map(|c: kvm_clock_data| c.clock)
        .map_err(|source| ClockError::Ioctl {
            what: "KVM_GET_CLOCK",
            source,
        })
}

impl ClockState {
    /// Reads `vm`'s clock.
    pub fn capture(vm: &VmFd) -> Result<ClockState, ClockError> {
        Ok(ClockState {
            version: CLOCK_STATE_VERSION,
            clock_ns: now(vm)?,
        })
    }

    /// Sets `vm`'s clock to max(its current value, this state's).
    pub fn apply(&self, vm: &VmFd) -> Result<(), ClockError> {
        if self.version != CLOCK_STATE_VERSION {
            return Err(ClockError::Version {
                found: self.version,
            });
        }
        if self.clock_ns > now(vm)? {
            let c = kvm_clock_data {
                clock: self.clock_ns,
                ..Default::default()
            };
            vm.set_clock(&c).map_err(|source| ClockError::Ioctl {
                what: "KVM_SET_CLOCK",
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_vm;
    use super::*;

    /// A fresh VM takes a snapshot's clock that is ahead of its own; a VM whose
    /// clock is ahead keeps it.
    #[test]
    fn applying_sets_the_clock_to_the_later_of_both() {
        let a = test_vm::new(false);
        let ahead = 5_000_000_000_000u64;
        a.vm.set_clock(&kvm_bindings::kvm_clock_data {
            clock: ahead,
            ..Default::default()
        })
        .unwrap();
        let snap = ClockState::capture(&a.vm).unwrap();
        assert!(snap.clock_ns >= ahead);

        let b = test_vm::new(false);
        assert!(now(&b.vm).unwrap() < ahead);
        snap.apply(&b.vm).unwrap();
        assert!(now(&b.vm).unwrap() >= snap.clock_ns);

        let old = ClockState {
            version: CLOCK_STATE_VERSION,
            clock_ns: 1,
        };
        let before = now(&a.vm).unwrap();
        old.apply(&a.vm).unwrap();
        assert!(now(&a.vm).unwrap() >= before);
    }
}
