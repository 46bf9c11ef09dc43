//! [`AgentClient`]: one control connection to an agent, one request at a time.
//! Operations that must run alongside others (a streaming exec) open their own
//! connection through the stored connector.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvmsandbox_proto::frame::MAX_CHUNK;
use kvmsandbox_proto::msg::Hello;
use kvmsandbox_proto::Message;

use super::conn::{Conn, Wait};
use super::error::AgentError;
use super::hybrid::connect_hybrid;
use super::limits::AgentLimits;

/// Opens a fresh stream to the agent (a Unix socket, or a hybrid-vsock connect).
pub type Connector = Arc<dyn Fn() -> io::Result<UnixStream> + Send + Sync>;

/// A connection to a guest agent (or the agent running as a host process).
pub struct AgentClient {
    pub(crate) conn: Conn,
    pub(crate) connector: Option<Connector>,
    pub(crate) timeout: Duration,
    pub(crate) limits: AgentLimits,
    next_id: u32,
    hello: Hello,
}

impl AgentClient {
    /// Connects to an agent listening on the Unix socket `path` and waits for its
    /// Hello. `timeout` bounds the wait for every answer (inactivity).
    pub fn connect_unix(path: &Path, timeout: Duration) -> Result<Self, AgentError> {
        let path: PathBuf = path.to_path_buf();
        Self::from_connector(Arc::new(move || UnixStream::connect(&path)), timeout)
    }

    /// Connects to guest vsock `port` through the VMM's hybrid vsock socket `path`.
    pub fn connect_hybrid(path: &Path, port: u32, timeout: Duration) -> Result<Self, AgentError> {
        let path: PathBuf = path.to_path_buf();
        Self::from_connector(
            Arc::new(move || connect_hybrid(&path, port, timeout)),
            timeout,
        )
    }

    /// Opens a connection with `connector` (kept for later extra connections).
    pub fn from_connector(connector: Connector, timeout: Duration) -> Result<Self, AgentError> {
        let stream = connector().map_err(|e| AgentError::from_io("connect", e, Some(timeout)))?;
        let mut c = Self::from_stream(stream, timeout)?;
        c.connector = Some(connector);
        Ok(c)
    }

    /// Uses an already connected stream and waits for the agent's Hello.
    /// Such a client cannot open extra connections ([`AgentClient::exec_streaming`]).
    pub fn from_stream(stream: UnixStream, timeout: Duration) -> Result<Self, AgentError> {
        let mut conn = Conn::new(stream, timeout)?;
        let hello = conn.handshake(timeout)?;
        Ok(Self {
            conn,
            connector: None,
            timeout,
            limits: AgentLimits::default(),
            next_id: 1,
            hello,
        })
    }

    /// What the agent said in its Hello (kind, capabilities).
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The inactivity timeout for answers.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes the inactivity timeout for answers.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The bounds on output, call duration and skipped frames.
    pub fn limits(&self) -> AgentLimits {
        self.limits
    }

    /// Changes the bounds on output, call duration and skipped frames.
    pub fn set_limits(&mut self, limits: AgentLimits) {
        self.limits = limits;
        self.conn.max_stale = limits.max_stale_frames;
    }

    /// Fails with [`AgentError::OutputLimit`] once `total` bytes exceed the limit.
    pub(crate) fn check_output(&self, op: &'static str, total: u64) -> Result<(), AgentError> {
        check_output(op, total, self.limits.max_output)
    }

    /// A fresh request id.
    pub(crate) fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        // Id 0 is reserved for Hello and connection-level errors.
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Sends `msg` as a new request and returns its id.
    pub(crate) fn request(&mut self, op: &'static str, msg: Message) -> Result<u32, AgentError> {
        let id = self.next_id();
        self.conn.send(op, id, msg)?;
        Ok(id)
    }

    /// Waits for the next message of request `id` within the client timeout
    /// (absolute: frames of other requests do not extend it).
    pub(crate) fn answer(&mut self, op: &'static str, id: u32) -> Result<Message, AgentError> {
        let t = self.timeout;
        self.conn.recv_for(op, id, Wait::within(Some(t), Some(t)))
    }

    /// Opens a second, independent connection to the same agent.
    pub(crate) fn open_another(&self, op: &'static str) -> Result<Conn, AgentError> {
        let connector = self
            .connector
            .as_ref()
            .ok_or(AgentError::NoConnector { op })?;
        let stream = connector().map_err(|e| AgentError::from_io(op, e, Some(self.timeout)))?;
        let mut conn = Conn::new(stream, self.timeout)?;
        conn.max_stale = self.limits.max_stale_frames;
        conn.handshake(self.timeout)?;
        Ok(conn)
    }

