//! What a pool is made of: its bounds ([`PoolConfig`]) and where its sandboxes
//! come from and how they are made clean again ([`PoolSource`]).

use super::PoolError;
use crate::config::VmConfig;
use crate::error::Result;
use crate::sandbox::{Sandbox, WasmTemplate};
use crate::snapshot::SandboxSnapshot;
use std::sync::Arc;

/// A pool's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Clean sandboxes kept ready (made at creation, refilled after each acquire).
    pub min_idle: usize,
    /// Most sandboxes alive at once: idle, borrowed and being reset together.
    pub max_size: usize,
    /// Pool threads that boot, reset and discard sandboxes (at most this many at once).
    pub threads: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            min_idle: 1,
            max_size: 4,
            threads: 2,
        }
    }
}

/// Largest `max_size` and `threads` accepted: each sandbox is a VM with its own
/// threads and memory, so a larger figure is a typo rather than a plan.
pub const MAX_POOL_SIZE: usize = 1024;
/// Largest `threads` accepted.
pub const MAX_POOL_THREADS: usize = 64;

impl PoolConfig {
    /// Bounds checked: `1 <= max_size <= 1024`, `min_idle <= max_size`, `1 <= threads <= 64`.
    pub fn validate(&self) -> std::result::Result<(), PoolError> {
        let bad = |what, value: usize, why| {
            Err(PoolError::InvalidConfig {
                what,
                value: value as u64,
                why,
            })
        };
        if self.max_size == 0 || self.max_size > MAX_POOL_SIZE {
            return bad("max_size", self.max_size, "must be 1..=1024");
        }
        if self.min_idle > self.max_size {
            return bad("min_idle", self.min_idle, "must not exceed max_size");
        }
        if self.threads == 0 || self.threads > MAX_POOL_THREADS {
            return bad("threads", self.threads, "must be 1..=64");
        }
        Ok(())
    }
}

/// Makes a [`VmConfig`] for each pooled sandbox (a `VmConfig` is not `Clone`: it
/// may carry a console callback).
pub type ConfigFactory = Arc<dyn Fn() -> VmConfig + Send + Sync>;

/// Where pooled sandboxes come from, and how a released one is made clean.
#[derive(Clone)]
pub enum PoolSource {
    /// Each sandbox boots from the config the factory returns. Nothing can make
    /// a used booted sandbox clean, so a released one is killed and a fresh one
    /// booted in its place (in the background).
    Config(ConfigFactory),
    /// Each sandbox is a fork of the snapshot ([`Sandbox::from_snapshot`], or
    /// [`Sandbox::from_snapshot_with`] the factory's config when there is one:
    /// [`PoolSource::with_config`]); a released one is restored to it in place
    /// ([`Sandbox::restore`]: only the pages it dirtied are reverted), keeping
    /// its VM and threads.
    Snapshot(SandboxSnapshot, Option<ConfigFactory>),
    /// Each sandbox is a fork of a prepared WASM template's snapshot (with the
    /// factory's config, if any), ready for [`WasmTemplate::run`]; a released
    /// one is restored to it in place.
    Template(WasmTemplate, Option<ConfigFactory>),
}

impl std::fmt::Debug for PoolSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolSource::Config(_) => f.write_str("PoolSource::Config"),
            PoolSource::Snapshot(s, _) => write!(f, "PoolSource::Snapshot({:?})", s.guest()),
            PoolSource::Template(t, _) => write!(f, "PoolSource::Template({})", t.id()),
        }
    }
}

impl PoolSource {
    /// A config source: `make` is called once per sandbox.
    pub fn config(make: impl Fn() -> VmConfig + Send + Sync + 'static) -> Self {
        PoolSource::Config(Arc::new(make))
    }

    /// A snapshot source: forks of `snap`, restored in place when released.
    pub fn from_snapshot(snap: &SandboxSnapshot) -> Self {
        PoolSource::Snapshot(snap.clone(), None)
    }

