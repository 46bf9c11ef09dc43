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
//!
//! A prepared [`Template`]'s runs take their seed from the host's request
//! instead: the guest's own counter would repeat after the host restores the
//! snapshot taken right after `PrepareWasm`. A template also instantiates its
//! module when it is prepared, so that snapshot holds an instance no run has
//! touched: a run after a restore only calls `_start` (the runner uses that
//! instance once; without a restore in between, the next run instantiates
//! afresh).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use kvmsandbox_proto::bootinfo::BootInfo;
use kvmsandbox_proto::msg::{PrepareSpec, RunPreparedSpec, WasmErrorKind, WasmSpec};
use kvmsandbox_wasm_runner as runner;

/// Whether this build can run modules (announced in Hello's capabilities).
pub const AVAILABLE: bool = true;

/// What a run reports output to and checks in with.
pub use runner::RunHost;
/// Which output stream a chunk belongs to.
pub use runner::Stream as OutStream;
/// Host functions: what a run may import and how a call reaches the host.
pub use runner::{HostCallArgs, HostImport, HostReply};

/// `WasmErrorKind::Other` code: the module read a clock the guest does not have.
pub const ERROR_NO_CLOCK: u16 = 100;
/// `WasmErrorKind::Other` code: the run was stopped by Shutdown or a disconnect.
pub const ERROR_INTERRUPTED: u16 = 101;
/// `WasmErrorKind::Other` code: the preopened directories could not be set up.
pub const ERROR_PREOPEN: u16 = 102;

/// Default cap on the preopened directories' tree, in bytes (at most a
/// quarter of the free heap is ever given to it).
const FS_DEFAULT_BYTES: u64 = 64 << 20;
/// Default cap on the tree's inodes.
const FS_DEFAULT_INODES: u64 = 65_536;

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

/// The boot seed, the run counter and the host's entropy for this run (the
/// first two alone repeat after the VM is restored from a snapshot).
fn next_seed(entropy: Option<[u8; 32]>) -> [u8; 32] {
    // SAFETY: SEED is only written by `init`, before any run.
    let mut seed = unsafe { SEED };
    let n = RUNS.fetch_add(1, Ordering::Relaxed).to_le_bytes();
    for (i, b) in n.iter().enumerate() {
        seed[i] ^= *b;
    }
    for (s, e) in seed.iter_mut().zip(entropy.unwrap_or_default()) {
        *s ^= e;
    }
    seed
}

/// Runs the module in `wire` (the module's bytes, then the directories'
/// image) as described by `req`, streaming its stdout/stderr through `host`
/// as it runs. Also returns the image of the writable directories after the
/// run, when `req` has any.
pub fn run_wasm(
    req: &WasmSpec,
    wire: &[u8],
    host: &mut dyn RunHost,
) -> (WasmOutcome, Option<Vec<u8>>) {
    let split = (req.module_len as usize).min(wire.len());
    let (module, image) = wire.split_at(split);
    let (dirs, fs_cap) = match crate::wasm_dirs::preopens(req, image) {
        Ok(dirs) => dirs,
        Err(message) => {
            let outcome = WasmOutcome::Error(WasmErrorKind::Other(ERROR_PREOPEN), message);
            return (outcome, None);
        }
    };
    let preopens = dirs.preopens();
    let fs = runner::Dirs {
        preopens: &preopens,
        limits: fs_cap,
    };
    let call = Call {
        args: &req.args,
        env: &req.env,
        stdin: &req.stdin,
        fuel: req.fuel,
        max_memory_bytes: req.max_memory_bytes,
        seed: next_seed(req.entropy),
        fs_bytes: fs_cap.max_bytes,
    };
    let mut out = Vec::new();
    let outcome = call.run(|i| {
        let rr = runner::RunRequest {
            module,
            args: i.args,
            env: i.env,
            stdin: i.stdin,
            fuel: i.fuel,
            max_memory_bytes: i.max_memory_bytes,
            random_seed: i.random_seed,
            clock: i.clock,
            clock_resolution_ns: i.clock_resolution_ns,
        };
        runner::run_with_dirs(&rr, &fs, host).map(|(outcome, _, dirs_out)| {
            out = dirs_out;
            outcome
        })
    });
    let image = req
        .fs
        .as_ref()
        .filter(|fs| fs.returns_image())
        .map(|fs| crate::wasm_dirs::result_image(fs, &out));
    (outcome, image)
}

/// A module validated and compiled once (`PrepareWasm`), run by `RunPrepared`.
/// Each run instantiates it afresh, so running it twice without the host
/// restoring a snapshot in between is still correct (the host's restore only
/// makes it cheaper by undoing the heap's growth).
pub struct Template {
    /// The id runs must name.
    pub id: u64,
    prepared: runner::Prepared,
    max_memory_bytes: Option<u64>,
}

static TEMPLATES: AtomicU64 = AtomicU64::new(0);

/// Validates and compiles `module` into a template, or says why it cannot run.
pub fn prepare(module: &[u8], spec: &PrepareSpec) -> Result<Template, (WasmErrorKind, String)> {
    let mut prepared = runner::Prepared::new(module).map_err(error_of)?;
    // The instance is made now, so the snapshot the host takes after this
    // reply holds it unused: every run restored from it skips instantiation.
    prepared.instantiate_ahead(Some(memory_cap(spec.max_memory_bytes, 0)));
    Ok(Template {
        id: TEMPLATES.fetch_add(1, Ordering::Relaxed) + 1,
        prepared,
        max_memory_bytes: spec.max_memory_bytes,
    })
}

