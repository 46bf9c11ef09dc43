//! The one meaning of a `timeout_ms` argument in the C API. A plain number of
//! milliseconds can not say "the documented default" or "no limit" without a
//! magic value, so those two are named constants far from any real duration and
//! 0 (a timeout that has always already passed) is rejected instead of guessed at.

use crate::args::invalid;
use crate::boundary::FfiResult;
use std::time::Duration;

/// `timeout_ms` value: use the call's documented default (see docs/timeouts.md).
pub const KVMSB_TIMEOUT_DEFAULT: u64 = 0xFFFF_FFFF_FFFF_FFFF;
/// `timeout_ms` value: no limit of the call's own (the agent's absolute deadline
/// still ends a call whose guest stops answering).
pub const KVMSB_TIMEOUT_NONE: u64 = 0xFFFF_FFFF_FFFF_FFFE;

/// A per-call timeout as C gave it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CallTimeout {
    /// `KVMSB_TIMEOUT_DEFAULT`.
    #[default]
    Default,
    /// `KVMSB_TIMEOUT_NONE`.
    Unlimited,
    /// A real duration.
    After(Duration),
}

impl CallTimeout {
    /// The duration to pass on, given what the call does by default.
    pub fn or(self, default: Option<Duration>) -> Option<Duration> {
        match self {
            CallTimeout::Default => default,
            CallTimeout::Unlimited => None,
            CallTimeout::After(d) => Some(d),
        }
    }
}

/// Reads a `timeout_ms` argument named `name`.
pub fn timeout_arg(ms: u64, name: &str) -> FfiResult<CallTimeout> {
    match ms {
        KVMSB_TIMEOUT_DEFAULT => Ok(CallTimeout::Default),
        KVMSB_TIMEOUT_NONE => Ok(CallTimeout::Unlimited),
        0 => Err(invalid(format!(
            "argument `{name}` is 0 ms: pass KVMSB_TIMEOUT_DEFAULT or KVMSB_TIMEOUT_NONE, or a positive duration"
        ))),
        ms => Ok(CallTimeout::After(Duration::from_millis(ms))),
    }
}

/// A `timeout_ms` argument of a call that waits for one answer at a time (ping,
/// echo, connect, files, disks): how long to wait for each answer. Both
/// KVMSB_TIMEOUT_DEFAULT and KVMSB_TIMEOUT_NONE mean the sandbox's answer
/// timeout, since an answer wait always ends.
pub fn answer_timeout(timeout_ms: u64) -> FfiResult<Option<Duration>> {
    Ok(timeout_arg(timeout_ms, "timeout_ms")?.or(None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::kvmsb_status;

    #[test]
    fn named_values_and_zero() {
        assert_eq!(
            timeout_arg(KVMSB_TIMEOUT_DEFAULT, "t").unwrap(),
            CallTimeout::Default
        );
        assert_eq!(
            timeout_arg(KVMSB_TIMEOUT_NONE, "t").unwrap(),
            CallTimeout::Unlimited
        );
        assert_eq!(
            timeout_arg(1500, "t").unwrap().or(None),
            Some(Duration::from_millis(1500))
        );
        let e = timeout_arg(0, "timeout_ms").unwrap_err();
        assert_eq!(e.status, kvmsb_status::InvalidArgument);
        assert!(e.message.contains("timeout_ms"), "{}", e.message);
        let d = Some(Duration::from_secs(10));
        assert_eq!(CallTimeout::Default.or(d), d);
        assert_eq!(CallTimeout::Unlimited.or(d), None);
    }
}
