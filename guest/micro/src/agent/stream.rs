//! The raw byte services used to measure the transport: echo and sink. Neither
//! blocks: echo only takes more input when what it owes the peer is small, so a
//! peer that writes without reading stalls on credit instead of deadlocking us.
//! Both move data as chunks: echo sends back the very buffers it received, sink
//! drops them, so neither copies a byte.

use alloc::collections::VecDeque;

use super::Step;
use crate::virtio::vsock::{Chunk, ConnId, Vsock};

/// Most bytes echo holds for a peer before it stops reading.
const ECHO_BACKLOG: usize = 256 * 1024;

/// Echo: bytes come back as they arrive.
#[derive(Default)]
pub struct Echo {
    pending: VecDeque<Chunk>,
    pending_len: usize,
}

impl Echo {
    /// Moves what it can.
    pub fn step(&mut self, vs: &mut Vsock, conn: ConnId) -> Step {
        let mut progress = false;
        while self.pending_len < ECHO_BACKLOG {
            match vs.recv_chunk(conn, ECHO_BACKLOG - self.pending_len) {
                Ok(Some(c)) => {
                    self.pending_len += c.len();
                    self.pending.push_back(c);
                    progress = true;
                }
                _ => break,
            }
        }
        while let Some(front) = self.pending.front_mut() {
            match vs.try_send_chunk(conn, front) {
                Ok(0) => break,
                Ok(n) => {
                    self.pending_len -= n;
                    if front.is_empty() {
                        self.pending.pop_front();
                    }
                    progress = true;
                }
                Err(_) => {
                    vs.close(conn);
                    return Step::Done;
                }
            }
        }
        if self.pending.is_empty() && vs.at_eof(conn) {
            vs.close(conn);
            return Step::Done;
        }
        if progress {
            Step::Progress
        } else {
            Step::Idle
        }
    }
}

/// Sink: counts and discards; replies with the count at end of stream.
#[derive(Default)]
pub struct Sink {
    count: u64,
}

impl Sink {
    /// Drains what arrived.
    pub fn step(&mut self, vs: &mut Vsock, conn: ConnId) -> Step {
        let mut progress = false;
        if let Ok(n) = vs.skip(conn, usize::MAX) {
            self.count += n as u64;
            progress = n > 0;
        }
        if vs.at_eof(conn) {
            // The peer may have closed both ways: then the count has nowhere to go.
            let _ = vs.send(conn, &self.count.to_le_bytes());
            vs.close(conn);
            return Step::Done;
        }
        if progress {
            Step::Progress
        } else {
            Step::Idle
        }
    }
}
