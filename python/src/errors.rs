//! The exception hierarchy and the mapping from the core's errors to it.
//!
//! One class per thing a caller may want to catch separately; the message is
//! always the core error's own text, which names the offending value.

use kvmsandbox::agent::{AgentError as CoreAgentError, ErrorCode};
use kvmsandbox::Error;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    kvmsandbox,
    KvmSandboxError,
    PyException,
    "Base class of every kvmsandbox error."
);
create_exception!(
    kvmsandbox,
    ConfigError,
    KvmSandboxError,
    "The configuration is invalid (a missing kernel, vcpus out of range...)."
);
create_exception!(
    kvmsandbox,
    BootError,
    KvmSandboxError,
    "The VM could not be created or its guest did not become ready."
);
create_exception!(
    kvmsandbox,
    Timeout,
    KvmSandboxError,
    "A deadline passed (the agent went silent, a wall-clock timeout fired)."
);
create_exception!(
    kvmsandbox,
    GuestError,
    KvmSandboxError,
    "The guest died (panic, crash) or refused an operation (no such file...)."
);
create_exception!(
    kvmsandbox,
    Unsupported,
    KvmSandboxError,
    "This guest kind does not offer the operation, or this host cannot run the guest (Linux on PVM)."
);
create_exception!(
    kvmsandbox,
    AgentError,
    KvmSandboxError,
    "Talking to the guest agent failed (disconnect, protocol error)."
);
create_exception!(
    kvmsandbox,
    ConnectError,
    KvmSandboxError,
    "Connecting to a guest port failed."
);
create_exception!(
    kvmsandbox,
    WasmTrap,
    KvmSandboxError,
    "The WASM module trapped."
);
create_exception!(
    kvmsandbox,
    OutOfFuel,
    KvmSandboxError,
    "The WASM module used up its fuel."
);
create_exception!(
    kvmsandbox,
    WasmError,
    KvmSandboxError,
    "The WASM module could not run (invalid, missing import, too much memory)."
);
create_exception!(
    kvmsandbox,
    CommandError,
    KvmSandboxError,
    "A command exited with a non-zero code (raised by check_returncode())."
);
create_exception!(
    kvmsandbox,
    SandboxClosed,
    KvmSandboxError,
    "The sandbox was closed, shut down or killed."
);

/// Adds every exception class to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("KvmSandboxError", py.get_type::<KvmSandboxError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("BootError", py.get_type::<BootError>())?;
    m.add("Timeout", py.get_type::<Timeout>())?;
    m.add("GuestError", py.get_type::<GuestError>())?;
    m.add("Unsupported", py.get_type::<Unsupported>())?;
    m.add("AgentError", py.get_type::<AgentError>())?;
    m.add("ConnectError", py.get_type::<ConnectError>())?;
    m.add("WasmTrap", py.get_type::<WasmTrap>())?;
    m.add("OutOfFuel", py.get_type::<OutOfFuel>())?;
    m.add("WasmError", py.get_type::<WasmError>())?;
    m.add("CommandError", py.get_type::<CommandError>())?;
    m.add("SandboxClosed", py.get_type::<SandboxClosed>())?;
    Ok(())
}

/// The stable name of an agent error code (the `code` attribute of a GuestError).
pub fn code_name(code: ErrorCode) -> String {
    match code {
        ErrorCode::NotFound => "not_found".into(),
        ErrorCode::PermissionDenied => "permission_denied".into(),
        ErrorCode::Unsupported => "unsupported".into(),
        ErrorCode::Invalid => "invalid".into(),
        ErrorCode::Io => "io".into(),
        ErrorCode::Timeout => "timeout".into(),
        ErrorCode::Internal => "internal".into(),
        ErrorCode::AlreadyExists => "already_exists".into(),
        ErrorCode::Other(n) => format!("other_{n}"),
    }
}

/// Maps an agent error (from a streaming process) to its exception.
pub fn agent_to_py(py: Python<'_>, e: CoreAgentError) -> PyErr {
    to_py(py, Error::Agent(e))
}

/// Maps a core error to its exception class, keeping the core's message.
pub fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    match &e {
        Error::Config(_) => ConfigError::new_err(msg),
        Error::Unsupported { .. }
        | Error::LinuxUserSpaceOnPvm { .. }
        | Error::Agent(CoreAgentError::Unsupported { .. }) => Unsupported::new_err(msg),
        Error::Timeout { .. } | Error::Agent(CoreAgentError::Timeout { .. }) => {
            Timeout::new_err(msg)
        }
        Error::GuestPanic { .. }
        | Error::GuestCrashed { .. }
        | Error::EarlyExit { .. }
        | Error::DeviceLoop { .. } => GuestError::new_err(msg),
        Error::Agent(CoreAgentError::Remote { code, .. }) => {
            let err = GuestError::new_err(msg);
            // Best effort: the attribute is a convenience, the message says it all.
            let _ = err.value(py).setattr("code", code_name(*code));
            err
        }
        Error::Agent(_) => AgentError::new_err(msg),
        Error::Connect { .. } => ConnectError::new_err(msg),
        Error::Stopped { .. } => SandboxClosed::new_err(msg),
        // Everything else happens while creating the VM: KVM, memory, image
        // loading, devices, threads, the start timeout.
        _ => BootError::new_err(msg),
    }
}
