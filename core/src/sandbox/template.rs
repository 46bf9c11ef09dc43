//! Prepared WASM templates: the guest validates and compiles a module once
//! ([`Sandbox::prepare_wasm`]), the sandbox is snapshotted right there, and
//! each [`WasmTemplate::run`] restores that snapshot and sends only the call's
//! inputs (args, env, stdin, fuel and a fresh random seed): a run skips
//! sending, parsing, validating and compiling the module again.
//!
//! Restoring *before* each run (not after) is what makes a run start from the
//! template whatever ran in the sandbox since; a wall-clock timeout restores
//! too, so the sandbox stays usable ([`Error::CallTimeout`]). What a run left
//! in guest memory stays until the next restore (use per-call isolation with
//! [`WasmTemplate::snapshot`] to have it wiped right after each call). The
//! template can also start new sandboxes ([`Sandbox::from_template`]).
//!
//! Without a VM of its own (a sandbox attached to someone else's socket) a
//! template has no snapshot: runs then only reuse the guest's compiled module,
//! each still in a fresh instance, and a template replaced by a later
//! `prepare_wasm` ends its runs with [`WasmErrorKind::NotPrepared`].

use std::path::PathBuf;
use std::time::Duration;

use super::{wasm_silence, Collected, Sandbox, SandboxKind, WasmOutput};
use crate::agent::{AgentError, Stream, WasmCall, WasmErrorKind, WasmOutcome};
use crate::error::{Error, Result};
use crate::snapshot::SandboxSnapshot;

/// A module prepared in a sandbox's guest, with the snapshot taken right
/// after. Cheap to clone (the snapshot is shared).
#[derive(Clone)]
pub struct WasmTemplate {
    /// The guest's id for it.
    id: u64,
    /// The sandbox at the point the module was prepared.
    snapshot: Option<SandboxSnapshot>,
    /// The sandbox it was prepared in (its vsock socket, unique per sandbox):
    /// without a snapshot it can run only there.
    origin: Option<PathBuf>,
}

impl std::fmt::Debug for WasmTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmTemplate")
            .field("id", &self.id)
            .field("snapshot", &self.snapshot.is_some())
            .field("origin", &self.origin)
            .finish()
    }
}

impl WasmTemplate {
    /// The guest's id for this template.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The sandbox as it was right after preparing (for forks, pools and
    /// per-call isolation); `None` for a sandbox without its own VM.
    pub fn snapshot(&self) -> Option<&SandboxSnapshot> {
        self.snapshot.as_ref()
    }

    /// Runs the template's `_start` in `sandbox` (the one that prepared it, or
    /// any whose shape fits its snapshot, e.g. a fork of it) with `call`'s
    /// inputs, collecting its output within the sandbox's output limit. If
    /// `wall_timeout` passes first the sandbox is restored to the template and
    /// the run ends with [`Error::CallTimeout`].
    pub fn run(
        &self,
        sandbox: &Sandbox,
        call: &WasmCall,
        wall_timeout: Option<Duration>,
    ) -> Result<WasmOutput> {
        let mut out = Collected::new("run_template", sandbox.limits.max_output);
        let outcome = self.run_with(sandbox, call, wall_timeout, |s, d| out.push(s, d))?;
        Ok(out.with(outcome, Vec::new()))
    }

    /// Like [`run`](Self::run), handing output to `on_output` as the module writes it.
    pub fn run_streaming(
        &self,
        sandbox: &Sandbox,
        call: &WasmCall,
        wall_timeout: Option<Duration>,
        mut on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<WasmOutcome> {
        self.run_with(sandbox, call, wall_timeout, |s, d| {
            on_output(s, d);
            Ok(())
        })
    }

    fn run_with(
        &self,
        sandbox: &Sandbox,
        call: &WasmCall,
        wall_timeout: Option<Duration>,
        on_output: impl FnMut(Stream, &[u8]) -> std::result::Result<(), AgentError>,
    ) -> Result<WasmOutcome> {
        let op = "run_template";
        sandbox.require(op, sandbox.kind == SandboxKind::Micro)?;
        match &self.snapshot {
            Some(snap) => sandbox.restore(snap)?,
            None if self.origin.as_deref() != sandbox.vsock_path() => {
                return Err(AgentError::Wasm {
                    op,
                    kind: WasmErrorKind::NotPrepared,
                    message: format!(
                        "template {} was prepared in another sandbox ({:?})",
                        self.id, self.origin
                    ),
                }
                .into())
            }
            None => {}
        }
        let mut call = call.clone();
        call.timeout = Some(wasm_silence(call.timeout, wall_timeout));
        sandbox.watched(op, wall_timeout, self.snapshot.as_ref(), || {
            sandbox.with_client(op, |c| c.run_prepared_with(self.id, &call, on_output))
        })
    }
}

impl Sandbox {
    /// Sends `module` to the guest to be validated and compiled once, then
    /// snapshots the sandbox (micro guest; see the module notes). It replaces
    /// any template prepared earlier in this sandbox. A module that cannot run
    /// (invalid, imports we lack, no `_start`) is [`AgentError::Wasm`]; an open
    /// stream or a running call makes the snapshot fail with [`Error::Busy`].
    /// `max_memory_bytes` caps every run's linear memory.
    pub fn prepare_wasm(
        &self,
        module: &[u8],
        max_memory_bytes: Option<u64>,
    ) -> Result<WasmTemplate> {
        let op = "prepare_wasm";
        self.require(op, self.kind == SandboxKind::Micro)?;
        let silence = Some(wasm_silence(None, None).min(self.limits.default_deadline));
        let id = self.with_client(op, |c| c.prepare_wasm(module, max_memory_bytes, silence))?;
        let snapshot = match self.vm {
            Some(_) => Some(self.snapshot()?),
            None => None,
        };
        Ok(WasmTemplate {
            id,
            snapshot,
            origin: self.vsock_path().map(PathBuf::from),
        })
    }

    /// A new sandbox forked from `template`'s snapshot, ready to run it
    /// ([`Sandbox::from_snapshot`]).
    pub fn from_template(template: &WasmTemplate) -> Result<Sandbox> {
        match &template.snapshot {
            Some(snap) => Sandbox::from_snapshot(snap),
            None => Err(Error::Unsupported {
                op: "from_template of a template without a snapshot",
                guest: "sandbox without its own VM",
            }),
        }
    }
}
