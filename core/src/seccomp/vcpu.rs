//! What a vCPU thread may do beyond [`super::common`]: `ioctl` on its vCPU fd, narrowed
//! to the requests the vCPU loop issues. No sockets, no opening files, no exec, no new
//! threads or processes.
//!
//! The loop body this list is written from: `loop { KVM_RUN; handle the exit by calling
//! Bus::read/write under a Mutex (futex); serial output goes into a Mutex<Vec<u8>> /
//! a channel (futex) or write(2) to a pipe; interrupts via an irqfd (write) or
//! KVM_IRQ_LINE }`, plus register setup (SET_REGS/SREGS/FPU/MSRS/CPUID2/LAPIC/MP_STATE)
//! which may happen on the thread after the filter is installed, and the snapshot
//! jobs a parked vCPU runs on its own fd (vmm/snapshot/vcpu.rs: every GET/SET pair).

use super::ioctls::*;
use super::rules::{sys, val, Args, Syscall, Value};

/// ioctl requests a vCPU thread makes.
pub(super) const VCPU_IOCTLS: &[Value] = &[
    val!(KVM_RUN, KVM_RUN, "enter the guest until the next exit"),
    val!(
        KVM_GET_REGS,
        KVM_GET_REGS,
        "read registers (exit diagnostics, PIO/MMIO emulation)"
    ),
    val!(KVM_SET_REGS, KVM_SET_REGS, "set the boot registers"),
    val!(
        KVM_GET_SREGS,
        KVM_GET_SREGS,
        "read segment/control registers (boot setup, diagnostics)"
    ),
    val!(
        KVM_SET_SREGS,
        KVM_SET_SREGS,
        "set long mode, page tables, GDT at boot"
    ),
    val!(KVM_SET_FPU, KVM_SET_FPU, "initial FPU state (MXCSR, FCW)"),
    val!(
        KVM_GET_MSRS,
        KVM_GET_MSRS,
        "read MSRs (boot setup, diagnostics)"
    ),
    val!(
        KVM_SET_MSRS,
        KVM_SET_MSRS,
        "boot MSRs (EFER, PAT, SYSENTER...)"
    ),
    val!(
        KVM_SET_CPUID2,
        KVM_SET_CPUID2,
        "the CPUID we give the guest (SSE/xsave hidden on PVM)"
    ),
    val!(
        KVM_GET_LAPIC,
        KVM_GET_LAPIC,
        "read the local APIC to set LINT0/LINT1 modes"
    ),
    val!(
        KVM_SET_LAPIC,
        KVM_SET_LAPIC,
        "write the local APIC (LINT0 ExtINT, LINT1 NMI)"
    ),
    val!(
        KVM_GET_MP_STATE,
        KVM_GET_MP_STATE,
        "read run state (halted/runnable) for pause and diagnostics"
    ),
    val!(
        KVM_SET_MP_STATE,
        KVM_SET_MP_STATE,
        "make an AP runnable / restore run state"
    ),
    val!(
        KVM_GET_VCPU_EVENTS,
        KVM_GET_VCPU_EVENTS,
        "pending exceptions/interrupts (diagnostics)"
    ),
    val!(KVM_GET_FPU, KVM_GET_FPU, "snapshot: read the x87/SSE state"),
    val!(
        KVM_SET_VCPU_EVENTS,
        KVM_SET_VCPU_EVENTS,
        "restore: pending exceptions/interrupts"
    ),
    val!(
        KVM_GET_DEBUGREGS,
        KVM_GET_DEBUGREGS,
        "snapshot: read the debug registers"
    ),
    val!(
        KVM_SET_DEBUGREGS,
        KVM_SET_DEBUGREGS,
        "restore: the debug registers"
    ),
    val!(
        KVM_GET_XSAVE,
        KVM_GET_XSAVE,
        "snapshot: read the XSAVE area"
    ),
    val!(KVM_SET_XSAVE, KVM_SET_XSAVE, "restore: the XSAVE area"),
    val!(KVM_GET_XCRS, KVM_GET_XCRS, "snapshot: read XCR0"),
    val!(KVM_SET_XCRS, KVM_SET_XCRS, "restore: XCR0"),
    val!(
        KVM_KVMCLOCK_CTRL,
        KVM_KVMCLOCK_CTRL,
        "tell the guest's kvmclock it was paused"
    ),
    val!(
        KVM_IRQ_LINE,
        KVM_IRQ_LINE,
        "raise a device interrupt from an exit handler (serial)"
    ),
];

/// `fcntl(fd, cmd, ...)`: only `F_GETFD`.
const FCNTL_CMDS: &[Value] = &[val!(
    F_GETFD,
    libc::F_GETFD,
    "std's debug-build fd check in OwnedFd::drop (e.g. the VcpuFd), before close"
)];

/// Allowed on vCPU threads in addition to [`super::common::COMMON`].
pub(super) const VCPU: &[Syscall] = &[
    sys!(
        SYS_ioctl,
        "KVM requests on the vCPU/VM fd only (see the request list)",
        Args::OneOf {
            index: 1,
            values: VCPU_IOCTLS
        }
    ),
    sys!(
        SYS_fcntl,
        "F_GETFD only: std's debug-build check when an owned fd is dropped",
        Args::OneOf {
            index: 1,
            values: FCNTL_CMDS
        }
    ),
];
