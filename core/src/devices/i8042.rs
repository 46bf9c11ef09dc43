//! Just enough of the i8042 keyboard controller for Linux's reboot path: writing
//! 0xfe (pulse reset) to the command port ends the VM as a clean reset. Reads
//! report an empty controller so probing finds no keyboard.

use crate::devices::bus::BusDevice;
use crate::vmm::run_state::{RunState, StopReason};
use std::sync::Arc;

/// Command/status port offset from the device base (0x60).
const COMMAND_OFFSET: u64 = 4;
/// "Pulse reset line" command.
const CMD_RESET: u8 = 0xfe;

/// The i8042 at ports 0x60..=0x64.
pub struct I8042(pub Arc<RunState>);

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == COMMAND_OFFSET && data.first() == Some(&CMD_RESET) {
            self.0.request_stop(StopReason::Reset);
        }
    }
}
