//! Per-call isolation: every call starts from one snapshot and leaves no trace.
//! The sandbox restores *after* each call rather than before the next: whatever
//! a call left in guest memory (inputs, outputs, secrets) is gone as soon as it
//! returns, the sandbox idles in the clean state, and a wall-clock timeout is
//! the same restore done early (the call's stream sees EOF) instead of a kill.
//! Calls run one at a time while isolation is on: a restore must not cut off
//! another thread's call.

use super::Sandbox;
use crate::devices::bus::lock;
use crate::error::{Error, Result};
use crate::snapshot::SandboxSnapshot;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Held for the length of a call: shared normally, exclusive under isolation.
pub(super) enum Gate<'a> {
    Shared(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'a, ()>),
}

impl<'a> Gate<'a> {
    pub(super) fn enter(lock: &'a RwLock<()>, exclusive: bool) -> Gate<'a> {
        if exclusive {
            Gate::Exclusive(lock.write().unwrap_or_else(|e| e.into_inner()))
        } else {
            Gate::Shared(lock.read().unwrap_or_else(|e| e.into_inner()))
        }
    }
}

impl Sandbox {
    /// Turns per-call isolation on (every call then starts from `snap` and is
    /// followed by a restore to it; a `run_wasm` wall-clock timeout restores
    /// instead of stopping the VM) or off (`None`). The sandbox is restored to
    /// `snap` at once, so the first call starts clean too. `snap` must fit the
    /// sandbox (as for [`Sandbox::restore`]).
    pub fn set_call_isolation(&self, snap: Option<&SandboxSnapshot>) -> Result<()> {
        if let Some(s) = snap {
            self.restore(s)?;
        }
        *lock(&self.isolation) = snap.cloned();
        Ok(())
    }

    /// The snapshot calls start from, if per-call isolation is on.
    pub fn call_isolation(&self) -> Option<SandboxSnapshot> {
        lock(&self.isolation).clone()
    }

    /// After a call under isolation: drop the agent connections (their guest
    /// ends are about to vanish) and put the VM back to `snap`.
    pub(super) fn reset_after_call(&self, op: &'static str, snap: &SandboxSnapshot) -> Result<()> {
        lock(&self.pool).clear();
        let vm = self.vm.as_ref().ok_or(Error::Unsupported {
            op,
            guest: self.kind.name(),
        })?;
        vm.restore(snap.vm()).map_err(Error::from)
    }
}
