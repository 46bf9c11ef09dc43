//! One vCPU's architectural state as KVM exposes it, captured and applied on the
//! vCPU's own thread while it is parked (a vCPU fd is owned by its thread). The
//! MSR set is what KVM_GET_MSR_INDEX_LIST names, less those this KVM refuses to
//! read (PVM refuses some): probed once per process. The guest TSC never goes
//! backwards: applying a state writes IA32_TSC only if the snapshot's TSC is
//! ahead of the vCPU's current one (restoring in place, it never is).

use super::raw::Pod;
use kvm_bindings::{
    kvm_debugregs, kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs, kvm_sregs,
    kvm_vcpu_events, kvm_xcrs, kvm_xsave, Msrs,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use std::sync::OnceLock;

/// Layout version of [`VcpuState`]; bump when a field changes meaning.
pub const VCPU_STATE_VERSION: u32 = 1;

/// The architectural TSC MSR.
const MSR_IA32_TSC: u32 = 0x10;
/// KVM_GET_MSRS/KVM_SET_MSRS take at most this many entries per call.
const MSRS_PER_CALL: usize = 255;

/// Errors capturing or applying a vCPU's state.
#[derive(Debug, thiserror::Error)]
pub enum VcpuStateError {
    /// A KVM vCPU ioctl failed.
    #[error("vcpu {index}: {what} failed: {source}")]
    Ioctl {
        /// vCPU index.
        index: u8,
        /// The ioctl.
        what: &'static str,
        /// KVM's error.
        source: kvm_ioctls::Error,
    },
    /// KVM read or wrote fewer MSRs than asked.
    #[error("vcpu {index}: {what} stopped at MSR {msr:#x} ({done} of {total} done)")]
    Msr {
        /// vCPU index.
        index: u8,
        /// KVM_GET_MSRS or KVM_SET_MSRS.
        what: &'static str,
        /// The MSR KVM refused.
        msr: u32,
        /// Entries done.
        done: usize,
        /// Entries asked.
        total: usize,
    },
    /// The state was made by another layout version.
    #[error("vcpu state version {found}, this build reads {VCPU_STATE_VERSION}")]
    Version {
        /// Version in the state.
        found: u32,
    },
}

/// Which optional state this KVM offers (KVM_CHECK_EXTENSION on the VM).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuCaps {
    /// KVM_GET/SET_VCPU_EVENTS.
    pub events: bool,
    /// KVM_GET/SET_XCRS.
    pub xcrs: bool,
    /// KVM_GET/SET_DEBUGREGS.
    pub debugregs: bool,
    /// KVM_GET/SET_XSAVE with a state that fits `kvm_xsave` (no AMX-sized XSAVE2).
    pub xsave: bool,
}

impl VcpuCaps {
    /// Asks `vm`'s KVM.
    pub fn of(vm: &VmFd) -> VcpuCaps {
        let xsave2 = vm.check_extension_int(Cap::Xsave2);
        let fits = xsave2 <= 0 || xsave2 as usize <= std::mem::size_of::<kvm_xsave>();
        VcpuCaps {
            events: vm.check_extension(Cap::VcpuEvents),
            xcrs: vm.check_extension(Cap::Xcrs),
            debugregs: vm.check_extension(Cap::Debugregs),
            xsave: vm.check_extension(Cap::Xsave) && fits,
        }
    }
}

/// A vCPU's state. Plain data: every field is a KVM structure as KVM returned it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct VcpuState {
    /// [`VCPU_STATE_VERSION`] when captured.
    pub version: u32,
    /// General registers.
    pub regs: kvm_regs,
    /// Segment, control and descriptor-table registers.
    pub sregs: kvm_sregs,
    /// x87/SSE state.
    #[serde(with = "super::raw::FpuDef")]
    pub fpu: kvm_fpu,
    /// The legacy 4 KiB XSAVE area (`kvm_xsave.region`), where KVM has it.
    pub xsave: Option<Vec<u32>>,
    /// Extended control registers, where KVM has them.
    pub xcrs: Option<kvm_xcrs>,
    /// Debug registers, where KVM has them.
    pub debugregs: Option<kvm_debugregs>,
    /// Local APIC registers.
    pub lapic: kvm_lapic_state,
    /// MSRs KVM reads, in index-list order.
    pub msrs: Vec<kvm_msr_entry>,
    /// Runnable, halted, waiting for SIPI, ...
    pub mp_state: kvm_mp_state,
    /// Pending exceptions, interrupts, NMIs and SMIs, where KVM has them.
    pub events: Option<kvm_vcpu_events>,
}

