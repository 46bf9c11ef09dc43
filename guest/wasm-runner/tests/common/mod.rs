//! Shared helpers: load the WAT workloads from core/tests/wasm/ and run them.

#![allow(dead_code)]

use kvmsandbox_wasm_runner::{run_with_stats, Outcome, RunError, RunRequest, RunStats, Stream};
use std::path::PathBuf;

/// core/tests/wasm/, where the workloads live (shared with host-side tests).
pub fn workloads_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../core/tests/wasm")
}

/// Compiles core/tests/wasm/`name`.wat to wasm bytes.
pub fn wat(name: &str) -> Vec<u8> {
    let path = workloads_dir().join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// What a run produced.
pub struct Ran {
    pub result: Result<Outcome, RunError>,
    pub stats: RunStats,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// How many times the output callback was called.
    pub writes: usize,
}

/// Inputs with defaults: argv ["prog"], no env, no stdin, no limits.
pub struct Inputs<'a> {
    pub args: &'a [&'a [u8]],
    pub env: &'a [&'a [u8]],
    pub stdin: &'a [u8],
    pub fuel: Option<u64>,
    pub max_memory_bytes: Option<u64>,
}

impl Default for Inputs<'_> {
    fn default() -> Self {
        Inputs {
            args: &[b"prog"],
            env: &[],
            stdin: b"",
            fuel: None,
            max_memory_bytes: None,
        }
    }
}

pub fn run_bytes(module: &[u8], inputs: Inputs) -> Ran {
    let clock = || 1_700_000_000_000_000_000u64;
    let req = RunRequest {
        module,
        args: inputs.args,
        env: inputs.env,
        stdin: inputs.stdin,
        fuel: inputs.fuel,
        max_memory_bytes: inputs.max_memory_bytes,
        random_seed: [42; 32],
        clock: &clock,
        clock_resolution_ns: Some(1_000),
    };
    let (mut stdout, mut stderr, mut writes) = (Vec::new(), Vec::new(), 0);
    let mut output = |stream: Stream, bytes: &[u8]| {
        writes += 1;
        match stream {
            Stream::Stdout => stdout.extend_from_slice(bytes),
            Stream::Stderr => stderr.extend_from_slice(bytes),
        }
    };
    let result = run_with_stats(&req, &mut output);
    let (result, stats) = match result {
        Ok((outcome, stats)) => (Ok(outcome), stats),
        Err(error) => (Err(error), RunStats::default()),
    };
    Ran {
        result,
        stats,
        stdout,
        stderr,
        writes,
    }
}

pub fn run_wat(name: &str, inputs: Inputs) -> Ran {
    run_bytes(&wat(name), inputs)
}

/// Asserts the run ended in a trap whose message contains `needle`.
pub fn assert_trap(ran: &Ran, needle: &str) {
    match &ran.result {
        Ok(Outcome::Trap(message)) => assert!(
            message.contains(needle),
            "trap message {message:?} lacks {needle:?}"
        ),
        other => panic!("expected a trap containing {needle:?}, got {other:?}"),
    }
}
