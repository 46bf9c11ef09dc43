//! A window onto a shared, immutable byte buffer. Copies cost ~1 µs per 8 bytes
//! under PVM's emulator (a 64 KiB memcpy takes ~7 ms), so stream data moves as
//! chunks: a filled rx buffer becomes a chunk handed to the application, and a
//! chunk given to `send` goes to the device as-is, the buffer freed when the
//! last holder (connection, application or tx queue) lets go.

use alloc::rc::Rc;
use alloc::vec::Vec;

/// `buf[start..end]`, shared.
#[derive(Clone, Debug)]
pub struct Chunk {
    buf: Rc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Chunk {
    /// All of `v`.
    pub fn new(v: Vec<u8>) -> Self {
        let end = v.len();
        Chunk {
            buf: Rc::new(v),
            start: 0,
            end,
        }
    }

    /// `buf[start..end]`, clamped to the buffer.
    pub fn shared(buf: Rc<Vec<u8>>, start: usize, end: usize) -> Self {
        let end = end.min(buf.len());
        Chunk {
            start: start.min(end),
            end,
            buf,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Splits off and returns the first `n` bytes (all if `n >= len`).
    pub fn split_to(&mut self, n: usize) -> Chunk {
        let mid = self.start + n.min(self.len());
        let front = Chunk {
            buf: self.buf.clone(),
            start: self.start,
            end: mid,
        };
        self.start = mid;
        front
    }
}
