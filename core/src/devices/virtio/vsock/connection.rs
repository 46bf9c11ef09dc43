//! One vsock stream between a guest port and a host Unix stream: its state machine
//! and its credit-based flow control.
//!
//! Flow control (virtio spec §5.10.6.3): each side advertises `buf_alloc` (its
//! receive buffer) and `fwd_cnt` (bytes it has consumed). We never send the guest
//! more than `peer_buf_alloc - (rx_cnt - peer_fwd_cnt)` bytes, with the guest's
//! `buf_alloc` capped at [`MAX_PEER_BUF_ALLOC`] so absurd claims are bounded; we
//! advertise [`TX_BUF_SIZE`] and only count bytes as forwarded once the host socket
//! took them, so a guest that respects credit never overflows `tx_buf`, and one that
//! does not gets a RST.
//!
//! No I/O scheduling lives here: the muxer asks [`Connection::interest`] which epoll
//! events to watch, calls [`Connection::notify`] on readiness, hands guest packets to
//! [`Connection::send_pkt`] and pulls packets for the guest with
//! [`Connection::recv_pkt`]. Host-to-guest bytes are read from the socket only when
//! the guest has both credit and an rx buffer for them, so nothing is buffered that
//! way.
//!
//! Closing: guest SHUTDOWN(SEND) half-closes the host socket once `tx_buf` is flushed;
//! SHUTDOWN with both flags gets a RST (what Linux expects). Host EOF sends
//! SHUTDOWN(SEND); a host hang-up (EPOLLHUP: the socket is gone) sends
//! SHUTDOWN(RCV|SEND) and a RST after [`CLOSE_GRACE`] unless the guest resets first.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::Shutdown;
use std::num::Wrapping;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::packet::{
    Op, Packet, VsockHeader, MAX_PKT_DATA, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM,
};
use super::HOST_CID;

/// Our receive buffer toward the host socket (advertised as `buf_alloc`).
pub const TX_BUF_SIZE: u32 = 256 * 1024;
/// Send an unsolicited CREDIT_UPDATE once the guest believes it has less free
/// space than this, and we have forwarded bytes it has not heard of.
pub const CREDIT_UPDATE_THRESHOLD: u32 = TX_BUF_SIZE / 4;
/// The most credit we believe a guest's `buf_alloc` can give us.
pub const MAX_PEER_BUF_ALLOC: u32 = 4 * 1024 * 1024;
/// How long a host-initiated connection waits for the guest's RESPONSE.
/// Firecracker uses 2 s; a single-threaded guest agent that is busy (a long disk
/// request, a WASM run) under an emulating KVM (PVM) can take longer to poll its
/// queues, and a refused connection is worse than a slow one.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after a host hang-up we wait for the guest's RST before sending ours.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

const EPOLLIN: u32 = libc::EPOLLIN as u32;
const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
const EPOLLERR: u32 = libc::EPOLLERR as u32;

