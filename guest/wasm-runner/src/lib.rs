//! The WebAssembly runner the micro guest embeds: load a module, give it our
//! WASI preview 1 subset, run `_start` under fuel and memory caps, stream its
//! output. `#![no_std]` + `alloc`; builds for `x86_64-unknown-none` and for
//! the host (where it is tested).
//!
//! # Why wasmi
//! The guest runs on PVM's instruction emulator (~3 M x86 instructions/s) and
//! dies on SSE, popcnt and cmpxchg16b, so the engine must be pure Rust that
//! compiles soft-float for `x86_64-unknown-none`, with no std. Candidates:
//! - **wasmi 2.0** (chosen): an interpreter (register-based bytecode, lazy
//!   translation), `no_std` + `alloc` with `default-features = false`, and
//!   deterministic **fuel metering** and a **`ResourceLimiter`** built in,
//!   which give us `OutOfFuel` and the memory cap without instrumenting
//!   modules. Floats are plain Rust `f32`/`f64` ops, which this target lowers
//!   to soft-float library calls (checked: no SSE in the objects).
//! - **wasmtime / Pulley**: needs std (threads, signals, mmap), and its
//!   Cranelift JIT produces machine code that would have to be executed from
//!   writable memory under an emulator that rejects SSE; JIT also adds attack
//!   surface we do not need. Pulley (its interpreter) still sits on the
//!   std-based runtime.
//! - **wasm3**: a fast C interpreter; needs a C toolchain, a libc shim for
//!   the bare-metal target and FFI `unsafe`, and has no maintained Rust
//!   bindings for `no_std`.
//! - **wasmer**: std-only, JIT/LLVM backends.
//! - **tinywasm**: `no_std` and pure Rust too, but younger, slower and without
//!   fuel metering.
//!
//! A JIT would not help here anyway: generated code would run through the
//! same emulator, and an interpreter loop is what the emulator runs well.
//!
//! wasmi is configured with `validate` and `portable-dispatch` only: no SIMD
//! (v128 modules are rejected), no `std`, no `wat`, and a loop dispatcher
//! whose native stack use does not depend on the optimisation level (the
//! tail-call dispatcher overflows the stack in unoptimised builds).
//!
//! # Measured (see `examples/speed.rs`, `probe/check.sh`)
//! - Host, release: ~1 G fuel/s (fuel ≈ wasm instructions) on a counted loop;
//!   the x86_64-unknown-none release build, run natively: ~0.5-1 G fuel/s.
//! - ~5.9 x86 instructions per unit of fuel (valgrind), so at PVM's
//!   ~2.7 M instructions/s expect roughly 0.4-0.5 M wasm instructions/s in
//!   the micro guest: size fuel budgets accordingly.
//! - Linked into an x86_64-unknown-none binary (opt-level "s", LTO):
//!   ~650 KiB .text + ~170 KiB .rodata. Runs in a 32 KiB native stack.

#![no_std]
// One exception, allowed where it stands: `run.rs`'s `run_ready` hands a run's
// borrowed inputs to an instance made before them (a lifetime extension whose
// soundness is argued there).
#![deny(unsafe_code)]

extern crate alloc;

mod error;
pub mod host_fn;
mod limits;
mod outcome;
mod request;
mod run;
mod state;
pub mod wasi;
mod wasm_sections;

pub use error::RunError;
pub use host_fn::{HostCallArgs, HostImport, HostReply, HostType, HostValue};
pub use limits::{MemoryCap, Refusal, MAX_TABLE_ELEMENTS};
pub use request::{CallInputs, Outcome, RunHost, RunRequest, RunStats, Stream};
pub use run::{run, run_with_dirs, run_with_stats, Prepared, CHECK_IN_FUEL, START_FUEL};
pub use wasi::abi::{decode_iovecs, AbiError, Errno};
pub use wasi::ctx::OUTPUT_CHUNK;
pub use wasi::fs::tree::Limits as FsLimits;
pub use wasi::fs::{DirOutput, Dirs, EntryKind, FsEntry, OutEntry, OutKind, Preopen, PreopenError};
