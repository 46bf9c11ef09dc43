//! The default of every blocking call's timeout, in one place so the Rust, C
//! and Python faces cannot drift apart (docs/timeouts.md is the table of these).
//! `None` means the call has no limit of its own; it still ends by
//! [`AgentLimits::default_deadline`](crate::agent::AgentLimits::default_deadline)
//! if the guest stops answering.

use std::time::Duration;

/// Waiting for each answer of the agent (ping, echo, files, disks, connect, and
/// the start of an exec): a silence this long fails the call with a timeout.
pub const AGENT_ANSWER: Duration = Duration::from_secs(10);
/// Attaching to an agent socket (host agent or a VMM's vsock socket).
pub const ATTACH: Duration = Duration::from_secs(10);
/// How long a command may run before the agent kills it: no limit of its own.
pub const EXEC: Option<Duration> = None;
/// A WASM run's wall-clock limit: no limit of its own.
pub const RUN_WASM: Option<Duration> = None;
/// Starting a micro guest (`VmConfig::start_timeout`).
pub const START_MICRO: Duration = Duration::from_secs(10);
/// Starting a Linux guest (`VmConfig::start_timeout`).
pub const START_LINUX: Duration = Duration::from_secs(180);
