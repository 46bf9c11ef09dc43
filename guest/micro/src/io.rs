//! Port I/O and the few privileged instructions the guest needs. Only
//! instructions PVM's emulator supports are used (docs/platform.md).

use kvmsandbox_proto::bootinfo::EXIT_PORT;

/// Writes a byte to an I/O port.
pub fn outb(port: u16, val: u8) {
    // SAFETY: port I/O has no memory effects; the VMM owns every port.
    unsafe {
        core::arch::asm!("out dx, al", in("dx") port, in("al") val, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for `outb`.
    unsafe {
        core::arch::asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Writes a 32-bit value to an I/O port.
pub fn outl(port: u16, val: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        core::arch::asm!("out dx, eax", in("dx") port, in("eax") val, options(nomem, nostack, preserves_flags))
    }
}

/// Stops the VM with `status` through the VMM's exit port.
pub fn exit(status: u32) -> ! {
    outl(EXIT_PORT, status);
    // The VMM stops all vCPUs on that write; never return.
    halt_forever()
}

/// Halts with interrupts off: the vCPU sleeps in the host until the VM ends.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: cli/hlt only stop this vCPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// Counts up forever in a RAM word whose (identity-mapped) address it prints
/// first, and prints the count now and then: the host's snapshot tests read and
/// rewind it through guest memory.
pub fn count_forever() -> ! {
    static COUNTER: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
    crate::println!("counter at {:#x}", &COUNTER as *const _ as usize);
    loop {
        // A plain load and store: the emulator on PVM hosts need not do `lock xadd`.
        let n = COUNTER.load(core::sync::atomic::Ordering::Relaxed) + 1;
        COUNTER.store(n, core::sync::atomic::Ordering::Relaxed);
        if n % (1 << 18) == 0 {
            crate::println!("count {n}");
        }
    }
}

/// Busy loop without ever reporting ready (a test mode: the host must time out).
pub fn spin_forever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Touches an address outside RAM and the MMIO windows (a test mode): the VMM
/// sees an MMIO access to nothing, or the guest faults.
pub fn fault() -> ! {
    // SAFETY: deliberately invalid in a test mode; the VMM must survive it.
    unsafe { core::ptr::write_volatile(0xffff_f000_0000_0000usize as *mut u64, 1) };
    halt_forever()
}