/// The host end of a connection (a non-blocking stream socket).
pub trait HostStream: Read + AsRawFd + Send {
    /// Writes without raising SIGPIPE if the peer is gone (we live in the caller's
    /// process and must not kill it).
    fn send(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Half-closes the write direction (the host reader sees EOF).
    fn shutdown_write(&self) -> io::Result<()>;
}

impl HostStream for UnixStream {
    fn send(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is a valid slice for `buf.len()` bytes and the fd is owned by
        // `self`; send() only reads from the buffer.
        let n = unsafe {
            libc::send(
                self.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// Where the stream is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Host-initiated: REQUEST sent (or queued), waiting for the guest's RESPONSE.
    Connecting,
    /// Data flows (possibly half-closed, see `peer_shutdown` / `host_eof`).
    Established,
    /// The host hung up; SHUTDOWN queued/sent, waiting for the guest's RST.
    Closing,
    /// Finished: the host stream is closed; a RST may still be queued. The muxer
    /// removes the connection once nothing is pending.
    Killed,
}

/// Control packets waiting for an rx buffer (bit set).
mod pending {
    pub const REQUEST: u8 = 1;
    pub const RESPONSE: u8 = 2;
    pub const RST: u8 = 4;
    pub const CREDIT_UPDATE: u8 = 8;
    pub const CREDIT_REQUEST: u8 = 16;
    pub const RW: u8 = 32;
    pub const SHUTDOWN: u8 = 64;
}

/// Per-connection errors (all lead to a RST; reported for logging and tests).
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The guest sent more than the credit we gave it.
    #[error(
        "guest overran its credit: {buffered} bytes buffered, {incoming} more, limit {TX_BUF_SIZE}"
    )]
    TxBufFull {
        /// Bytes already waiting for the host socket.
        buffered: usize,
        /// Bytes in the offending packet.
        incoming: usize,
    },
    /// A packet that makes no sense in the current state.
    #[error("unexpected {op:?} in state {state:?}")]
    Unexpected {
        /// The packet's op.
        op: Op,
        /// Our state.
        state: State,
    },
    /// The host socket failed.
    #[error("host socket error: {0}")]
    Io(#[from] io::Error),
}

/// One vsock stream.
pub struct Connection<S: HostStream> {
    stream: Option<S>,
    fd: RawFd,
    guest_cid: u64,
    local_port: u32,
    peer_port: u32,
    state: State,
    pending: u8,
    /// Flags for the SHUTDOWN we owe the guest.
    shutdown_flags: u32,
    /// Guest's SHUTDOWN flags so far.
    peer_shutdown: u32,
    /// The host socket returned EOF (no more host-to-guest data).
    host_eof: bool,
    /// The host socket hung up entirely.
    host_hup: bool,
    /// We half-closed the host socket's write side.
    host_write_shut: bool,
    /// Guest bytes waiting for the host socket.
    tx_buf: VecDeque<u8>,
    /// Bytes we owe the host before `tx_buf` (the `OK <port>\n` line).
    ctl_out: Vec<u8>,
    /// Guest bytes received in total.
    tx_cnt: Wrapping<u32>,
    /// Guest bytes written to the host socket (our `fwd_cnt`).
    fwd_cnt: Wrapping<u32>,
    /// `fwd_cnt` as last told to the guest.
    last_fwd_cnt_sent: Wrapping<u32>,
    /// Bytes sent to the guest in RW packets.
    rx_cnt: Wrapping<u32>,
    peer_buf_alloc: u32,
    peer_fwd_cnt: Wrapping<u32>,
    /// We asked for credit and have not heard back.
    credit_requested: bool,
    deadline: Option<Instant>,
    /// Why the connection was reset, if it was.
    pub last_error: Option<String>,
}

impl<S: HostStream> Connection<S> {
    fn new(stream: S, guest_cid: u64, local_port: u32, peer_port: u32, state: State) -> Self {
        let fd = stream.as_raw_fd();
        Connection {
            stream: Some(stream),
            fd,
            guest_cid,
            local_port,
            peer_port,
            state,
            pending: 0,
            shutdown_flags: 0,
            peer_shutdown: 0,
            host_eof: false,
            host_hup: false,
            host_write_shut: false,
            tx_buf: VecDeque::new(),
            ctl_out: Vec::new(),
            tx_cnt: Wrapping(0),
            fwd_cnt: Wrapping(0),
            last_fwd_cnt_sent: Wrapping(0),
            rx_cnt: Wrapping(0),
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
            credit_requested: false,
            deadline: None,
            last_error: None,
        }
    }

    /// A host-initiated stream to guest port `peer_port`: queues a REQUEST and
    /// times out after [`CONNECT_TIMEOUT`] without a RESPONSE.
    pub fn new_local_init(
        stream: S,
        guest_cid: u64,
        local_port: u32,
        peer_port: u32,
        now: Instant,
    ) -> Self {
        let mut c = Self::new(stream, guest_cid, local_port, peer_port, State::Connecting);
        c.pending = pending::REQUEST;
        c.deadline = Some(now + CONNECT_TIMEOUT);
        c
    }

