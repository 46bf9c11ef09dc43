//! Running commands in the guest: [`AgentClient::exec`] collects everything;
//! [`AgentClient::exec_streaming`] returns a [`ProcessHandle`] on its own
//! connection, for output as it comes, interactive stdin and signals.
//!
//! Timeouts: the agent must answer `ExecStarted` within the client timeout. After
//! that a command may legitimately run silent, so both the inactivity limit and
//! the absolute deadline are the command's own timeout plus the client timeout
//! (the agent kills it at its timeout and reports `timed_out`). Without a command
//! timeout, [`AgentClient::exec`] ends by [`AgentLimits::default_deadline`] and a
//! [`ProcessHandle`] waits as long as its owner keeps calling; a dead agent is
//! noticed at once as [`AgentError::Disconnected`].
//!
//! Output: [`AgentClient::exec`] and [`ProcessHandle::wait_with_output`] collect at
//! most [`AgentLimits::max_output`] bytes per stream, then fail with
//! [`AgentError::OutputLimit`]; [`ProcessHandle::wait`] hands chunks on unbounded.
//!
//! [`AgentLimits::default_deadline`]: super::AgentLimits::default_deadline
//! [`AgentLimits::max_output`]: super::AgentLimits::max_output

use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kvmsandbox_proto::frame::MAX_CHUNK;
use kvmsandbox_proto::msg::ExecSpec;
use kvmsandbox_proto::Message;

use super::client::{check_output, AgentClient};
use super::conn::{send_on, Conn, Wait};
use super::error::AgentError;
use super::stdin_window::{EndOnDrop, StdinWindow};

/// A command to run in the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// Program and arguments (`argv[0]` looked up in the guest's `PATH`).
    pub argv: Vec<String>,
    /// The whole environment of the process.
    pub env: Vec<(String, String)>,
    /// Working directory (default: the agent's).
    pub cwd: Option<String>,
    /// All of stdin, sent then closed. `None`: stdin is `/dev/null` for
    /// [`AgentClient::exec`], an open pipe ([`ProcessHandle::take_stdin`]) when streaming.
    pub stdin: Option<Vec<u8>>,
    /// Kill the process group after this long.
    pub timeout: Option<Duration>,
}

impl ExecRequest {
    /// A request for `argv` with an empty environment.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    /// Sets all of stdin.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn spec(&self, pipe_stdin: bool) -> ExecSpec {
        ExecSpec {
            argv: self.argv.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            stdin: pipe_stdin,
            timeout_ms: self
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Terminating signal, if it was killed.
    pub signal: Option<i32>,
    /// The agent killed it because its timeout expired.
    pub timed_out: bool,
}

impl ExitStatus {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Everything a finished command produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Guest pid it ran as.
    pub pid: u32,
    /// How it ended.
    pub status: ExitStatus,
    /// All of stdout.
    pub stdout: Vec<u8>,
    /// All of stderr.
    pub stderr: Vec<u8>,
}

/// Which output stream a chunk belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One thing a running command did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecEvent {
    /// Output.
    Output(Stream, Vec<u8>),
    /// It ended (returned again on every later call).
    Exit(ExitStatus),
}

impl AgentClient {
    /// Runs a command to completion and collects its output.
    pub fn exec(&mut self, req: &ExecRequest) -> Result<ExecOutput, AgentError> {
        let op = "exec";
        let id = self.request(op, Message::Exec(req.spec(req.stdin.is_some())))?;
        let pid = started(self.answer(op, id)?)?;
        let run_timeout = req.timeout.map(|t| t + self.timeout);
        let wait = Wait::within(
            run_timeout,
            Some(run_timeout.unwrap_or(self.limits.default_deadline)),
        );
        let max_output = self.limits.max_output;
        let stdin_stream = match &req.stdin {
            Some(_) => Some(self.conn.try_clone_stream(op)?),
            None => None,
        };
        let window = StdinWindow::new(self.hello().capabilities);
        let conn = &mut self.conn;
        std::thread::scope(|s| {
            let _end = EndOnDrop(window.clone());
            if let (Some(mut w), Some(data)) = (stdin_stream, req.stdin.as_deref()) {
                // A writer thread, so a command that reads stdin while its output
                // fills the socket cannot deadlock us.
                let window = &window;
                s.spawn(move || send_stdin(&mut w, id, data, window));
            }
            let r = collect(conn, op, id, pid, wait, max_output, &window);
            if r.is_err() {
                // Unblocks the stdin writer; this connection is done for.
                conn.shutdown();
            }
            r
        })
    }