/// Runs `template`'s `_start` with `req`'s inputs and seed.
pub fn run_prepared(
    template: &mut Template,
    req: &RunPreparedSpec,
    host: &mut dyn RunHost,
) -> WasmOutcome {
    let call = Call {
        args: &req.args,
        env: &req.env,
        stdin: &req.stdin,
        fuel: req.fuel,
        max_memory_bytes: template.max_memory_bytes,
        seed: req.seed,
        fs_bytes: 0,
    };
    call.run(|i| template.prepared.run(i, host).map(|(outcome, _)| outcome))
}

/// One call's inputs as they come off the wire.
struct Call<'a> {
    args: &'a [String],
    env: &'a [(String, String)],
    stdin: &'a [u8],
    fuel: Option<u64>,
    max_memory_bytes: Option<u64>,
    seed: [u8; 32],
    /// Bytes the run's file tree may take (they come out of the heap first).
    fs_bytes: u64,
}

impl Call<'_> {
    /// Puts the inputs in the runner's form, runs `f` on them and turns its
    /// result into the wire's outcome.
    fn run(
        &self,
        f: impl FnOnce(&runner::CallInputs) -> Result<runner::Outcome, runner::RunError>,
    ) -> WasmOutcome {
        let argv0: &[u8] = b"module.wasm";
        let mut args: Vec<&[u8]> = self.args.iter().map(|a| a.as_bytes()).collect();
        if args.is_empty() {
            args.push(argv0);
        }
        let env_strings: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let env: Vec<&[u8]> = env_strings.iter().map(|e| e.as_bytes()).collect();
        let max_memory = Some(memory_cap(self.max_memory_bytes, self.fs_bytes));
        let clock = now_ns;
        let inputs = runner::CallInputs {
            args: &args,
            env: &env,
            stdin: self.stdin,
            fuel: self.fuel,
            max_memory_bytes: max_memory,
            random_seed: self.seed,
            clock: &clock,
            clock_resolution_ns: resolution_ns(),
        };
        let result = f(&inputs);
        crate::stack::report();
        match result {
            Ok(outcome) => outcome_of(outcome),
            Err(e) => {
                let (kind, message) = error_of(e);
                WasmOutcome::Error(kind, message)
            }
        }
    }
}

/// A run's cap on linear memory: `max_memory_bytes`, and at most half of what
/// the heap can give now after `fs_bytes` for its files (a linear memory grows
/// by reallocation, which briefly needs old and new), so a module cannot
/// starve the agent.
fn memory_cap(max_memory_bytes: Option<u64>, fs_bytes: u64) -> u64 {
    let cap = (crate::heap::free_bytes() as u64).saturating_sub(fs_bytes) / 2;
    max_memory_bytes.map_or(cap, |m| m.min(cap))
}

fn outcome_of(outcome: runner::Outcome) -> WasmOutcome {
    match outcome {
        runner::Outcome::Exited(code) => WasmOutcome::Exit(code),
        runner::Outcome::Trap(m) => WasmOutcome::Trap(m),
        runner::Outcome::OutOfFuel => WasmOutcome::OutOfFuel,
        runner::Outcome::MemoryLimit { requested, limit } => WasmOutcome::Error(
            WasmErrorKind::MemoryLimit,
            format!(
                "module needs {requested} bytes of linear memory and tables, the limit is {limit}"
            ),
        ),
        runner::Outcome::NoClock => WasmOutcome::Error(
            WasmErrorKind::Other(ERROR_NO_CLOCK),
            String::from(
                "the module read a clock and this guest has none (no TSC rate from the host)",
            ),
        ),
        runner::Outcome::Interrupted => WasmOutcome::Error(
            WasmErrorKind::Other(ERROR_INTERRUPTED),
            String::from("the run was interrupted (shutdown or disconnect)"),
        ),
    }
}

fn error_of(e: runner::RunError) -> (WasmErrorKind, String) {
    match e {
        runner::RunError::InvalidModule(m) => (WasmErrorKind::InvalidModule, m),
        runner::RunError::MissingEntry => (
            WasmErrorKind::NoEntryPoint,
            String::from("the module exports no _start function"),
        ),
        runner::RunError::BadEntry(m) => (WasmErrorKind::NoEntryPoint, m),
        runner::RunError::Link(m) => (WasmErrorKind::MissingImport, m),
        runner::RunError::Preopen(m) => (WasmErrorKind::Other(ERROR_PREOPEN), m),
        e => (WasmErrorKind::Other(0), format!("{e:?}")),
    }
}

/// The tree's caps for `req`: what it asks for, within a quarter of the
/// free heap.
pub fn fs_limits(req: &WasmSpec) -> runner::FsLimits {
    let quarter = crate::heap::free_bytes() as u64 / 4;
    let fs = req.fs.as_ref();
    runner::FsLimits {
        max_bytes: fs
            .and_then(|fs| fs.max_bytes)
            .unwrap_or(FS_DEFAULT_BYTES)
            .min(quarter),
        max_inodes: fs.and_then(|fs| fs.max_inodes).unwrap_or(FS_DEFAULT_INODES),
    }
}
