//! The inputs and results of one run.

use alloc::string::String;

use crate::host_fn::{HostCallArgs, HostImport, HostReply};

/// Everything one run needs. All borrowed: the runner copies nothing it can
/// avoid (the guest is slow and memory is small).
pub struct RunRequest<'a> {
    /// The WebAssembly module's bytes.
    pub module: &'a [u8],
    /// argv, argv[0] included.
    pub args: &'a [&'a [u8]],
    /// Environment strings, each `K=V`.
    pub env: &'a [&'a [u8]],
    /// All of standard input; reads past its end see end of file.
    pub stdin: &'a [u8],
    /// Fuel (≈ wasm instructions) the run may use; `None`: unmetered, which
    /// is also faster.
    pub fuel: Option<u64>,
    /// Cap on all linear memory together, in bytes; `None`: no cap beyond
    /// wasm32's 4 GiB. The guest should always pass one.
    pub max_memory_bytes: Option<u64>,
    /// Seed of `random_get`'s ChaCha20 stream.
    pub random_seed: [u8; 32],
    /// Wall clock: nanoseconds since the Unix epoch.
    pub clock: &'a dyn Fn() -> u64,
    /// How finely `clock` advances, in nanoseconds (what `clock_res_get`
    /// reports). `None`: the guest has no clock that advances, so a module
    /// that reads one ends with [`Outcome::NoClock`] instead of spinning on a
    /// frozen time.
    pub clock_resolution_ns: Option<u64>,
}

/// What a run talks to while it runs: where output goes and whether to go on.
pub trait RunHost {
    /// Receives stdout/stderr bytes, coalesced into chunks of at most
    /// [`OUTPUT_CHUNK`](crate::OUTPUT_CHUNK) bytes (a large single write may
    /// come as one bigger chunk).
    fn output(&mut self, stream: Stream, bytes: &[u8]);

    /// Called between slices of execution (every
    /// [`CHECK_IN_FUEL`](crate::CHECK_IN_FUEL) units of fuel, metered or not);
    /// `false` stops the run with [`Outcome::Interrupted`]. Lets the embedder
    /// serve its event loop while a module computes.
    fn keep_going(&mut self) -> bool {
        true
    }

    /// The host functions modules may import in this run (see
    /// [`host_fn`](crate::host_fn)); none by default.
    fn host_functions(&self) -> &[HostImport] {
        &[]
    }

    /// Calls host function `call.func` (an index into
    /// [`host_functions`](Self::host_functions)); an `Err` traps the module
    /// with that message.
    fn host_call(&mut self, call: &HostCallArgs<'_>) -> Result<HostReply, String> {
        Err(alloc::format!("no host function {}", call.func))
    }
}

impl<F: FnMut(Stream, &[u8])> RunHost for F {
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        self(stream, bytes)
    }
}

/// Which output stream bytes were written to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// fd 1.
    Stdout,
    /// fd 2.
    Stderr,
}

/// How a run that started ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `proc_exit(code)`, or `_start` returned (code 0).
    Exited(i32),
    /// The module trapped (unreachable, out-of-bounds access, division by
    /// zero, stack overflow, ...); the message says which.
    Trap(String),
    /// The fuel ran out.
    OutOfFuel,
    /// The module asked for more linear memory than the cap, then trapped
    /// or could not be instantiated (see `limits.rs`).
    MemoryLimit {
        /// Total bytes it asked to have.
        requested: u64,
        /// The cap.
        limit: u64,
    },
    /// The host's check-in ([`RunHost::keep_going`]) asked to stop.
    Interrupted,
    /// The module read a clock and the guest has none that advances.
    NoClock,
}

/// Measurements of a run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Fuel used (≈ instructions executed), when the run was metered.
    pub fuel_consumed: Option<u64>,
}

/// One call's inputs: a [`RunRequest`] without the module, for running a
/// [`Prepared`](crate::Prepared) one.
pub struct CallInputs<'a> {
    /// argv, argv[0] included.
    pub args: &'a [&'a [u8]],
    /// Environment strings, each `K=V`.
    pub env: &'a [&'a [u8]],
    /// All of standard input.
    pub stdin: &'a [u8],
    /// Fuel the run may use; `None`: unmetered.
    pub fuel: Option<u64>,
    /// Cap on all linear memory together, in bytes.
    pub max_memory_bytes: Option<u64>,
    /// Seed of `random_get`'s ChaCha20 stream.
    pub random_seed: [u8; 32],
    /// Wall clock: nanoseconds since the Unix epoch.
    pub clock: &'a dyn Fn() -> u64,
    /// How finely `clock` advances (see [`RunRequest::clock_resolution_ns`]).
    pub clock_resolution_ns: Option<u64>,
}

impl<'a> RunRequest<'a> {
    /// Everything but the module.
    pub fn inputs(&self) -> CallInputs<'a> {
        CallInputs {
            args: self.args,
            env: self.env,
            stdin: self.stdin,
            fuel: self.fuel,
            max_memory_bytes: self.max_memory_bytes,
            random_seed: self.random_seed,
            clock: self.clock,
            clock_resolution_ns: self.clock_resolution_ns,
        }
    }
}
