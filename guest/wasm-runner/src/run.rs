//! One run: load, link, instantiate and call `_start`, under the request's
//! fuel and memory caps.
//!
//! Everything (engine, store, linker) is built for the run and dropped at
//! its end, so a trap or exit in one module leaves nothing behind for the
//! next: there is no global state in the runner. A [`Prepared`] module keeps
//! its engine and compiled code, and may hold one instance made ahead of time
//! ([`Prepared::instantiate_ahead`]) that the next run uses up; every other
//! run gets a new store and instance, so one run's writes are never seen by
//! the next. An embedder that snapshots its memory right after instantiating
//! ahead (the micro guest's templates) gets that unused instance back with
//! every restore, and its runs skip instantiation entirely.
//!
//! Fuel metering is always on, metered run or not: `_start` runs in slices of
//! [`CHECK_IN_FUEL`], and between slices the runner flushes output and asks
//! the host whether to go on ([`RunHost::keep_going`]). That is what lets the
//! micro guest keep serving its event loop (Shutdown, disconnects) while a
//! module that never calls out loops for ever. A request's fuel budget is the
//! store's fuel plus a reserve the runner loads a slice at a time.

use alloc::format;
use alloc::vec::Vec;
use wasmi::errors::{ErrorKind, InstantiationError};
use wasmi::{
    CompilationMode, Config, CustomFuelCosts, Engine, ExternType, Module, Store, TypedFunc,
    TypedResumableCall,
};

use crate::limits::MemoryCap;
use crate::outcome;
use crate::state::StoreData;
use crate::wasi::ctx::WasiCtx;
use crate::wasi::fs::{DirOutput, Dirs, Fs};
use crate::wasi::link;
use crate::wasm_sections;
use crate::{CallInputs, Outcome, RunError, RunHost, RunRequest, RunStats};

/// Fuel per slice of `_start` between two check-ins (~0.1-0.2 s in the
/// micro guest under emulation; far less on real hardware).
pub const CHECK_IN_FUEL: u64 = 50_000;
/// Most fuel a module's `start` function (run during instantiation, which
/// cannot be resumed, so no check-in happens) may use, metered or not.
pub const START_FUEL: u64 = 5_000_000;

/// Runs `req.module`'s `_start`, streaming its stdout/stderr to `host` as
/// they are written.
pub fn run(req: &RunRequest, host: &mut dyn RunHost) -> Result<Outcome, RunError> {
    run_with_stats(req, host).map(|(outcome, _)| outcome)
}

/// Like [`run`], also reporting measurements of the run.
pub fn run_with_stats(
    req: &RunRequest,
    host: &mut dyn RunHost,
) -> Result<(Outcome, RunStats), RunError> {
    run_with_dirs(req, &Dirs::default(), host).map(|(outcome, stats, _)| (outcome, stats))
}

/// Like [`run_with_stats`], with `dirs` preopened (fds 3, 4, ...); also
/// returns the writable directories' contents after the run.
pub fn run_with_dirs(
    req: &RunRequest,
    dirs: &Dirs,
    host: &mut dyn RunHost,
) -> Result<(Outcome, RunStats, Vec<DirOutput>), RunError> {
    let engine = Engine::new(&config(CompilationMode::Lazy));
    let module = Module::new(&engine, req.module)
        .map_err(|error| RunError::InvalidModule(format!("{error}")))?;
    run_module(&engine, &module, &req.inputs(), dirs, host)
}

/// A module validated, compiled and checked for linking once, to be run many
/// times ([`Prepared::run`]). It owns its engine, so dropping it frees all
/// its compiled code.
pub struct Prepared {
    engine: Engine,
    module: Module,
    /// Whether the module has a `start` function (run at instantiation).
    has_start: bool,
    /// An instance no run has touched yet, if one was made ahead.
    ready: Option<Ready>,
}

/// A module instantiated ahead of its run: its store's WASI state is a
/// placeholder (no inputs, output discarded) until a run puts its own in.
struct Ready {
    store: Store<StoreData<'static>>,
    start: TypedFunc<(), ()>,
}

impl Prepared {
    /// Validates and compiles `module` (eagerly: a later run translates
    /// nothing), and checks that its imports link and that it exports a
    /// `_start: () -> ()`: what can fail before running fails here.
    pub fn new(module: &[u8]) -> Result<Prepared, RunError> {
        let engine = Engine::new(&config(CompilationMode::Eager));
        let bytes = module;
        let module = Module::new(&engine, bytes)
            .map_err(|error| RunError::InvalidModule(format!("{error}")))?;
        link::linker_for(&module, &[]).map_err(|error| RunError::Link(format!("{error}")))?;
        match module.get_export("_start") {
            Some(ExternType::Func(ty)) if ty.params().is_empty() && ty.results().is_empty() => {}
            Some(other) => {
                return Err(RunError::BadEntry(format!(
                    "_start is {other:?}, not a () -> () function"
                )))
            }
            None => return Err(RunError::MissingEntry),
        }
        Ok(Prepared {
            engine,
            module,
            has_start: wasm_sections::has_start(bytes),
            ready: None,
        })
    }

