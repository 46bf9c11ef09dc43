//! `kvmsb_pool`: a warm pool of sandboxes. Acquired sandboxes are ordinary
//! `kvmsb_sandbox` handles (every sandbox function works on them) that go back
//! to the pool with `kvmsb_pool_release` (or `kvmsb_sandbox_free`).

use crate::args::{handle, invalid, out, write_out};
use crate::boundary::{ffi_status, ffi_value};
use crate::config::kvmsb_config;
use crate::sandbox::{kvmsb_sandbox, Held};
use crate::snapshot::kvmsb_snapshot;
use crate::status::kvmsb_status;
use crate::template::kvmsb_wasm_template;
use kvmsandbox_core::{PoolConfig, PoolSource, SandboxPool};
use std::time::Duration;

/// An opaque pool. Create with `kvmsb_pool_new`, free with `kvmsb_pool_free`.
///
/// Thread-safety: every function taking a `const kvmsb_pool*` may be called
/// from several threads at once; only `kvmsb_pool_free` needs exclusive use.
pub struct kvmsb_pool {
    inner: SandboxPool,
}

/// A pool's bounds (`kvmsb_pool_new`). Zero `max_size` and `threads` take the
/// defaults; `min_idle` is taken as given (0: nothing kept warm).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvmsb_pool_options {
    /// Clean sandboxes kept ready.
    pub min_idle: u32,
    /// Most sandboxes alive at once, idle and borrowed (0 = 4).
    pub max_size: u32,
    /// Pool threads booting and resetting sandboxes in the background (0 = 2).
    pub threads: u32,
}

/// A consistent copy of a pool's counters (`kvmsb_pool_metrics`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvmsb_pool_counters {
    /// Sandboxes made (first fills, refills, replacements).
    pub created: u64,
    /// Sandboxes that could not be made.
    pub create_failures: u64,
    /// Successful acquires.
    pub acquired: u64,
    /// Sandboxes given back.
    pub released: u64,
    /// Released sandboxes made clean again (a config pool boots a fresh one).
    pub resets: u64,
    /// Resets that failed (the sandbox was discarded and replaced).
    pub reset_failures: u64,
    /// Sandboxes thrown away (stopped while borrowed, discarded, failed reset, closed).
    pub discarded: u64,
    /// Acquires that timed out.
    pub acquire_timeouts: u64,
    /// Clean sandboxes waiting now.
    pub idle: u64,
    /// Sandboxes borrowed now.
    pub busy: u64,
    /// Sandboxes being booted, reset or thrown away now.
    pub in_flight: u64,
    /// Time waited by successful acquires, summed, in nanoseconds.
    pub acquire_wait_total_ns: u64,
    /// The longest wait of a successful acquire, in nanoseconds.
    pub acquire_wait_max_ns: u64,
}

fn pool_config(o: Option<&kvmsb_pool_options>) -> PoolConfig {
    let d = PoolConfig::default();
    let Some(o) = o else { return d };
    let or = |v: u32, default: usize| if v == 0 { default } else { v as usize };
    PoolConfig {
        min_idle: o.min_idle as usize,
        max_size: or(o.max_size, d.max_size),
        threads: or(o.threads, d.threads),
    }
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A pool of sandboxes booted from `config` (copied: keep or free it). Pool
/// threads start booting `min_idle` sandboxes at once, in the background.
/// `options` may be NULL (defaults: min_idle 1, max_size 4, threads 2). A
/// config with a vsock path is refused (KVMSB_STATUS_CONFIG): every pooled
/// sandbox gets a private socket. A released sandbox of such a pool is killed
/// and a fresh one booted in its place.
///
/// Errors: KVMSB_STATUS_CONFIG for contradictory options (min_idle > max_size,
/// more than 1024 sandboxes or 64 threads), named in the message.
/// Ownership: the caller owns `*pool_out` (free with `kvmsb_pool_free`).
#[no_mangle]
pub extern "C" fn kvmsb_pool_new(
    config: *const kvmsb_config,
    options: *const kvmsb_pool_options,
    pool_out: *mut *mut kvmsb_pool,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL config comes from kvmsb_config_new.
        let c = unsafe { handle(config, "config") }?.clone();
        // SAFETY: a non-NULL options points to a kvmsb_pool_options.
        let o = unsafe { options.as_ref() };
        new_pool(PoolSource::config(move || c.to_vm_config()), o, pool_out)
    })
}

