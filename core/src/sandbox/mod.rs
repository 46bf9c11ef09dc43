//! The handle users come for: a VM whose agent said hello, and the operations
//! on it. Two guest kinds behind one type (the micro guest runs WASM, Linux runs
//! commands) plus a third backend, an agent running as a host process, so the
//! whole protocol can be exercised where guest user space cannot run.
//!
//! Operations borrow a connection from a small pool, so several threads can use
//! one sandbox at once; a connection that failed is never reused.
//!
//! Once the sandbox stops (`kill`, `shutdown`, the guest exiting or crashing),
//! every stream it opened is shut down — a call blocked in any thread returns at
//! once — and every later call fails at once with the guest's failure or
//! [`Error::Stopped`]. What one call may take from the guest is bounded by
//! [`AgentLimits`].

mod files;
mod isolation;
mod runtime_dir;
mod snapshots;
mod streams;
mod template;
mod timed;

pub use runtime_dir::RuntimeDirError;
pub use template::WasmTemplate;

use crate::agent::host_fn;
use crate::agent::{
    hybrid_handshake, AgentClient, AgentError, AgentLimits, Connector, ExecOutput, ExecRequest,
    ProcessHandle, Stream, WasmOutcome, WasmRequest,
};
use crate::config::{Guest, VmConfig};
use crate::devices::bus::lock;
use crate::error::{Error, Result};
use crate::snapshot::SandboxSnapshot;
use crate::vmm::timings::BootTimings;
use crate::vmm::vm::{Vm, VmExit};
use runtime_dir::RuntimeDir;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use streams::Streams;
pub use timed::Timed;

pub use kvmsandbox_proto::DEFAULT_AGENT_PORT;

/// The micro guest's built-in stream service that echoes bytes back.
pub const ECHO_PORT: u32 = 1025;
/// The micro guest's built-in stream service that discards bytes.
pub const SINK_PORT: u32 = 1026;

/// What a sandbox runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SandboxKind {
    /// The micro guest: WASM, disks, streams; no processes or files.
    Micro,
    /// A Linux guest: processes, files, disks.
    Linux,
    /// The Linux agent running as a host process (development and tests: no isolation).
    HostAgent,
}

impl SandboxKind {
    fn name(self) -> &'static str {
        match self {
            SandboxKind::Micro => "micro guest",
            SandboxKind::Linux => "Linux guest",
            SandboxKind::HostAgent => "host agent",
        }
    }
}

/// A `run_wasm` result with its output collected (at most
/// [`AgentLimits::max_output`] bytes per stream, else [`AgentError::OutputLimit`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmOutput {
    /// How the module ended.
    pub outcome: WasmOutcome,
    /// Everything written to stdout.
    pub stdout: Vec<u8>,
    /// Everything written to stderr.
    pub stderr: Vec<u8>,
    /// The writable preopened directories' contents after the run, in the
    /// request's order (empty when the request had none).
    pub dirs: Vec<crate::agent::WasmDirOutput>,
}

