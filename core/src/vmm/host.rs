//! Which kind of KVM we are on. Hardware KVM runs guests natively; PVM
//! (`kvm_pvm`, a software KVM for machines without VT-x/AMD-V) runs them through
//! KVM's instruction emulator, which lacks SSE, popcnt, cmpxchg16b, xsave and a
//! CPL0 `int3` (docs/platform.md). Only on PVM do we hide those in CPUID and pass
//! the Linux workarounds; the standard paths stay standard elsewhere.

use std::fmt;
use std::path::Path;

/// The KVM implementation behind /dev/kvm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostKind {
    /// VT-x or AMD-V: guests run natively.
    Hardware,
    /// Pagetable-based Virtual Machine (`kvm_pvm`): guests run emulated.
    Pvm,
}

impl HostKind {
    /// Detects the host kind from loaded kernel modules.
    pub fn detect() -> HostKind {
        Self::detect_in(Path::new("/sys/module"))
    }

    /// Detection against a given sysfs module directory (for tests).
    pub fn detect_in(modules: &Path) -> HostKind {
        if modules.join("kvm_pvm").exists() {
            HostKind::Pvm
        } else {
            HostKind::Hardware
        }
    }

    /// True on PVM.
    pub fn is_pvm(self) -> bool {
        self == HostKind::Pvm
    }
}

impl fmt::Display for HostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostKind::Hardware => "hardware KVM",
            HostKind::Pvm => "PVM (kvm_pvm, emulated guest execution)",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_pvm_by_module() {
        let dir = std::env::temp_dir().join(format!("kvmsb-host-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kvm")).unwrap();
        assert_eq!(HostKind::detect_in(&dir), HostKind::Hardware);
        std::fs::create_dir_all(dir.join("kvm_pvm")).unwrap();
        assert_eq!(HostKind::detect_in(&dir), HostKind::Pvm);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
