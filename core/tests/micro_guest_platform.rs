//! The micro guest's own platform code: its IDT turns CPU exceptions into a
//! reported panic (vector, error code, RIP) instead of a triple fault. Needs /dev/kvm.

use kvmsandbox::{Error, Vm, VmConfig};
use std::time::Duration;

fn expect_panic(mode: &str) -> String {
    let cfg = VmConfig::micro()
        .cmdline(&format!("test={mode}"))
        .start_timeout(Duration::from_secs(10));
    let err = match Vm::start(cfg) {
        Ok(vm) => vm.wait().err(),
        Err(e) => Some(e),
    };
    match err {
        Some(Error::GuestPanic { message, .. }) => message,
        other => panic!("{mode}: expected GuestPanic, got {other:?}"),
    }
}

#[test]
fn invalid_opcode_is_reported_by_the_exception_handler() {
    let msg = expect_panic("ud");
    assert!(msg.contains("CPU exception 6 (invalid opcode)"), "{msg}");
    assert!(msg.contains("at rip 0x1"), "{msg}");
}

#[test]
fn page_fault_reports_vector_error_code_and_address() {
    // test=fault writes to 0xffff_f000_0000_0000, outside the identity map.
    let msg = expect_panic("fault");
    assert!(msg.contains("CPU exception 14 (page fault)"), "{msg}");
    assert!(msg.contains("cr2 0xfffff00000000000"), "{msg}");
    // Error code: a write (bit 1) to a non-present page (bit 0 clear).
    assert!(msg.contains("error code 0x2 "), "{msg}");
}
