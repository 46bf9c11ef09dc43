//! The 16550 console (vm-superio) on COM1. Its output feeds the VM's console log
//! (markers, last lines, the caller's callback); its interrupt is an eventfd that
//! the VMM registers as a KVM irqfd, so it needs no vCPU exit to deliver.

use crate::devices::bus::BusDevice;
use crate::vmm::run_state::RunState;
use std::io;
use std::sync::Arc;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// Raises the serial IRQ by writing the irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Where the UART's transmit bytes go.
pub struct ConsoleSink(pub Arc<RunState>);

impl io::Write for ConsoleSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.console_output(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// COM1 as a bus device.
pub struct SerialDevice(Serial<IrqTrigger, vm_superio::serial::NoEvents, ConsoleSink>);

impl SerialDevice {
    /// A UART writing into `state`'s console, interrupting through `irq`.
    pub fn new(state: Arc<RunState>, irq: EventFd) -> Self {
        SerialDevice(Serial::new(IrqTrigger(irq), ConsoleSink(state)))
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if data.len() == 1 && offset < 8 {
            data[0] = self.0.read(offset as u8);
        } else {
            data.fill(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() == 1 && offset < 8 {
            // An interrupt that cannot be raised is not the guest's fault and
            // there is nobody to report it to; output is still recorded.
            let _ = self.0.write(offset as u8, data[0]);
        }
    }
}
