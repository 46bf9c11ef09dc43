//! A guest panic prints `PANIC: <message>` on serial and stops the VM with
//! `EXIT_PANIC`, which the host reports as a typed error carrying the message.

use kvmsandbox_proto::bootinfo::EXIT_PANIC;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::serial::force_unlock();
    // One line, so the host can quote it whole.
    match info.location() {
        Some(l) => crate::println!("PANIC: {} at {}:{}", info.message(), l.file(), l.line()),
        None => crate::println!("PANIC: {}", info.message()),
    }
    crate::io::exit(EXIT_PANIC)
}
