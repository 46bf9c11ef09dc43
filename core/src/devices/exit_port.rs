//! The micro guest's exit port: a 32-bit write of a status stops the VM. It is how
//! a guest shuts down cleanly (status 0) or reports a panic (EXIT_PANIC).

use crate::devices::bus::BusDevice;
use crate::vmm::run_state::{RunState, StopReason};
use std::sync::Arc;

/// The exit port device.
pub struct ExitPort(pub Arc<RunState>);

impl BusDevice for ExitPort {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let mut b = [0u8; 4];
        let n = data.len().min(4);
        b[..n].copy_from_slice(&data[..n]);
        self.0
            .request_stop(StopReason::GuestExit(u32::from_le_bytes(b)));
    }
}