impl PartialEq for VcpuState {
    fn eq(&self, o: &Self) -> bool {
        self.first_difference(o).is_none()
    }
}

impl VcpuState {
    /// The name of the first component in which `self` and `o` differ (these
    /// states are large: tests report the name, not the whole state).
    pub fn first_difference(&self, o: &Self) -> Option<&'static str> {
        let msrs = |s: &Self| s.msrs.iter().map(|m| (m.index, m.data)).collect::<Vec<_>>();
        [
            ("version", self.version == o.version),
            ("regs", self.regs == o.regs),
            ("sregs", self.sregs == o.sregs),
            ("fpu", self.fpu == o.fpu),
            ("xsave", self.xsave == o.xsave),
            (
                "xcrs",
                self.xcrs.as_ref().map(Pod::bytes) == o.xcrs.as_ref().map(Pod::bytes),
            ),
            (
                "debugregs",
                self.debugregs.as_ref().map(Pod::bytes) == o.debugregs.as_ref().map(Pod::bytes),
            ),
            ("lapic", self.lapic.bytes() == o.lapic.bytes()),
            ("msrs", msrs(self) == msrs(o)),
            ("mp_state", self.mp_state == o.mp_state),
            (
                "events",
                self.events.as_ref().map(Pod::bytes) == o.events.as_ref().map(Pod::bytes),
            ),
        ]
        .into_iter()
        .find(|(_, same)| !same)
        .map(|(name, _)| name)
    }
}

/// The MSRs KVM lists (KVM_GET_MSR_INDEX_LIST on `kvm`).
pub fn listed_msrs(kvm: &Kvm) -> Result<Vec<u32>, VcpuStateError> {
    kvm.get_msr_index_list()
        .map(|l| l.as_slice().to_vec())
        .map_err(|source| VcpuStateError::Ioctl {
            index: 0,
            what: "KVM_GET_MSR_INDEX_LIST",
            source,
        })
}

/// Of the `listed` MSRs, those KVM lets us read, probed once per process on `fd`.
pub fn msr_indices(listed: &[u32], fd: &VcpuFd) -> &'static [u32] {
    static LIST: OnceLock<Vec<u32>> = OnceLock::new();
    LIST.get_or_init(|| {
        listed
            .iter()
            .copied()
            .filter(|&index| {
                Msrs::from_entries(&[kvm_msr_entry {
                    index,
                    ..Default::default()
                }])
                .ok()
                .and_then(|mut one| fd.get_msrs(&mut one).ok())
                    == Some(1)
            })
            .collect()
    })
}

impl VcpuState {
    /// Reads vCPU `index`'s state (the vCPU must not be running).
    pub fn capture(
        fd: &VcpuFd,
        index: u8,
        caps: VcpuCaps,
        msr_list: &[u32],
    ) -> Result<VcpuState, VcpuStateError> {
        let e = |what| {
            move |source| VcpuStateError::Ioctl {
                index,
                what,
                source,
            }
        };
        Ok(VcpuState {
            version: VCPU_STATE_VERSION,
            regs: fd.get_regs().map_err(e("KVM_GET_REGS"))?,
            sregs: fd.get_sregs().map_err(e("KVM_GET_SREGS"))?,
            fpu: fd.get_fpu().map_err(e("KVM_GET_FPU"))?,
            xsave: caps
                .xsave
                .then(|| fd.get_xsave().map(|x| x.region.to_vec()))
                .transpose()
                .map_err(e("KVM_GET_XSAVE"))?,
            xcrs: caps
                .xcrs
                .then(|| fd.get_xcrs())
                .transpose()
                .map_err(e("KVM_GET_XCRS"))?,
            debugregs: caps
                .debugregs
                .then(|| fd.get_debug_regs())
                .transpose()
                .map_err(e("KVM_GET_DEBUGREGS"))?,
            lapic: fd.get_lapic().map_err(e("KVM_GET_LAPIC"))?,
            msrs: read_msrs(fd, index, msr_list)?,
            mp_state: fd.get_mp_state().map_err(e("KVM_GET_MP_STATE"))?,
            events: caps
                .events
                .then(|| fd.get_vcpu_events())
                .transpose()
                .map_err(e("KVM_GET_VCPU_EVENTS"))?,
        })
    }

