//! The agent's WASM runs, on the runner in guest/wasm-runner (wasmi, an
//! interpreter: nothing to JIT under an emulating KVM, fuel metering built in).
//! This module adapts the wire request to the runner and gives it the guest's
//! clock (boot time from the host + rdtsc at KVM's TSC rate) and a fresh random
//! seed per run (the host's seed, stirred with a run counter).
//!
//! Without a TSC rate from the host (`tsc_khz = 0` in the boot info) the rate
//! is calibrated against the PIT (`pit.rs`); if that fails too the guest has no
//! clock that advances: runs are told so, and a module that reads a clock ends with
//! a typed error instead of spinning on a frozen time. The memory cap is taken
//! from what the heap can really give at the start of each run.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use kvmsandbox_proto::bootinfo::BootInfo;
use kvmsandbox_proto::msg::{WasmErrorKind, WasmSpec};
use kvmsandbox_wasm_runner as runner;

/// Whether this build can run modules (announced in Hello's capabilities).
pub const AVAILABLE: bool = true;

/// What a run reports output to and checks in with.
pub use runner::RunHost;
/// Which output stream a chunk belongs to.
pub use runner::Stream as OutStream;

/// `WasmErrorKind::Other` code: the module read a clock the guest does not have.
pub const ERROR_NO_CLOCK: u16 = 100;
/// `WasmErrorKind::Other` code: the run was stopped by Shutdown or a disconnect.
pub const ERROR_INTERRUPTED: u16 = 101;

/// How a run ended.
#[allow(dead_code)] // Unsupported is for builds without a runtime
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmOutcome {
    /// `_start` returned (0) or the module called `proc_exit(code)`.
    Exit(i32),
    /// The module trapped.
    Trap(String),
    /// The fuel limit was reached.
    OutOfFuel,
    /// The module could not run.
    Error(WasmErrorKind, String),
    /// This build has no WASM runtime.
    Unsupported(String),
}

static BOOT_NS: AtomicU64 = AtomicU64::new(0);
static TSC_KHZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
static RUNS: AtomicU64 = AtomicU64::new(0);
static mut SEED: [u8; 32] = [0; 32];

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter (emulated on PVM).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Records what runs need from the boot info; called once by the BSP. Without a
/// TSC rate from the host (or with `force_calibration`, the `clock=calibrate`
/// test switch) the rate is measured against the PIT.
pub fn init(info: &BootInfo, force_calibration: bool) {
    BOOT_NS.store(info.boot_time_ns, Ordering::Relaxed);
    let from_host = if info.size as usize >= core::mem::size_of::<BootInfo>() {
        info.tsc_khz
    } else {
        0
    };
    let khz = if from_host == 0 || force_calibration {
        match crate::pit::calibrate_tsc() {
            Ok(khz) => {
                crate::println!(
                    "clock: TSC calibrated against the PIT: {} kHz (host said {} kHz)",
                    khz,
                    from_host
                );
                khz
            }
            Err(e) => {
                crate::println!("clock: no TSC rate (calibration failed: {})", e);
                0
            }
        }
    } else {
        from_host
    };
    TSC_KHZ.store(khz, Ordering::Relaxed);
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
    // SAFETY: written once here, before the agent (the only reader) starts.
    unsafe { SEED = info.random_seed };
}

/// How finely [`now_ns`] advances: one TSC tick rounded up to a nanosecond,
/// or `None` when there is no TSC rate (the clock would be frozen).
fn resolution_ns() -> Option<u64> {
    match TSC_KHZ.load(Ordering::Relaxed) {
        0 => None,
        khz => Some(1_000_000u64.div_ceil(khz).max(1)),
    }
}

/// Nanoseconds since the Unix epoch.
fn now_ns() -> u64 {
    let khz = TSC_KHZ.load(Ordering::Relaxed);
    let boot = BOOT_NS.load(Ordering::Relaxed);
    if khz == 0 {
        return boot;
    }
    let ticks = rdtsc().wrapping_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    // ticks * 1e6 / khz, without overflow for decades of uptime.
    boot + (ticks / khz) * 1_000_000 + (ticks % khz) * 1_000_000 / khz
}

fn next_seed() -> [u8; 32] {
    // SAFETY: SEED is only written by `init`, before any run.
    let mut seed = unsafe { SEED };
    let n = RUNS.fetch_add(1, Ordering::Relaxed).to_le_bytes();
    for (i, b) in n.iter().enumerate() {
        seed[i] ^= *b;
    }
    seed
}

/// Runs `module` as described by `req`, streaming its stdout/stderr through
/// `output` as it runs.
pub fn run_wasm(req: &WasmSpec, module: &[u8], host: &mut dyn RunHost) -> WasmOutcome {
    let argv0: &[u8] = b"module.wasm";
    let mut args: Vec<&[u8]> = req.args.iter().map(|a| a.as_bytes()).collect();
    if args.is_empty() {
        args.push(argv0);
    }
    let env_strings: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let env: Vec<&[u8]> = env_strings.iter().map(|e| e.as_bytes()).collect();
    // Default memory cap: half of what the heap can give now (a linear memory
    // grows by reallocation, which briefly needs old and new), so a module
    // cannot starve the agent.
    let cap = crate::heap::free_bytes() as u64 / 2;
    let max_memory = Some(req.max_memory_bytes.map_or(cap, |m| m.min(cap)));
    let clock = now_ns;
    let rr = runner::RunRequest {
        module,
        args: &args,
        env: &env,
        stdin: &req.stdin,
        fuel: req.fuel,
        max_memory_bytes: max_memory,
        random_seed: next_seed(),
        clock: &clock,
        clock_resolution_ns: resolution_ns(),
    };
    let result = runner::run(&rr, host);
    crate::stack::report();
    match result {
        Ok(runner::Outcome::Exited(code)) => WasmOutcome::Exit(code),
        Ok(runner::Outcome::Trap(m)) => WasmOutcome::Trap(m),
        Ok(runner::Outcome::OutOfFuel) => WasmOutcome::OutOfFuel,
        Ok(runner::Outcome::MemoryLimit { requested, limit }) => WasmOutcome::Error(
            WasmErrorKind::MemoryLimit,
            format!(
                "module needs {requested} bytes of linear memory and tables, the limit is {limit}"
            ),
        ),
        Ok(runner::Outcome::NoClock) => WasmOutcome::Error(
            WasmErrorKind::Other(ERROR_NO_CLOCK),
            String::from(
                "the module read a clock and this guest has none (no TSC rate from the host)",
            ),
        ),
        Ok(runner::Outcome::Interrupted) => WasmOutcome::Error(
            WasmErrorKind::Other(ERROR_INTERRUPTED),
            String::from("the run was interrupted (shutdown or disconnect)"),
        ),
        Err(runner::RunError::InvalidModule(m)) => {
            WasmOutcome::Error(WasmErrorKind::InvalidModule, m)
        }
        Err(runner::RunError::MissingEntry) => WasmOutcome::Error(
            WasmErrorKind::NoEntryPoint,
            String::from("the module exports no _start function"),
        ),
        Err(runner::RunError::BadEntry(m)) => WasmOutcome::Error(WasmErrorKind::NoEntryPoint, m),
        Err(runner::RunError::Link(m)) => WasmOutcome::Error(WasmErrorKind::MissingImport, m),
        Err(e) => WasmOutcome::Error(WasmErrorKind::Other(0), format!("{e:?}")),
    }
}
