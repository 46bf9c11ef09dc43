//! Turning wasmi's errors into how a run ended.
//!
//! wasmi reports every abnormal end of execution as an `Error`: a trap code
//! (including running out of fuel), the `i32_exit` host trap that our
//! `proc_exit` raises, or some other failure. This is the only place that
//! looks inside them.

use alloc::format;
use wasmi::TrapCode;

use crate::limits::Refusal;
use crate::wasi::ctx::Stop;
use crate::Outcome;

/// How an error raised while running wasm code ends the run. `refused` is
/// the memory request the cap turned down, if any: a trap after one is
/// reported as `MemoryLimit`, since running out of memory is its likely cause.
pub fn from_execution(error: &wasmi::Error, refused: Option<Refusal>) -> Outcome {
    if let Some(code) = error.i32_exit_status() {
        return Outcome::Exited(code);
    }
    match error.downcast_ref::<Stop>() {
        Some(Stop::OutOfFuel) => return Outcome::OutOfFuel,
        Some(Stop::NoClock) => return Outcome::NoClock,
        Some(Stop::Interrupted) => return Outcome::Interrupted,
        None => {}
    }
    if error.as_trap_code() == Some(TrapCode::OutOfFuel) {
        return Outcome::OutOfFuel;
    }
    if let Some(Refusal { requested, limit }) = refused {
        return Outcome::MemoryLimit { requested, limit };
    }
    Outcome::Trap(format!("{error}"))
}

/// Whether an instantiation error is really the end of a run (the module's
/// `start` function trapped, exited or ran out of fuel, or the cap refused
/// its initial memory) rather than a module we cannot instantiate. An exit
/// is an exit even after a refused `memory.grow`.
pub fn from_instantiation(error: &wasmi::Error, refused: Option<Refusal>) -> Option<Outcome> {
    let ended = error.i32_exit_status().is_some()
        || error.as_trap_code().is_some()
        || error.downcast_ref::<Stop>().is_some();
    if ended {
        return Some(from_execution(error, refused));
    }
    if let Some(Refusal { requested, limit }) = refused {
        return Some(Outcome::MemoryLimit { requested, limit });
    }
    None
}
