//! Warm pools: clean sandboxes handed out at once instead of booted on demand.
//!
//! A pool owns every sandbox it made. Borrowers get a [`PooledSandbox`]; when it
//! comes back (drop, [`PooledSandbox::release`]) a pool thread resets it in the
//! background, so neither the borrower nor the next acquirer pays for the reset.
//! How a sandbox is made and reset is the [`PoolSource`]'s business; the pool
//! only counts, queues and waits. Everything a pool does is bounded: at most
//! `max_size` sandboxes exist at once, at most `threads` resets or boots run at
//! once, and `acquire` waits at most its timeout.

mod config;
mod error;
mod metrics;
#[allow(clippy::module_inception)]
mod pool;
mod worker;

pub use config::{PoolConfig, PoolSource};
pub use error::PoolError;
pub use metrics::PoolMetrics;
pub use pool::{PooledSandbox, SandboxPool};
