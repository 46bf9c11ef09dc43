//! One framed connection to an agent: send a frame, receive the next frame for a
//! request id within an inactivity timeout (SO_RCVTIMEO, so a silent agent gives
//! a typed Timeout and a dead one a typed Disconnected — never a hang).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use kvmsandbox_proto::msg::Hello;
use kvmsandbox_proto::{Frame, FrameDecoder, Message, PROTOCOL_VERSION};

use super::error::AgentError;

/// Read buffer size.
const READ_BUF: usize = 256 * 1024;

/// A framed stream.
pub(crate) struct Conn {
    stream: UnixStream,
    dec: FrameDecoder,
    buf: Vec<u8>,
}

impl Conn {
    /// Wraps `stream`; writes time out after `timeout`.
    pub(crate) fn new(stream: UnixStream, timeout: Duration) -> Result<Self, AgentError> {
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| AgentError::Io {
                op: "configure socket",
                source: e,
            })?;
        Ok(Self {
            stream,
            dec: FrameDecoder::new(),
            buf: vec![0; READ_BUF],
        })
    }

    /// Reads the agent's Hello and checks its version.
    pub(crate) fn handshake(&mut self, timeout: Duration) -> Result<Hello, AgentError> {
        let op = "hello";
        let frame = self.recv(op, Some(timeout))?;
        match frame.msg {
            Message::Hello(h) if h.version == u16::from(PROTOCOL_VERSION) => Ok(h),
            Message::Hello(h) => Err(AgentError::Version {
                got: h.version,
                want: u16::from(PROTOCOL_VERSION),
            }),
            other => Err(AgentError::Unexpected {
                op,
                got: other.name(),
            }),
        }
    }

    /// A second handle on the socket, for a thread that only writes.
    pub(crate) fn try_clone_stream(&self, op: &'static str) -> Result<UnixStream, AgentError> {
        self.stream
            .try_clone()
            .map_err(|e| AgentError::Io { op, source: e })
    }

    /// Sends one frame.
    pub(crate) fn send(
        &mut self,
        op: &'static str,
        id: u32,
        msg: Message,
    ) -> Result<(), AgentError> {
        send_on(&mut self.stream, op, id, msg)
    }

    /// The next frame, waiting at most `timeout` of silence (`None` = no limit).
    pub(crate) fn recv(
        &mut self,
        op: &'static str,
        timeout: Option<Duration>,
    ) -> Result<Frame, AgentError> {
        if timeout == Some(Duration::ZERO) {
            return Err(AgentError::Timeout {
                op,
                after: Duration::ZERO,
            });
        }
        self.stream
            .set_read_timeout(timeout)
            .map_err(|e| AgentError::Io { op, source: e })?;
        loop {
            match self.dec.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(source) => return Err(AgentError::Protocol { op, source }),
            }
            let n = match self.stream.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AgentError::from_io(op, e, timeout)),
            };
            if n == 0 {
                return Err(AgentError::Disconnected { op });
            }
            self.dec.feed(&self.buf[..n]);
        }
    }

    /// The next frame of request `id`; frames of other (stale) requests are skipped,
    /// `Error` frames become typed errors.
    pub(crate) fn recv_for(
        &mut self,
        op: &'static str,
        id: u32,
        timeout: Option<Duration>,
    ) -> Result<Message, AgentError> {
        loop {
            let frame = self.recv(op, timeout)?;
            // Id 0 carries connection-level errors (e.g. "malformed frame").
            if frame.request_id != id && frame.request_id != 0 {
                continue;
            }
            // A newer agent's optional message: skipped, as the protocol's growth
            // rules ask (see kvmsandbox_proto::msg).
            if matches!(frame.msg, Message::Unknown { .. }) {
                continue;
            }
            return match frame.msg {
                Message::Error { code, message } => Err(remote(op, code, message)),
                msg => Ok(msg),
            };
        }
    }
}

/// Sends one frame on `stream` (also used by stdin writer threads).
pub(crate) fn send_on(
    stream: &mut UnixStream,
    op: &'static str,
    id: u32,
    msg: Message,
) -> Result<(), AgentError> {
    let bytes = Frame::new(id, msg)
        .encode()
        .map_err(|source| AgentError::Protocol { op, source })?;
    stream
        .write_all(&bytes)
        .map_err(|e| AgentError::from_io(op, e, None))
}

/// Turns an agent's `Error` into the typed error.
pub(crate) fn remote(
    op: &'static str,
    code: kvmsandbox_proto::ErrorCode,
    message: String,
) -> AgentError {
    if code == kvmsandbox_proto::ErrorCode::Unsupported {
        AgentError::Unsupported { op, message }
    } else {
        AgentError::Remote { op, code, message }
    }
}
