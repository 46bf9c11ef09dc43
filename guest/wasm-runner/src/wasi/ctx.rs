//! Per-run WASI state: what the module may read (args, env, stdin, clock,
//! random) and where its output goes. Lives in the wasmi `Store`'s data, so it
//! is dropped with the store at the end of each run: nothing carries over to
//! the next module.

use super::rng::ChaChaRng;
use crate::Stream;

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
    /// The clock's value when the run started (for the CPU-time clocks).
    pub clock_start: u64,
    /// The last monotonic reading handed out (monotonic never goes back).
    pub last_monotonic: u64,
    /// `random_get`'s generator.
    pub rng: ChaChaRng,
    /// Receives stdout/stderr bytes as the module writes them.
    pub output: &'a mut dyn FnMut(Stream, &[u8]),
}

impl<'a> WasiCtx<'a> {
    /// State for a run with these inputs.
    pub fn new(
        args: &'a [&'a [u8]],
        env: &'a [&'a [u8]],
        stdin: &'a [u8],
        clock: &'a dyn Fn() -> u64,
        random_seed: [u8; 32],
        output: &'a mut dyn FnMut(Stream, &[u8]),
    ) -> Self {
        let clock_start = clock();
        WasiCtx {
            args,
            env,
            stdin,
            stdin_pos: 0,
            clock,
            clock_start,
            last_monotonic: clock_start,
            rng: ChaChaRng::new(random_seed),
            output,
        }
    }
}
