//! A command's stdin, decoupled from the connection: the serve loop only ever
//! queues (never blocks), a feeder thread writes to the child and acknowledges
//! each chunk with `StdinAck`, and the queue holds at most the protocol's
//! `STDIN_WINDOW` unacknowledged bytes. A host that overruns the window loses the
//! excess and the command's stdin is closed, so a child that never reads stdin
//! costs bounded memory and cannot stall Ping, Kill or other commands.

use std::collections::VecDeque;
use std::io::Write;
use std::process::ChildStdin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use kvmsandbox_proto::msg::STDIN_WINDOW;
use kvmsandbox_proto::Message;

use crate::wire::Writer;

/// What became of a chunk handed to [`StdinQueue::push`].
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// Queued for the child.
    Queued,
    /// Dropped: it would exceed the window; stdin is now closed.
    Overrun {
        /// Unacknowledged bytes already held.
        held: usize,
    },
    /// Dropped: stdin was already closed.
    Closed,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes received and not yet acknowledged (queued or being written).
    unacked: usize,
    /// No more data will be accepted (EOF, overrun or the command is over).
    closed: bool,
    /// Drop instead of writing (the child stopped reading or is gone).
    discard: bool,
}

/// One command's stdin queue; shared by the serve loop and the feeder.
#[derive(Default)]
pub struct StdinQueue {
    state: Mutex<State>,
    ready: Condvar,
}

impl StdinQueue {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `data`; never blocks.
    pub fn push(&self, data: Vec<u8>) -> Push {
        let mut s = self.lock();
        if s.closed {
            return Push::Closed;
        }
        if s.unacked + data.len() > STDIN_WINDOW as usize {
            s.closed = true;
            self.ready.notify_all();
            return Push::Overrun { held: s.unacked };
        }
        s.unacked += data.len();
        s.chunks.push_back(data);
        self.ready.notify_all();
        Push::Queued
    }

    /// EOF after what is queued.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// The command is over: drop everything, queued or still to come.
    pub fn abandon(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.discard = true;
        self.ready.notify_all();
    }

    /// The next chunk and whether to write it; `None` at EOF.
    fn next(&self) -> Option<(Vec<u8>, bool)> {
        let mut s = self.lock();
        loop {
            if let Some(c) = s.chunks.pop_front() {
                return Some((c, !s.discard));
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn acked(&self, n: usize) {
        let mut s = self.lock();
        s.unacked = s.unacked.saturating_sub(n);
    }

    fn stop_writing(&self) {
        self.lock().discard = true;
    }
}

/// Feeds `stdin` from `q` until EOF, acknowledging every chunk as request `id`.
/// Dropping `stdin` at the end closes the child's end.
pub fn feed(mut stdin: ChildStdin, q: Arc<StdinQueue>, id: u32, out: Writer) {
    let mut host_gone = false;
    while let Some((chunk, write)) = q.next() {
        if write && stdin.write_all(&chunk).is_err() {
            // The child closed its stdin: later chunks are acknowledged unread.
            q.stop_writing();
        }
        q.acked(chunk.len());
        if !host_gone {
            // Chunks are at most one frame, so the length fits a u32.
            let bytes = u32::try_from(chunk.len()).unwrap_or(u32::MAX);
            host_gone = out.send(id, Message::StdinAck { bytes }).is_err();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_never_blocks_and_bounds_what_is_held() {
        let q = StdinQueue::default();
        let chunk = vec![0u8; 512 * 1024];
        let fits = STDIN_WINDOW as usize / chunk.len();
        for _ in 0..fits {
            assert_eq!(q.push(chunk.clone()), Push::Queued);
        }
        assert_eq!(
            q.push(vec![1]),
            Push::Overrun {
                held: STDIN_WINDOW as usize
            }
        );
        // Overrun closed stdin: nothing more is taken, whatever the size.
        assert_eq!(q.push(vec![1]), Push::Closed);
        let mut n = 0;
        while let Some((c, write)) = q.next() {
            assert!(write);
            q.acked(c.len());
            n += 1;
        }
        assert_eq!(n, fits);
    }

    #[test]
    fn acknowledged_bytes_make_room_again() {
        let q = StdinQueue::default();
        let full = vec![0u8; STDIN_WINDOW as usize];
        assert_eq!(q.push(full), Push::Queued);
        let (c, _) = q.next().unwrap();
        q.acked(c.len());
        assert_eq!(q.push(vec![0u8; STDIN_WINDOW as usize]), Push::Queued);
    }

    #[test]
    fn abandon_discards_what_is_queued() {
        let q = StdinQueue::default();
        assert_eq!(q.push(vec![1, 2]), Push::Queued);
        q.abandon();
        assert_eq!(q.next(), Some((vec![1, 2], false)));
        assert_eq!(q.next(), None);
        assert_eq!(q.push(vec![3]), Push::Closed);
    }
}
