//! Emulated devices and the buses that reach them.

pub mod bus;
pub mod exit_port;
pub mod i8042;
pub mod serial;
#[cfg(feature = "test-utils")]
pub mod test_probe;
pub mod virtio;
