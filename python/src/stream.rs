//! `_EventStream`: output of a running module or command, as a Python iterator.
//!
//! A pump thread drives the core's blocking stream (the WASM output callback or
//! `ProcessHandle::next_event`) and forwards events over a channel; `__next__`
//! waits on that channel with the GIL released (Ctrl-C kills the sandbox, as
//! for every blocking call). Items: `("stdout", bytes)`, `("stderr", bytes)`,
//! then one `("exit", status)` and StopIteration. Abandoning the iterator does
//! not stop the module or command (the pump runs it to its end); `stop()` does:
//! SIGKILL to a command's process group, or killing the sandbox for a module
//! (a running module cannot be interrupted otherwise).

use crate::blocking;
use crate::errors::{agent_to_py, to_py, KvmSandboxError};
use crate::results::{PyExitStatus, PyWasmOutcome};
use kvmsandbox::agent::{
    AgentError, ExecEvent, ExitStatus, ProcessHandle, ProcessKiller, ProcessStdin, Stream,
};
use kvmsandbox::{Error, Sandbox, WasmOutcome, WasmRequest};
use pyo3::exceptions::PyBrokenPipeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::IntoPyObjectExt;
use std::io::Write;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What the pump forwards.
enum Event {
    Output(Stream, Vec<u8>),
    WasmEnd(Result<WasmOutcome, Error>),
    ExecEnd(Result<ExitStatus, AgentError>),
}

enum State {
    /// Events may still come.
    Running(Receiver<Event>),
    /// Another thread is waiting in `__next__`.
    Busy,
    /// The end was delivered.
    Done,
}

/// A running module or command. Iterate it; use `kvmsandbox` wrappers instead.
#[pyclass(module = "kvmsandbox._kvmsandbox", name = "_EventStream", frozen)]
pub struct EventStream {
    state: Mutex<State>,
    stdin: Mutex<Option<ProcessStdin>>,
    pid: Option<u32>,
    sandbox: Arc<Sandbox>,
    /// A command's signaller; `None` for a module.
    killer: Option<ProcessKiller>,
}

fn spawn_pump(f: impl FnOnce() + Send + 'static) -> PyResult<()> {
    std::thread::Builder::new()
        .name("kvmsandbox-py-pump".into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| KvmSandboxError::new_err(format!("cannot start a stream thread: {e}")))
}

impl EventStream {
    /// Runs `req` on a pump thread.
    pub fn wasm(
        sandbox: Arc<Sandbox>,
        req: WasmRequest,
        wall_timeout: Option<Duration>,
    ) -> PyResult<Self> {
        let (tx, rx) = mpsc::channel();
        let sb = sandbox.clone();
        spawn_pump(move || {
            let out = tx.clone();
            let r = sb.run_wasm_streaming(&req, wall_timeout, move |s, d| {
                let _ = out.send(Event::Output(s, d.to_vec()));
            });
            let _ = tx.send(Event::WasmEnd(r));
        })?;
        Ok(Self::new(sandbox, rx, None, None, None))
    }

    /// Pumps the events of a started command.
    pub fn process(sandbox: Arc<Sandbox>, mut handle: ProcessHandle) -> PyResult<Self> {
        let (tx, rx) = mpsc::channel::<Event>();
        let stdin = handle.take_stdin();
        let pid = handle.pid();
        let killer = handle.killer();
        spawn_pump(move || pump_process(handle, tx))?;
        Ok(Self::new(sandbox, rx, stdin, Some(pid), Some(killer)))
    }

    fn new(
        sandbox: Arc<Sandbox>,
        rx: Receiver<Event>,
        stdin: Option<ProcessStdin>,
        pid: Option<u32>,
        killer: Option<ProcessKiller>,
    ) -> Self {
        EventStream {
            state: Mutex::new(State::Running(rx)),
            stdin: Mutex::new(stdin),
            pid,
            sandbox,
            killer,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stdin(&self) -> MutexGuard<'_, Option<ProcessStdin>> {
        self.stdin.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn pump_process(mut handle: ProcessHandle, tx: Sender<Event>) {
    loop {
        match handle.next_event() {
            Ok(ExecEvent::Output(s, d)) => {
                if tx.send(Event::Output(s, d)).is_err() {
                    // Nobody listens; keep draining so the command is not blocked on output.
                    continue;
                }
            }
            Ok(ExecEvent::Exit(st)) => {
                let _ = tx.send(Event::ExecEnd(Ok(st)));
                return;
            }
            Err(e) => {
                let _ = tx.send(Event::ExecEnd(Err(e)));
                return;
            }
            // Events newer than these bindings: nothing to forward.
            Ok(_) => {}
        }
    }
}

#[pymethods]
impl EventStream {
    /// The guest pid of a command (None for a WASM module).
    #[getter]
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next `(kind, payload)` item; raises the mapped exception if the run failed.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let taken = std::mem::replace(&mut *self.state(), State::Busy);
        let mut rx = match taken {
            State::Running(rx) => rx,
            State::Done => {
                *self.state() = State::Done;
                return Ok(None);
            }
            State::Busy => {
                return Err(KvmSandboxError::new_err(
                    "this stream is being read by another thread",
                ))
            }
        };
        let sb = self.sandbox.clone();
        let ev = match blocking::wait(py, &mut rx, move || sb.kill()) {
            Ok(ev) => ev,
            Err(e) => {
                *self.state() = State::Done;
                return Err(e);
            }
        };
        let item = match ev {
            Event::Output(s, d) => {
                *self.state() = State::Running(rx);
                let kind = match s {
                    Stream::Stdout => "stdout",
                    // Streams newer than these bindings arrive as stderr.
                    _ => "stderr",
                };
                return Ok(Some((kind, PyBytes::new(py, &d)).into_py_any(py)?));
            }
            Event::WasmEnd(r) => r
                .map_err(|e| to_py(py, e))
                .and_then(|o| ("exit", Py::new(py, PyWasmOutcome::from(o))?).into_py_any(py)),
            Event::ExecEnd(r) => r
                .map_err(|e| agent_to_py(py, e))
                .and_then(|st| ("exit", Py::new(py, PyExitStatus::from(st))?).into_py_any(py)),
        };
        *self.state() = State::Done;
        self.stdin().take();
        item.map(Some)
    }

    /// Sends bytes to the command's stdin.
    fn write_stdin(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let mut guard = self.stdin();
        let w = guard
            .as_mut()
            .ok_or_else(|| PyBrokenPipeError::new_err("stdin is closed (or was given up front)"))?;
        py.detach(|| w.write_all(data))
            .map_err(|e| PyBrokenPipeError::new_err(e.to_string()))
    }

    /// Stops what still runs: SIGKILL to a command's process group (its exit
    /// is still delivered), or kills the sandbox for a module. Idempotent; a
    /// no-op once the exit was delivered.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        if matches!(*self.state(), State::Done) {
            return Ok(());
        }
        match &self.killer {
            Some(k) => {
                let k = k.clone();
                match py.detach(move || k.kill(9)) {
                    // The command ended and its connection went with it: nothing to stop.
                    Ok(()) | Err(AgentError::Io { .. } | AgentError::Disconnected { .. }) => {}
                    Err(e) => return Err(agent_to_py(py, e)),
                }
            }
            None => self.sandbox.kill(),
        }
        Ok(())
    }

    /// Closes the command's stdin (EOF). Idempotent.
    fn close_stdin(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(mut w) = self.stdin().take() {
            w.close().map_err(|e| agent_to_py(py, e))?;
        }
        Ok(())
    }
}
