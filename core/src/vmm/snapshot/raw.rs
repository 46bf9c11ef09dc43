//! Byte views of the KVM structures a snapshot holds, for comparing them (several
//! contain unions, so they have no `PartialEq`), and serde for the one structure
//! kvm-bindings leaves without it.

/// A KVM structure without padding bytes, whose every byte KVM writes.
///
/// # Safety
/// Implement only for `repr(C)` types with no padding: kvm-bindings derives
/// `zerocopy::IntoBytes` (which proves that) for each type listed below under its
/// `serde` feature.
pub unsafe trait Pod: Copy {
    /// The value's bytes.
    fn bytes(&self) -> &[u8] {
        // SAFETY: per the trait's contract every byte of `Self` is initialised
        // (no padding), and the slice borrows `self` for its lifetime.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                std::mem::size_of::<Self>(),
            )
        }
    }
}

// SAFETY: each has `zerocopy::IntoBytes` derived in kvm-bindings 0.14 (no padding).
unsafe impl Pod for kvm_bindings::kvm_xcrs {}
// SAFETY: as above.
unsafe impl Pod for kvm_bindings::kvm_debugregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_bindings::kvm_lapic_state {}
// SAFETY: as above.
unsafe impl Pod for kvm_bindings::kvm_vcpu_events {}
// SAFETY: as above.
unsafe impl Pod for kvm_bindings::kvm_irqchip {}
// SAFETY: as above.
unsafe impl Pod for kvm_bindings::kvm_pit_state2 {}

/// serde's view of `kvm_fpu`, the one state structure kvm-bindings gives no serde
/// implementation (its fields are all plain arrays and integers).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(remote = "kvm_bindings::kvm_fpu")]
pub(crate) struct FpuDef {
    fpr: [[u8; 16]; 8],
    fcw: u16,
    fsw: u16,
    ftwx: u8,
    pad1: u8,
    last_opcode: u16,
    last_ip: u64,
    last_dp: u64,
    xmm: [[u8; 16]; 16],
    mxcsr: u32,
    pad2: u32,
}
