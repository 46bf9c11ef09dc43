//! Test builds only (`test-utils`): make one step of `Vm::start` fail on purpose,
//! so tests can check that every failure after a thread started stops and joins
//! what was started. The step is named by the environment variable
//! [`FAIL_START_ENV`], read once per start; release builds compile this to nothing.

use crate::error::{Error, Result};

/// Environment variable naming the step of `Vm::start` to fail: `console` (the
/// console delivery thread), `vcpu<N>` (spawning vCPU thread N), `vcpu-setup` (the
/// vCPU threads' seccomp setup), `event-loop` (the device loop), `wait-ready`
/// (after everything started, before the ready marker).
pub const FAIL_START_ENV: &str = "KVMSB_TEST_FAIL_START";

/// The step to fail in this start, if any.
pub struct FailPoint(#[cfg_attr(not(feature = "test-utils"), allow(dead_code))] Option<String>);

impl FailPoint {
    /// Reads [`FAIL_START_ENV`] (test builds) or fails nothing.
    pub fn from_env() -> FailPoint {
        #[cfg(feature = "test-utils")]
        return FailPoint(std::env::var(FAIL_START_ENV).ok());
        #[cfg(not(feature = "test-utils"))]
        FailPoint(None)
    }

    /// True if `step` is the one to fail.
    pub fn hits(&self, step: &str) -> bool {
        #[cfg(feature = "test-utils")]
        return self.0.as_deref() == Some(step);
        #[cfg(not(feature = "test-utils"))]
        {
            let _ = step;
            false
        }
    }

    /// An injected error at `step` if it is the one to fail.
    pub fn check(&self, step: &str) -> Result<()> {
        if self.hits(step) {
            return Err(Error::Host {
                what: "a Vm::start step (failure injected by KVMSB_TEST_FAIL_START)",
                source: std::io::Error::other(format!("injected failure at step {step:?}")),
            });
        }
        Ok(())
    }
}
