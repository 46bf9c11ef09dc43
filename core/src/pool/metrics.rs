//! The pool's counters: kept under the pool's lock, copied out on demand, so one
//! snapshot of them always adds up (`created - discarded = idle + busy + in
//! flight`, `acquired - released = busy`).

use std::time::Duration;

/// A consistent copy of a pool's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolMetrics {
    /// Sandboxes made (first fills, refills, replacements).
    pub created: u64,
    /// Sandboxes that could not be made.
    pub create_failures: u64,
    /// Successful `acquire` calls.
    pub acquired: u64,
    /// Sandboxes given back (release, drop or discard).
    pub released: u64,
    /// Released sandboxes made clean again (restored in place, or replaced by a
    /// fresh one for a config source).
    pub resets: u64,
    /// Resets that failed (the sandbox was then discarded and replaced).
    pub reset_failures: u64,
    /// Sandboxes thrown away: stopped or killed while borrowed, discarded by the
    /// borrower, failed a reset, died while idle, or closed with the pool.
    pub discarded: u64,
    /// `acquire` calls that timed out.
    pub acquire_timeouts: u64,
    /// Clean sandboxes waiting to be acquired.
    pub idle: usize,
    /// Sandboxes borrowed now.
    pub busy: usize,
    /// Sandboxes being made, reset or thrown away by the pool threads (queued or running).
    pub in_flight: usize,
    /// Time spent waiting in successful `acquire` calls, summed.
    pub acquire_wait_total: Duration,
    /// The longest wait of a successful `acquire`.
    pub acquire_wait_max: Duration,
}

impl PoolMetrics {
    pub(crate) fn record_wait(&mut self, waited: Duration) {
        self.acquired += 1;
        self.acquire_wait_total += waited;
        self.acquire_wait_max = self.acquire_wait_max.max(waited);
    }
}
