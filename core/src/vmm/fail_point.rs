//! Test builds only (`test-utils`): make one step of `Vm::start` fail on purpose,
//! so tests can check that every failure after a thread started stops and joins
//! what was started. The step is named by the environment variable
//! [`FAIL_START_ENV`], read once per start; builds without the feature never read it.

use crate::error::{Error, Result};

/// Environment variable naming the step of `Vm::start` to fail: `console` (the
/// console delivery thread), `vcpu<N>` (spawning vCPU thread N), `vcpu-setup` (the
/// vCPU threads' seccomp setup), `event-loop` (the device loop), `wait-ready`
/// (after everything started, before the ready marker).
pub const FAIL_START_ENV: &str = "KVMSB_TEST_FAIL_START";

/// The step to fail in this start, if any.
pub struct FailPoint(Option<String>);

impl FailPoint {
    /// Reads [`FAIL_START_ENV`] (test builds) or fails nothing.
    pub fn from_env() -> FailPoint {
        if cfg!(feature = "test-utils") {
            FailPoint(std::env::var(FAIL_START_ENV).ok())
        } else {
            FailPoint(None)
        }
    }

    /// True if `step` is the one to fail.
    pub fn hits(&self, step: &str) -> bool {
        self.0.as_deref() == Some(step)
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