    /// Writes this state into vCPU `index`, in the order KVM's dependencies need:
    /// LAPIC before the MSRs (TSC deadline), pending events last.
    pub fn apply(&self, fd: &VcpuFd, index: u8) -> Result<(), VcpuStateError> {
        if self.version != VCPU_STATE_VERSION {
            return Err(VcpuStateError::Version {
                found: self.version,
            });
        }
        let e = |what| {
            move |source| VcpuStateError::Ioctl {
                index,
                what,
                source,
            }
        };
        fd.set_mp_state(self.mp_state)
            .map_err(e("KVM_SET_MP_STATE"))?;
        fd.set_regs(&self.regs).map_err(e("KVM_SET_REGS"))?;
        fd.set_sregs(&self.sregs).map_err(e("KVM_SET_SREGS"))?;
        match &self.xsave {
            Some(region) => {
                let mut x = kvm_xsave::default();
                let n = region.len().min(x.region.len());
                x.region[..n].copy_from_slice(&region[..n]);
                // SAFETY: `VcpuCaps::of` only lets us capture an XSAVE area when
                // KVM's XSAVE size fits `kvm_xsave`, so KVM reads no further than `x`.
                unsafe { fd.set_xsave(&x) }.map_err(e("KVM_SET_XSAVE"))?
            }
            None => fd.set_fpu(&self.fpu).map_err(e("KVM_SET_FPU"))?,
        }
        if let Some(x) = &self.xcrs {
            fd.set_xcrs(x).map_err(e("KVM_SET_XCRS"))?;
        }
        if let Some(d) = &self.debugregs {
            fd.set_debug_regs(d).map_err(e("KVM_SET_DEBUGREGS"))?;
        }
        fd.set_lapic(&self.lapic).map_err(e("KVM_SET_LAPIC"))?;
        let now = read_msrs(fd, index, &[MSR_IA32_TSC])?
            .first()
            .map(|m| m.data)
            .unwrap_or(0);
        let msrs: Vec<kvm_msr_entry> = self
            .msrs
            .iter()
            .filter(|m| m.index != MSR_IA32_TSC || m.data > now)
            .copied()
            .collect();
        write_msrs(fd, index, &msrs)?;
        if let Some(ev) = &self.events {
            fd.set_vcpu_events(ev).map_err(e("KVM_SET_VCPU_EVENTS"))?;
        }
        Ok(())
    }
}

fn read_msrs(fd: &VcpuFd, index: u8, list: &[u32]) -> Result<Vec<kvm_msr_entry>, VcpuStateError> {
    let mut out = Vec::with_capacity(list.len());
    for chunk in list.chunks(MSRS_PER_CALL) {
        let entries: Vec<kvm_msr_entry> = chunk
            .iter()
            .map(|&i| kvm_msr_entry {
                index: i,
                ..Default::default()
            })
            .collect();
        let mut msrs = msrs_of(&entries, index, "KVM_GET_MSRS")?;
        let done = fd
            .get_msrs(&mut msrs)
            .map_err(|source| VcpuStateError::Ioctl {
                index,
                what: "KVM_GET_MSRS",
                source,
            })?;
        if done < chunk.len() {
            return Err(VcpuStateError::Msr {
                index,
                what: "KVM_GET_MSRS",
                msr: chunk[done],
                done,
                total: chunk.len(),
            });
        }
        out.extend_from_slice(msrs.as_slice());
    }
    Ok(out)
}

fn write_msrs(fd: &VcpuFd, index: u8, entries: &[kvm_msr_entry]) -> Result<(), VcpuStateError> {
    for chunk in entries.chunks(MSRS_PER_CALL) {
        let msrs = msrs_of(chunk, index, "KVM_SET_MSRS")?;
        let done = fd.set_msrs(&msrs).map_err(|source| VcpuStateError::Ioctl {
            index,
            what: "KVM_SET_MSRS",
            source,
        })?;
        if done < chunk.len() {
            return Err(VcpuStateError::Msr {
                index,
                what: "KVM_SET_MSRS",
                msr: chunk[done].index,
                done,
                total: chunk.len(),
            });
        }
    }
    Ok(())
}

