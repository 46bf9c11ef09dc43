//! The in-kernel interrupt controllers: both 8259 PICs and the IOAPIC, as
//! KVM_GET_IRQCHIP returns them. The LAPICs are per vCPU (vcpu.rs).

use super::raw::Pod;
use kvm_bindings::{
    kvm_irqchip, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
};
use kvm_ioctls::VmFd;

/// Layout version of [`IrqchipState`].
pub const IRQCHIP_STATE_VERSION: u32 = 1;

/// Errors capturing or applying the irqchip state.
#[derive(Debug, thiserror::Error)]
pub enum IrqchipError {
    /// KVM_GET_IRQCHIP or KVM_SET_IRQCHIP failed.
    #[error("{what} of chip {chip} failed: {source}")]
    Ioctl {
        /// The ioctl.
        what: &'static str,
        /// KVM chip id (0 PIC master, 1 PIC slave, 2 IOAPIC).
        chip: u32,
        /// KVM's error.
        source: kvm_ioctls::Error,
    },
    /// The state was made by another layout version.
    #[error("irqchip state version {found}, this build reads {IRQCHIP_STATE_VERSION}")]
    Version {
        /// Version in the state.
        found: u32,
    },
}

/// The VM's PICs and IOAPIC.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct IrqchipState {
    /// [`IRQCHIP_STATE_VERSION`] when captured.
    pub version: u32,
    /// Master 8259.
    pub pic_master: kvm_irqchip,
    /// Slave 8259.
    pub pic_slave: kvm_irqchip,
    /// IOAPIC.
    pub ioapic: kvm_irqchip,
}

impl PartialEq for IrqchipState {
    fn eq(&self, o: &Self) -> bool {
        self.version == o.version
            && self.pic_master.bytes() == o.pic_master.bytes()
            && self.pic_slave.bytes() == o.pic_slave.bytes()
            && self.ioapic.bytes() == o.ioapic.bytes()
    }
}

impl std::fmt::Debug for IrqchipState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IrqchipState")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

fn get(vm: &VmFd, chip: u32) -> Result<kvm_irqchip, IrqchipError> {
    let mut c = kvm_irqchip {
        chip_id: chip,
        ..Default::default()
    };
    vm.get_irqchip(&mut c)
        .map_err(|source| IrqchipError::Ioctl {
            what: "KVM_GET_IRQCHIP",
            chip,
            source,
        })?;
    Ok(c)
}

impl IrqchipState {
    /// Reads the three chips of `vm` (its vCPUs must not be running).
    pub fn capture(vm: &VmFd) -> Result<IrqchipState, IrqchipError> {
        Ok(IrqchipState {
            version: IRQCHIP_STATE_VERSION,
            pic_master: get(vm, KVM_IRQCHIP_PIC_MASTER)?,
            pic_slave: get(vm, KVM_IRQCHIP_PIC_SLAVE)?,
            ioapic: get(vm, KVM_IRQCHIP_IOAPIC)?,
        })
    }

    /// Writes the three chips into `vm`.
    pub fn apply(&self, vm: &VmFd) -> Result<(), IrqchipError> {
        if self.version != IRQCHIP_STATE_VERSION {
            return Err(IrqchipError::Version {
                found: self.version,
            });
        }
        for c in [&self.pic_master, &self.pic_slave, &self.ioapic] {
            vm.set_irqchip(c).map_err(|source| IrqchipError::Ioctl {
                what: "KVM_SET_IRQCHIP",
                chip: c.chip_id,
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

    #[test]
    fn state_round_trips_through_a_fresh_vm() {
        let a = test_vm::new(false);
        let mut s = IrqchipState::capture(&a.vm).unwrap();
        // Program something a fresh VM does not have: mask lines, route pin 4.
        // SAFETY: chips 0/1 are PICs and chip 2 the IOAPIC, as KVM filled them in.
        unsafe {
            s.pic_master.chip.pic.imr = 0xb5;
            s.pic_slave.chip.pic.imr = 0x3c;
            s.ioapic.chip.ioapic.redirtbl[4].bits = 0x0000_0000_0001_0024;
        }
        s.apply(&a.vm).unwrap();
        let first = IrqchipState::capture(&a.vm).unwrap();
        assert!(first == s, "the programmed state did not stick");

        let b = test_vm::new(false);
        assert!(IrqchipState::capture(&b.vm).unwrap() != first);
        first.apply(&b.vm).unwrap();
        assert!(IrqchipState::capture(&b.vm).unwrap() == first);
    }
}