    /// Round trip time of a Ping.
    pub fn ping(&mut self) -> Result<Duration, AgentError> {
        let op = "ping";
        let start = Instant::now();
        let nonce = start.elapsed().as_nanos() as u64 ^ 0x6b76_6d73_616e_6462;
        let id = self.request(op, Message::Ping { nonce })?;
        match self.answer(op, id)? {
            Message::Pong { nonce: n } if n == nonce => Ok(start.elapsed()),
            other => Err(AgentError::Unexpected {
                op,
                got: other.name(),
            }),
        }
    }

    /// Sends `data` and returns what came back (one frame per chunk).
    pub fn echo(&mut self, data: &[u8]) -> Result<Vec<u8>, AgentError> {
        let op = "echo";
        let mut out = Vec::with_capacity(data.len());
        let mut chunks = data.chunks(MAX_CHUNK).peekable();
        if chunks.peek().is_none() {
            // Still a round trip for empty data.
            let id = self.request(op, Message::Echo { data: Vec::new() })?;
            return match self.answer(op, id)? {
                Message::EchoReply { data } => {
                    self.check_output(op, data.len() as u64)?;
                    Ok(data)
                }
                other => Err(AgentError::Unexpected {
                    op,
                    got: other.name(),
                }),
            };
        }
        for chunk in chunks {
            let id = self.request(
                op,
                Message::Echo {
                    data: chunk.to_vec(),
                },
            )?;
            match self.answer(op, id)? {
                Message::EchoReply { data } => {
                    self.check_output(op, (out.len() + data.len()) as u64)?;
                    out.extend_from_slice(&data);
                }
                other => {
                    return Err(AgentError::Unexpected {
                        op,
                        got: other.name(),
                    })
                }
            }
        }
        Ok(out)
    }

    /// Reads `len` bytes at `offset` of disk `disk` (micro guest agent).
    pub fn disk_read(&mut self, disk: u32, offset: u64, len: u32) -> Result<Vec<u8>, AgentError> {
        let op = "disk_read";
        let id = self.request(op, Message::DiskRead { disk, offset, len })?;
        match self.answer(op, id)? {
            Message::DiskData { data } => {
                // More than asked for is as wrong as more than the host allows.
                self.check_output(op, data.len() as u64)?;
                check_output(op, data.len() as u64, u64::from(len))?;
                Ok(data)
            }
            other => Err(AgentError::Unexpected {
                op,
                got: other.name(),
            }),
        }
    }

    /// Writes `data` at `offset` of disk `disk`, one request per chunk.
    pub fn disk_write(&mut self, disk: u32, offset: u64, data: &[u8]) -> Result<(), AgentError> {
        let op = "disk_write";
        let mut off = offset;
        for chunk in data.chunks(MAX_CHUNK) {
            let id = self.request(
                op,
                Message::DiskWrite {
                    disk,
                    offset: off,
                    data: chunk.to_vec(),
                },
            )?;
            self.expect_ok(op, id)?;
            off += chunk.len() as u64;
        }
        Ok(())
    }

    /// Flushes disk `disk`.
    pub fn disk_flush(&mut self, disk: u32) -> Result<(), AgentError> {
        let op = "disk_flush";
        let id = self.request(op, Message::DiskFlush { disk })?;
        self.expect_ok(op, id)
    }

    /// Asks the agent to shut down (host process: exit; Linux guest: sync, answer,
    /// then reset the VM, which the VMM reports as a clean exit).
    /// The agent vanishing before its `Ok` arrives also counts as success.
    pub fn shutdown(&mut self) -> Result<(), AgentError> {
        let op = "shutdown";
        let id = self.request(op, Message::Shutdown)?;
        match self.expect_ok(op, id) {
            Ok(()) | Err(AgentError::Disconnected { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Waits for `Ok` to request `id`.
    pub(crate) fn expect_ok(&mut self, op: &'static str, id: u32) -> Result<(), AgentError> {
        match self.answer(op, id)? {
            Message::Ok => Ok(()),
            other => Err(AgentError::Unexpected {
                op,
                got: other.name(),
            }),
        }
    }
}

/// Fails with [`AgentError::OutputLimit`] when `total` exceeds `limit`.
pub(crate) fn check_output(op: &'static str, total: u64, limit: u64) -> Result<(), AgentError> {
    if total > limit {
        Err(AgentError::OutputLimit { op, limit })
    } else {
        Ok(())
    }
}
