//! Every host stream a sandbox opens (pooled agent connections, a streaming
//! exec's connection, `connect()` streams) is recorded here, so that stopping the
//! sandbox can shutdown(2) each one: a call blocked on it in any thread wakes at
//! once instead of waiting out a timeout (or forever), and later calls see the
//! sandbox is stopped before they touch a socket.
//!
//! Streams are recorded by descriptor number plus socket identity (device and
//! inode), not by a duplicate descriptor: a duplicate would keep the socket open
//! after its owner closed it, so the guest would never see the hang-up. At stop,
//! each number is duplicated first (atomic) and the duplicate's identity compared,
//! so a number since closed and reused by an unrelated file is left alone.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use crate::devices::bus::lock;

/// Entries kept before stale ones (closed by their owners) are pruned.
const PRUNE_AT: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tracked {
    fd: RawFd,
    dev: u64,
    ino: u64,
}

#[derive(Default)]
struct Inner {
    stopped: bool,
    live: Vec<Tracked>,
    prune_at: usize,
}

/// The streams of one sandbox, and whether it stopped.
#[derive(Default)]
pub struct Streams {
    inner: Mutex<Inner>,
}

impl Streams {
    /// Records `s` so [`stop`](Self::stop) shuts it down. After a stop, refuses
    /// (`NotConnected`) and shuts `s` down itself: no stream outlives the stop.
    pub fn track(&self, s: &UnixStream) -> io::Result<()> {
        let (dev, ino) = identity(s.as_raw_fd())?;
        let mut g = lock(&self.inner);
        if g.stopped {
            drop(g);
            let _ = s.shutdown(std::net::Shutdown::Both);
            return Err(stopped_error());
        }
        if g.live.len() >= g.prune_at.max(PRUNE_AT) {
            g.live.retain(|t| current(t).is_some());
            g.prune_at = g.live.len() * 2;
        }
        g.live.push(Tracked {
            fd: s.as_raw_fd(),
            dev,
            ino,
        });
        Ok(())
    }

    /// Marks the sandbox stopped and shuts down every recorded stream still open.
    /// Idempotent.
    pub fn stop(&self) {
        let mut g = lock(&self.inner);
        g.stopped = true;
        for t in g.live.drain(..) {
            if let Some(dup) = current(&t) {
                // SAFETY: shutdown(2) on a descriptor we own; no memory is passed.
                unsafe { libc::shutdown(dup.as_raw_fd(), libc::SHUT_RDWR) };
            }
        }
    }

    /// True once [`stop`](Self::stop) ran.
    /// Streams still open (closed ones are pruned first).
    pub fn open_count(&self) -> usize {
        let mut g = lock(&self.inner);
        g.live.retain(|t| current(t).is_some());
        g.live.len()
    }

    pub fn is_stopped(&self) -> bool {
        lock(&self.inner).stopped
    }

    /// Streams recorded and not yet pruned (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.inner).live.len()
    }
}

/// The error a connect after the stop gets.
pub fn stopped_error() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the sandbox was stopped")
}

/// A duplicate of `t.fd` if that number still names the recorded socket.
fn current(t: &Tracked) -> Option<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC takes no pointer; a closed number gives EBADF.
    let dup = unsafe { libc::fcntl(t.fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return None;
    }
    // SAFETY: `dup` is a fresh descriptor we exclusively own.
    let dup = unsafe { OwnedFd::from_raw_fd(dup) };
    match identity(dup.as_raw_fd()) {
        Ok((dev, ino)) if dev == t.dev && ino == t.ino => Some(dup),
        _ => None,
    }
}

/// (device, inode) of the file behind `fd`.
fn identity(fd: RawFd) -> io::Result<(u64, u64)> {
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable stat buffer; a bad `fd` gives EBADF.
    if unsafe { libc::fstat(fd, &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn stop_wakes_a_blocked_reader_and_refuses_new_streams() {
        let streams = Streams::default();
        let (a, _peer) = UnixStream::pair().unwrap();
        streams.track(&a).unwrap();
        std::thread::scope(|s| {
            let reader = s.spawn(|| (&a).read(&mut [0u8; 8]));
            std::thread::sleep(std::time::Duration::from_millis(50));
            streams.stop();
            // EOF, although the peer is still open.
            assert_eq!(reader.join().unwrap().unwrap(), 0);
        });
        assert!(streams.is_stopped());
        let (b, mut peer_b) = UnixStream::pair().unwrap();
        assert_eq!(
            streams.track(&b).unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        assert_eq!(
            peer_b.read(&mut [0u8; 8]).unwrap(),
            0,
            "refused stream is shut down"
        );
    }

    #[test]
    fn a_closed_and_reused_descriptor_number_is_left_alone() {
        use std::io::Write;
        let streams = Streams::default();
        let (a, _pa) = UnixStream::pair().unwrap();
        streams.track(&a).unwrap();
        // The recorded number now names another socket (as if `a` was closed and
        // the number reused): dup2 does both atomically.
        let (b, mut pb) = UnixStream::pair().unwrap();
        // SAFETY: both descriptors are open and ours; `a` keeps owning the number.
        assert!(unsafe { libc::dup2(b.as_raw_fd(), a.as_raw_fd()) } >= 0);
        streams.stop();
        // The unrelated socket still works both ways.
        (&a).write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        pb.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
        pb.write_all(b"y").unwrap();
        (&b).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"y");
    }

    #[test]
    fn closed_streams_do_not_pile_up() {
        let streams = Streams::default();
        for _ in 0..1000 {
            let (a, _b) = UnixStream::pair().unwrap();
            streams.track(&a).unwrap();
        }
        assert!(streams.len() <= 2 * PRUNE_AT, "{}", streams.len());
    }
}
