//! ioctl request numbers the filters allow, as constants.
//!
//! kvm-ioctls defines its request numbers in a private module, with vmm-sys-util's
//! `ioctl_io*_nr!` macros. We compute the same numbers with the `const fn` those macros
//! expand to ([`vmm_sys_util::ioctl::ioctl_expr`]) and the argument structs from
//! kvm-bindings, so they are usable in `const` tables. The unit tests cross-check every
//! one against vmm-sys-util's macros (the exact definition kvm-ioctls uses) and a few
//! against the kernel's literal values.

use std::mem::size_of;

use kvm_bindings::{
    kvm_cpuid2, kvm_debugregs, kvm_fpu, kvm_irq_level, kvm_lapic_state, kvm_mp_state, kvm_msrs,
    kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, KVMIO,
};
use vmm_sys_util::ioctl::{ioctl_expr, _IOC_NONE, _IOC_READ, _IOC_WRITE};

const fn io(nr: u32) -> u64 {
    ioctl_expr(_IOC_NONE, KVMIO, nr, 0) as u64
}
const fn ior(nr: u32, size: usize) -> u64 {
    ioctl_expr(_IOC_READ, KVMIO, nr, size as u32) as u64
}
const fn iow(nr: u32, size: usize) -> u64 {
    ioctl_expr(_IOC_WRITE, KVMIO, nr, size as u32) as u64
}
const fn iowr(nr: u32, size: usize) -> u64 {
    ioctl_expr(_IOC_READ | _IOC_WRITE, KVMIO, nr, size as u32) as u64
}

/// `KVM_IRQ_LINE` (vm fd): raise/lower a legacy interrupt line.
pub const KVM_IRQ_LINE: u64 = iow(0x61, size_of::<kvm_irq_level>());
/// `KVM_RUN` (vcpu fd): enter the guest until the next exit.
pub const KVM_RUN: u64 = io(0x80);
/// `KVM_GET_REGS` (vcpu fd).
pub const KVM_GET_REGS: u64 = ior(0x81, size_of::<kvm_regs>());
/// `KVM_SET_REGS` (vcpu fd).
pub const KVM_SET_REGS: u64 = iow(0x82, size_of::<kvm_regs>());
/// `KVM_GET_SREGS` (vcpu fd).
pub const KVM_GET_SREGS: u64 = ior(0x83, size_of::<kvm_sregs>());
/// `KVM_SET_SREGS` (vcpu fd).
pub const KVM_SET_SREGS: u64 = iow(0x84, size_of::<kvm_sregs>());
/// `KVM_GET_MSRS` (vcpu fd); the size is the header of the flexible-array struct.
pub const KVM_GET_MSRS: u64 = iowr(0x88, size_of::<kvm_msrs>());
/// `KVM_SET_MSRS` (vcpu fd).
pub const KVM_SET_MSRS: u64 = iow(0x89, size_of::<kvm_msrs>());
/// `KVM_SET_FPU` (vcpu fd).
pub const KVM_SET_FPU: u64 = iow(0x8d, size_of::<kvm_fpu>());
/// `KVM_GET_LAPIC` (vcpu fd).
pub const KVM_GET_LAPIC: u64 = ior(0x8e, size_of::<kvm_lapic_state>());
/// `KVM_SET_LAPIC` (vcpu fd).
pub const KVM_SET_LAPIC: u64 = iow(0x8f, size_of::<kvm_lapic_state>());
/// `KVM_SET_CPUID2` (vcpu fd).
pub const KVM_SET_CPUID2: u64 = iow(0x90, size_of::<kvm_cpuid2>());
/// `KVM_GET_MP_STATE` (vcpu fd).
pub const KVM_GET_MP_STATE: u64 = ior(0x98, size_of::<kvm_mp_state>());
/// `KVM_SET_MP_STATE` (vcpu fd).
pub const KVM_SET_MP_STATE: u64 = iow(0x99, size_of::<kvm_mp_state>());
/// `KVM_GET_VCPU_EVENTS` (vcpu fd).
pub const KVM_GET_VCPU_EVENTS: u64 = ior(0x9f, size_of::<kvm_vcpu_events>());
/// `KVM_GET_FPU` (vcpu fd).
pub const KVM_GET_FPU: u64 = ior(0x8c, size_of::<kvm_fpu>());
/// `KVM_SET_VCPU_EVENTS` (vcpu fd).
pub const KVM_SET_VCPU_EVENTS: u64 = iow(0xa0, size_of::<kvm_vcpu_events>());
/// `KVM_GET_DEBUGREGS` (vcpu fd).
pub const KVM_GET_DEBUGREGS: u64 = ior(0xa1, size_of::<kvm_debugregs>());
/// `KVM_SET_DEBUGREGS` (vcpu fd).
pub const KVM_SET_DEBUGREGS: u64 = iow(0xa2, size_of::<kvm_debugregs>());
/// `KVM_GET_XSAVE` (vcpu fd).
pub const KVM_GET_XSAVE: u64 = ior(0xa4, size_of::<kvm_xsave>());
/// `KVM_SET_XSAVE` (vcpu fd).
pub const KVM_SET_XSAVE: u64 = iow(0xa5, size_of::<kvm_xsave>());
/// `KVM_GET_XCRS` (vcpu fd).
pub const KVM_GET_XCRS: u64 = ior(0xa6, size_of::<kvm_xcrs>());
/// `KVM_SET_XCRS` (vcpu fd).
pub const KVM_SET_XCRS: u64 = iow(0xa7, size_of::<kvm_xcrs>());
/// `KVM_KVMCLOCK_CTRL` (vcpu fd): tell the guest's kvmclock it was paused.
pub const KVM_KVMCLOCK_CTRL: u64 = io(0xad);
/// `FIONBIO`: std's `set_nonblocking` on sockets.
pub const FIONBIO: u64 = libc::FIONBIO;

