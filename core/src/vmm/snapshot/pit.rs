//! The in-kernel 8254 PIT (only VMs that created one: Linux guests), as
//! KVM_GET_PIT2 returns it.

use super::raw::Pod;
use kvm_bindings::kvm_pit_state2;
use kvm_ioctls::VmFd;

/// Layout version of [`PitState`].
pub const PIT_STATE_VERSION: u32 = 1;

/// Errors capturing or applying the PIT state.
#[derive(Debug, thiserror::Error)]
pub enum PitError {
    /// KVM_GET_PIT2 or KVM_SET_PIT2 failed.
    #[error("{what} failed: {source}")]
    Ioctl {
        /// The ioctl.
        what: &'static str,
        /// KVM's error.
        source: kvm_ioctls::Error,
    },
    /// The state was made by another layout version.
    #[error("PIT state version {found}, this build reads {PIT_STATE_VERSION}")]
    Version {
        /// Version in the state.
        found: u32,
    },
}

/// The PIT's three channels and flags.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct PitState {
    /// [`PIT_STATE_VERSION`] when captured.
    pub version: u32,
    /// KVM's view.
    pub pit: kvm_pit_state2,
}

impl PitState {
    /// Reads `vm`'s PIT.
    pub fn capture(vm: &VmFd) -> Result<PitState, PitError> {
        let pit = vm.get_pit2().map_err(|source| PitError::Ioctl {
            what: "KVM_GET_PIT2",
            source,
        })?;
        Ok(PitState {
            version: PIT_STATE_VERSION,
            pit,
        })
    }

    /// Writes it into `vm`. KVM restarts each channel's count from now (it keeps
    /// no host time across a set), so `count_load_time` is not carried over.
    pub fn apply(&self, vm: &VmFd) -> Result<(), PitError> {
        if self.version != PIT_STATE_VERSION {
            return Err(PitError::Version {
                found: self.version,
            });
        }
        vm.set_pit2(&self.pit).map_err(|source| PitError::Ioctl {
            what: "KVM_SET_PIT2",
            source,
        })
    }

    /// Equal except for the host times KVM sets anew on every apply.
    pub fn same_programming(&self, o: &PitState) -> bool {
        let strip = |p: &kvm_pit_state2| {
            let mut p = *p;
            p.channels.iter_mut().for_each(|c| c.count_load_time = 0);
            p
        };
        self.version == o.version && strip(&self.pit).bytes() == strip(&o.pit).bytes()
    }
}

impl std::fmt::Debug for PitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PitState")
            .field("version", &self.version)
            .field("flags", &self.pit.flags)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_vm;
    use super::*;

    #[test]
    fn state_round_trips_through_a_fresh_vm() {
        let a = test_vm::new(true);
        let mut s = PitState::capture(&a.vm).unwrap();
        s.pit.channels[0].count = 0x1234;
        s.pit.channels[0].mode = 2;
        s.pit.channels[2].count = 0x0777;
        s.apply(&a.vm).unwrap();
        let first = PitState::capture(&a.vm).unwrap();
        assert_eq!(first.pit.channels[0].count, 0x1234);

        let b = test_vm::new(true);
        assert!(!PitState::capture(&b.vm).unwrap().same_programming(&first));
        first.apply(&b.vm).unwrap();
        assert!(PitState::capture(&b.vm).unwrap().same_programming(&first));
    }
}
