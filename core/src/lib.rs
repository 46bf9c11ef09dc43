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
pub mod devices;
pub mod error;
pub mod sandbox;
pub mod seccomp;
pub mod vmm;

pub use agent::{ExecOutput, ExecRequest, WasmOutcome, WasmRequest};
pub use config::{ConfigError, Guest, VmConfig};
pub use error::{Error, Result};
pub use sandbox::{Sandbox, SandboxKind, WasmOutput, ECHO_PORT, SINK_PORT};
pub use vmm::host::HostKind;
pub use vmm::timings::BootTimings;
pub use vmm::vm::{Vm, VmExit};
