//! Register state for entering a guest directly in 64-bit long mode (both guest
//! kinds, as Firecracker does for Linux): identity page tables for the first
//! 4 GiB, a flat GDT, segments, control registers, FPU and boot MSRs.

use super::layout::{GDT_START, PDPT_START, PD_START, PML4_START};
use super::memory::GuestMemory;
use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_segment, kvm_sregs, Msrs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress};

/// Errors setting up registers.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// Writing page tables or the GDT into guest memory failed.
    #[error("cannot write boot structures at {addr:#x}: {source}")]
    Write {
        /// Guest address.
        addr: u64,
        /// vm-memory error.
        source: vm_memory::GuestMemoryError,
    },
    /// A KVM register ioctl failed.
    #[error("KVM {what} failed: {source}")]
    Kvm {
        /// The ioctl.
        what: &'static str,
        /// The KVM error.
        source: kvm_ioctls::Error,
    },
}

const GDT: [u64; 4] = [
    0,                     // null
    0x00af_9b00_0000_ffff, // 0x08: 64-bit code, present, DPL0
    0x00cf_9300_0000_ffff, // 0x10: data, present, writable
    0x008f_8b00_0000_ffff, // 0x18: busy 64-bit TSS (VT-x requires a valid TR)
];

const X86_CR0_PE: u64 = 1;
const X86_CR0_MP: u64 = 1 << 1;
const X86_CR0_ET: u64 = 1 << 4;
const X86_CR0_NE: u64 = 1 << 5;
const X86_CR0_WP: u64 = 1 << 16;
const X86_CR0_PG: u64 = 1 << 31;
const X86_CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

fn write<T: vm_memory::ByteValued>(mem: &GuestMemory, addr: u64, v: T) -> Result<(), RegsError> {
    mem.write_obj(v, GuestAddress(addr))
        .map_err(|source| RegsError::Write { addr, source })
}

/// Writes the GDT and identity page tables (4 GiB of 2 MiB pages).
pub fn write_boot_structures(mem: &GuestMemory) -> Result<(), RegsError> {
    for (i, d) in GDT.iter().enumerate() {
        write(mem, GDT_START + i as u64 * 8, *d)?;
    }
    write(mem, PML4_START, PDPT_START | 0x3)?;
    for pd in 0..4u64 {
        write(mem, PDPT_START + pd * 8, (PD_START + pd * 0x1000) | 0x3)?;
        for i in 0..512u64 {
            let addr = ((pd << 30) | (i << 21)) | 0x83; // present, writable, 2 MiB page
            write(mem, PD_START + pd * 0x1000 + i * 8, addr)?;
        }
    }
    Ok(())
}

fn segment(index: u16, desc: u64) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: index * 8,
        type_: ((desc >> 40) & 0xf) as u8,
        present: ((desc >> 47) & 1) as u8,
        dpl: ((desc >> 45) & 3) as u8,
        db: ((desc >> 54) & 1) as u8,
        s: ((desc >> 44) & 1) as u8,
        l: ((desc >> 53) & 1) as u8,
        g: ((desc >> 55) & 1) as u8,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Puts `vcpu` in 64-bit long mode at `rip` with the given stack and arguments.
pub fn setup_long_mode(
    vcpu: &VcpuFd,
    rip: u64,
    rsp: u64,
    rdi: u64,
    rsi: u64,
) -> Result<(), RegsError> {
    let kvm = |what| move |source| RegsError::Kvm { what, source };
    let mut sregs: kvm_sregs = vcpu.get_sregs().map_err(kvm("KVM_GET_SREGS"))?;
    let code = segment(1, GDT[1]);
    let data = segment(2, GDT[2]);
    let mut tss = segment(3, GDT[3]);
    tss.limit = 0xfffff;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.gdt.base = GDT_START;
    sregs.gdt.limit = (GDT.len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr3 = PML4_START;
    sregs.cr4 |= X86_CR4_PAE;
    sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_WP | X86_CR0_PG;
    sregs.efer |= EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs).map_err(kvm("KVM_SET_SREGS"))?;

    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(kvm("KVM_SET_FPU"))?;

    let regs = kvm_regs {
        rflags: 0x2,
        rip,
        rsp,
        rbp: rsp,
        rdi,
        rsi,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm("KVM_SET_REGS"))?;
    Ok(())
}

