//! The pool's bookkeeping: who holds which sandbox, what the pool threads must
//! do next, and the waits of `acquire`.
//!
//! One mutex guards all of it ([`State`]); sandboxes are never created, reset,
//! killed or dropped under it. Every sandbox alive is counted in exactly one
//! place (idle, busy, a queued job or a running job), so `max_size` bounds them
//! all at any moment.

use super::config::{PoolConfig, PoolSource};
use super::metrics::PoolMetrics;
use super::worker;
use super::PoolError;
use crate::devices::bus::lock;
use crate::error::{Error, Result};
use crate::sandbox::{Sandbox, WasmTemplate};
use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Work for the pool threads.
pub(crate) enum Job {
    /// Make a new sandbox.
    Create,
    /// Make a released sandbox clean (or replace it).
    Reset(Arc<Sandbox>),
    /// Kill and drop a sandbox.
    Discard(Arc<Sandbox>),
}

/// Everything the pool's lock guards.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) idle: VecDeque<Arc<Sandbox>>,
    pub(crate) busy: usize,
    pub(crate) jobs: VecDeque<Job>,
    /// Jobs a pool thread is working on.
    pub(crate) running: usize,
    /// Queued or running jobs that end with a clean sandbox (create, reset).
    pub(crate) incoming: usize,
    /// `acquire` calls waiting now.
    pub(crate) waiters: usize,
    /// Boot failures handed to waiting acquirers (one each), so a pool that
    /// cannot make sandboxes fails its callers instead of letting them time out.
    pub(crate) failures: VecDeque<Error>,
    /// A refill failed while nobody waited: refilling to `min_idle` resumes at the
    /// next acquire or release instead of retrying in a loop.
    pub(crate) refill_paused: bool,
    pub(crate) closed: bool,
    pub(crate) metrics: PoolMetrics,
}

impl State {
    fn total(&self) -> usize {
        self.idle.len() + self.busy + self.jobs.len() + self.running
    }

    /// Queues the boots needed to keep `min_idle` sandboxes idle and serve every
    /// waiter, within `max_size`. Returns whether anything was queued.
    pub(crate) fn plan(&mut self, cfg: &PoolConfig) -> bool {
        if self.closed {
            return false;
        }
        let keep = if self.refill_paused { 0 } else { cfg.min_idle };
        let target = keep + self.waiters;
        let mut queued = false;
        while self.idle.len() + self.incoming < target && self.total() < cfg.max_size {
            self.jobs.push_back(Job::Create);
            self.incoming += 1;
            queued = true;
        }
        queued
    }
}

/// What the pool's owner, its threads and its borrowed sandboxes share.
pub(crate) struct Shared {
    pub(crate) source: PoolSource,
    pub(crate) config: PoolConfig,
    pub(crate) state: Mutex<State>,
    /// Pool threads wait here for jobs.
    pub(crate) work: Condvar,
    /// Acquirers (and `wait_idle`) wait here for a sandbox, a failure or close.
    pub(crate) ready: Condvar,
    /// Test builds: this many coming resets fail as if the restore had.
    #[cfg(feature = "test-utils")]
    pub(crate) fail_resets: std::sync::atomic::AtomicUsize,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Takes back a borrowed sandbox: queued for a reset, or for discarding when
    /// asked to, when it stopped, or when the pool is closed.
    fn release(&self, sb: Arc<Sandbox>, discard: bool) {
        let mut st = self.lock();
        st.busy -= 1;
        st.metrics.released += 1;
        st.refill_paused = false;
        if st.closed {
            st.metrics.discarded += 1;
            drop(st);
            // The pool threads are gone: the owner's thread pays for this one.
            sb.kill();
            return;
        }
        if discard || !alive(&sb) {
            st.metrics.discarded += 1;
            st.jobs.push_front(Job::Discard(sb));
        } else {
            st.jobs.push_back(Job::Reset(sb));
            st.incoming += 1;
        }
        st.plan(&self.config);
        drop(st);
        self.work.notify_all();
    }
}

/// Whether a sandbox can still serve (its VM runs).
pub(crate) fn alive(sb: &Sandbox) -> bool {
    sb.vm().is_none_or(|vm| vm.is_running())
}