    /// A guest-initiated stream (its REQUEST in `req`) already connected to a host
    /// listener: queues the RESPONSE.
    pub fn new_peer_init(stream: S, guest_cid: u64, req: &VsockHeader) -> Self {
        let mut c = Self::new(
            stream,
            guest_cid,
            req.dst_port,
            req.src_port,
            State::Established,
        );
        c.update_peer_credit(req);
        c.pending = pending::RESPONSE;
        c
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Our (host-side) port.
    pub fn local_port(&self) -> u32 {
        self.local_port
    }

    /// The guest's port.
    pub fn peer_port(&self) -> u32 {
        self.peer_port
    }

    /// The host socket's fd (stays valid as a key after the socket is closed).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// When [`Connection::on_timeout`] should run.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Something is waiting for an rx buffer.
    pub fn has_pending_rx(&self) -> bool {
        self.pending != 0
    }

    /// Dead and nothing left to tell the guest: the muxer may drop it.
    pub fn is_done(&self) -> bool {
        self.state == State::Killed && self.pending == 0
    }

    /// The host stream is still open.
    pub fn has_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Bytes of guest data waiting for the host socket.
    pub fn tx_buffered(&self) -> usize {
        self.tx_buf.len()
    }

    /// Credit the guest currently gives us (bytes we may still send it).
    pub fn peer_credit(&self) -> u32 {
        let in_flight = (self.rx_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc
            .min(MAX_PEER_BUF_ALLOC)
            .saturating_sub(in_flight)
    }

    /// The epoll events worth watching on the host socket now (0: none).
    pub fn interest(&self) -> u32 {
        if self.stream.is_none() || self.state == State::Killed {
            return 0;
        }
        let mut ev = 0;
        if self.state != State::Connecting
            && !self.host_eof
            && self.peer_shutdown & SHUTDOWN_RCV == 0
            && self.pending & pending::RW == 0
            && self.peer_credit() > 0
        {
            ev |= EPOLLIN;
        }
        if !self.tx_buf.is_empty() || !self.ctl_out.is_empty() {
            ev |= EPOLLOUT;
        }
        ev
    }

    fn header(&mut self, op: Op) -> VsockHeader {
        self.last_fwd_cnt_sent = self.fwd_cnt;
        VsockHeader {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: self.local_port,
            dst_port: self.peer_port,
            len: 0,
            type_: TYPE_STREAM,
            op: op as u16,
            flags: 0,
            buf_alloc: TX_BUF_SIZE,
            fwd_cnt: self.fwd_cnt.0,
        }
    }

    fn control(&mut self, op: Op) -> Packet {
        Packet {
            hdr: self.header(op),
            op,
            data: Vec::new(),
        }
    }

    /// Closes the host stream and queues a RST (if `rst`).
    pub fn kill(&mut self, rst: bool) {
        self.stream = None;
        self.state = State::Killed;
        self.deadline = None;
        self.tx_buf.clear();
        self.ctl_out.clear();
        self.pending = if rst { pending::RST } else { 0 };
    }

    fn reset_with(&mut self, err: ConnError) {
        self.last_error = Some(err.to_string());
        self.kill(true);
    }

    fn update_peer_credit(&mut self, h: &VsockHeader) {
        self.peer_buf_alloc = h.buf_alloc;
        self.peer_fwd_cnt = Wrapping(h.fwd_cnt);
        if self.peer_credit() > 0 {
            self.credit_requested = false;
        }
    }

    /// Handles a packet the guest sent on this connection.
    pub fn send_pkt(&mut self, pkt: &Packet, now: Instant) {
        if self.state == State::Killed {
            return;
        }
        self.update_peer_credit(&pkt.hdr);
        match (self.state, pkt.op) {
            (_, Op::Rst) => self.kill(false),
            (State::Connecting, Op::Response) => {
                self.state = State::Established;
                self.deadline = None;
                self.ctl_out
                    .extend_from_slice(format!("OK {}\n", self.local_port).as_bytes());
                self.flush_host();
            }
            (State::Established | State::Closing, Op::Rw) => {
                if self.peer_shutdown & SHUTDOWN_SEND != 0 {
                    return self.reset_with(ConnError::Unexpected {
                        op: Op::Rw,
                        state: self.state,
                    });
                }
                if self.state == State::Closing || self.host_write_shut {
                    // The host cannot take data any more; count it as consumed.
                    self.tx_cnt += Wrapping(pkt.data.len() as u32);
                    self.fwd_cnt += Wrapping(pkt.data.len() as u32);
                    return;
                }
                if self.tx_buf.len() + pkt.data.len() > TX_BUF_SIZE as usize {
                    return self.reset_with(ConnError::TxBufFull {
                        buffered: self.tx_buf.len(),
                        incoming: pkt.data.len(),
                    });
                }
                self.tx_cnt += Wrapping(pkt.data.len() as u32);
                self.tx_buf.extend(pkt.data.iter().copied());
                self.flush_host();
            }
            (State::Established | State::Closing, Op::CreditUpdate) => {}
            (State::Established | State::Closing, Op::CreditRequest) => {
                self.pending |= pending::CREDIT_UPDATE;
            }
            (State::Established | State::Closing, Op::Shutdown) => {
                self.peer_shutdown |= pkt.hdr.flags & (SHUTDOWN_RCV | SHUTDOWN_SEND);
                if self.peer_shutdown & SHUTDOWN_RCV != 0 {
                    self.pending &= !pending::RW;
                }
                self.after_peer_shutdown(now);
            }
            (state, op) => self.reset_with(ConnError::Unexpected { op, state }),
        }
    }

    /// Once the guest shut down and our buffer is flushed, pass the half-close on
    /// to the host, or reset if both directions are done.
    fn after_peer_shutdown(&mut self, _now: Instant) {
        if self.state == State::Killed || !self.tx_buf.is_empty() || !self.ctl_out.is_empty() {
            return;
        }
        if self.peer_shutdown == SHUTDOWN_RCV | SHUTDOWN_SEND {
            self.kill(true);
            return;
        }
        if self.peer_shutdown & SHUTDOWN_SEND != 0 && !self.host_write_shut {
            self.host_write_shut = true;
            if let Some(s) = &self.stream {
                // The peer may already be gone: then there is nothing to tell it.
                let _ = s.shutdown_write();
            }
        }
    }

    /// Writes as much of `ctl_out` and `tx_buf` to the host as it takes now.
    fn flush_host(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        while !self.ctl_out.is_empty() {
            match stream.send(&self.ctl_out) {
                Ok(0) => return self.reset_with(ConnError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.ctl_out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.reset_with(e.into()),
            }
        }
        let before = self.fwd_cnt;
        while !self.tx_buf.is_empty() {
            let (a, _) = self.tx_buf.as_slices();
            match stream.send(a) {
                Ok(0) => return self.reset_with(ConnError::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.tx_buf.drain(..n);
                    self.fwd_cnt += Wrapping(n as u32);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.reset_with(e.into()),
            }
        }
        if self.fwd_cnt != before {
            // The guest's view of our free space: buf_alloc minus what it sent that
            // it has not seen forwarded.
            let guest_view_free =
                TX_BUF_SIZE.saturating_sub((self.tx_cnt - self.last_fwd_cnt_sent).0);
            if guest_view_free < CREDIT_UPDATE_THRESHOLD {
                self.pending |= pending::CREDIT_UPDATE;
            }
        }
        if self.tx_buf.is_empty() && self.peer_shutdown != 0 {
            self.after_peer_shutdown(Instant::now());
        }
    }

    /// The host socket is ready (epoll bits).
    pub fn notify(&mut self, events: u32, now: Instant) {
        if self.state == State::Killed {
            return;
        }
        if events & EPOLLHUP != 0 && !self.host_hup {
            self.host_hup = true;
            if self.host_eof {
                self.begin_closing(now);
            }
        }
        if events & (EPOLLOUT | EPOLLERR | EPOLLHUP) != 0
            && (!self.tx_buf.is_empty() || !self.ctl_out.is_empty())
        {
            self.flush_host();
        }
        if self.state == State::Killed {
            return;
        }
        if events & (EPOLLIN | EPOLLHUP | EPOLLERR) != 0 && self.interest() & EPOLLIN != 0 {
            self.pending |= pending::RW;
        }
    }

    fn begin_closing(&mut self, now: Instant) {
        if self.state == State::Established {
            self.state = State::Closing;
            self.shutdown_flags = SHUTDOWN_RCV | SHUTDOWN_SEND;
            self.pending |= pending::SHUTDOWN;
            self.deadline = Some(now + CLOSE_GRACE);
            self.stream = None;
            self.tx_buf.clear();
            self.ctl_out.clear();
        }
    }

    /// The deadline passed: a host connect timed out, or the close grace ended.
    pub fn on_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(d) if d <= now => {}
            _ => return,
        }
        match self.state {
            // The guest never answered the REQUEST: give up and tell it so.
            State::Connecting => {
                self.last_error = Some("guest did not answer the connection request".into());
                self.kill(true);
            }
            State::Closing => self.kill(true),
            _ => self.deadline = None,
        }
    }

    /// The next packet for the guest, with at most `max_data` payload bytes.
    /// `None` if nothing is ready (e.g. the host socket had no data after all).
    pub fn recv_pkt(&mut self, max_data: usize, now: Instant) -> Option<Packet> {
        if self.pending & pending::RST != 0 {
            self.pending = 0;
            return Some(self.control(Op::Rst));
        }
        if self.pending & pending::REQUEST != 0 {
            self.pending &= !pending::REQUEST;
            return Some(self.control(Op::Request));
        }
        if self.pending & pending::RESPONSE != 0 {
            self.pending &= !pending::RESPONSE;
            return Some(self.control(Op::Response));
        }
        if self.pending & pending::CREDIT_UPDATE != 0 {
            self.pending &= !pending::CREDIT_UPDATE;
            return Some(self.control(Op::CreditUpdate));
        }
        if self.pending & pending::CREDIT_REQUEST != 0 {
            self.pending &= !pending::CREDIT_REQUEST;
            return Some(self.control(Op::CreditRequest));
        }
        if self.pending & pending::RW != 0 {
            if let Some(p) = self.read_host(max_data, now) {
                return Some(p);
            }
        }
        if self.pending & pending::SHUTDOWN != 0 {
            self.pending &= !pending::SHUTDOWN;
            let mut p = self.control(Op::Shutdown);
            p.hdr.flags = self.shutdown_flags;
            return Some(p);
        }
        None
    }

    /// Reads host bytes into an RW packet, within the guest's credit.
    fn read_host(&mut self, max_data: usize, now: Instant) -> Option<Packet> {
        if max_data == 0 {
            // An rx buffer with room for the header only: keep the data for a
            // bigger one (and keep EPOLLIN off meanwhile, so nothing spins).
            return None;
        }
        self.pending &= !pending::RW;
        let credit = self.peer_credit() as usize;
        let want = max_data.min(credit).min(MAX_PKT_DATA as usize);
        if want == 0 || self.state == State::Killed || self.host_eof {
            return None;
        }
        let stream = self.stream.as_mut()?;
        let mut buf = vec![0u8; want];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.host_eof = true;
                    if self.host_hup {
                        self.begin_closing(now);
                    } else {
                        self.shutdown_flags = SHUTDOWN_SEND;
                        self.pending |= pending::SHUTDOWN;
                        // Guest already closed its side too: the stream is finished.
                        if self.peer_shutdown & SHUTDOWN_SEND != 0 {
                            self.begin_closing(now);
                        }
                    }
                    return None;
                }
                Ok(n) => {
                    buf.truncate(n);
                    self.rx_cnt += Wrapping(n as u32);
                    if n == want && self.peer_credit() > 0 {
                        // Probably more waiting: keep the slot instead of another epoll trip.
                        self.pending |= pending::RW;
                    }
                    if self.peer_credit() == 0 && !self.credit_requested {
                        self.credit_requested = true;
                        self.pending |= pending::CREDIT_REQUEST;
                    }
                    let mut hdr = self.header(Op::Rw);
                    hdr.len = n as u32;
                    return Some(Packet {
                        hdr,
                        op: Op::Rw,
                        data: buf,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.reset_with(e.into());
                    // The RST is now pending; hand it out right away.
                    self.pending = 0;
                    return Some(self.control(Op::Rst));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
