//! The hook where the WASM runner plugs in (guest/wasm-runner). Until then every
//! module gets [`WasmOutcome::Unsupported`], which the agent answers with
//! `Error{Unsupported}`.

use alloc::string::String;
use kvmsandbox_proto::msg::{WasmErrorKind, WasmSpec};

/// Whether this build can run modules (announced in Hello's capabilities).
pub const AVAILABLE: bool = false;

/// Which output stream a chunk belongs to.
#[allow(dead_code)] // produced once the runner is plugged in
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutStream {
    Stdout,
    Stderr,
}

/// How a run ended.
#[allow(dead_code)] // produced once the runner is plugged in
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmOutcome {
    /// `_start` returned (0) or the module called `proc_exit(code)`.
    Exit(i32),
    /// The module trapped.
    Trap(String),
    /// The fuel limit was reached.
    OutOfFuel,
    /// The module could not run.
    Error(WasmErrorKind, String),
    /// This build has no WASM runtime.
    Unsupported(String),
}

/// Runs `module` as described by `req`, streaming its stdout/stderr through
/// `output` as it runs.
pub fn run_wasm(req: &WasmSpec, module: &[u8], output: &mut dyn FnMut(OutStream, &[u8])) -> WasmOutcome {
    let _ = (req, module, output);
    WasmOutcome::Unsupported(String::from("this micro guest was built without a WASM runtime"))
}