/// A pool of clean sandboxes from one [`PoolSource`].
///
/// Dropping (or [`close`](Self::close)-ing) the pool kills its idle sandboxes,
/// drops queued work and joins its threads (waiting for a boot or reset in
/// progress, which the VM start timeout bounds). Sandboxes borrowed at that
/// moment stay their borrowers': they keep working, and are killed when given
/// back.
pub struct SandboxPool {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for SandboxPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxPool")
            .field("source", &self.shared.source)
            .field("config", &self.shared.config)
            .field("metrics", &self.metrics())
            .finish()
    }
}

impl SandboxPool {
    /// Starts the pool threads and begins booting `min_idle` sandboxes in the
    /// background (see [`wait_idle`](Self::wait_idle) to wait for them).
    pub fn new(source: PoolSource, config: PoolConfig) -> Result<SandboxPool> {
        config.validate()?;
        source.check()?;
        let shared = Arc::new(Shared {
            source,
            config,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            ready: Condvar::new(),
            #[cfg(feature = "test-utils")]
            fail_resets: std::sync::atomic::AtomicUsize::new(0),
        });
        let pool = SandboxPool {
            shared: shared.clone(),
            threads: Mutex::new(Vec::with_capacity(config.threads)),
        };
        for i in 0..config.threads {
            let s = shared.clone();
            let t = std::thread::Builder::new()
                .name(format!("kvmsb-pool-{i}"))
                .spawn(move || worker::run(&s))
                .map_err(|source| Error::Host {
                    what: "pool thread",
                    source,
                })?;
            // On an early return `pool` drops here, which closes and joins.
            lock(&pool.threads).push(t);
        }
        shared.lock().plan(&config);
        shared.work.notify_all();
        Ok(pool)
    }

    /// The pool's bounds.
    pub fn config(&self) -> PoolConfig {
        self.shared.config
    }

    /// Where its sandboxes come from.
    pub fn source(&self) -> &PoolSource {
        &self.shared.source
    }

    /// The prepared module a template pool's sandboxes are ready to run.
    pub fn template(&self) -> Option<&WasmTemplate> {
        self.shared.source.template()
    }

