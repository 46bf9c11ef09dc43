//! Test builds only (`test-utils` feature): a port that makes the vCPU thread
//! which handles the write perform a syscall its seccomp filter forbids, so tests
//! can prove the filter is live on the real thread. Never in release builds.

use crate::devices::bus::BusDevice;
use crate::seccomp::{forbidden_syscall_probe, Probe};

/// Port of the probe.
pub const PROBE_PORT: u16 = 0x510;
/// 32-bit value asking for `socket(AF_INET)`. Magic numbers, not 1 and 2: the
/// hostile-guest tests sweep every port with small values and must not hit it.
pub const PROBE_SOCKET: u32 = 0x5ecc_0001;
/// 32-bit value asking for `execve("/bin/true")`.
pub const PROBE_EXECVE: u32 = 0x5ecc_0002;

/// The probe device; the result of the last probe is printed nowhere: under the
/// Kill policy the process dies, under Trap the VM reports the trapped syscall.
pub struct TestProbe;

impl BusDevice for TestProbe {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        let probe = match u32::from_le_bytes(bytes) {
            PROBE_SOCKET => Probe::Socket,
            PROBE_EXECVE => Probe::Execve,
            _ => return,
        };
        let _ = forbidden_syscall_probe(probe);
    }
}
