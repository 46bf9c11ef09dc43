//! Interrupt dispatch and the idle primitive.
//!
//! CPU exceptions are fatal: the vector, error code and RIP go to serial and the VM
//! stops with `EXIT_PANIC`, so a guest bug is a report, not a triple fault. A
//! fault in the stack's guard page is reported as a stack overflow.
//! PIC interrupts are EOI'd and recorded twice: a per-line bitmask the owning
//! driver consumes (to ack its virtio InterruptStatus only when needed) and a
//! global counter that waiters compare against a snapshot, so no waiter can
//! swallow another's wake-up.
//!
//! Waiting never spins: `idle_since(seen)` does `cli; compare; sti; hlt`, and `sti`
//! delays interrupts by one instruction, so an interrupt after the comparison
//! still ends the `hlt`.

use core::sync::atomic::{AtomicU32, Ordering};

use kvmsandbox_proto::bootinfo::EXIT_PANIC;

use crate::idt::Frame;
use crate::pic;

/// IRQ lines that fired and were not yet taken by their driver.
static PENDING: AtomicU32 = AtomicU32::new(0);
/// Lines that ever fired (diagnostics and tests).
static SEEN: AtomicU32 = AtomicU32::new(0);
/// Device interrupts so far (wraps).
static COUNT: AtomicU32 = AtomicU32::new(0);

const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 error",
    "alignment check",
    "machine check",
    "SIMD error",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Called by the assembly stubs in `idt.rs` with interrupts off.
pub extern "C" fn dispatch(frame: &mut Frame) {
    let v = frame.vector;
    if v < 32 {
        exception(frame);
    }
    let irq = (v - u64::from(pic::VECTOR_BASE)) as u8;
    if irq < 16 && pic::eoi(irq) {
        PENDING.fetch_or(1 << irq, Ordering::SeqCst);
        SEEN.fetch_or(1 << irq, Ordering::Relaxed);
        COUNT.fetch_add(1, Ordering::SeqCst);
    }
}

fn exception(frame: &Frame) -> ! {
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe {
        core::arch::asm!("mov {0}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags))
    };
    crate::serial::force_unlock();
    let name = EXCEPTION_NAMES
        .get(frame.vector as usize)
        .copied()
        .unwrap_or("?");
    // #PF and #DF arrive on their own stack (IST), so an overflow gets here.
    let overflow = match frame.vector {
        14 => crate::stack::is_overflow(cr2),
        8 => crate::stack::is_overflow(frame.rsp),
        _ => false,
    };
    if overflow {
        crate::println!(
            "PANIC: stack overflow: the {} KiB stack ran into its guard page at {:#x} ({} at rip {:#x}, rsp {:#x}, cr2 {:#x})",
            crate::stack::STACK_SIZE >> 10,
            crate::stack::guard(),
            name,
            frame.rip,
            frame.rsp,
            cr2
        );
        crate::io::exit(EXIT_PANIC)
    }
    crate::println!(
        "PANIC: CPU exception {} ({}) error code {:#x} at rip {:#x} (rsp {:#x}, cr2 {:#x})",
        frame.vector,
        name,
        frame.error,
        frame.rip,
        frame.rsp,
        cr2
    );
    crate::io::exit(EXIT_PANIC)
}

/// Sets up the IDT and the PIC with `irq_mask` lines open, then enables interrupts.
pub fn init(irq_mask: u16) {
    crate::idt::init();
    pic::init(irq_mask);
    enable();
}

/// `sti`.
pub fn enable() {
    // SAFETY: the IDT is loaded and every unmasked vector has a handler.
    unsafe { core::arch::asm!("sti", options(nomem, nostack)) }
}

/// Interrupt counter snapshot for [`idle_since`].
pub fn count() -> u32 {
    COUNT.load(Ordering::SeqCst)
}

/// Takes (clears and returns) whether `irq` fired since the last call.
pub fn take_irq(irq: u32) -> bool {
    if irq >= 16 {
        return false;
    }
    PENDING.fetch_and(!(1 << irq), Ordering::SeqCst) & (1 << irq) != 0
}

/// Bitmask of the IRQ lines that have fired at least once.
pub fn seen_mask() -> u32 {
    SEEN.load(Ordering::Relaxed)
}

/// Sleeps in the host until an interrupt arrives, unless one already arrived
/// since `seen` was read from [`count`].
pub fn idle_since(seen: u32) {
    // SAFETY: cli/sti/hlt only affect this vCPU's interrupt flag; `sti; hlt` is
    // atomic with respect to interrupt delivery (sti's one-instruction shadow).
    unsafe {
        core::arch::asm!("cli", options(nomem, nostack));
        if COUNT.load(Ordering::SeqCst) != seen {
            core::arch::asm!("sti", options(nomem, nostack));
            return;
        }
        core::arch::asm!("sti", "hlt", options(nomem, nostack));
    }
}

/// Raises #UD (a test mode: the handler must report it).
pub fn raise_ud() -> ! {
    // SAFETY: deliberately faults; the exception handler stops the VM.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack, noreturn)) }
}