    /// Starts a command on a connection of its own and returns at once.
    pub fn exec_streaming(&mut self, req: &ExecRequest) -> Result<ProcessHandle, AgentError> {
        let op = "exec_streaming";
        let mut conn = self.open_another(op)?;
        let id = 1;
        conn.send(op, id, Message::Exec(req.spec(true)))?;
        let t = Some(self.timeout);
        let pid = started(conn.recv_for(op, id, Wait::within(t, t))?)?;
        let writer = Arc::new(Mutex::new(conn.try_clone_stream(op)?));
        let window = StdinWindow::new(self.hello().capabilities);
        let stdin = ProcessStdin {
            writer: writer.clone(),
            window: window.clone(),
            id,
            closed: false,
        };
        let stdin = match req.stdin.clone() {
            Some(data) => {
                // Fed from a thread: the acks that let it go on arrive on the
                // stream the caller reads, so writing it all here could deadlock.
                let mut stdin = stdin;
                std::thread::Builder::new()
                    .name("exec stdin".into())
                    .spawn(move || {
                        let _ = stdin.write_all(&data);
                    })
                    .map_err(|e| AgentError::Io { op, source: e })?;
                None
            }
            None => Some(stdin),
        };
        let run_timeout = req.timeout.map(|t| t + self.timeout);
        Ok(ProcessHandle {
            conn,
            writer,
            _end: EndOnDrop(window.clone()),
            window,
            id,
            pid,
            wait: Wait::within(run_timeout, run_timeout),
            max_output: self.limits.max_output,
            stdin,
            exit: None,
        })
    }
}

const NO_STATUS: ExitStatus = ExitStatus {
    code: None,
    signal: None,
    timed_out: false,
};

fn started(msg: Message) -> Result<u32, AgentError> {
    match msg {
        Message::ExecStarted { pid } => Ok(pid),
        other => Err(AgentError::Unexpected {
            op: "exec",
            got: other.name(),
        }),
    }
}