    /// Instantiates the module now, under a `max_memory_bytes` cap, so that the
    /// next [`run`](Self::run) only calls `_start`. Returns whether it did: a
    /// module with a `start` function is not (that function must run with a
    /// run's inputs and output), nor one whose instantiation fails (each run
    /// then instantiates afresh and reports why).
    pub fn instantiate_ahead(&mut self, max_memory_bytes: Option<u64>) -> bool {
        self.ready = None;
        if self.has_start {
            return false;
        }
        let Ok(linker) = link::linker_for(&self.module, &[]) else {
            return false;
        };
        let data = StoreData {
            wasi: WasiCtx::placeholder(),
            cap: MemoryCap::new(max_memory_bytes),
            reserve: None,
        };
        let mut store = Store::new(&self.engine, data);
        store.limiter(|data| &mut data.cap);
        if load_fuel(&mut store, START_FUEL).is_err() {
            return false;
        }
        let Ok(instance) = linker.instantiate_and_start(&mut store, &self.module) else {
            return false;
        };
        let Some(start) = instance
            .get_func(&store, "_start")
            .and_then(|f| f.typed::<(), ()>(&store).ok())
        else {
            return false;
        };
        if store.set_fuel(0).is_err() {
            return false;
        }
        self.ready = Some(Ready { store, start });
        true
    }

    /// Whether an instance made ahead waits for the next run.
    pub fn is_instantiated(&self) -> bool {
        self.ready.is_some()
    }

    /// Runs `_start` with `inputs`: in the instance made ahead if there is one
    /// (and the run declares no host functions and its memory cap holds what
    /// that instance already uses), which the run uses up; otherwise in a new
    /// instance. Runs never see each other's state, used twice or not.
    pub fn run(
        &mut self,
        inputs: &CallInputs,
        host: &mut dyn RunHost,
    ) -> Result<(Outcome, RunStats), RunError> {
        if let Some(mut ready) = self.ready.take() {
            let fits = ready
                .store
                .data_mut()
                .cap
                .set_limit(inputs.max_memory_bytes);
            if fits && host.host_functions().is_empty() {
                return run_ready(ready, inputs, host);
            }
        }
        run_module(&self.engine, &self.module, inputs, &Dirs::default(), host)
            .map(|(outcome, stats, _)| (outcome, stats))
    }
}

/// Puts one run's inputs into an instance made ahead and runs its `_start`.
#[allow(unsafe_code)]
fn run_ready(
    mut ready: Ready,
    req: &CallInputs,
    host: &mut dyn RunHost,
) -> Result<(Outcome, RunStats), RunError> {
    let wasi = call_ctx(req, &Dirs::default(), host)?;
    // SAFETY: only the lifetime changes (same type, same layout). The store
    // that holds these borrows of `req` and `host` is `ready.store`, a value
    // owned by this function and consumed by `run_start` below, which drops it
    // before returning; nothing taken out of the store (outcome, stats,
    // directory contents) borrows from it. So no borrow is used after this
    // call returns, and `req` and `host` outlive the call.
    let wasi = unsafe { core::mem::transmute::<WasiCtx<'_>, WasiCtx<'static>>(wasi) };
    let data = ready.store.data_mut();
    data.wasi = wasi;
    data.reserve = req.fuel;
    run_start(ready.store, ready.start, req).map(|(outcome, stats, _)| (outcome, stats))
}

/// The engine configuration every run uses (fuel always on), compiling in `mode`.
fn config(mode: CompilationMode) -> Config {
    let mut config = Config::default();
    config.consume_fuel(true);
    config.compilation_mode(mode);
    // Lazy translation would charge fuel for compiling a function on first
    // call, and wasmi cannot resume a call that runs out of fuel there: the
    // run would fail in the middle of a slice. Compiling is bounded by the
    // module's size (which the guest caps) and happens once per function, so
    // it is left out of the fuel.
    config.fuel_cost(CustomFuelCosts {
        bytes_copied_per_fuel: 64,
        fuel_per_bytes_translated: 0,
        fuel_per_bytes_validated: 0,
    });
    config
}

/// The WASI state of one run with `req`'s inputs and `dirs` preopened.
fn call_ctx<'a>(
    req: &CallInputs<'a>,
    dirs: &Dirs,
    host: &'a mut dyn RunHost,
) -> Result<WasiCtx<'a>, RunError> {
    let fs = Fs::load(dirs).map_err(|error| RunError::Preopen(format!("{error}")))?;
    let mut wasi = WasiCtx::new(
        req.args,
        req.env,
        req.stdin,
        req.clock,
        req.random_seed,
        host,
    );
    wasi.clock_resolution_ns = req.clock_resolution_ns;
    wasi.fs = fs;
    Ok(wasi)
}

