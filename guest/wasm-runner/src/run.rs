//! One run: load, link, instantiate and call `_start`, under the request's
//! fuel and memory caps.
//!
//! Everything (engine, store, linker) is built for the run and dropped at
//! its end, so a trap or exit in one module leaves nothing behind for the
//! next: there is no global state in the runner.

use alloc::format;
use wasmi::errors::{ErrorKind, InstantiationError};
use wasmi::{Config, Engine, Module, Store};

use crate::limits::MemoryCap;
use crate::outcome;
use crate::state::StoreData;
use crate::wasi::ctx::WasiCtx;
use crate::wasi::link;
use crate::{Outcome, RunError, RunRequest, RunStats, Stream};

/// Runs `req.module`'s `_start`, streaming its stdout/stderr to `output` as
/// they are written.
pub fn run(req: &RunRequest, output: &mut dyn FnMut(Stream, &[u8])) -> Result<Outcome, RunError> {
    run_with_stats(req, output).map(|(outcome, _)| outcome)
}

/// Like [`run`], also reporting measurements of the run.
pub fn run_with_stats(
    req: &RunRequest,
    output: &mut dyn FnMut(Stream, &[u8]),
) -> Result<(Outcome, RunStats), RunError> {
    let mut config = Config::default();
    config.consume_fuel(req.fuel.is_some());
    let engine = Engine::new(&config);
    let module = Module::new(&engine, req.module)
        .map_err(|error| RunError::InvalidModule(format!("{error}")))?;
    let linker = link::linker_for(&module).map_err(|error| RunError::Link(format!("{error}")))?;

    let wasi = WasiCtx::new(
        req.args,
        req.env,
        req.stdin,
        req.clock,
        req.random_seed,
        output,
    );
    let data = StoreData {
        wasi,
        cap: MemoryCap::new(req.max_memory_bytes),
    };
    let mut store = Store::new(&engine, data);
    store.limiter(|data| &mut data.cap);
    if let Some(fuel) = req.fuel {
        // Cannot fail: fuel metering is enabled whenever `req.fuel` is set.
        store
            .set_fuel(fuel)
            .map_err(|error| RunError::Instantiate(format!("{error}")))?;
    }
    let stats = |store: &Store<StoreData>| RunStats {
        fuel_consumed: req
            .fuel
            .and_then(|fuel| store.get_fuel().ok().map(|left| fuel.saturating_sub(left))),
    };

    let instance = match linker.instantiate_and_start(&mut store, &module) {
        Ok(instance) => instance,
        Err(error) => {
            let refused = store.data().cap.refused();
            return match outcome::from_instantiation(&error, refused) {
                Some(outcome) => Ok((outcome, stats(&store))),
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
    let outcome = match start.call(&mut store, ()) {
        Ok(()) => Outcome::Exited(0),
        Err(error) => outcome::from_execution(&error, store.data().cap.refused()),
    };
    Ok((outcome, stats(&store)))
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
