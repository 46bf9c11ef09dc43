//! `pio_bus`: guest port I/O as the vCPU thread dispatches it: any port, any width,
//! any value, through the real `Bus` to the real legacy devices (the 16550 serial
//! with its console log that scans lines for the ready and panic markers, the
//! i8042 reset line, the exit port).
//!
//! Checks besides "never panic": unmapped reads return all ones, and the console
//! keeps at most its documented 40 last lines (+ the unfinished one).
//!
//! Input: a sequence of (port: u16, width selector, value) accesses.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use kvmsandbox::devices::bus::Bus;
use kvmsandbox::devices::exit_port::ExitPort;
use kvmsandbox::devices::i8042::I8042;
use kvmsandbox::devices::serial::SerialDevice;
use kvmsandbox::vmm::console::ConsoleLog;
use kvmsandbox::vmm::run_state::RunState;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::input::Input;

/// Most accesses per input.
const MAX_OPS: usize = 512;

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let console = ConsoleLog::new("KVMSANDBOX-READY".into(), &["panicked at", "PANIC"]);
    let state = Arc::new(RunState::new(console, Instant::now()));
    let irq = EventFd::new(EFD_NONBLOCK).expect("fuzz harness: eventfd");
    let mut bus = Bus::new();
    bus.insert(
        Arc::new(Mutex::new(SerialDevice::new(state.clone(), irq))),
        0x3f8,
        8,
    )
    .expect("fuzz harness: serial fits");
    bus.insert(Arc::new(Mutex::new(I8042(state.clone()))), 0x60, 5)
        .expect("fuzz harness: i8042 fits");
    bus.insert(Arc::new(Mutex::new(ExitPort(state.clone()))), 0x501, 4)
        .expect("fuzz harness: exit port fits");

    let mut ops = 0;
    while !inp.is_empty() && ops < MAX_OPS {
        ops += 1;
        let sel = inp.u8();
        // Mostly the mapped ports, sometimes anywhere in the 16-bit space.
        let port = match sel >> 6 {
            0 | 1 => 0x3f8 + u64::from(inp.u8() & 7),
            2 => [0x60u64, 0x64, 0x501, 0x3ff][usize::from(inp.u8() & 3)],
            _ => u64::from(inp.u16()),
        };
        let width = [1usize, 2, 4, 1][usize::from(sel >> 2 & 3)];
        if sel & 1 == 0 {
            let v = inp.u32().to_le_bytes();
            bus.write(port, &v[..width]);
        } else {
            let mut buf = [0u8; 4];
            if !bus.read(port, &mut buf[..width]) {
                assert!(
                    buf[..width].iter().all(|&b| b == 0xff),
                    "unmapped read of {port:#x} gave {buf:?}"
                );
            }
        }
    }
    let lines = state.lock().console.last_lines();
    assert!(lines.len() <= 41, "console kept {} lines", lines.len());
}