/// A pool of sandboxes forked from `snapshot` (the pool keeps its own
/// reference: free the snapshot whenever you like). A released sandbox is
/// reset in place to the snapshot in the background. `config` (copied; NULL:
/// the snapshot's recorded shape and disks) is what each fork takes, as in
/// `kvmsb_sandbox_from_snapshot`: disks, seccomp policy and the rest; its
/// vCPUs, memory and disks must match the snapshot's. `options` as in
/// `kvmsb_pool_new`.
///
/// Errors: KVMSB_STATUS_CONFIG for contradictory options; a fork's failure is
/// the status of the `kvmsb_pool_acquire` that needed it.
/// Ownership: the caller owns `*pool_out` (free with `kvmsb_pool_free`).
#[no_mangle]
pub extern "C" fn kvmsb_pool_new_from_snapshot(
    snapshot: *const kvmsb_snapshot,
    config: *const kvmsb_config,
    options: *const kvmsb_pool_options,
    pool_out: *mut *mut kvmsb_pool,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL snapshot is a live handle from this library.
        let snap = unsafe { handle(snapshot, "snapshot") }?;
        // SAFETY: a non-NULL options points to a kvmsb_pool_options.
        let o = unsafe { options.as_ref() };
        // SAFETY: a non-NULL config comes from kvmsb_config_new.
        let source = unsafe { with_config(PoolSource::from_snapshot(&snap.inner), config) }?;
        new_pool(source, o, pool_out)
    })
}

/// A pool of sandboxes forked from `template`'s snapshot, each ready to run it
/// with `kvmsb_wasm_template_run(template, sandbox, ...)`. `config` as in
/// `kvmsb_pool_new_from_snapshot`, `options` as in `kvmsb_pool_new`.
///
/// Errors: KVMSB_STATUS_CONFIG for contradictory options;
/// KVMSB_STATUS_UNSUPPORTED for a template without a snapshot (prepared in an
/// attached sandbox).
/// Ownership: the caller owns `*pool_out` (free with `kvmsb_pool_free`); the
/// template may be freed before the pool.
#[no_mangle]
pub extern "C" fn kvmsb_pool_new_from_template(
    template: *const kvmsb_wasm_template,
    config: *const kvmsb_config,
    options: *const kvmsb_pool_options,
    pool_out: *mut *mut kvmsb_pool,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL template is a live handle from this library.
        let t = unsafe { handle(template, "template") }?;
        // SAFETY: a non-NULL options points to a kvmsb_pool_options.
        let o = unsafe { options.as_ref() };
        // SAFETY: a non-NULL config comes from kvmsb_config_new.
        let source = unsafe { with_config(PoolSource::from_template(&t.inner), config) }?;
        new_pool(source, o, pool_out)
    })
}

/// `source` whose forks take a copy of `config` (NULL: unchanged).
///
/// # Safety
/// A non-NULL `config` is a live handle from `kvmsb_config_new`.
unsafe fn with_config(
    source: PoolSource,
    config: *const kvmsb_config,
) -> crate::boundary::FfiResult<PoolSource> {
    if config.is_null() {
        return Ok(source);
    }
    // SAFETY: non-NULL, and live by the caller's promise.
    let c = unsafe { handle(config, "config") }?.clone();
    Ok(source.with_config(move || c.to_vm_config()))
}

/// The pool of `source` with `o`'s bounds, written to `*pool_out`.
fn new_pool(
    source: PoolSource,
    o: Option<&kvmsb_pool_options>,
    pool_out: *mut *mut kvmsb_pool,
) -> crate::boundary::FfiResult {
    out(pool_out, "pool_out")?;
    let pool = SandboxPool::new(source, pool_config(o))?;
    let p = Box::into_raw(Box::new(kvmsb_pool { inner: pool }));
    // SAFETY: checked non-NULL above.
    unsafe { write_out(pool_out, p) };
    Ok(())
}

