//! Our WASI preview 1 subset (module `wasi_snapshot_preview1`), written here
//! rather than taken from `wasmi_wasi`/`wasi-common`, which need std and a real
//! file system. Split four ways: `abi` (pure pointer/length decoding, fuzzable),
//! `funcs` (the semantics over a memory slice), `ctx` (per-run state), `link`
//! (wasmi glue), plus `poll` for `poll_oneoff`, `rng` for `random_get` and
//! `fs` for the preopened directories and the file system calls.

pub mod abi;
pub mod ctx;
pub mod fs;
pub mod funcs;
pub mod link;
pub mod poll;
pub mod rng;