/// Collects output until the exit, at most `max_output` bytes per stream.
fn collect(
    conn: &mut Conn,
    op: &'static str,
    id: u32,
    pid: u32,
    wait: Wait,
    max_output: u64,
    window: &StdinWindow,
) -> Result<ExecOutput, AgentError> {
    let mut out = ExecOutput {
        pid,
        status: NO_STATUS,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    loop {
        match event(conn, op, id, wait, window)? {
            ExecEvent::Output(s, d) => append(&mut out, s, &d, op, max_output)?,
            ExecEvent::Exit(st) => {
                out.status = st;
                return Ok(out);
            }
        }
    }
}

/// Adds a chunk to its stream, unless that would pass `max_output`.
fn append(
    out: &mut ExecOutput,
    s: Stream,
    d: &[u8],
    op: &'static str,
    max_output: u64,
) -> Result<(), AgentError> {
    let buf = match s {
        Stream::Stdout => &mut out.stdout,
        Stream::Stderr => &mut out.stderr,
    };
    check_output(op, (buf.len() + d.len()) as u64, max_output)?;
    buf.extend_from_slice(d);
    Ok(())
}

fn event(
    conn: &mut Conn,
    op: &'static str,
    id: u32,
    wait: Wait,
    window: &StdinWindow,
) -> Result<ExecEvent, AgentError> {
    loop {
        return match conn.recv_for(op, id, wait)? {
            Message::StdinAck { bytes } => {
                window.release(bytes);
                continue;
            }
            Message::Stdout { data } => Ok(ExecEvent::Output(Stream::Stdout, data)),
            Message::Stderr { data } => Ok(ExecEvent::Output(Stream::Stderr, data)),
            Message::ExecExit {
                code,
                signal,
                timed_out,
            } => {
                window.end();
                Ok(ExecEvent::Exit(ExitStatus {
                    code,
                    signal,
                    timed_out,
                }))
            }
            other => Err(AgentError::Unexpected {
                op,
                got: other.name(),
            }),
        };
    }
}

fn send_stdin(w: &mut UnixStream, id: u32, data: &[u8], window: &StdinWindow) {
    for chunk in data.chunks(MAX_CHUNK) {
        if !window.acquire(chunk.len()) {
            // The command is over: the rest is not wanted.
            return;
        }
        if send_on(
            w,
            "exec stdin",
            id,
            Message::Stdin {
                data: chunk.to_vec(),
            },
        )
        .is_err()
        {
            // The reader side reports what happened to the connection.
            return;
        }
    }
    let _ = send_on(w, "exec stdin", id, Message::StdinEof);
}

/// A command running in the guest, on its own connection.
pub struct ProcessHandle {
    conn: Conn,
    writer: Arc<Mutex<UnixStream>>,
    window: Arc<StdinWindow>,
    /// Stops a stdin writer when the handle goes away.
    _end: EndOnDrop,
    id: u32,
    pid: u32,
    wait: Wait,
    max_output: u64,
    stdin: Option<ProcessStdin>,
    exit: Option<ExitStatus>,
}

impl ProcessHandle {
    /// Guest pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The writer for the command's stdin (once; `None` if stdin was given up
    /// front). Dropping it closes the command's stdin. Write from another thread
    /// than the one reading events when sending more than the agent's window
    /// (`STDIN_WINDOW`): writes wait for acknowledgements that arrive with the output.
    pub fn take_stdin(&mut self) -> Option<ProcessStdin> {
        self.stdin.take()
    }

    /// Sends `signal` to the command's process group.
    pub fn kill(&self, signal: i32) -> Result<(), AgentError> {
        self.killer().kill(signal)
    }

    /// Something that can signal the command while this handle is busy
    /// reading its events on another thread.
    pub fn killer(&self) -> ProcessKiller {
        ProcessKiller {
            writer: self.writer.clone(),
            id: self.id,
        }
    }

    /// The next output chunk or the exit.
    pub fn next_event(&mut self) -> Result<ExecEvent, AgentError> {
        if let Some(st) = self.exit {
            return Ok(ExecEvent::Exit(st));
        }
        let ev = event(
            &mut self.conn,
            "exec_streaming",
            self.id,
            self.wait,
            &self.window,
        )?;
        if let ExecEvent::Exit(st) = ev {
            self.exit = Some(st);
        }
        Ok(ev)
    }

    /// Waits for the exit, handing output to `on_output` as it arrives.
    pub fn wait(
        &mut self,
        mut on_output: impl FnMut(Stream, &[u8]),
    ) -> Result<ExitStatus, AgentError> {
        loop {
            match self.next_event()? {
                ExecEvent::Output(s, d) => on_output(s, &d),
                ExecEvent::Exit(st) => return Ok(st),
            }
        }
    }

    /// Waits for the exit and collects the output (at most
    /// [`AgentLimits::max_output`](super::AgentLimits::max_output) bytes per stream).
    pub fn wait_with_output(mut self) -> Result<ExecOutput, AgentError> {
        let mut out = ExecOutput {
            pid: self.pid,
            status: NO_STATUS,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        loop {
            match self.next_event()? {
                ExecEvent::Output(s, d) => {
                    append(&mut out, s, &d, "exec_streaming", self.max_output)?
                }
                ExecEvent::Exit(st) => {
                    out.status = st;
                    return Ok(out);
                }
            }
        }
    }
}

/// Signals a streaming command ([`ProcessHandle::killer`]); `Send` and `Clone`.
#[derive(Clone)]
pub struct ProcessKiller {
    writer: Arc<Mutex<UnixStream>>,
    id: u32,
}

impl ProcessKiller {
    /// Sends `signal` to the command's process group.
    pub fn kill(&self, signal: i32) -> Result<(), AgentError> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        send_on(&mut w, "kill", self.id, Message::Kill { signal })
    }
}

/// Stdin of a streaming command; `Send`, so another thread can feed it.
pub struct ProcessStdin {
    writer: Arc<Mutex<UnixStream>>,
    window: Arc<StdinWindow>,
    id: u32,
    closed: bool,
}

impl ProcessStdin {
    /// Closes the command's stdin (EOF).
    pub fn close(&mut self) -> Result<(), AgentError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        send_on(&mut w, "close stdin", self.id, Message::StdinEof)
    }
}

impl Write for ProcessStdin {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "stdin already closed",
            ));
        }
        let n = buf.len().min(MAX_CHUNK);
        if !self.window.acquire(n) {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the command is over",
            ));
        }
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        send_on(
            &mut w,
            "write stdin",
            self.id,
            Message::Stdin {
                data: buf[..n].to_vec(),
            },
        )
        .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ProcessStdin {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