    /// A template source: forks of `template`'s snapshot, restored in place when
    /// released. The template must have a snapshot (prepared in a sandbox with
    /// its own VM).
    pub fn from_template(template: &WasmTemplate) -> Self {
        PoolSource::Template(template.clone(), None)
    }

    /// Forks of a snapshot or template source take the rest of their config
    /// (seccomp policy, disk paths, console callback) from `make`, whose shape
    /// must match the snapshot's ([`Sandbox::from_snapshot_with`]); a config
    /// source boots from `make` instead of its own factory.
    pub fn with_config(self, make: impl Fn() -> VmConfig + Send + Sync + 'static) -> Self {
        let make: ConfigFactory = Arc::new(make);
        match self {
            PoolSource::Config(_) => PoolSource::Config(make),
            PoolSource::Snapshot(s, _) => PoolSource::Snapshot(s, Some(make)),
            PoolSource::Template(t, _) => PoolSource::Template(t, Some(make)),
        }
    }

    /// Refuses a source every sandbox of which could not coexist.
    pub(crate) fn check(&self) -> std::result::Result<(), PoolError> {
        let shared = |make: &ConfigFactory| match make().vsock {
            Some(v) => Err(PoolError::SharedVsockPath { path: v.uds_path }),
            None => Ok(()),
        };
        match self {
            PoolSource::Config(make) | PoolSource::Snapshot(_, Some(make)) => shared(make),
            PoolSource::Snapshot(_, None) => Ok(()),
            PoolSource::Template(t, Some(make)) if t.snapshot().is_some() => shared(make),
            PoolSource::Template(t, _) => match t.snapshot() {
                Some(_) => Ok(()),
                None => Err(PoolError::TemplateWithoutSnapshot { id: t.id() }),
            },
        }
    }

    /// A new clean sandbox whose agent has answered.
    pub(crate) fn create(&self) -> Result<Sandbox> {
        let sb = match self {
            // `start` waits for the agent's hello itself.
            PoolSource::Config(make) => return Sandbox::start(make()),
            PoolSource::Snapshot(snap, None) => Sandbox::from_snapshot(snap)?,
            PoolSource::Template(t, None) => Sandbox::from_template(t)?,
            PoolSource::Snapshot(_, Some(make)) | PoolSource::Template(_, Some(make)) => {
                let snap = self.snapshot().ok_or(crate::Error::Unsupported {
                    op: "a pooled fork of a template without a snapshot",
                    guest: "sandbox without its own VM",
                })?;
                Sandbox::from_snapshot_with(snap, make())?
            }
        };
        // A fork connects to its agent lazily: do it here, on the pool thread,
        // so the borrower's first call does not pay for it and a fork that does
        // not answer is never handed out.
        sb.ping()?;
        Ok(sb)
    }

    /// The snapshot a released sandbox is restored to (none for a config source).
    fn snapshot(&self) -> Option<&SandboxSnapshot> {
        match self {
            PoolSource::Config(_) => None,
            PoolSource::Snapshot(s, _) => Some(s),
            PoolSource::Template(t, _) => t.snapshot(),
        }
    }

    /// The template of a template source.
    pub(crate) fn template(&self) -> Option<&WasmTemplate> {
        match self {
            PoolSource::Template(t, _) => Some(t),
            _ => None,
        }
    }

    /// Makes a released sandbox clean in place: `Ok(true)` done, `Ok(false)`
    /// this source cannot (the caller replaces it), `Err` the reset failed.
    pub(crate) fn reset(&self, sb: &mut Sandbox) -> Result<bool> {
        match self.snapshot() {
            None => Ok(false),
            Some(snap) => {
                // A borrower may have switched per-call isolation on.
                sb.set_call_isolation(None)?;
                sb.restore(snap)?;
                // The restore dropped the agent connection: reconnect now (see
                // `create`); a guest that does not answer fails the reset.
                sb.ping()?;
                Ok(true)
            }
        }
    }
}