/// Borrows a clean sandbox, waiting at most `timeout_ms` (0: only take one that
/// is idle now; UINT64_MAX: no limit). Use it with every `kvmsb_sandbox_*`
/// function; give it back with `kvmsb_pool_release` (or `kvmsb_sandbox_free`).
///
/// Errors: KVMSB_STATUS_TIMEOUT when none became free in time;
/// KVMSB_STATUS_STOPPED once the pool is freed; the boot's status when the
/// sandbox booted for this call failed to start.
/// Thread-safety: any thread; blocks up to the timeout.
#[no_mangle]
pub extern "C" fn kvmsb_pool_acquire(
    pool: *const kvmsb_pool,
    timeout_ms: u64,
    sandbox_out: *mut *mut kvmsb_sandbox,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL pool is a live handle from kvmsb_pool_new.
        let p = unsafe { handle(pool, "pool") }?;
        out(sandbox_out, "sandbox_out")?;
        let t = if timeout_ms == u64::MAX {
            Duration::MAX
        } else {
            Duration::from_millis(timeout_ms)
        };
        let sb = p.inner.acquire(t)?;
        let h = Box::into_raw(Box::new(kvmsb_sandbox {
            inner: Held::Pooled(sb),
        }));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(sandbox_out, h) };
        Ok(())
    })
}

/// Gives a sandbox from `kvmsb_pool_acquire` back to `pool` (or, with `discard`
/// non-zero, to be killed instead of reused) and frees its handle. The pool
/// resets it in the background. KVMSB_STATUS_INVALID_ARGUMENT (and nothing is
/// freed) if `sandbox` was not acquired from `pool`.
///
/// Ownership: on success `sandbox` must not be used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_pool_release(
    pool: *const kvmsb_pool,
    sandbox: *mut kvmsb_sandbox,
    discard: bool,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL pool is a live handle from kvmsb_pool_new.
        let p = unsafe { handle(pool, "pool") }?;
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        match &sb.inner {
            Held::Pooled(l) if l.belongs_to(&p.inner) => {}
            _ => return Err(invalid("the sandbox was not acquired from this pool")),
        }
        // SAFETY: non-NULL, from Box::into_raw in kvmsb_pool_acquire, and the
        // caller gives it up now.
        let b = unsafe { Box::from_raw(sandbox) };
        if let Held::Pooled(l) = b.inner {
            if discard {
                l.discard();
            } else {
                l.release();
            }
        }
        Ok(())
    })
}

/// Writes the pool's counters to `*metrics_out`.
#[no_mangle]
pub extern "C" fn kvmsb_pool_metrics(
    pool: *const kvmsb_pool,
    metrics_out: *mut kvmsb_pool_counters,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL pool is a live handle from kvmsb_pool_new.
        let p = unsafe { handle(pool, "pool") }?;
        out(metrics_out, "metrics_out")?;
        let m = p.inner.metrics();
        let v = kvmsb_pool_counters {
            created: m.created,
            create_failures: m.create_failures,
            acquired: m.acquired,
            released: m.released,
            resets: m.resets,
            reset_failures: m.reset_failures,
            discarded: m.discarded,
            acquire_timeouts: m.acquire_timeouts,
            idle: m.idle as u64,
            busy: m.busy as u64,
            in_flight: m.in_flight as u64,
            acquire_wait_total_ns: ns(m.acquire_wait_total),
            acquire_wait_max_ns: ns(m.acquire_wait_max),
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(metrics_out, v) };
        Ok(())
    })
}

/// Waits up to `timeout_ms` until at least `count` sandboxes are idle; writes
/// whether they are to `*ready_out`.
#[no_mangle]
pub extern "C" fn kvmsb_pool_wait_idle(
    pool: *const kvmsb_pool,
    count: u32,
    timeout_ms: u64,
    ready_out: *mut bool,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL pool is a live handle from kvmsb_pool_new.
        let p = unsafe { handle(pool, "pool") }?;
        out(ready_out, "ready_out")?;
        let ok = p
            .inner
            .wait_idle(count as usize, Duration::from_millis(timeout_ms));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(ready_out, ok) };
        Ok(())
    })
}

/// Closes and frees a pool: kills its idle sandboxes and joins its threads
/// (waiting for a boot or reset in progress). Sandboxes still borrowed stay
/// usable; free them with `kvmsb_sandbox_free` (not `kvmsb_pool_release`: the
/// pool handle is gone), which kills them. NULL is allowed.
#[no_mangle]
pub extern "C" fn kvmsb_pool_free(pool: *mut kvmsb_pool) {
    ffi_value((), || {
        if !pool.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw here.
            drop(unsafe { Box::from_raw(pool) });
        }
    })
}
