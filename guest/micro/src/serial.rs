//! Console output on the 16550 at 0x3f8. Writes go straight to the transmit
//! register (the VMM's UART never reports a full FIFO); a spin lock keeps lines
//! from several vCPUs whole.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

const COM1: u16 = 0x3f8;
static LOCK: AtomicBool = AtomicBool::new(false);

struct Port;

impl Write for Port {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            crate::io::outb(COM1, b);
        }
        Ok(())
    }
}

/// Prints formatted text atomically with respect to other vCPUs.
pub fn print(args: fmt::Arguments) {
    while LOCK
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    let _ = Port.write_fmt(args);
    LOCK.store(false, Ordering::Release);
}

/// Forcibly releases the lock (the panic path must be able to print).
pub fn force_unlock() {
    LOCK.store(false, Ordering::Release);
}

/// `print!` over serial.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::print(format_args!($($arg)*)) };
}

/// `println!` over serial.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::print(format_args!("{}\n", format_args!($($arg)*))) };
}