/// Links, instantiates and runs a compiled `module` with `req`'s inputs.
fn run_module(
    engine: &Engine,
    module: &Module,
    req: &CallInputs,
    dirs: &Dirs,
    host: &mut dyn RunHost,
) -> Result<(Outcome, RunStats, Vec<DirOutput>), RunError> {
    let linker = link::linker_for(module, host.host_functions())
        .map_err(|error| RunError::Link(format!("{error}")))?;
    let data = StoreData {
        wasi: call_ctx(req, dirs, host)?,
        cap: MemoryCap::new(req.max_memory_bytes),
        reserve: req.fuel,
    };
    let mut store = Store::new(engine, data);
    store.limiter(|data| &mut data.cap);

    load_fuel(&mut store, START_FUEL)?;
    let instance = match linker.instantiate_and_start(&mut store, module) {
        Ok(instance) => instance,
        Err(error) => {
            let refused = store.data().cap.refused();
            store.data_mut().wasi.flush();
            return match outcome::from_instantiation(&error, refused) {
                Some(outcome) => Ok((outcome, stats(&store, req), finish(store))),
                None if is_link_error(&error) => Err(RunError::Link(format!("{error}"))),
                None => Err(RunError::Instantiate(format!("{error}"))),
            };
        }
    };
    let start = instance
        .get_func(&store, "_start")
        .ok_or(RunError::MissingEntry)?;
    let start = start
        .typed::<(), ()>(&store)
        .map_err(|error| RunError::BadEntry(format!("{error}")))?;

    // What is left of the start function's allowance goes back to the budget.
    unload_fuel(&mut store)?;
    run_start(store, start, req)
}

/// Fuel the run used so far (`None`: unmetered).
fn stats(store: &Store<StoreData>, req: &CallInputs) -> RunStats {
    RunStats {
        fuel_consumed: req.fuel.map(|fuel| {
            let left = store.get_fuel().unwrap_or(0);
            let reserve = store.data().reserve.unwrap_or(0);
            fuel.saturating_sub(left.saturating_add(reserve))
        }),
    }
}

/// Runs an instance's `start` in slices of [`CHECK_IN_FUEL`] (the store holds
/// no fuel yet; its data holds the run's reserve), then takes the store apart.
fn run_start(
    mut store: Store<StoreData>,
    start: TypedFunc<(), ()>,
    req: &CallInputs,
) -> Result<(Outcome, RunStats, Vec<DirOutput>), RunError> {
    load_fuel(&mut store, CHECK_IN_FUEL)?;
    let mut call = start.call_resumable(&mut store, ());
    let outcome = loop {
        let refused = store.data().cap.refused();
        match call {
            Ok(TypedResumableCall::Finished(())) => break Outcome::Exited(0),
            Ok(TypedResumableCall::HostTrap(trap)) => {
                break outcome::from_execution(trap.host_error(), refused)
            }
            Err(error) => break outcome::from_execution(&error, refused),
            Ok(TypedResumableCall::OutOfFuel(paused)) => {
                let in_store = store.get_fuel().unwrap_or(0);
                let reserve = store.data().reserve.unwrap_or(u64::MAX);
                let needed = paused.required_fuel().saturating_sub(in_store);
                if needed > reserve {
                    // The remainder cannot pay for the next step: all used.
                    store.set_fuel(0).map_err(fuel_error)?;
                    store.data_mut().reserve = Some(0);
                    break Outcome::OutOfFuel;
                }
                let data = store.data_mut();
                data.wasi.flush();
                if !data.wasi.host.keep_going() {
                    break Outcome::Interrupted;
                }
                load_fuel(&mut store, CHECK_IN_FUEL.max(needed))?;
                call = paused.resume(&mut store);
            }
        }
    };
    store.data_mut().wasi.flush();
    let stats = stats(&store, req);
    Ok((outcome, stats, finish(store)))
}

/// The writable directories' contents, out of a finished run's store.
fn finish(store: Store<StoreData>) -> Vec<DirOutput> {
    store.into_data().wasi.fs.finish()
}

fn fuel_error(error: wasmi::Error) -> RunError {
    // Only reachable if metering were off, which `run_with_stats` never does.
    RunError::Instantiate(format!("{error}"))
}

/// Moves up to `amount` fuel from the reserve into the store.
fn load_fuel(store: &mut Store<StoreData>, amount: u64) -> Result<(), RunError> {
    let in_store = store.get_fuel().map_err(fuel_error)?;
    let moved = match store.data_mut().reserve.as_mut() {
        Some(reserve) => {
            let moved = amount.min(*reserve);
            *reserve -= moved;
            moved
        }
        None => amount,
    };
    store
        .set_fuel(in_store.saturating_add(moved))
        .map_err(fuel_error)
}

/// Moves the store's fuel back to the reserve (dropping it when unmetered).
fn unload_fuel(store: &mut Store<StoreData>) -> Result<(), RunError> {
    let in_store = store.get_fuel().map_err(fuel_error)?;
    if let Some(reserve) = store.data_mut().reserve.as_mut() {
        *reserve = reserve.saturating_add(in_store);
    }
    store.set_fuel(0).map_err(fuel_error)
}

/// Whether wasmi refused an import (an import of ours with the wrong type).
fn is_link_error(error: &wasmi::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Linker(_)
            | ErrorKind::Instantiation(
                InstantiationError::FuncTypeMismatch { .. }
                    | InstantiationError::ImportTypeMismatch { .. }
            )
    )
}