fn msrs_of(
    entries: &[kvm_msr_entry],
    index: u8,
    what: &'static str,
) -> Result<Msrs, VcpuStateError> {
    // Chunks never exceed MSRS_PER_CALL, far below the wrapper's limit; still no panic.
    Msrs::from_entries(entries).map_err(|_| VcpuStateError::Msr {
        index,
        what,
        msr: 0,
        done: 0,
        total: entries.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_vm;
    use super::*;

    fn capture(t: &test_vm::TestVm) -> VcpuState {
        let listed = listed_msrs(&t.kvm).unwrap();
        VcpuState::capture(
            &t.vcpu,
            0,
            VcpuCaps::of(&t.vm),
            msr_indices(&listed, &t.vcpu),
        )
        .unwrap()
    }

    fn tsc(s: &VcpuState) -> u64 {
        s.msrs
            .iter()
            .find(|m| m.index == MSR_IA32_TSC)
            .map(|m| m.data)
            .unwrap()
    }

    fn without_tsc(s: &VcpuState) -> VcpuState {
        let mut s = s.clone();
        s.msrs.retain(|m| m.index != MSR_IA32_TSC);
        s
    }

    /// Capture, apply to a fresh VM, capture again: the same state (the TSC
    /// only forward: the fresh VM's is set to the snapshot's, which is ahead).
    #[test]
    fn state_round_trips_through_a_fresh_vm() {
        let a = test_vm::new(false);
        crate::vmm::regs::setup_long_mode(&a.vcpu, 0x10_0000, 0x8000, 0x1234, 0x5678).unwrap();
        let mut r = a.vcpu.get_regs().unwrap();
        r.rax = 0xdead_beef;
        r.r15 = 0x1515;
        a.vcpu.set_regs(&r).unwrap();
        // xmm3 through the interface the state is applied with: KVM_SET_FPU does
        // not mark SSE state in use in the XSAVE header, so KVM_GET_XSAVE would
        // not show it.
        if VcpuCaps::of(&a.vm).xsave {
            let mut x = a.vcpu.get_xsave().unwrap();
            x.region[52] = 0x42; // xmm3, bytes 208..224 of the FXSAVE area
            x.region[128] |= 0b10; // XSTATE_BV: SSE state in use
                                   // SAFETY: the caps say KVM's XSAVE state fits `kvm_xsave`.
            unsafe { a.vcpu.set_xsave(&x) }.unwrap();
        } else {
            let mut fpu = a.vcpu.get_fpu().unwrap();
            fpu.xmm[3][0] = 0x42;
            a.vcpu.set_fpu(&fpu).unwrap();
        }
        let first = capture(&a);
        assert_eq!(first.fpu.xmm[3][0], 0x42);
        assert!(first.msrs.len() > 5, "{} MSRs", first.msrs.len());
        assert_eq!(first.regs.rax, 0xdead_beef);

        let b = test_vm::new(false);
        assert_ne!(capture(&b).regs, first.regs);
        first.apply(&b.vcpu, 0).unwrap();
        let second = capture(&b);
        assert_eq!(
            without_tsc(&second).first_difference(&without_tsc(&first)),
            None
        );
        assert!(
            tsc(&second) >= tsc(&first),
            "TSC went backwards: {} < {}",
            tsc(&second),
            tsc(&first)
        );
    }

    /// Applying a state whose TSC is behind the vCPU's own leaves the TSC alone.
    #[test]
    fn applying_never_moves_the_tsc_backwards() {
        let a = test_vm::new(false);
        let mut old = capture(&a);
        old.msrs
            .iter_mut()
            .filter(|m| m.index == MSR_IA32_TSC)
            .for_each(|m| m.data = 1);
        let before = tsc(&capture(&a));
        old.apply(&a.vcpu, 0).unwrap();
        assert!(tsc(&capture(&a)) >= before);
    }

    #[test]
    fn another_version_is_refused() {
        let a = test_vm::new(false);
        let mut s = capture(&a);
        s.version += 1;
        assert!(matches!(
            s.apply(&a.vcpu, 0),
            Err(VcpuStateError::Version { .. })
        ));
    }
}
