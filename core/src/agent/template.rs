//! Prepared WASM templates, agent side of the conversation: `PrepareWasm`
//! sends a module once (the agent validates and compiles it and keeps it);
//! `RunPrepared` then carries only one call's inputs and a fresh random seed.
//! The seed comes from the host on every run because the guest's own state
//! repeats whenever the host restores the snapshot taken after preparing.

use std::time::Duration;

use kvmsandbox_proto::frame::MAX_CHUNK;
use kvmsandbox_proto::msg::{PrepareSpec, RunPreparedSpec};
use kvmsandbox_proto::Message;

use super::client::AgentClient;
use super::conn::Wait;
use super::error::AgentError;
use super::exec::Stream;
use super::wasm::{WasmOutcome, WasmRequest};

/// One run of a prepared module: only that call's inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmCall {
    /// `argv` seen by the module.
    pub args: Vec<String>,
    /// Environment seen by the module.
    pub env: Vec<(String, String)>,
    /// All of stdin.
    pub stdin: Vec<u8>,
    /// Fuel limit; `None` = unlimited.
    pub fuel: Option<u64>,
    /// Longest silence tolerated while the module runs (`None` = the client timeout).
    pub timeout: Option<Duration>,
}

impl From<&WasmRequest> for WasmCall {
    /// The call part of a request (its module and memory limit belong to the template).
    fn from(req: &WasmRequest) -> Self {
        WasmCall {
            args: req.args.clone(),
            env: req.env.clone(),
            stdin: req.stdin.clone(),
            fuel: req.fuel,
            timeout: req.timeout,
        }
    }
}

/// 32 bytes from the kernel's CSPRNG, for one run's `random_get`.
pub(crate) fn fresh_seed() -> Result<[u8; 32], AgentError> {
    let mut seed = [0u8; 32];
    let mut got = 0;
    while got < seed.len() {
        // SAFETY: getrandom writes at most `seed.len() - got` bytes into the
        // rest of our buffer.
        let n = unsafe { libc::getrandom(seed[got..].as_mut_ptr().cast(), seed.len() - got, 0) };
        if n < 0 {
            let source = std::io::Error::last_os_error();
            if source.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(AgentError::Io {
                op: "run_prepared",
                source,
            });
        }
        got += n as usize;
    }
    Ok(seed)
}

impl AgentClient {
    /// Sends `module` to be validated, compiled and kept as the agent's
    /// template (replacing any earlier one); returns the template's id.
    /// `timeout`: the longest silence tolerated while the guest compiles.
    pub fn prepare_wasm(
        &mut self,
        module: &[u8],
        max_memory_bytes: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<u64, AgentError> {
        let op = "prepare_wasm";
        let spec = PrepareSpec {
            module_len: module.len() as u64,
            max_memory_bytes,
        };
        let wait = Wait::within(
            Some(timeout.unwrap_or(self.timeout)),
            Some(self.limits.default_deadline),
        );
        let id = self.request(op, Message::PrepareWasm(spec))?;
        for chunk in module.chunks(MAX_CHUNK) {
            let data = chunk.to_vec();
            self.conn.send(op, id, Message::Data { data })?;
        }
        self.conn.send(op, id, Message::DataEnd)?;
        match self.conn.recv_for(op, id, wait)? {
            Message::WasmPrepared { template } => Ok(template),
            Message::WasmError { kind, message } => Err(AgentError::Wasm { op, kind, message }),
            other => Err(AgentError::Unexpected {
                op,
                got: other.name(),
            }),
        }
    }

    /// Runs the agent's template `template` with `call`'s inputs and a fresh
    /// seed, handing its output to `on_output` as it arrives.
    pub fn run_prepared(
        &mut self,
        template: u64,
        call: &WasmCall,
        mut on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<WasmOutcome, AgentError> {
        self.run_prepared_with(template, call, |s, d| {
            on_output(s, d);
            Ok(())
        })
    }

    /// [`run_prepared`](Self::run_prepared) whose callback can end the run with an error.
    pub(crate) fn run_prepared_with(
        &mut self,
        template: u64,
        call: &WasmCall,
        on_output: impl FnMut(Stream, &[u8]) -> Result<(), AgentError>,
    ) -> Result<WasmOutcome, AgentError> {
        let op = "run_prepared";
        let spec = RunPreparedSpec {
            template,
            args: call.args.clone(),
            env: call.env.clone(),
            stdin: call.stdin.clone(),
            fuel: call.fuel,
            seed: fresh_seed()?,
        };
        let wait = Wait::within(
            Some(call.timeout.unwrap_or(self.timeout)),
            Some(self.limits.default_deadline),
        );
        let id = self.request(op, Message::RunPrepared(spec))?;
        self.wasm_outcome(op, id, wait, super::wasm::RunExtras::NONE, on_output)
            .map(|(outcome, _)| outcome)
    }
}
