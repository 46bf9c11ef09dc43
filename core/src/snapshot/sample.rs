//! A synthetic snapshot (real memory image, default component states) for the
//! file-format tests and the fuzz target's seed: no KVM needed.

use super::*;
use crate::vmm::memory::GuestMemory;
use crate::vmm::snapshot::memory::MemorySnapshot;
use crate::vmm::snapshot::{clock, irqchip, vcpu, VM_SNAPSHOT_VERSION};
use vm_memory::{Bytes, GuestAddress};

fn vcpu_state(rip: u64) -> VcpuState {
    VcpuState {
        version: vcpu::VCPU_STATE_VERSION,
        regs: kvm_bindings::kvm_regs {
            rip,
            ..Default::default()
        },
        sregs: Default::default(),
        fpu: kvm_bindings::kvm_fpu {
            mxcsr: 0x1f80,
            ..Default::default()
        },
        xsave: Some(vec![7; 16]),
        xcrs: None,
        debugregs: Some(Default::default()),
        lapic: Default::default(),
        msrs: vec![kvm_bindings::kvm_msr_entry {
            index: 0x10,
            data: 12345,
            ..Default::default()
        }],
        mp_state: Default::default(),
        events: None,
    }
}

/// A 2-vCPU snapshot of `mem_bytes` (at least 8 KiB) of RAM holding 0xfeed at
/// 0x1000 and 0xbeef in its last page, with default component states.
pub fn sample(mem_bytes: usize) -> SandboxSnapshot {
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), mem_bytes)]).unwrap();
    mem.write_obj(0xfeed_u64, GuestAddress(0x1000)).unwrap();
    mem.write_obj(0xbeef_u64, GuestAddress(mem_bytes as u64 - 0x1000))
        .unwrap();
    let vm = VmSnapshot {
        version: VM_SNAPSHOT_VERSION,
        memory: Arc::new(MemorySnapshot::capture(&mem).unwrap()),
        vcpus: vec![vcpu_state(0x1234), vcpu_state(0x5678)],
        irqchip: IrqchipState {
            version: irqchip::IRQCHIP_STATE_VERSION,
            pic_master: Default::default(),
            pic_slave: Default::default(),
            ioapic: Default::default(),
        },
        pit: None,
        clock: ClockState {
            version: clock::CLOCK_STATE_VERSION,
            clock_ns: 99,
        },
        devices: Vec::new(),
    };
    let meta = SnapshotMeta {
        mem_size: mem_bytes as u64,
        vcpus: 2,
        disks: vec![DiskRecord {
            path: "/tmp/disk.img".into(),
            size: 1 << 20,
            read_only: true,
        }],
        cmdline: "test=stay".into(),
    };
    SandboxSnapshot::new(GuestKind::Micro, meta, vm)
}
