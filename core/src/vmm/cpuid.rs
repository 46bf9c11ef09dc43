//! The CPUID our guests see: what KVM supports, with topology fixed per vCPU and,
//! on PVM only, the features its instruction emulator cannot run hidden so that
//! guests (Linux in particular) never pick them.

use super::host::HostKind;
use kvm_bindings::CpuId;

const LEAF_FEATURES: u32 = 1;
const LEAF_EXT_FEATURES: u32 = 7;
const LEAF_XSAVE: u32 = 0xd;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_TOPOLOGY_V2: u32 = 0x1f;

// Leaf 1 ECX.
const ECX_CX16: u32 = 1 << 13;
const ECX_POPCNT: u32 = 1 << 23;
const ECX_XSAVE: u32 = 1 << 26;
const ECX_OSXSAVE: u32 = 1 << 27;
const ECX_AVX: u32 = 1 << 28;
const ECX_F16C: u32 = 1 << 29;
const ECX_FMA: u32 = 1 << 12;
const ECX_HYPERVISOR: u32 = 1 << 31;
// Leaf 7 EBX: AVX2 (5), AVX-512 family (16, 17, 21, 26, 27, 28, 30, 31).
const EBX7_AVX_MASK: u32 = (1 << 5)
    | (1 << 16)
    | (1 << 17)
    | (1 << 21)
    | (1 << 26)
    | (1 << 27)
    | (1 << 28)
    | (1 << 30)
    | (1 << 31);
// Leaf 7 EBX: SMAP (20): Linux then patches `clac`/`stac` into every entry path,
// and PVM's emulator cannot run them (measured: emulation failure at the first
// interrupt, in asm_common_interrupt).
const EBX7_SMAP: u32 = 1 << 20;

/// Adjusts `cpuid` (from KVM_GET_SUPPORTED_CPUID) for vCPU `index` of `count`.
pub fn filter(cpuid: &mut CpuId, index: u8, count: u8, host: HostKind) {
    for e in cpuid.as_mut_slice() {
        match e.function {
            LEAF_FEATURES => {
                e.ebx = (e.ebx & 0x0000_ffff) | (u32::from(index) << 24) | (u32::from(count) << 16);
                e.ecx |= ECX_HYPERVISOR;
                if host.is_pvm() {
                    e.ecx &= !(ECX_CX16
                        | ECX_POPCNT
                        | ECX_XSAVE
                        | ECX_OSXSAVE
                        | ECX_AVX
                        | ECX_F16C
                        | ECX_FMA);
                }
            }
            LEAF_EXT_FEATURES if host.is_pvm() && e.index == 0 => {
                e.ebx &= !(EBX7_AVX_MASK | EBX7_SMAP);
                e.ecx = 0;
                e.edx = 0;
            }
            LEAF_XSAVE if host.is_pvm() => {
                e.eax = 0;
                e.ebx = 0;
                e.ecx = 0;
                e.edx = 0;
            }
            LEAF_TOPOLOGY | LEAF_TOPOLOGY_V2 => {
                e.edx = u32::from(index);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_bindings::kvm_cpuid_entry2;

    fn sample() -> CpuId {
        let entries = [
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0xdead_0800,
                ecx: ECX_CX16 | ECX_POPCNT | ECX_XSAVE | 1,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 7,
                ebx: EBX7_AVX_MASK | 1,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0xd,
                eax: 7,
                ..Default::default()
            },
        ];
        CpuId::from_entries(&entries).unwrap()
    }

    #[test]
    fn pvm_hides_unemulated_features() {
        let mut c = sample();
        filter(&mut c, 1, 2, HostKind::Pvm);
        let l1 = c.as_slice()[0];
        assert_eq!(l1.ecx & (ECX_CX16 | ECX_POPCNT | ECX_XSAVE), 0);
        assert_eq!(l1.ecx & 1, 1, "unrelated bits survive");
        assert_ne!(l1.ecx & ECX_HYPERVISOR, 0);
        assert_eq!(l1.ebx >> 24, 1, "APIC id is the vCPU index");
        assert_eq!((l1.ebx >> 16) & 0xff, 2);
        assert_eq!(c.as_slice()[1].ebx, 1);
        assert_eq!(c.as_slice()[2].eax, 0);
    }

    #[test]
    fn hardware_keeps_features() {
        let mut c = sample();
        filter(&mut c, 0, 1, HostKind::Hardware);
        assert_ne!(c.as_slice()[0].ecx & ECX_POPCNT, 0);
        assert_eq!(c.as_slice()[1].ebx, EBX7_AVX_MASK | 1);
    }
}
