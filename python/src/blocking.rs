//! Running a blocking call without holding the GIL and without deafening Ctrl-C.
//!
//! The call runs on a short-lived worker thread; the calling thread waits for it
//! in slices of [`SLICE`] with the GIL released, and between slices runs
//! `check_signals()` so Python's signal handlers (KeyboardInterrupt) get a chance.
//! When one raises, `on_interrupt` runs (the sandbox methods kill the sandbox:
//! a guest cannot be interrupted otherwise), the exception propagates at once,
//! and the worker is left to finish on its own: whatever it returns is dropped.
//! Off the main thread `check_signals()` is a no-op, so this is just a wait.

use crate::errors::KvmSandboxError;
use pyo3::prelude::*;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// How often a waiting thread looks at pending signals.
pub const SLICE: Duration = Duration::from_millis(50);

/// Runs `f` on a worker thread; see the module notes.
pub fn run<T, F>(py: Python<'_>, on_interrupt: impl FnOnce(), f: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("kvmsandbox-py".into())
        .spawn(move || {
            // The receiver is gone when the caller was interrupted: nothing to do.
            let _ = tx.send(f());
        })
        .map_err(|e| KvmSandboxError::new_err(format!("cannot start a worker thread: {e}")))?;
    let mut rx = rx;
    wait(py, &mut rx, on_interrupt)
}

/// Waits for one value from `rx` as [`run`] does.
pub fn wait<T: Send>(
    py: Python<'_>,
    rx: &mut Receiver<T>,
    on_interrupt: impl FnOnce(),
) -> PyResult<T> {
    loop {
        // A Receiver is Send but not Sync: hand the GIL-free closure a `&mut`, which is Send.
        let r = &mut *rx;
        match py.detach(move || r.recv_timeout(SLICE)) {
            Ok(v) => return Ok(v),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    on_interrupt();
                    return Err(e);
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(KvmSandboxError::new_err(
                    "the worker thread of a blocking call panicked",
                ));
            }
        }
    }
}