/// MSRs a 64-bit Linux guest expects at entry (the values Firecracker uses).
pub fn setup_boot_msrs(vcpu: &VcpuFd) -> Result<(), RegsError> {
    const MSR_IA32_SYSENTER_CS: u32 = 0x174;
    const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
    const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
    const MSR_STAR: u32 = 0xc000_0081;
    const MSR_LSTAR: u32 = 0xc000_0082;
    const MSR_CSTAR: u32 = 0xc000_0083;
    const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
    const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
    const MSR_IA32_TSC: u32 = 0x10;
    const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
    const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
    let e = |index, data| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    let entries = [
        e(MSR_IA32_SYSENTER_CS, 0),
        e(MSR_IA32_SYSENTER_ESP, 0),
        e(MSR_IA32_SYSENTER_EIP, 0),
        e(MSR_STAR, 0),
        e(MSR_CSTAR, 0),
        e(MSR_KERNEL_GS_BASE, 0),
        e(MSR_SYSCALL_MASK, 0),
        e(MSR_LSTAR, 0),
        e(MSR_IA32_TSC, 0),
        e(MSR_IA32_MISC_ENABLE, 1),          // fast strings
        e(MSR_MTRR_DEF_TYPE, (1 << 11) | 6), // MTRRs on, write-back default
    ];
    let msrs = Msrs::from_entries(&entries).map_err(|_| RegsError::Kvm {
        what: "building the MSR list",
        source: kvm_ioctls::Error::new(libc::EINVAL),
    })?;
    let n = vcpu.set_msrs(&msrs).map_err(|source| RegsError::Kvm {
        what: "KVM_SET_MSRS",
        source,
    })?;
    if n != entries.len() {
        // Some MSRs are not supported by this KVM (e.g. PVM); the guest copes.
        return Ok(());
    }
    Ok(())
}

/// Routes the legacy PIC through LINT0 (ExtINT) and NMIs through LINT1, as a PC's
/// firmware would; both guest kinds take PIC/IOAPIC interrupts through it.
pub fn setup_lapic(vcpu: &VcpuFd) -> Result<(), RegsError> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const MODE_EXTINT: u32 = 0x7;
    const MODE_NMI: u32 = 0x4;
    let mut lapic = vcpu.get_lapic().map_err(|source| RegsError::Kvm {
        what: "KVM_GET_LAPIC",
        source,
    })?;
    let set = |regs: &mut [std::os::raw::c_char], off: usize, mode: u32| {
        let mut b = [0u8; 4];
        for (i, x) in b.iter_mut().enumerate() {
            *x = regs[off + i] as u8;
        }
        let v = (u32::from_le_bytes(b) & !0x700) | (mode << 8);
        for (i, x) in v.to_le_bytes().iter().enumerate() {
            regs[off + i] = *x as std::os::raw::c_char;
        }
    };
    set(&mut lapic.regs, APIC_LVT0, MODE_EXTINT);
    set(&mut lapic.regs, APIC_LVT1, MODE_NMI);
    vcpu.set_lapic(&lapic).map_err(|source| RegsError::Kvm {
        what: "KVM_SET_LAPIC",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tables_identity_map_4gib() {
        let mem = crate::vmm::memory::create(2 << 20).unwrap();
        write_boot_structures(&mem).unwrap();
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_START)).unwrap();
        assert_eq!(pml4, PDPT_START | 3);
        let pdpt3: u64 = mem.read_obj(GuestAddress(PDPT_START + 24)).unwrap();
        assert_eq!(pdpt3, (PD_START + 0x3000) | 3);
        // The last 2 MiB page below 4 GiB maps to itself.
        let last: u64 = mem
            .read_obj(GuestAddress(PD_START + 0x3000 + 511 * 8))
            .unwrap();
        assert_eq!(last, 0xffe0_0000 | 0x83);
        let code: u64 = mem.read_obj(GuestAddress(GDT_START + 8)).unwrap();
        assert_eq!(code, GDT[1]);
    }

    #[test]
    fn segments_decode_from_descriptors() {
        let cs = segment(1, GDT[1]);
        assert_eq!(
            (cs.selector, cs.l, cs.present, cs.s, cs.type_),
            (8, 1, 1, 1, 0xb)
        );
        let ds = segment(2, GDT[2]);
        assert_eq!((ds.selector, ds.l, ds.db, ds.type_), (16, 0, 1, 3));
    }
}
