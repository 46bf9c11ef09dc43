//! A guest panic prints `PANIC: <message>` on serial and stops the VM with
//! `EXIT_PANIC`, which the host reports as a typed error carrying the message.

use kvmsandbox_proto::bootinfo::EXIT_PANIC;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    crate::serial::force_unlock();
    crate::println!("PANIC: {}", info);
    crate::io::exit(EXIT_PANIC)
}
