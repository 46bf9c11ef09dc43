//! Running a WASM module in the guest (the micro guest's agent does this; the
//! Linux agent answers Unsupported). The module is streamed as `Data` frames.
//! Output goes to a callback as it arrives (the caller bounds what it keeps); the
//! run ends by [`AgentLimits::default_deadline`](super::AgentLimits::default_deadline).

use std::time::Duration;

use kvmsandbox_proto::frame::MAX_CHUNK;
use kvmsandbox_proto::msg::{WasmErrorKind, WasmSpec};
use kvmsandbox_proto::Message;

use super::client::AgentClient;
use super::conn::Wait;
use super::error::AgentError;
use super::exec::Stream;

/// A module to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmRequest {
    /// The module's bytes.
    pub module: Vec<u8>,
    /// `argv` seen by the module.
    pub args: Vec<String>,
    /// Environment seen by the module.
    pub env: Vec<(String, String)>,
    /// All of stdin.
    pub stdin: Vec<u8>,
    /// Fuel limit; `None` = unlimited.
    pub fuel: Option<u64>,
    /// Linear memory limit; `None` = the runtime's default.
    pub max_memory_bytes: Option<u64>,
    /// Longest silence tolerated while the module runs (`None` = the client timeout).
    pub timeout: Option<Duration>,
}

/// How a module run ended (all of these are a successful conversation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmOutcome {
    /// `_start` returned (code 0) or `proc_exit(code)` was called.
    Exit(i32),
    /// The module trapped.
    Trap(String),
    /// The fuel ran out.
    OutOfFuel,
    /// The module could not run.
    Error {
        /// Why.
        kind: WasmErrorKind,
        /// Details.
        message: String,
    },
}

impl AgentClient {
    /// Runs a module, handing its output to `on_output` as it arrives.
    pub fn run_wasm(
        &mut self,
        req: &WasmRequest,
        mut on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<WasmOutcome, AgentError> {
        self.run_wasm_with(req, |s, d| {
            on_output(s, d);
            Ok(())
        })
    }

    /// [`run_wasm`](Self::run_wasm) whose callback can end the run with an error.
    pub(crate) fn run_wasm_with(
        &mut self,
        req: &WasmRequest,
        mut on_output: impl FnMut(Stream, &[u8]) -> Result<(), AgentError>,
    ) -> Result<WasmOutcome, AgentError> {
        let op = "run_wasm";
        let spec = WasmSpec {
            module_len: req.module.len() as u64,
            args: req.args.clone(),
            env: req.env.clone(),
            stdin: req.stdin.clone(),
            fuel: req.fuel,
            max_memory_bytes: req.max_memory_bytes,
        };
        let wait = Wait::within(
            Some(req.timeout.unwrap_or(self.timeout)),
            Some(self.limits.default_deadline),
        );
        let id = self.request(op, Message::RunWasm(spec))?;
        for chunk in req.module.chunks(MAX_CHUNK) {
            self.conn.send(
                op,
                id,
                Message::Data {
                    data: chunk.to_vec(),
                },
            )?;
        }
        self.conn.send(op, id, Message::DataEnd)?;
        loop {
            match self.conn.recv_for(op, id, wait)? {
                Message::Stdout { data } => on_output(Stream::Stdout, &data)?,
                Message::Stderr { data } => on_output(Stream::Stderr, &data)?,
                Message::WasmExit { code } => return Ok(WasmOutcome::Exit(code)),
                Message::WasmTrap { message } => return Ok(WasmOutcome::Trap(message)),
                Message::OutOfFuel => return Ok(WasmOutcome::OutOfFuel),
                Message::WasmError { kind, message } => {
                    return Ok(WasmOutcome::Error { kind, message })
                }
                other => {
                    return Err(AgentError::Unexpected {
                        op,
                        got: other.name(),
                    })
                }
            }
        }
    }
}