/// Output being collected for a [`WasmOutput`], within [`AgentLimits::max_output`].
struct Collected {
    op: &'static str,
    max: u64,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Collected {
    fn new(op: &'static str, max: u64) -> Self {
        Collected {
            op,
            max,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    fn push(&mut self, s: Stream, d: &[u8]) -> std::result::Result<(), AgentError> {
        let buf = match s {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        if (buf.len() + d.len()) as u64 > self.max {
            return Err(AgentError::OutputLimit {
                op: self.op,
                limit: self.max,
            });
        }
        buf.extend_from_slice(d);
        Ok(())
    }

    fn with(self, outcome: WasmOutcome, dirs: Vec<crate::agent::WasmDirOutput>) -> WasmOutput {
        WasmOutput {
            outcome,
            stdout: self.stdout,
            stderr: self.stderr,
            dirs,
        }
    }
}

/// A running sandbox. `Drop` kills the VM and removes its socket.
pub struct Sandbox {
    kind: SandboxKind,
    vm: Option<Arc<Vm>>,
    connector: Connector,
    pool: Mutex<Vec<AgentClient>>,
    timeout: Duration,
    limits: AgentLimits,
    /// Every stream opened, so stopping can shut them all down.
    streams: Arc<Streams>,
    /// Stops `streams` when the VM stops on its own (guest exit or crash).
    watcher: Option<JoinHandle<()>>,
    vsock_path: Option<PathBuf>,
    runtime_dir: Option<RuntimeDir>,
    /// What a snapshot of this sandbox records (None without a VM).
    shape: Option<crate::snapshot::SnapshotMeta>,
    /// Calls hold it shared; snapshot and restore exclusively (a running call
    /// makes them fail with [`Error::Busy`] instead of waiting).
    quiesce: RwLock<()>,
    /// Per-call isolation: the snapshot every call starts from.
    isolation: Mutex<Option<crate::snapshot::SandboxSnapshot>>,
}

/// Connects to guest `port` through the hybrid socket at `path`, recording the
/// stream in `streams` before waiting on the handshake.
fn connect_tracked(
    path: &Path,
    port: u32,
    timeout: Duration,
    streams: &Streams,
) -> std::io::Result<UnixStream> {
    if streams.is_stopped() {
        return Err(streams::stopped_error());
    }
    let s = UnixStream::connect(path)?;
    streams.track(&s)?;
    hybrid_handshake(s, port, timeout)
}

/// A thread that waits for the VM to stop, then shuts down every stream and
/// removes the socket file `own_socket` (so nothing new connects to a listener
/// nobody serves).
fn spawn_watcher(
    vm: &Arc<Vm>,
    streams: Arc<Streams>,
    own_socket: Option<PathBuf>,
) -> Result<JoinHandle<()>> {
    let vm = vm.clone();
    std::thread::Builder::new()
        .name("kvmsb-sandbox-watch".into())
        .spawn(move || {
            drop(vm.state().wait_until(None, |s| s.stop.is_some()));
            streams.stop();
            // A guest that stopped by itself: join its threads and close the
            // device backends (streams opened by others through the socket, e.g.
            // socat, see EOF now). Idempotent with the caller's own kill.
            vm.kill();
            if let Some(p) = own_socket {
                let _ = std::fs::remove_file(p);
            }
        })
        .map_err(|source| Error::Host {
            what: "sandbox watcher thread",
            source,
        })
}

impl Sandbox {
    /// The micro guest with defaults: ready in milliseconds on hardware KVM.
    pub fn micro() -> Result<Sandbox> {
        Self::start(VmConfig::micro())
    }

    /// Boots `cfg` and waits for its agent's hello. A vsock device is added at a
    /// private socket path unless `cfg` has one.
    pub fn start(mut cfg: VmConfig) -> Result<Sandbox> {
        let kind = kind_of(&cfg);
        if kind == SandboxKind::Linux && cfg.ready_marker.is_none() {
            cfg.ready_marker = Some(LINUX_AGENT_MARKER.to_string());
        }
        let (cfg, runtime, path) = with_vsock(cfg)?;
        let timeout = cfg.start_timeout;
        let shape = snapshots::shape_of(&cfg)?;
        // On failure `runtime` is dropped, which removes the directory.
        let vm = Arc::new(Vm::start(cfg)?);
        let sb = Self::assemble(kind, vm, runtime, path, shape)?;
        // The first hello: bounded by what is left of the start timeout.
        let client = sb
            .new_client(Some(timeout))
            .map_err(|e| sb.agent_error("start", e))?;
        if let Some(vm) = &sb.vm {
            vm.state().mark(|t| &mut t.agent_ready);
        }
        lock(&sb.pool).push(client);
        Ok(sb)
    }

    /// A sandbox around a running `vm` whose vsock socket is `path`; the agent
    /// is connected lazily.
    fn assemble(
        kind: SandboxKind,
        vm: Arc<Vm>,
        runtime: Option<RuntimeDir>,
        path: PathBuf,
        shape: crate::snapshot::SnapshotMeta,
    ) -> Result<Sandbox> {
        let streams = Arc::new(Streams::default());
        let own_socket = runtime.as_ref().map(|_| path.clone());
        let watcher = match spawn_watcher(&vm, streams.clone(), own_socket) {
            Ok(w) => w,
            Err(e) => {
                vm.kill();
                return Err(e);
            }
        };
        let (p2, s2) = (path.clone(), streams.clone());
        let agent_timeout = crate::timeouts::AGENT_ANSWER;
        let connector: Connector =
            Arc::new(move || connect_tracked(&p2, DEFAULT_AGENT_PORT, agent_timeout, &s2));
        Ok(Sandbox {
            kind,
            vm: Some(vm),
            connector,
            pool: Mutex::new(Vec::new()),
            timeout: agent_timeout,
            limits: AgentLimits::default(),
            streams,
            watcher: Some(watcher),
            vsock_path: Some(path),
            runtime_dir: runtime,
            shape: Some(shape),
            quiesce: RwLock::new(()),
            isolation: Mutex::new(None),
        })
    }

    /// Drives an agent that runs as a host process on the Unix socket `path`
    /// (`kvmsandbox-agent --unix PATH`). No VM, no isolation: for developing and
    /// testing against the Linux agent where guest user space cannot run.
    pub fn attach_host_agent(path: impl Into<PathBuf>, timeout: Duration) -> Result<Sandbox> {
        let path = path.into();
        Self::attach(SandboxKind::HostAgent, None, timeout, move |streams| {
            let s = UnixStream::connect(&path)?;
            streams.track(&s)?;
            Ok(s)
        })
    }

    /// Drives the Linux agent of a VM run by another VMM (Firecracker,
    /// cloud-hypervisor, QEMU with our vhost-user vsock backend) through that
    /// VMM's Firecracker-style hybrid vsock socket at `path`. Waits up to `timeout`
    /// for the agent's hello. The VM's lifetime stays the other VMM's business:
    /// `kill` and `Drop` only close connections.
    pub fn attach_vsock(path: impl Into<PathBuf>, timeout: Duration) -> Result<Sandbox> {
        let path = path.into();
        let p2 = path.clone();
        Self::attach(SandboxKind::Linux, Some(path), timeout, move |streams| {
            connect_tracked(&p2, DEFAULT_AGENT_PORT, timeout, streams)
        })
    }

    /// A sandbox without a VM of its own, whose agent `connect` reaches; every
    /// stream it opens is tracked so `kill` can end calls blocked on it.
    fn attach(
        kind: SandboxKind,
        vsock_path: Option<PathBuf>,
        timeout: Duration,
        connect: impl Fn(&Streams) -> std::io::Result<UnixStream> + Send + Sync + 'static,
    ) -> Result<Sandbox> {
        let streams = Arc::new(Streams::default());
        let s2 = streams.clone();
        let connector: Connector = Arc::new(move || {
            if s2.is_stopped() {
                return Err(streams::stopped_error());
            }
            connect(&s2)
        });
        let sb = Sandbox {
            kind,
            vm: None,
            connector,
            pool: Mutex::new(Vec::new()),
            timeout,
            limits: AgentLimits::default(),
            streams,
            watcher: None,
            vsock_path,
            runtime_dir: None,
            shape: None,
            quiesce: RwLock::new(()),
            isolation: Mutex::new(None),
        };
        let c = sb
            .new_client(None)
            .map_err(|e| sb.agent_error("attach", e))?;
        lock(&sb.pool).push(c);
        Ok(sb)
    }

    fn new_client(
        &self,
        timeout: Option<Duration>,
    ) -> std::result::Result<AgentClient, AgentError> {
        let t = timeout.unwrap_or(self.timeout);
        let t0 = Instant::now();
        match AgentClient::from_connector(self.connector.clone(), t) {
            // A connection refused or reset at once while the guest was busy: one
            // retry. Not after a long wait (the VMM giving up on a guest that does
            // not answer): that would double the time the caller waits.
            Err(AgentError::Disconnected { .. } | AgentError::Io { .. })
                if t0.elapsed() < FAST_FAILURE && self.stopped("connect").is_none() =>
            {
                std::thread::sleep(Duration::from_millis(20));
                AgentClient::from_connector(self.connector.clone(), t)
            }
            r => r,
        }
    }

    /// If the sandbox stopped: why, as the error `op` fails with (the guest's
    /// failure if it crashed, else [`Error::Stopped`]).
    fn stopped(&self, op: &'static str) -> Option<Error> {
        if let Some(vm) = &self.vm {
            if !vm.is_running() {
                return Some(vm.wait().err().unwrap_or(Error::Stopped { op }));
            }
        }
        self.streams.is_stopped().then_some(Error::Stopped { op })
    }

    /// Maps an agent failure, noticing when the sandbox itself is what stopped.
    fn agent_error(&self, op: &'static str, e: AgentError) -> Error {
        if let AgentError::Unsupported { .. } = e {
            return Error::Unsupported {
                op,
                guest: self.kind.name(),
            };
        }
        self.stopped(op).unwrap_or(Error::Agent(e))
    }

    /// Runs `f` on a pooled connection (or a new one); failed connections are dropped.
    fn with_client<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut AgentClient) -> std::result::Result<T, AgentError>,
    ) -> Result<T> {
        self.with_client_within(op, None, f)
    }

    /// [`with_client`](Self::with_client) waiting `timeout` (default: the
    /// sandbox's) for each answer, connecting included.
    fn with_client_within<T>(
        &self,
        op: &'static str,
        timeout: Option<Duration>,
        f: impl FnOnce(&mut AgentClient) -> std::result::Result<T, AgentError>,
    ) -> Result<T> {
        if let Some(e) = self.stopped(op) {
            return Err(e);
        }
        if self.in_host_function() {
            return Err(Error::Reentrant { op });
        }
        // Under per-call isolation calls run one at a time (each ends in a restore).
        let isolated = lock(&self.isolation).clone();
        // ... so a call made for a running callback, from any thread, would
        // wait for the run that waits for the callback.
        let key = Arc::as_ptr(&self.connector) as *const () as usize;
        if isolated.is_some() && host_fn::reentry::active_anywhere(key) {
            return Err(Error::Reentrant { op });
        }
        let _gate = isolation::Gate::enter(&self.quiesce, isolated.is_some());
        let pooled = lock(&self.pool).pop();
        let mut c = match pooled {
            Some(c) => c,
            None => self
                .new_client(timeout)
                .map_err(|e| self.agent_error(op, e))?,
        };
        c.set_limits(self.limits);
        c.set_timeout(timeout.unwrap_or(self.timeout));
        let r = match f(&mut c) {
            Ok(v) => {
                lock(&self.pool).push(c);
                Ok(v)
            }
            Err(e) => Err(self.agent_error(op, e)),
        };
        match isolated {
            Some(snap) => self.reset_after_call(op, &snap).and(r),
            None => r,
        }
    }

    fn require(&self, op: &'static str, ok: bool) -> Result<()> {
        if ok {
            Ok(())
        } else {
            Err(Error::Unsupported {
                op,
                guest: self.kind.name(),
            })
        }
    }

    /// Whether the current thread is running a host function callback of
    /// this sandbox (where calls into it fail with [`Error::Reentrant`]).
    /// Bindings that hop to another thread for a call check this first.
    pub fn in_host_function(&self) -> bool {
        host_fn::reentry::inside(Arc::as_ptr(&self.connector) as *const () as usize)
    }

    /// What this sandbox runs.
    pub fn kind(&self) -> SandboxKind {
        self.kind
    }

    /// The bounds on what one call may take from the guest.
    pub fn agent_limits(&self) -> AgentLimits {
        self.limits
    }

    /// Changes the bounds on what one call may take from the guest (output per
    /// stream, the deadline of calls without their own, skipped frames).
    pub fn set_agent_limits(&mut self, limits: AgentLimits) {
        self.limits = limits;
    }

    /// Round trip to the agent.
    pub fn ping(&self) -> Result<Duration> {
        self.with_client("ping", |c| c.ping())
    }

    /// Sends `data` through the agent and returns what came back.
    pub fn echo(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.with_client("echo", |c| c.echo(data))
    }

    /// Runs a command to completion (Linux guests).
    pub fn exec(&self, req: &ExecRequest) -> Result<ExecOutput> {
        self.require("exec", self.kind != SandboxKind::Micro)?;
        self.with_client("exec", |c| c.exec(req))
    }

    /// Starts a command and returns a handle streaming its output (Linux guests).
    pub fn spawn(&self, req: &ExecRequest) -> Result<ProcessHandle> {
        self.require("exec", self.kind != SandboxKind::Micro)?;
        self.with_client("exec", |c| c.exec_streaming(req))
    }

    /// Reads `len` bytes at `offset` of disk `disk` through the agent.
    pub fn disk_read(&self, disk: u32, offset: u64, len: u32) -> Result<Vec<u8>> {
        self.with_client("disk_read", |c| c.disk_read(disk, offset, len))
    }

    /// Writes `data` at `offset` of disk `disk` through the agent.
    pub fn disk_write(&self, disk: u32, offset: u64, data: &[u8]) -> Result<()> {
        self.with_client("disk_write", |c| c.disk_write(disk, offset, data))
    }

    /// Flushes disk `disk` (the host fdatasyncs the image).
    pub fn disk_flush(&self, disk: u32) -> Result<()> {
        self.with_client("disk_flush", |c| c.disk_flush(disk))
    }

    /// Runs a WASM module, collecting its output (micro guest).
    pub fn run_wasm(
        &self,
        req: &WasmRequest,
        wall_timeout: Option<Duration>,
    ) -> Result<WasmOutput> {
        let mut out = Collected::new("run_wasm", self.limits.max_output);
        let (outcome, dirs) = self.run_wasm_with(req, wall_timeout, |s, d| out.push(s, d))?;
        Ok(out.with(outcome, dirs))
    }

    /// Runs a WASM module, handing output to `on_output` as the module writes it.
    /// If `wall_timeout` passes first, the VM is stopped (a module cannot be
    /// interrupted otherwise) and [`Error::Timeout`] is returned; under per-call
    /// isolation the snapshot is restored instead, the sandbox stays usable, and
    /// [`Error::CallTimeout`] is returned.
    pub fn run_wasm_streaming(
        &self,
        req: &WasmRequest,
        wall_timeout: Option<Duration>,
        on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<WasmOutcome> {
        self.run_wasm_streamed(req, wall_timeout, on_output)
            .map(|out| out.outcome)
    }

    /// [`run_wasm_streaming`](Self::run_wasm_streaming) that also returns the
    /// writable directories after the run (`stdout` and `stderr` of the result
    /// are empty: they went to `on_output`).
    pub fn run_wasm_streamed(
        &self,
        req: &WasmRequest,
        wall_timeout: Option<Duration>,
        mut on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<WasmOutput> {
        let (outcome, dirs) = self.run_wasm_with(req, wall_timeout, |s, d| {
            on_output(s, d);
            Ok(())
        })?;
        Ok(WasmOutput {
            outcome,
            stdout: Vec::new(),
            stderr: Vec::new(),
            dirs,
        })
    }

    fn run_wasm_with(
        &self,
        req: &WasmRequest,
        wall_timeout: Option<Duration>,
        on_output: impl FnMut(Stream, &[u8]) -> std::result::Result<(), AgentError>,
    ) -> Result<(WasmOutcome, Vec<crate::agent::WasmDirOutput>)> {
        self.require("run_wasm", self.kind == SandboxKind::Micro)?;
        let mut req = req.clone();
        req.timeout = Some(wasm_silence(req.timeout, wall_timeout));
        self.watched("run_wasm", wall_timeout, None, || {
            self.with_client("run_wasm", |c| {
                // Host function callbacks see the run's end as their deadline.
                if let Some(t) = wall_timeout {
                    let mut limits = c.limits();
                    limits.default_deadline =
                        limits.default_deadline.min(t + Duration::from_secs(1));
                    c.set_limits(limits);
                }
                c.run_wasm_with(&req, on_output)
            })
        })
    }

    /// Runs `f`; if `wall_timeout` passes first, the VM is restored to
    /// `restore_to` or else the per-call isolation snapshot if there is one
    /// ([`Error::CallTimeout`]), or else stopped (a module cannot be
    /// interrupted otherwise; [`Error::Timeout`]).
    fn watched<T>(
        &self,
        op: &'static str,
        wall_timeout: Option<Duration>,
        restore_to: Option<&SandboxSnapshot>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let fired = Arc::new(AtomicBool::new(false));
        let (done_tx, done_rx) = mpsc::channel::<()>();
        // A timeout that can restore a snapshot does (the call's stream sees
        // EOF) and the sandbox stays usable; otherwise it stops the VM.
        let isolated = restore_to
            .cloned()
            .or_else(|| lock(&self.isolation).clone());
        let watchdog = match (wall_timeout, &self.vm) {
            (Some(t), Some(vm)) => {
                let vm = vm.clone();
                let fired = fired.clone();
                Some(
                    std::thread::Builder::new()
                        .name("kvmsb-wasm-watchdog".into())
                        .spawn(move || {
                            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(t) {
                                fired.store(true, Ordering::SeqCst);
                                let restored = isolated.is_some_and(|s| vm.restore(s.vm()).is_ok());
                                if !restored {
                                    vm.kill();
                                }
                            }
                        })
                        .map_err(|source| Error::Host {
                            what: "watchdog thread",
                            source,
                        })?,
                )
            }
            _ => None,
        };
        let r = f();
        drop(done_tx);
        if let Some(w) = watchdog {
            let _ = w.join();
        }
        if fired.load(Ordering::SeqCst) {
            return Err(match self.stopped(op) {
                None => Error::CallTimeout {
                    op,
                    after: wall_timeout.unwrap_or_default(),
                },
                Some(_) => Error::Timeout {
                    op,
                    after: wall_timeout.unwrap_or_default(),
                },
            });
        }
        r
    }

    /// Opens a byte stream to guest vsock `port` (a plain Unix stream: read, write,
    /// or take its fd). Stopping the sandbox shuts it down. Waits the sandbox's
    /// answer timeout for the guest to accept ([`Sandbox::with_timeout`] for
    /// another).
    pub fn connect(&self, port: u32) -> Result<UnixStream> {
        self.connect_within(port, None)
    }

    /// [`connect`](Self::connect) waiting `timeout` (default: the sandbox's)
    /// for the guest to accept; a guest that does not is an agent Timeout.
    fn connect_within(&self, port: u32, timeout: Option<Duration>) -> Result<UnixStream> {
        let op = "connect";
        let path = self.vsock_path.as_ref().ok_or(Error::Unsupported {
            op,
            guest: self.kind.name(),
        })?;
        if let Some(e) = self.stopped(op) {
            return Err(e);
        }
        let after = timeout.unwrap_or(self.timeout);
        connect_tracked(path, port, after, &self.streams).map_err(|source| {
            if let Some(e) = self.stopped(op) {
                return e;
            }
            match source.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                    AgentError::Timeout { op, after }.into()
                }
                _ => Error::Connect { port, source },
            }
        })
    }

    /// The hybrid vsock socket (for `socat` and friends): `CONNECT <port>\n`.
    pub fn vsock_path(&self) -> Option<&Path> {
        self.vsock_path.as_deref()
    }

    /// Boot-phase timings, including "agent ready".
    pub fn timings(&self) -> BootTimings {
        self.vm.as_ref().map(|v| v.timings()).unwrap_or_default()
    }

    /// The guest's console output so far.
    pub fn console_output(&self) -> String {
        self.vm
            .as_ref()
            .map(|v| v.console_output())
            .unwrap_or_default()
    }

    /// The VM underneath (none for a host agent).
    pub fn vm(&self) -> Option<&Vm> {
        self.vm.as_deref()
    }

    /// Asks the agent to shut down and waits (bounded) for the VM to stop; kills it otherwise.
    pub fn shutdown(&self) -> Result<()> {
        let r = self.with_client("shutdown", |c| c.shutdown());
        lock(&self.pool).clear();
        if self.vm.is_none() {
            // A host agent: nothing else tells the streams it is gone.
            self.streams.stop();
        }
        if let Some(vm) = &self.vm {
            let deadline = Instant::now() + Duration::from_secs(5);
            match vm.wait_timeout(Some(deadline.saturating_duration_since(Instant::now()))) {
                Ok(Some(VmExit::Exited(_) | VmExit::Reset | VmExit::Killed)) => {}
                Ok(None) => vm.kill(),
                Err(e) => return Err(e),
            }
        }
        match r {
            Err(Error::Agent(AgentError::Disconnected { .. })) => Ok(()),
            other => other,
        }
    }

    /// Stops the VM now and shuts down every stream the sandbox opened (a call
    /// blocked in another thread returns [`Error::Stopped`] at once). Idempotent.
    pub fn kill(&self) {
        self.streams.stop();
        lock(&self.pool).clear();
        if let Some(vm) = &self.vm {
            vm.kill();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        // The Vm (and its vsock device, which removes its socket) goes first.
        self.vm.take();
        self.runtime_dir.take();
    }
}

/// What a configuration boots.
fn kind_of(cfg: &VmConfig) -> SandboxKind {
    match cfg.guest {
        Guest::Micro { .. } => SandboxKind::Micro,
        Guest::Linux { .. } => SandboxKind::Linux,
    }
}

/// `cfg` with a vsock device: its own, or one at a new private runtime
/// directory (returned: dropping it removes the directory).
fn with_vsock(cfg: VmConfig) -> Result<(VmConfig, Option<RuntimeDir>, PathBuf)> {
    match &cfg.vsock {
        Some(v) => {
            let p = v.uds_path.clone();
            Ok((cfg, None, p))
        }
        None => {
            let dir = RuntimeDir::create()?;
            let p = dir.path().join("vsock.sock");
            Ok((cfg.vsock(&p), Some(dir), p))
        }
    }
}

/// A connect failing faster than this is retried once.
const FAST_FAILURE: Duration = Duration::from_secs(1);

/// How long `run_wasm` without a wall-clock deadline tolerates a silent guest.
pub const WASM_SILENCE_TIMEOUT: Duration = Duration::from_secs(600);

/// The silence a module run tolerates: silence is normal while a module
/// computes (an emulating host runs well under a million WASM instructions a
/// second), so the wall-clock deadline, not the agent's silence timeout,
/// bounds a run.
fn wasm_silence(asked: Option<Duration>, wall_timeout: Option<Duration>) -> Duration {
    match wall_timeout {
        Some(t) => asked.unwrap_or(t).max(t + Duration::from_secs(1)),
        None => asked.unwrap_or(WASM_SILENCE_TIMEOUT),
    }
}

/// The Linux agent's ready line on the console.
pub const LINUX_AGENT_MARKER: &str = "kvmsandbox-agent ready";
