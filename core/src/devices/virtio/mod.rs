//! virtio devices and the virtio-mmio transport.
//!
//! `device` is the contract (the [`VirtioDevice`] trait), `mmio` the transport that
//! drives it from guest register accesses, `event_loop` the thread that turns queue
//! eventfds and backend fds into device calls, and `block`/`vsock` the devices;
//! `state` is what a snapshot keeps of a device; `vhost_adapter` lets a device run under another VMM's event loop (vhost-user).

pub mod block;
pub mod chain;
pub mod device;
pub mod event_loop;
pub mod mmio;
pub mod state;
pub mod vhost_adapter;
pub mod vsock;

#[cfg(test)]
mod test_utils;

pub use device::{ActivateContext, ActivateError, FdRegistrar, Interrupt, Served, VirtioDevice};
pub use event_loop::{DeviceEventLoop, EventLoopError, EventLoopHandle};
pub use mmio::{linux_cmdline_fragment, MmioError, MmioTransport};
pub use state::{DeviceKindState, DeviceState, DeviceStateError, QueueSnapshot, TransportState};
