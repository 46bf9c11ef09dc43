//! One vsock stream's state and credit accounting (virtio 1.x §5.10.6.3).
//!
//! We advertise [`BUF_ALLOC`] and count `fwd_cnt` as the application takes data;
//! the peer may have `peer_buf_alloc - (tx_cnt - peer_fwd_cnt)` bytes in flight
//! from us. A CREDIT_UPDATE goes out only when the peer's view of our free space
//! has fallen below half, so a bulk stream costs few extra packets. Received data
//! waits as [`Chunk`]s (no copy).

use alloc::collections::VecDeque;

use super::chunk::Chunk;
use super::packet::{Header, SHUTDOWN_RCV, SHUTDOWN_SEND};

/// Receive buffer we advertise per connection.
pub const BUF_ALLOC: u32 = 256 * 1024;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// We sent REQUEST and wait for RESPONSE.
    Connecting,
    /// Data may flow.
    Established,
    /// Reset by either side (or refused): only reading leftovers and `close` remain.
    Closed,
}

/// A stream socket.
#[derive(Debug)]
pub struct Conn {
    pub local_port: u32,
    pub peer_cid: u64,
    pub peer_port: u32,
    pub state: State,
    /// Data received and not yet taken by the application.
    pub rx: VecDeque<Chunk>,
    /// Total bytes in `rx`.
    pub rx_len: usize,
    /// Bytes the application has taken (wrapping), as advertised.
    pub fwd_cnt: u32,
    /// `fwd_cnt` as last told to the peer.
    pub fwd_cnt_sent: u32,
    pub peer_buf_alloc: u32,
    pub peer_fwd_cnt: u32,
    /// Bytes we have sent (wrapping).
    pub tx_cnt: u32,
    /// SHUTDOWN flags the peer sent.
    pub peer_shutdown: u32,
    /// We sent our SHUTDOWN.
    pub local_shutdown: bool,
    /// A CREDIT_REQUEST is outstanding (we are stalled on credit).
    pub credit_requested: bool,
    /// The application called `close`.
    pub closed_by_app: bool,
}

impl Conn {
    /// A connection in `state` between our `local_port` and the peer.
    pub fn new(local_port: u32, peer_cid: u64, peer_port: u32, state: State) -> Self {
        Conn {
            local_port,
            peer_cid,
            peer_port,
            state,
            rx: VecDeque::new(),
            rx_len: 0,
            fwd_cnt: 0,
            fwd_cnt_sent: 0,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            tx_cnt: 0,
            peer_shutdown: 0,
            local_shutdown: false,
            credit_requested: false,
            closed_by_app: false,
        }
    }

    /// Takes the peer's credit information from any packet it sent.
    pub fn update_peer_credit(&mut self, h: &Header) {
        self.peer_buf_alloc = h.buf_alloc;
        self.peer_fwd_cnt = h.fwd_cnt;
        if self.peer_credit() > 0 {
            self.credit_requested = false;
        }
    }

    /// Bytes we may send now.
    pub fn peer_credit(&self) -> u32 {
        let in_flight = self.tx_cnt.wrapping_sub(self.peer_fwd_cnt);
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Room left in our receive buffer.
    pub fn rx_room(&self) -> usize {
        (BUF_ALLOC as usize).saturating_sub(self.rx_len)
    }

    /// Queues received data.
    pub fn push_rx(&mut self, c: Chunk) {
        self.rx_len += c.len();
        self.rx.push_back(c);
    }

    /// Takes up to `max` bytes from the front of `rx` as one chunk.
    pub fn pop_rx(&mut self, max: usize) -> Option<Chunk> {
        let front = self.rx.front_mut()?;
        let c = if front.len() <= max {
            self.rx.pop_front()?
        } else {
            front.split_to(max)
        };
        self.rx_len -= c.len();
        self.fwd_cnt = self.fwd_cnt.wrapping_add(c.len() as u32);
        Some(c)
    }

    /// Whether the peer should hear about our consumption now.
    pub fn wants_credit_update(&self) -> bool {
        if self.state != State::Established || self.fwd_cnt == self.fwd_cnt_sent {
            return false;
        }
        // What the peer believes is free: BUF_ALLOC minus what it sent past our
        // last advertised fwd_cnt.
        let unacked = self.fwd_cnt.wrapping_sub(self.fwd_cnt_sent) as usize + self.rx_len;
        (BUF_ALLOC as usize).saturating_sub(unacked) < BUF_ALLOC as usize / 2
    }

    /// The peer will send nothing more.
    pub fn peer_done_sending(&self) -> bool {
        self.peer_shutdown & SHUTDOWN_SEND != 0 || self.state == State::Closed
    }

    /// The peer will accept nothing more.
    pub fn peer_done_receiving(&self) -> bool {
        self.peer_shutdown & SHUTDOWN_RCV != 0 || self.state == State::Closed
    }
}
