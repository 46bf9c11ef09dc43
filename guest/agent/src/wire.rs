//! Frame I/O over one connection: a reader that yields whole frames and a
//! cloneable writer that sends each frame atomically (several threads of one
//! exec write output frames concurrently).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kvmsandbox_proto::{ErrorCode, Frame, FrameDecoder, Message};

/// Sends frames; clones share the socket.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Mutex<File>>,
}

impl Writer {
    /// Wraps the write side of a connection.
    pub fn new(file: File) -> Self {
        Self {
            inner: Arc::new(Mutex::new(file)),
        }
    }

    /// Sends one message as a frame with `id`.
    pub fn send(&self, id: u32, msg: Message) -> io::Result<()> {
        let bytes = Frame::new(id, msg)
            .encode()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut f = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(&bytes)
    }

    /// Sends an `Error` frame.
    pub fn error(&self, id: u32, code: ErrorCode, message: impl Into<String>) -> io::Result<()> {
        self.send(
            id,
            Message::Error {
                code,
                message: message.into(),
            },
        )
    }
}

/// Reads whole frames from a connection.
pub struct Reader {
    file: File,
    dec: FrameDecoder,
    buf: Vec<u8>,
}

impl Reader {
    /// Wraps the read side of a connection.
    pub fn new(file: File) -> Self {
        Self {
            file,
            dec: FrameDecoder::new(),
            buf: vec![0; 256 * 1024],
        }
    }

    /// The next frame; `Ok(None)` when the peer closed the connection. A malformed
    /// frame is an `InvalidData` error (the stream cannot be resynchronised).
    pub fn next(&mut self) -> io::Result<Option<Frame>> {
        loop {
            match self.dec.next_frame() {
                Ok(Some(f)) => return Ok(Some(f)),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let n = match self.file.read(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(None);
            }
            self.dec.feed(&self.buf[..n]);
        }
    }
}

impl Reader {
    /// Waits until the peer closes the connection (whatever it still sends is
    /// dropped) or `deadline` passes; true if it closed.
    pub fn wait_hangup(&mut self, deadline: Instant) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let mut pfd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: one valid pollfd that outlives the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return false;
            }
            if rc <= 0 {
                continue;
            }
            match self.file.read(&mut self.buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset connection is a hung-up one.
                Err(_) => return true,
            }
        }
    }
}

/// Maps an I/O error to the protocol's stable code.
pub fn code_of(e: &io::Error) -> ErrorCode {
    match e.kind() {
        io::ErrorKind::NotFound => ErrorCode::NotFound,
        io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
        io::ErrorKind::AlreadyExists => ErrorCode::AlreadyExists,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => ErrorCode::Invalid,
        io::ErrorKind::TimedOut => ErrorCode::Timeout,
        io::ErrorKind::Unsupported => ErrorCode::Unsupported,
        _ => ErrorCode::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    fn pair() -> (Reader, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (Reader::new(File::from(OwnedFd::from(a))), b)
    }

    #[test]
    fn hangup_is_seen_after_whatever_the_peer_still_sent() {
        let (mut r, mut peer) = pair();
        // More than a socket buffer holds: only a reader that drains sees the end.
        let closer = std::thread::spawn(move || {
            peer.write_all(&[1u8; 1 << 20]).unwrap();
            drop(peer);
        });
        let t = Instant::now();
        assert!(r.wait_hangup(Instant::now() + Duration::from_secs(10)));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        closer.join().unwrap();
    }

    #[test]
    fn a_silent_peer_costs_only_the_bound() {
        let (mut r, _peer) = pair();
        let t = Instant::now();
        assert!(!r.wait_hangup(Instant::now() + Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