#[cfg(test)]
mod tests {
    use kvm_bindings::*;
    use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr, ioctl_iowr_nr};

    // The definitions exactly as kvm-ioctls writes them (src/kvm_ioctls.rs).
    ioctl_iow_nr!(REF_KVM_IRQ_LINE, KVMIO, 0x61, kvm_irq_level);
    ioctl_io_nr!(REF_KVM_RUN, KVMIO, 0x80);
    ioctl_ior_nr!(REF_KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
    ioctl_iow_nr!(REF_KVM_SET_REGS, KVMIO, 0x82, kvm_regs);
    ioctl_ior_nr!(REF_KVM_GET_SREGS, KVMIO, 0x83, kvm_sregs);
    ioctl_iow_nr!(REF_KVM_SET_SREGS, KVMIO, 0x84, kvm_sregs);
    ioctl_iowr_nr!(REF_KVM_GET_MSRS, KVMIO, 0x88, kvm_msrs);
    ioctl_iow_nr!(REF_KVM_SET_MSRS, KVMIO, 0x89, kvm_msrs);
    ioctl_iow_nr!(REF_KVM_SET_FPU, KVMIO, 0x8d, kvm_fpu);
    ioctl_ior_nr!(REF_KVM_GET_LAPIC, KVMIO, 0x8e, kvm_lapic_state);
    ioctl_iow_nr!(REF_KVM_SET_LAPIC, KVMIO, 0x8f, kvm_lapic_state);
    ioctl_iow_nr!(REF_KVM_SET_CPUID2, KVMIO, 0x90, kvm_cpuid2);
    ioctl_ior_nr!(REF_KVM_GET_MP_STATE, KVMIO, 0x98, kvm_mp_state);
    ioctl_iow_nr!(REF_KVM_SET_MP_STATE, KVMIO, 0x99, kvm_mp_state);
    ioctl_ior_nr!(REF_KVM_GET_VCPU_EVENTS, KVMIO, 0x9f, kvm_vcpu_events);
    ioctl_io_nr!(REF_KVM_KVMCLOCK_CTRL, KVMIO, 0xad);
    ioctl_ior_nr!(REF_KVM_GET_FPU, KVMIO, 0x8c, kvm_fpu);
    ioctl_iow_nr!(REF_KVM_SET_VCPU_EVENTS, KVMIO, 0xa0, kvm_vcpu_events);
    ioctl_ior_nr!(REF_KVM_GET_DEBUGREGS, KVMIO, 0xa1, kvm_debugregs);
    ioctl_iow_nr!(REF_KVM_SET_DEBUGREGS, KVMIO, 0xa2, kvm_debugregs);
    ioctl_ior_nr!(REF_KVM_GET_XSAVE, KVMIO, 0xa4, kvm_xsave);
    ioctl_iow_nr!(REF_KVM_SET_XSAVE, KVMIO, 0xa5, kvm_xsave);
    ioctl_ior_nr!(REF_KVM_GET_XCRS, KVMIO, 0xa6, kvm_xcrs);
    ioctl_iow_nr!(REF_KVM_SET_XCRS, KVMIO, 0xa7, kvm_xcrs);

    #[test]
    fn seccomp_ioctl_numbers_match_kvm_ioctls_definitions() {
        let pairs: [(u64, fn() -> u64); 24] = [
            (super::KVM_IRQ_LINE, REF_KVM_IRQ_LINE),
            (super::KVM_RUN, REF_KVM_RUN),
            (super::KVM_GET_REGS, REF_KVM_GET_REGS),
            (super::KVM_SET_REGS, REF_KVM_SET_REGS),
            (super::KVM_GET_SREGS, REF_KVM_GET_SREGS),
            (super::KVM_SET_SREGS, REF_KVM_SET_SREGS),
            (super::KVM_GET_MSRS, REF_KVM_GET_MSRS),
            (super::KVM_SET_MSRS, REF_KVM_SET_MSRS),
            (super::KVM_SET_FPU, REF_KVM_SET_FPU),
            (super::KVM_GET_LAPIC, REF_KVM_GET_LAPIC),
            (super::KVM_SET_LAPIC, REF_KVM_SET_LAPIC),
            (super::KVM_SET_CPUID2, REF_KVM_SET_CPUID2),
            (super::KVM_GET_MP_STATE, REF_KVM_GET_MP_STATE),
            (super::KVM_SET_MP_STATE, REF_KVM_SET_MP_STATE),
            (super::KVM_GET_VCPU_EVENTS, REF_KVM_GET_VCPU_EVENTS),
            (super::KVM_KVMCLOCK_CTRL, REF_KVM_KVMCLOCK_CTRL),
            (super::KVM_GET_FPU, REF_KVM_GET_FPU),
            (super::KVM_SET_VCPU_EVENTS, REF_KVM_SET_VCPU_EVENTS),
            (super::KVM_GET_DEBUGREGS, REF_KVM_GET_DEBUGREGS),
            (super::KVM_SET_DEBUGREGS, REF_KVM_SET_DEBUGREGS),
            (super::KVM_GET_XSAVE, REF_KVM_GET_XSAVE),
            (super::KVM_SET_XSAVE, REF_KVM_SET_XSAVE),
            (super::KVM_GET_XCRS, REF_KVM_GET_XCRS),
            (super::KVM_SET_XCRS, REF_KVM_SET_XCRS),
        ];
        for (ours, reference) in pairs {
            assert_eq!(ours, reference(), "{ours:#x}");
        }
    }

    #[test]
    fn seccomp_ioctl_numbers_match_kernel_literals() {
        // From <linux/kvm.h> on x86_64.
        assert_eq!(super::KVM_RUN, 0xae80);
        assert_eq!(super::KVM_GET_REGS, 0x8090_ae81);
        assert_eq!(super::KVM_SET_REGS, 0x4090_ae82);
        assert_eq!(super::KVM_SET_MSRS, 0x4008_ae89);
        assert_eq!(super::KVM_IRQ_LINE, 0x4008_ae61);
        assert_eq!(super::KVM_KVMCLOCK_CTRL, 0xaead);
        assert_eq!(super::FIONBIO, 0x5421);
    }
}
