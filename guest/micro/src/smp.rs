//! Secondary vCPUs. The VMM starts every vCPU in long mode at the same entry; the
//! APs report in and then sleep in HLT (in the host, not spinning) for the life
//! of the VM.

use core::sync::atomic::{AtomicU32, Ordering};

static ONLINE: AtomicU32 = AtomicU32::new(1);

/// AP entry: report in, then sleep.
pub fn ap_main(cpu: u64) -> ! {
    crate::println!("cpu {} online", cpu);
    ONLINE.fetch_add(1, Ordering::SeqCst);
    crate::io::halt_forever()
}

/// Number of vCPUs that reported in (the BSP included).
pub fn online() -> u32 {
    ONLINE.load(Ordering::SeqCst)
}

/// Waits (bounded) for `n` vCPUs to be online.
pub fn wait_for_aps(n: u32) {
    // Emulated instructions are slow on PVM; APs need a few thousand to report.
    for _ in 0..2_000_000u32 {
        if online() >= n {
            return;
        }
        core::hint::spin_loop();
    }
}
