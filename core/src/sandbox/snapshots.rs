//! Snapshot, restore and fork of a whole sandbox. A snapshot is taken only at a
//! quiescent point: no call running and no stream open (else [`Error::Busy`],
//! naming what), the sandbox's own idle agent connections closed and the vsock
//! device drained of them (bounded wait); the agent is reconnected lazily by the
//! next call. A restore resets the vsock device, so every stream of the sandbox
//! reads EOF, and idle agent connections are dropped with it.

use super::{kind_of, with_vsock, Sandbox, SandboxKind};
use crate::config::VmConfig;
use crate::devices::bus::lock;
use crate::error::{Error, Result};
use crate::snapshot::{DiskRecord, GuestKind, SandboxSnapshot, SnapshotMeta};
use crate::vmm::snapshot::SnapshotError;
use crate::vmm::vm::Vm;
use std::path::PathBuf;
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

/// How long a snapshot waits for the guest to see the agent connections close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What a snapshot of a sandbox booted from `cfg` records (disk sizes read now).
pub(super) fn shape_of(cfg: &VmConfig) -> Result<SnapshotMeta> {
    let disks = cfg
        .disks
        .iter()
        .map(|d| {
            let size = std::fs::metadata(&d.path)
                .map_err(|_| {
                    Error::Disk(crate::devices::virtio::block::BlockError::NotFound(
                        d.path.clone(),
                    ))
                })?
                .len();
            Ok(DiskRecord {
                path: d.path.clone(),
                size,
                read_only: d.read_only,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SnapshotMeta {
        mem_size: cfg.mem_bytes(),
        vcpus: cfg.vcpus,
        disks,
        cmdline: cfg.cmdline.clone(),
    })
}

fn guest_of(kind: SandboxKind) -> Option<GuestKind> {
    match kind {
        SandboxKind::Micro => Some(GuestKind::Micro),
        SandboxKind::Linux => Some(GuestKind::Linux),
        SandboxKind::HostAgent => None,
    }
}

fn mismatch(what: &'static str, snapshot: impl ToString, sandbox: impl ToString) -> Error {
    Error::SnapshotMismatch {
        what,
        snapshot: snapshot.to_string(),
        sandbox: sandbox.to_string(),
    }
}

/// `snap` was taken of a sandbox shaped like `guest` + `shape`.
fn check_fits(snap: &SandboxSnapshot, guest: GuestKind, shape: &SnapshotMeta) -> Result<()> {
    let m = snap.meta();
    if snap.guest() != guest {
        return Err(mismatch("guest kind", snap.guest().name(), guest.name()));
    }
    if m.mem_size != shape.mem_size {
        return Err(mismatch("memory size (bytes)", m.mem_size, shape.mem_size));
    }
    if m.vcpus != shape.vcpus {
        return Err(mismatch("vCPU count", m.vcpus, shape.vcpus));
    }
    if m.disks.len() != shape.disks.len() {
        return Err(mismatch("disk count", m.disks.len(), shape.disks.len()));
    }
    for (i, (a, b)) in m.disks.iter().zip(&shape.disks).enumerate() {
        if a.size != b.size {
            return Err(mismatch(
                "disk size (bytes)",
                format!("{} (disk {i}, {})", a.size, a.path.display()),
                format!("{} ({})", b.size, b.path.display()),
            ));
        }
        if a.read_only != b.read_only {
            return Err(mismatch(
                "disk read-only flag",
                format!("{} (disk {i})", a.read_only),
                b.read_only,
            ));
        }
    }
    Ok(())
}

impl Sandbox {
    fn snapshot_parts(&self, op: &'static str) -> Result<(&Arc<Vm>, GuestKind, &SnapshotMeta)> {
        let unsupported = Error::Unsupported {
            op,
            guest: self.kind.name(),
        };
        match (&self.vm, guest_of(self.kind), &self.shape) {
            (Some(vm), Some(g), Some(s)) => Ok((vm, g, s)),
            _ => Err(unsupported),
        }
    }

    /// Takes exclusive use of the sandbox for a snapshot or restore, or fails
    /// with [`Error::Busy`] if a call is running.
    fn exclusive(&self, op: &'static str) -> Result<std::sync::RwLockWriteGuard<'_, ()>> {
        match self.quiesce.try_write() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(Error::Busy {
                op,
                what: "a call is running on the sandbox".into(),
            }),
        }
    }

    /// Captures the sandbox (see the module notes): the VM's snapshot plus its
    /// guest kind, memory size, vCPUs, disks and command line. Fails with
    /// [`Error::Busy`] while a call runs or a stream (`connect`, a spawned
    /// process, an output stream) is open.
    pub fn snapshot(&self) -> Result<SandboxSnapshot> {
        let op = "snapshot";
        let (vm, guest, shape) = self.snapshot_parts(op)?;
        if let Some(e) = self.stopped(op) {
            return Err(e);
        }
        let _g = self.exclusive(op)?;
        lock(&self.pool).clear();
        let open = self.streams.open_count();
        if open > 0 {
            return Err(Error::Busy {
                op,
                what: format!(
                    "{open} stream(s) to the guest are open (connect, spawn, output streams)"
                ),
            });
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            match vm.check_devices_quiescent() {
                Ok(()) => break,
                Err(e @ SnapshotError::Device { .. }) if Instant::now() >= deadline => {
                    return Err(Error::Busy {
                        op,
                        what: format!(
                            "the guest did not close its connections within {DRAIN_TIMEOUT:?}: {e}"
                        ),
                    })
                }
                Err(SnapshotError::Device { .. }) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(e.into()),
            }
        }
        let vm_snap = vm.snapshot()?;
        Ok(SandboxSnapshot::new(guest, shape.clone(), vm_snap))
    }

    /// Puts the sandbox back to `snap` in place (same VM, same threads). Every
    /// stream the sandbox opened reads EOF; the agent is reconnected by the next
    /// call. `snap` must have been taken of a sandbox of the same guest kind,
    /// memory size, vCPUs and disks (sizes, read-only flags), else
    /// [`Error::SnapshotMismatch`] with nothing changed. A call running in
    /// another thread makes it fail with [`Error::Busy`].
    pub fn restore(&self, snap: &SandboxSnapshot) -> Result<()> {
        let op = "restore";
        let (vm, guest, shape) = self.snapshot_parts(op)?;
        check_fits(snap, guest, shape)?;
        if let Some(e) = self.stopped(op) {
            return Err(e);
        }
        let _g = self.exclusive(op)?;
        lock(&self.pool).clear();
        vm.restore(snap.vm())?;
        Ok(())
    }

    /// A new sandbox continuing from `snap` (its own VM, vsock socket, runtime
    /// directory and threads; RAM shared copy-on-write with the snapshot). Disks
    /// are opened again from the paths the snapshot records and must have the
    /// recorded sizes. Linux snapshots need [`Sandbox::from_snapshot_with`] (the
    /// kernel path is not recorded).
    ///
    /// A snapshot read from a file ([`SandboxSnapshot::load`]) that records
    /// disks is refused with [`Error::SnapshotMismatch`]: the paths in a file are
    /// not opened on its word (a crafted file could name any host file of the
    /// right size); name them with [`Sandbox::from_snapshot_disks`].
    pub fn from_snapshot(snap: &SandboxSnapshot) -> Result<Sandbox> {
        Self::from_snapshot_with(snap, snap.fork_config()?)
    }

    /// [`Sandbox::from_snapshot`] with the disks given here (path, read-only),
    /// in the snapshot's order; each must have the recorded size and flag.
    pub fn from_snapshot_disks(
        snap: &SandboxSnapshot,
        disks: &[(PathBuf, bool)],
    ) -> Result<Sandbox> {
        Self::from_snapshot_with(snap, shape_config(snap, disks)?)
    }
}

impl SandboxSnapshot {
    /// The config [`Sandbox::from_snapshot`] forks with: a micro guest of this
    /// snapshot's shape (vCPUs, memory, command line) with its recorded disks.
    /// Adjust what may differ (e.g. the seccomp policy) and pass it to
    /// [`Sandbox::from_snapshot_with`] or a pool's
    /// [`PoolSource::with_config`](crate::PoolSource::with_config). Errors as
    /// `from_snapshot`'s: a Linux snapshot, or one read from a file that
    /// records disks.
    pub fn fork_config(&self) -> Result<VmConfig> {
        let m = self.meta();
        if self.loaded_from_file() && !m.disks.is_empty() {
            let paths: Vec<String> = m
                .disks
                .iter()
                .map(|d| d.path.display().to_string())
                .collect();
            return Err(Error::SnapshotMismatch {
                what: "disks",
                snapshot: format!("{paths:?} (read from a snapshot file: not opened)"),
                sandbox: "not named: pass them to from_snapshot_disks or from_snapshot_with".into(),
            });
        }
        let disks: Vec<(PathBuf, bool)> = m
            .disks
            .iter()
            .map(|d| (d.path.clone(), d.read_only))
            .collect();
        shape_config(self, &disks)
    }
}

/// A micro guest config of `snap`'s shape with `disks` (path, read-only).
fn shape_config(snap: &SandboxSnapshot, disks: &[(PathBuf, bool)]) -> Result<VmConfig> {
    let m = snap.meta();
    let mut cfg = match snap.guest() {
        GuestKind::Micro => VmConfig::micro(),
        GuestKind::Linux => {
            return Err(Error::Unsupported {
                op: "from_snapshot without a configuration",
                guest: "Linux guest",
            })
        }
    };
    cfg.vcpus = m.vcpus;
    cfg.mem_mib = m.mem_size >> 20;
    cfg.cmdline = m.cmdline.clone();
    for (path, read_only) in disks {
        cfg = cfg.disk(path, *read_only);
    }
    Ok(cfg)
}

impl Sandbox {
    /// [`Sandbox::from_snapshot`] with `cfg` supplying what differs (other disk
    /// paths of the same sizes, a vsock path, a seccomp policy, a console
    /// callback). Its shape must match the snapshot's, else
    /// [`Error::SnapshotMismatch`] naming both values.
    pub fn from_snapshot_with(snap: &SandboxSnapshot, cfg: VmConfig) -> Result<Sandbox> {
        let kind = kind_of(&cfg);
        let guest = guest_of(kind).unwrap_or(GuestKind::Micro);
        let shape = shape_of(&cfg)?;
        check_fits(snap, guest, &shape)?;
        let (cfg, runtime, path) = with_vsock(cfg)?;
        // On failure `runtime` is dropped, which removes the directory.
        let vm = Arc::new(Vm::from_snapshot(cfg, snap.vm())?);
        Self::assemble(kind, vm, runtime, path, shape)
    }
}
