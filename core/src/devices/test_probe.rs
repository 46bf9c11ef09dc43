//! Test builds only (`test-utils` feature): a port that makes the vCPU thread
//! which handles the write perform a syscall its seccomp filter forbids, so tests
//! can prove the filter is live on the real thread. Never in release builds.

use crate::devices::bus::BusDevice;
use crate::seccomp::{forbidden_syscall_probe, Probe};

/// Port of the probe.
pub const PROBE_PORT: u16 = 0x510;
/// Value asking for `socket(AF_INET)`.
pub const PROBE_SOCKET: u8 = 1;
/// Value asking for `execve("/bin/true")`.
pub const PROBE_EXECVE: u8 = 2;

/// The probe device; the result of the last probe is printed nowhere: under the
/// Kill policy the process dies, under Trap the VM reports the trapped syscall.
pub struct TestProbe;

impl BusDevice for TestProbe {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let probe = match data.first() {
            Some(&PROBE_SOCKET) => Probe::Socket,
            Some(&PROBE_EXECVE) => Probe::Execve,
            _ => return,
        };
        let _ = forbidden_syscall_probe(probe);
    }
}
