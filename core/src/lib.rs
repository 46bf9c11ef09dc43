//! kvmsandbox: hardware-isolated microVM sandboxes on KVM, inside the caller's process.
//!
//! ```no_run
//! use kvmsandbox::{Vm, VmConfig};
//! let vm = Vm::start(VmConfig::micro().vcpus(2))?;
//! println!("{}", vm.console_output());
//! println!("{}", vm.timings());
//! # Ok::<(), kvmsandbox::Error>(())
//! ```

pub mod agent;
pub mod config;
pub mod error;
pub mod error_kind;
pub mod pool;
pub mod sandbox;
pub mod snapshot;
pub mod timeouts;

// VMM internals: public only with the `unstable-vmm` feature (what other
// binaries of this workspace, the fuzzers and the device tests use).
#[cfg(feature = "unstable-vmm")]
pub mod devices;
#[cfg(not(feature = "unstable-vmm"))]
#[allow(dead_code, unused_imports)]
mod devices;
#[cfg(feature = "unstable-vmm")]
pub mod seccomp;
#[cfg(not(feature = "unstable-vmm"))]
#[allow(dead_code, unused_imports)]
mod seccomp;
#[cfg(feature = "unstable-vmm")]
pub mod vmm;
#[cfg(not(feature = "unstable-vmm"))]
#[allow(dead_code, unused_imports)]
mod vmm;

pub use agent::{ExecOutput, ExecRequest, FileInfo, FileKind, WasmCall, WasmOutcome, WasmRequest};
pub use agent::{WasmDir, WasmDirError, WasmDirOutput, WasmFile, WasmFileKind, WasmFsLimits};
pub use config::{ConfigError, Guest, VmConfig};
pub use error::{Error, Result};
pub use error_kind::ErrorKind;
pub use pool::{PoolConfig, PoolMetrics, PoolSource, PooledSandbox, SandboxPool};
pub use sandbox::{Sandbox, SandboxKind, WasmOutput, WasmTemplate, ECHO_PORT, SINK_PORT};
pub use snapshot::{SandboxSnapshot, SnapshotFileError};
pub use vmm::host::HostKind;
pub use vmm::timings::BootTimings;
pub use vmm::vm::{Vm, VmExit};
