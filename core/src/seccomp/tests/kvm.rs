//! The vCPU filter against the real KVM API: every allowed request reaches the kernel
//! with the numbers we computed, and the VcpuFd/VmFd drop cleanly under the filter.
//! Skipped (with a message) when /dev/kvm cannot be opened.

use kvm_bindings::{kvm_msr_entry, Msrs, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;

use super::super::*;
use super::child::{apply, run_in_child, OK};

#[test]
fn seccomp_vcpu_filter_allows_the_vcpu_ioctls_on_real_kvm() {
    if let Err(e) = std::fs::File::open("/dev/kvm") {
        panic!("this test needs /dev/kvm: {e}");
    }
    let program = filter_for(ThreadKind::Vcpu, SeccompPolicy::Kill)
        .unwrap()
        .unwrap();
    let outcome = run_in_child(move || {
        // KVM refuses fds from another process's mm, so everything is made in the child,
        // before the filter, as the vCPU thread's creator would.
        let kvm = Kvm::new().map_err(|e| format!("open /dev/kvm: {e}"))?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| format!("cpuid: {e}"))?;
        let vm = kvm.create_vm().map_err(|e| format!("create_vm: {e}"))?;
        vm.create_irq_chip().map_err(|e| format!("irqchip: {e}"))?;
        let mut vcpu = vm.create_vcpu(0).map_err(|e| format!("create_vcpu: {e}"))?;
        drop(kvm);

        apply(&program)?;
        let err = |what: &'static str| move |e: kvm_ioctls::Error| format!("{what}: {e}");
        vcpu.set_cpuid2(&cpuid).map_err(err("KVM_SET_CPUID2"))?;
        let regs = vcpu.get_regs().map_err(err("KVM_GET_REGS"))?;
        vcpu.set_regs(&regs).map_err(err("KVM_SET_REGS"))?;
        let sregs = vcpu.get_sregs().map_err(err("KVM_GET_SREGS"))?;
        vcpu.set_sregs(&sregs).map_err(err("KVM_SET_SREGS"))?;
        vcpu.set_fpu(&Default::default())
            .map_err(err("KVM_SET_FPU"))?;
        let mut msrs = Msrs::from_entries(&[kvm_msr_entry {
            index: 0x277,
            ..Default::default()
        }])
        .map_err(|e| format!("Msrs: {e:?}"))?;
        vcpu.get_msrs(&mut msrs).map_err(err("KVM_GET_MSRS"))?;
        vcpu.set_msrs(&msrs).map_err(err("KVM_SET_MSRS"))?;
        let lapic = vcpu.get_lapic().map_err(err("KVM_GET_LAPIC"))?;
        vcpu.set_lapic(&lapic).map_err(err("KVM_SET_LAPIC"))?;
        let mp = vcpu.get_mp_state().map_err(err("KVM_GET_MP_STATE"))?;
        vcpu.set_mp_state(mp).map_err(err("KVM_SET_MP_STATE"))?;
        vcpu.get_vcpu_events().map_err(err("KVM_GET_VCPU_EVENTS"))?;
        // KVM_KVMCLOCK_CTRL fails (EINVAL) unless the guest enabled kvmclock; it only
        // has to reach the kernel.
        let _ = vcpu.kvmclock_ctrl();
        vm.set_irq_line(4, true).map_err(err("KVM_IRQ_LINE"))?;
        vm.set_irq_line(4, false).map_err(err("KVM_IRQ_LINE"))?;
        // KVM_RUN with immediate_exit set returns EINTR at once, without running a guest.
        vcpu.set_kvm_immediate_exit(1);
        match vcpu.run() {
            Err(e) if e.errno() == libc::EINTR => {}
            other => return Err(format!("KVM_RUN with immediate_exit gave {other:?}")),
        }
        // The vCPU thread ends owning its fds: close and munmap of kvm_run are allowed.
        drop(vcpu);
        drop(vm);
        Ok(())
    });
    assert_eq!(outcome, OK);
}
