//! Per-run WASI state: what the module may read (args, env, stdin, clock,
//! random) and where its output goes. Lives in the wasmi `Store`'s data, so it
//! is dropped with the store at the end of each run: nothing carries over to
//! the next module.
//!
//! Host functions do work the interpreter's fuel does not see (copying
//! output, generating random bytes), so they charge the [`meter`](WasiCtx::charge)
//! for it before doing it: fuel then bounds output volume and host work too.
//! Output is coalesced here into chunks of at most [`OUTPUT_CHUNK`] bytes, so
//! a module writing one byte per iovec cannot make one frame per byte.

use alloc::vec::Vec;

use super::rng::ChaChaRng;
use crate::{RunHost, Stream};

/// Largest chunk of coalesced output handed to the output callback (writes
/// bigger than this go out whole, without a copy).
pub const OUTPUT_CHUNK: usize = 16 * 1024;

/// Why a host function wants the run to end (checked by `link.rs` after
/// every call, which turns it into a trap).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A host function needed more fuel than the run has left.
    OutOfFuel,
    /// The module read a clock and there is none that advances.
    NoClock,
    /// The embedder said not to go on (while a `poll_oneoff` slept).
    Interrupted,
}

impl core::fmt::Display for Stop {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Stop::OutOfFuel => write!(f, "a host function ran out of fuel"),
            Stop::NoClock => write!(f, "the module read a clock and the guest has none"),
            Stop::Interrupted => write!(f, "the embedder stopped the run"),
        }
    }
}

impl wasmi_core::HostError for Stop {}

/// Everything the WASI host functions need for one run.
pub struct WasiCtx<'a> {
    /// argv, argv[0] included.
    pub args: &'a [&'a [u8]],
    /// Environment as `K=V` strings.
    pub env: &'a [&'a [u8]],
    /// The whole of standard input.
    pub stdin: &'a [u8],
    /// How much of `stdin` has been read.
    pub stdin_pos: usize,
    /// Nanoseconds since the epoch.
    pub clock: &'a dyn Fn() -> u64,
    /// `clock`'s resolution; `None`: no working clock (reading one stops the run).
    pub clock_resolution_ns: Option<u64>,
    /// The clock's value when the run started (for the CPU-time clocks).
    pub clock_start: u64,
    /// The last monotonic reading handed out (monotonic never goes back).
    pub last_monotonic: u64,
    /// `random_get`'s generator.
    pub rng: ChaChaRng,
    /// Receives stdout/stderr bytes (through [`WasiCtx::emit`]) and the
    /// runner's check-ins.
    pub host: &'a mut dyn RunHost,
    /// Fuel host functions may still charge in the current call (set by the
    /// glue before each call; unlimited outside a metered store).
    pub fuel_available: u64,
    /// Fuel charged by host functions since the glue last reset it.
    pub fuel_used: u64,
    /// Set when a host function wants the run to end.
    pub stop: Option<Stop>,
    /// Which of fds 0-2 the module closed.
    pub closed: [bool; 3],
    /// The preopened directories and descriptors 3 and up.
    pub fs: super::fs::Fs,
    pending: Vec<u8>,
    pending_stream: Stream,
}

impl<'a> WasiCtx<'a> {
    /// State for a run with these inputs.
    pub fn new(
        args: &'a [&'a [u8]],
        env: &'a [&'a [u8]],
        stdin: &'a [u8],
        clock: &'a dyn Fn() -> u64,
        random_seed: [u8; 32],
        host: &'a mut dyn RunHost,
    ) -> Self {
        let clock_start = clock();
        WasiCtx {
            args,
            env,
            stdin,
            stdin_pos: 0,
            clock,
            clock_resolution_ns: Some(1_000),
            clock_start,
            last_monotonic: clock_start,
            rng: ChaChaRng::new(random_seed),
            host,
            fuel_available: u64::MAX,
            fuel_used: 0,
            stop: None,
            closed: [false; 3],
            fs: super::fs::Fs::default(),
            pending: Vec::new(),
            pending_stream: Stream::Stdout,
        }
    }

    /// A state with no inputs that discards output: what an instance made
    /// ahead of its run holds until the run puts its own in.
    pub fn placeholder() -> WasiCtx<'static> {
        struct Discard;
        impl RunHost for Discard {
            fn output(&mut self, _: Stream, _: &[u8]) {}
        }
        fn never() -> u64 {
            0
        }
        // A zero-sized value: leaking its box allocates nothing.
        let host: &'static mut Discard = alloc::boxed::Box::leak(alloc::boxed::Box::new(Discard));
        WasiCtx::new(&[], &[], &[], &never, [0; 32], host)
    }

    /// Takes `fuel` from what the current call may use; `false` (and
    /// [`Stop::OutOfFuel`] recorded) if there is not that much left, in which
    /// case the caller must not do the work.
    pub fn charge(&mut self, fuel: u64) -> bool {
        let left = self.fuel_available.saturating_sub(self.fuel_used);
        if fuel > left {
            self.fuel_used = self.fuel_available;
            self.stop = Some(Stop::OutOfFuel);
            return false;
        }
        self.fuel_used += fuel;
        true
    }

    /// Queues `bytes` of output on `stream`, handing whole chunks on.
    pub fn emit(&mut self, stream: Stream, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if stream != self.pending_stream || self.pending.len() + bytes.len() > OUTPUT_CHUNK {
            self.flush();
        }
        self.pending_stream = stream;
        if bytes.len() >= OUTPUT_CHUNK {
            self.host.output(stream, bytes);
            return;
        }
        if self.pending.capacity() == 0 {
            // Reserved once, on first output, and never grown past a chunk.
            self.pending.reserve_exact(OUTPUT_CHUNK);
        }
        self.pending.extend_from_slice(bytes);
    }

    /// Hands queued output on now (at check-ins and at the end of a run).
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.host.output(self.pending_stream, &self.pending);
            self.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn small_writes_coalesce_into_bounded_chunks() {
        let mut chunks: Vec<(Stream, usize)> = Vec::new();
        {
            let mut sink = |s: Stream, b: &[u8]| chunks.push((s, b.len()));
            let clock = || 0;
            let mut ctx = WasiCtx::new(&[], &[], b"", &clock, [0; 32], &mut sink);
            for _ in 0..OUTPUT_CHUNK + 10 {
                ctx.emit(Stream::Stdout, b"x");
            }
            ctx.emit(Stream::Stderr, b"e");
            ctx.emit(Stream::Stderr, &vec![0; OUTPUT_CHUNK * 2]);
            ctx.flush();
        }
        assert_eq!(
            chunks,
            [
                (Stream::Stdout, OUTPUT_CHUNK),
                (Stream::Stdout, 10),
                (Stream::Stderr, 1),
                (Stream::Stderr, OUTPUT_CHUNK * 2)
            ]
        );
    }

    #[test]
    fn charge_refuses_past_what_is_available() {
        let mut sink = |_: Stream, _: &[u8]| {};
        let clock = || 0;
        let mut ctx = WasiCtx::new(&[], &[], b"", &clock, [0; 32], &mut sink);
        ctx.fuel_available = 10;
        assert!(ctx.charge(7));
        assert!(!ctx.charge(4));
        assert_eq!((ctx.fuel_used, ctx.stop), (10, Some(Stop::OutOfFuel)));
    }
}