    /// A clean sandbox, waiting at most `timeout` for one to be idle (booting one
    /// in the background if the pool is below `max_size`). Fails with
    /// [`PoolError::AcquireTimeout`] when the time passes, [`PoolError::Closed`]
    /// when the pool closes, or the boot's own error when the sandbox made for
    /// this caller failed to start.
    pub fn acquire(&self, timeout: Duration) -> Result<PooledSandbox> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let sh = &self.shared;
        let mut dead = Vec::new();
        let mut st = sh.lock();
        st.waiters += 1;
        st.refill_paused = false;
        let r = loop {
            if st.closed {
                break Err(PoolError::Closed.into());
            }
            if let Some(sb) = st.idle.pop_front() {
                if !alive(&sb) {
                    // Died while idle (a guest crash): thrown away and replaced.
                    st.metrics.discarded += 1;
                    dead.push(sb);
                    continue;
                }
                st.busy += 1;
                st.metrics.record_wait(start.elapsed());
                break Ok(sb);
            }
            if let Some(e) = st.failures.pop_front() {
                break Err(e);
            }
            if st.plan(&sh.config) {
                sh.work.notify_all();
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if d <= now => {
                    st.metrics.acquire_timeouts += 1;
                    break Err(PoolError::AcquireTimeout {
                        after: timeout,
                        busy: st.busy,
                        max_size: sh.config.max_size,
                    }
                    .into());
                }
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            st = sh
                .ready
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        st.waiters -= 1;
        if st.waiters == 0 {
            // Failures nobody is left to receive.
            st.failures.clear();
        }
        if st.plan(&sh.config) {
            sh.work.notify_all();
        }
        drop(st);
        for sb in dead {
            sb.kill();
        }
        r.map(|sb| PooledSandbox {
            sb: Some(sb),
            pool: sh.clone(),
        })
    }

    /// Waits up to `timeout` until at least `count` sandboxes are idle; returns
    /// whether they are. Useful to start serving with a warm pool.
    pub fn wait_idle(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut st = self.shared.lock();
        loop {
            if st.idle.len() >= count {
                return true;
            }
            let now = Instant::now();
            let left = match deadline {
                Some(d) if d <= now => return false,
                Some(d) => d - now,
                None => Duration::from_secs(3600),
            };
            if st.closed {
                return false;
            }
            st = self
                .shared
                .ready
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Test builds only: the next `n` resets fail (the sandbox must then be
    /// discarded and replaced, as after a real failed restore).
    #[cfg(feature = "test-utils")]
    pub fn fail_next_resets(&self, n: usize) {
        self.shared
            .fail_resets
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// A consistent copy of the counters.
    pub fn metrics(&self) -> PoolMetrics {
        let st = self.shared.lock();
        PoolMetrics {
            idle: st.idle.len(),
            busy: st.busy,
            in_flight: st.jobs.len() + st.running,
            ..st.metrics
        }
    }

    /// Kills idle sandboxes, drops queued work and joins the pool threads (see
    /// the type's notes for borrowed sandboxes). Later `acquire`s fail with
    /// [`PoolError::Closed`]. Idempotent.
    pub fn close(&self) {
        let mut doomed = Vec::new();
        {
            let mut st = self.shared.lock();
            if !st.closed {
                st.closed = true;
                doomed.extend(st.idle.drain(..));
                for job in std::mem::take(&mut st.jobs) {
                    match job {
                        Job::Create => st.incoming -= 1,
                        Job::Reset(sb) => {
                            st.incoming -= 1;
                            doomed.push(sb);
                        }
                        Job::Discard(sb) => doomed.push(sb),
                    }
                }
                st.metrics.discarded += doomed.len() as u64;
                st.failures.clear();
            }
        }
        self.shared.work.notify_all();
        self.shared.ready.notify_all();
        // Kill them all first, so their VMs stop together; then free them.
        for sb in &doomed {
            sb.kill();
        }
        drop(doomed);
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for SandboxPool {
    fn drop(&mut self) {
        self.close();
    }
}

/// A borrowed clean sandbox: derefs to [`Sandbox`]; goes back to its pool when
/// dropped (or by [`release`](Self::release)) and is reset there in the background.
pub struct PooledSandbox {
    sb: Option<Arc<Sandbox>>,
    pool: Arc<Shared>,
}

impl std::fmt::Debug for PooledSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledSandbox")
            .field("kind", &self.sandbox().kind())
            .finish_non_exhaustive()
    }
}

impl PooledSandbox {
    fn sandbox(&self) -> &Sandbox {
        // Only `give_back` takes it, and nothing runs after that but Drop.
        match &self.sb {
            Some(sb) => sb,
            None => unreachable!("a PooledSandbox is used after it was given back"),
        }
    }

    /// Gives the sandbox back to be reset and reused (what dropping does).
    pub fn release(mut self) {
        self.give_back(false);
    }

    /// Gives the sandbox back to be killed, not reused (e.g. it was left in a
    /// state a reset would not undo, such as changed agent limits or written disks).
    pub fn discard(mut self) {
        self.give_back(true);
    }

    /// A shared handle to the sandbox, for handing it to code that wants an
    /// `Arc` (the C and Python faces). A clone still held when the sandbox is
    /// given back makes the pool kill it rather than reuse it, so a stale
    /// handle can never reach the next borrower's sandbox.
    pub fn shared(&self) -> Arc<Sandbox> {
        match &self.sb {
            Some(sb) => sb.clone(),
            None => unreachable!("a PooledSandbox is used after it was given back"),
        }
    }

    /// The prepared module this sandbox is ready to run, if its pool has a
    /// template source: `sb.template().unwrap().run(&sb, ...)`.
    pub fn template(&self) -> Option<&WasmTemplate> {
        self.pool.source.template()
    }

    /// Whether this sandbox was acquired from `pool`.
    pub fn belongs_to(&self, pool: &SandboxPool) -> bool {
        Arc::ptr_eq(&self.pool, &pool.shared)
    }

    fn give_back(&mut self, discard: bool) {
        if let Some(sb) = self.sb.take() {
            self.pool.release(sb, discard);
        }
    }
}

impl Deref for PooledSandbox {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        self.sandbox()
    }
}

impl Drop for PooledSandbox {
    fn drop(&mut self) {
        self.give_back(false);
    }
}
