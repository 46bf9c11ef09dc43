//! Running a WASM module in the guest (the micro guest's agent does this; the
//! Linux agent answers Unsupported). The module is streamed as `Data` frames.
//! Output goes to a callback as it arrives (the caller bounds what it keeps); the
//! run ends by [`AgentLimits::default_deadline`](super::AgentLimits::default_deadline).
//! Host function calls of the module are answered in the same loop, on the
//! caller's thread (`host_fn.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvmsandbox_proto::frame::MAX_CHUNK;
use kvmsandbox_proto::msg::{WasmErrorKind, WasmSpec};
use kvmsandbox_proto::Message;

use super::client::AgentClient;
use super::conn::Wait;
use super::error::AgentError;
use super::exec::Stream;
use super::host_fn::{reentry, HostFunctions};
use super::wasm_dirs::{self, WasmDir, WasmDirOutput, WasmFsLimits};

/// Most bytes of a result image the host accepts: the tree's byte cap twice
/// over (unchanged files come back as their paths, bounded the same way)
/// plus a record header per inode.
fn result_image_cap(limits: WasmFsLimits) -> u64 {
    let (bytes, inodes) = wasm_dirs::tree_caps(limits);
    bytes
        .saturating_mul(2)
        .saturating_add(inodes.saturating_mul(32))
        .saturating_add(1 << 20)
}

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
    /// Directories preopened for the module (fds 3, 4, ... in order).
    pub dirs: Vec<WasmDir>,
    /// Caps on the guest's in-memory tree holding `dirs`.
    pub fs_limits: WasmFsLimits,
    /// Functions of the host the module may import (none by default).
    pub host_functions: HostFunctions,
}

/// How a module run ended (all of these are a successful conversation).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

/// What a run needs besides its output: the preopened directories it sends
/// back after it ends (none for a run without writable directories) and the
/// host functions it may call while it runs.
pub(super) struct RunExtras<'a> {
    dirs: &'a [WasmDir],
    returns_image: bool,
    max_image: u64,
    fs_limits: WasmFsLimits,
    host_functions: Option<&'a HostFunctions>,
}

impl RunExtras<'_> {
    /// A run that sends no directories back and calls no host function.
    pub(super) const NONE: RunExtras<'static> = RunExtras {
        dirs: &[],
        returns_image: false,
        max_image: 0,
        fs_limits: WasmFsLimits {
            max_bytes: None,
            max_inodes: None,
        },
        host_functions: None,
    };
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
        .map(|(outcome, _)| outcome)
    }

    /// [`run_wasm`](Self::run_wasm) whose callback can end the run with an
    /// error; also returns the writable directories' contents after the run.
    pub(crate) fn run_wasm_with(
        &mut self,
        req: &WasmRequest,
        on_output: impl FnMut(Stream, &[u8]) -> Result<(), AgentError>,
    ) -> Result<(WasmOutcome, Vec<WasmDirOutput>), AgentError> {
        let op = "run_wasm";
        let (fs, image) = if req.dirs.is_empty() {
            (None, Vec::new())
        } else {
            let (fs, image) = wasm_dirs::encode(&req.dirs, req.fs_limits);
            (Some(fs), image)
        };
        let extras = RunExtras {
            dirs: &req.dirs,
            returns_image: fs.as_ref().is_some_and(|fs| fs.returns_image()),
            max_image: result_image_cap(req.fs_limits),
            fs_limits: req.fs_limits,
            host_functions: Some(&req.host_functions),
        };
        let spec = WasmSpec {
            module_len: req.module.len() as u64,
            args: req.args.clone(),
            env: req.env.clone(),
            stdin: req.stdin.clone(),
            fuel: req.fuel,
            max_memory_bytes: req.max_memory_bytes,
            entropy: Some(crate::vmm::vm::random_seed()),
            fs,
        };
        let wait = Wait::within(
            Some(req.timeout.unwrap_or(self.timeout)),
            Some(self.limits.default_deadline),
        );
        let id = self.request(op, Message::RunWasm(spec))?;
        if !req.host_functions.is_empty() {
            let decls = req.host_functions.decls();
            self.conn.send(op, id, Message::HostFunctions(decls))?;
        }
        for chunk in req.module.chunks(MAX_CHUNK).chain(image.chunks(MAX_CHUNK)) {
            self.conn.send(
                op,
                id,
                Message::Data {
                    data: chunk.to_vec(),
                },
            )?;
        }
        self.conn.send(op, id, Message::DataEnd)?;
        self.wasm_outcome(op, id, wait, extras, on_output)
    }

    /// Receives a run's output, answers its host function calls, collects the
    /// writable directories `extras` expects, and returns with its last frame.
    pub(super) fn wasm_outcome(
        &mut self,
        op: &'static str,
        id: u32,
        wait: Wait,
        extras: RunExtras<'_>,
        mut on_output: impl FnMut(Stream, &[u8]) -> Result<(), AgentError>,
    ) -> Result<(WasmOutcome, Vec<WasmDirOutput>), AgentError> {
        let RunExtras {
            dirs,
            returns_image,
            max_image,
            fs_limits,
            host_functions,
        } = extras;
        let mut result_image: Vec<u8> = Vec::new();
        let mut dirs_out: Vec<WasmDirOutput> = Vec::new();
        loop {
            match self.conn.recv_for(op, id, wait)? {
                Message::Stdout { data } => on_output(Stream::Stdout, &data)?,
                Message::Stderr { data } => on_output(Stream::Stderr, &data)?,
                Message::Data { data } if returns_image => {
                    if (result_image.len() + data.len()) as u64 > max_image {
                        return Err(AgentError::OutputLimit {
                            op,
                            limit: max_image,
                        });
                    }
                    result_image.extend_from_slice(&data);
                }
                Message::DataEnd if returns_image => {
                    dirs_out = wasm_dirs::decode(dirs, &result_image, fs_limits)
                        .map_err(|source| AgentError::Protocol { op, source })?;
                    result_image = Vec::new();
                }
                Message::WasmExit { code } => return Ok((WasmOutcome::Exit(code), dirs_out)),
                Message::WasmTrap { message } => return Ok((WasmOutcome::Trap(message), dirs_out)),
                Message::OutOfFuel => return Ok((WasmOutcome::OutOfFuel, dirs_out)),
                Message::HostCall(call) => {
                    // A guest calling a host function the run did not grant.
                    let Some(host_functions) = host_functions else {
                        return Err(AgentError::Unexpected {
                            op,
                            got: "HostCall",
                        });
                    };
                    let deadline = wait.until.map(|(at, _)| at);
                    let answer = {
                        let _inside = reentry::Guard::enter(self.reentry_key());
                        host_functions.serve(call, deadline)
                    };
                    if let Some((at, budget)) = wait.until {
                        if Instant::now() >= at {
                            return Err(AgentError::Timeout { op, after: budget });
                        }
                    }
                    let reply = match answer {
                        Ok(ret) => Message::HostReturn(ret),
                        Err(message) => Message::HostError { message },
                    };
                    self.conn.send(op, id, reply)?;
                }
                Message::WasmError { kind, message } => {
                    return Ok((WasmOutcome::Error { kind, message }, dirs_out))
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

impl AgentClient {
    /// What identifies this client's sandbox to [`reentry`]: the address of
    /// the connector its clients share (0 for a client without one).
    pub(crate) fn reentry_key(&self) -> usize {
        self.connector
            .as_ref()
            .map_or(0, |c| Arc::as_ptr(c) as *const () as usize)
    }
}
