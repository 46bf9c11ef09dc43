//! One framed connection to an agent: send a frame, receive the next frame for a
//! request id within an inactivity timeout and an absolute deadline (SO_RCVTIMEO
//! set to whichever ends first, so a silent agent gives a typed Timeout, a
//! dribbling one still ends by its deadline, and a dead one gives a typed
//! Disconnected — never a hang). Frames of other requests are skipped only
//! [`AgentLimits::max_stale_frames`](super::AgentLimits) times per answer.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use kvmsandbox_proto::msg::Hello;
use kvmsandbox_proto::{Frame, FrameDecoder, Message, PROTOCOL_VERSION};

use super::error::AgentError;

/// Read buffer size.
const READ_BUF: usize = 256 * 1024;

/// How long a receive may wait.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wait {
    /// Longest silence between frames (`None` = no limit).
    pub idle: Option<Duration>,
    /// The absolute end, and the budget it was computed from (for the error).
    pub until: Option<(Instant, Duration)>,
}

impl Wait {
    /// At most `idle` of silence, and all of it within `budget` from now.
    pub(crate) fn within(idle: Option<Duration>, budget: Option<Duration>) -> Self {
        Self {
            idle,
            until: budget.map(|b| (deadline_after(b), b)),
        }
    }

    /// The socket timeout for the next read and the limit it stands for (for the
    /// Timeout error), or that error if the deadline already passed.
    fn next_read(
        &self,
        op: &'static str,
    ) -> Result<(Option<Duration>, Option<Duration>), AgentError> {
        let Some((at, budget)) = self.until else {
            return Ok((self.idle, self.idle));
        };
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AgentError::Timeout { op, after: budget });
        }
        Ok(match self.idle {
            Some(i) if i < left => (Some(i), Some(i)),
            _ => (Some(left), Some(budget)),
        })
    }
}

/// `now + d`, saturating far in the future instead of overflowing.
fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// A framed stream.
pub(crate) struct Conn {
    stream: UnixStream,
    dec: FrameDecoder,
    buf: Vec<u8>,
    /// Most frames of other requests skipped per answer.
    pub(crate) max_stale: u32,
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
            max_stale: super::limits::DEFAULT_MAX_STALE_FRAMES,
        })
    }

    /// Reads the agent's Hello and checks its version.
    pub(crate) fn handshake(&mut self, timeout: Duration) -> Result<Hello, AgentError> {
        let op = "hello";
        let frame = self.recv(op, Wait::within(Some(timeout), Some(timeout)))?;
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

    /// Shuts the socket down both ways (wakes a thread blocked on a clone of it).
    pub(crate) fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
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

    /// The next frame, waiting as `wait` allows.
    pub(crate) fn recv(&mut self, op: &'static str, wait: Wait) -> Result<Frame, AgentError> {
        loop {
            match self.dec.next_frame() {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(source) => return Err(AgentError::Protocol { op, source }),
            }
            let (t, limit) = wait.next_read(op)?;
            if t == Some(Duration::ZERO) {
                return Err(AgentError::Timeout {
                    op,
                    after: Duration::ZERO,
                });
            }
            self.stream
                .set_read_timeout(t)
                .map_err(|e| AgentError::Io { op, source: e })?;
            let n = match self.stream.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(AgentError::from_io(op, e, limit)),
            };
            if n == 0 {
                return Err(AgentError::Disconnected { op });
            }
            self.dec.feed(&self.buf[..n]);
        }
    }

    /// The next frame of request `id`; frames of other (stale) requests are
    /// skipped (a bounded number of times), `Error` frames become typed errors.
    pub(crate) fn recv_for(
        &mut self,
        op: &'static str,
        id: u32,
        wait: Wait,
    ) -> Result<Message, AgentError> {
        let mut skipped = 0u32;
        loop {
            let frame = self.recv(op, wait)?;
            // Id 0 carries connection-level errors (e.g. "malformed frame").
            if frame.request_id != id && frame.request_id != 0 {
                skipped += 1;
                if skipped > self.max_stale {
                    return Err(AgentError::StaleFrames {
                        op,
                        frames: skipped,
                    });
                }
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
