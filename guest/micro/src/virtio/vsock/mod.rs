//! virtio-vsock driver (virtio 1.x §5.10) with a small stream-socket API.
//!
//! Queues: rx (kept full of [`RX_BUF_SIZE`]-byte buffers, one descriptor each),
//! tx (a header descriptor plus, for data, one descriptor pointing at the
//! caller's [`Chunk`], held until the device is done), event (transport resets).
//! Everything runs on vCPU 0 from one loop: [`Vsock::poll`] drains the used rings
//! and dispatches packets to connections; blocking calls loop on `poll` and sleep
//! in `hlt` between device interrupts.
//!
//! Copies are the dominant cost under PVM (see `chunk.rs`), so large received
//! payloads are handed to the connection in the rx buffer they arrived in (a new
//! buffer takes its place; buffers are never zeroed), small ones are copied so a
//! peer sending tiny packets cannot pin many 64 KiB buffers. Control packets and
//! data go through one FIFO backlog, so a full tx queue never loses a packet; data
//! is only queued while the backlog is empty, which bounds it.

pub mod chunk;
pub mod conn;
pub mod packet;

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::fmt;

pub use self::chunk::Chunk;
use self::conn::{Conn, State, BUF_ALLOC};
use self::packet::{op, Header, HDR_SIZE, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};
use super::mmio::{MmioError, MmioTransport};
use super::queue::{Buf, Virtqueue};
use crate::interrupts;

/// virtio device id of a vsock device.
pub const DEVICE_ID: u32 = 19;
/// The host's context id.
pub const HOST_CID: u64 = 2;
/// Largest payload of one packet (the host device's limit too).
pub const MAX_PKT_DATA: usize = 64 * 1024;
/// Size of each rx buffer (header + up to 64 KiB - 44 of payload): exactly one
/// allocator size class.
pub const RX_BUF_SIZE: usize = 64 * 1024;
/// Payloads up to this size are copied out of their rx buffer.
const COPY_THRESHOLD: usize = 16 * 1024;
/// rx buffers kept posted.
const RX_BUFFERS: usize = 32;
/// Event queue buffers kept posted.
const EVENT_BUFFERS: usize = 4;
/// `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET`.
const EVENT_TRANSPORT_RESET: u32 = 0;
/// First port handed to outgoing connections.
const EPHEMERAL_START: u32 = 49152;
const QUEUE_RX: u32 = 0;
const QUEUE_TX: u32 = 1;
const QUEUE_EVENT: u32 = 2;

/// A connection handle.
pub type ConnId = usize;

/// A failed socket operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VsockError {
    /// The transport could not be brought up.
    Transport(MmioError),
    /// No such connection (never opened or already closed).
    NoSuchConn { conn: ConnId },
    /// The connection was reset or the peer will receive nothing more.
    Closed { conn: ConnId },
    /// The peer refused the connection (RST in reply to REQUEST).
    Refused { cid: u64, port: u32 },
}

impl fmt::Display for VsockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Transport(e) => write!(f, "virtio-vsock: {e}"),
            Self::NoSuchConn { conn } => write!(f, "no vsock connection {conn}"),
            Self::Closed { conn } => write!(f, "vsock connection {conn} is closed"),
            Self::Refused { cid, port } => write!(f, "connection to {cid}:{port} refused"),
        }
    }
}

impl From<MmioError> for VsockError {
    fn from(e: MmioError) -> Self {
        Self::Transport(e)
    }
}

/// A packet on its way to (or on) the tx queue.
struct TxPacket {
    hdr: Box<[u8; HDR_SIZE]>,
    data: Option<Chunk>,
}

/// Counters for diagnostics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_copied: u64,
}

/// The vsock device and every socket on it.
///
/// Some socket calls are not used by the agent itself yet (`try_send`, `recv`,
/// `is_closed`, `open_connections`): they are the API for guest code such as the
/// WASM runner.
pub struct Vsock {
    dev: MmioTransport,
    irq: u32,
    cid: u64,
    rxq: Virtqueue,
    txq: Virtqueue,
    evq: Virtqueue,
    rx_bufs: Vec<Option<Vec<u8>>>,
    tx_bufs: Vec<Option<TxPacket>>,
    ev_bufs: Vec<Option<Box<[u8; 8]>>>,
    tx_backlog: VecDeque<TxPacket>,
    listeners: Vec<u32>,
    conns: Vec<Option<Conn>>,
    accept_q: VecDeque<ConnId>,
    next_port: u32,
    stats: Stats,
}

#[allow(dead_code)]
impl Vsock {
    /// Brings up the device at `base` with interrupt line `irq` and fills its rx
    /// and event queues.
    pub fn init(base: u64, irq: u32) -> Result<Self, VsockError> {
        let dev = MmioTransport::probe(base, DEVICE_ID)?;
        dev.negotiate(0)?;
        let rxq = dev.setup_queue(QUEUE_RX, 64)?;
        let txq = dev.setup_queue(QUEUE_TX, 256)?;
        let evq = dev.setup_queue(QUEUE_EVENT, 8)?;
        let cid = dev.config_u64(0);
        let (rs, ts, es) = (
            usize::from(rxq.size()),
            usize::from(txq.size()),
            usize::from(evq.size()),
        );
        let mut v = Vsock {
            dev,
            irq,
            cid,
            rxq,
            txq,
            evq,
            rx_bufs: (0..rs).map(|_| None).collect(),
            tx_bufs: (0..ts).map(|_| None).collect(),
            ev_bufs: (0..es).map(|_| None).collect(),
            tx_backlog: VecDeque::new(),
            listeners: Vec::new(),
            conns: Vec::new(),
            accept_q: VecDeque::new(),
            next_port: EPHEMERAL_START,
            stats: Stats::default(),
        };
        for _ in 0..RX_BUFFERS.min(rs) {
            v.post_rx(Vec::with_capacity(RX_BUF_SIZE));
        }
        for _ in 0..EVENT_BUFFERS.min(es) {
            v.post_event(Box::new([0u8; 8]));
        }
        v.dev.driver_ok();
        v.dev.notify(QUEUE_RX);
        v.dev.notify(QUEUE_EVENT);
        Ok(v)
    }

    /// Our context id, from the device's config space.
    pub fn cid(&self) -> u64 {
        self.cid
    }

    /// Packet and byte counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Posts an empty buffer (its capacity is what the device may fill; its
    /// contents are never read before the device wrote them).
    fn post_rx(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        let b = Buf {
            addr: buf.as_mut_ptr() as u64,
            len: buf.capacity() as u32,
            device_writes: true,
        };
        if let Some(head) = self.rxq.push(&[b]) {
            if let Some(slot) = self.rx_bufs.get_mut(usize::from(head)) {
                *slot = Some(buf);
            }
        }
    }

    fn post_event(&mut self, mut buf: Box<[u8; 8]>) {
        if let Some(head) = self.evq.push(&[Buf::writable(&mut buf[..4])]) {
            if let Some(slot) = self.ev_bufs.get_mut(usize::from(head)) {
                *slot = Some(buf);
            }
        }
    }

    /// Accepts connections to `port` from now on.
    pub fn listen(&mut self, port: u32) {
        if !self.listeners.contains(&port) {
            self.listeners.push(port);
        }
    }

    /// A connection accepted on a listening port, with that port, if any is waiting.
    pub fn accept(&mut self) -> Option<(ConnId, u32)> {
        while let Some(id) = self.accept_q.pop_front() {
            if let Some(Some(c)) = self.conns.get(id) {
                return Some((id, c.local_port));
            }
        }
        None
    }

    /// Connects to `cid:port`, blocking until the peer answers.
    pub fn connect(&mut self, cid: u64, port: u32) -> Result<ConnId, VsockError> {
        let local = self.next_port;
        self.next_port = if local == u32::MAX {
            EPHEMERAL_START
        } else {
            local + 1
        };
        let id = self.insert(Conn::new(local, cid, port, State::Connecting));
        self.queue_ctrl(id, op::REQUEST, 0);
        self.flush_tx();
        self.wait_until(|v| v.conn(id).is_none_or(|c| c.state != State::Connecting));
        match self.conn(id) {
            Some(c) if c.state == State::Established => Ok(id),
            _ => {
                self.conns[id] = None;
                Err(VsockError::Refused { cid, port })
            }
        }
    }

    fn insert(&mut self, c: Conn) -> ConnId {
        if let Some(i) = self.conns.iter().position(Option::is_none) {
            self.conns[i] = Some(c);
            i
        } else {
            self.conns.push(Some(c));
            self.conns.len() - 1
        }
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(id).and_then(Option::as_ref)
    }

    fn conn_mut(&mut self, id: ConnId) -> Result<&mut Conn, VsockError> {
        self.conns
            .get_mut(id)
            .and_then(Option::as_mut)
            .ok_or(VsockError::NoSuchConn { conn: id })
    }

    /// Sends as much of `data` as the peer's credit and the tx queue allow now,
    /// without copying it; advances `data` past what was sent and returns that
    /// many bytes.
    pub fn try_send_chunk(&mut self, id: ConnId, data: &mut Chunk) -> Result<usize, VsockError> {
        self.flush_tx();
        let backlog = !self.tx_backlog.is_empty();
        let cid = self.cid;
        let c = self.conn_mut(id)?;
        if c.state != State::Established || c.peer_done_receiving() || c.local_shutdown {
            return Err(VsockError::Closed { conn: id });
        }
        if backlog {
            return Ok(0);
        }
        let mut sent = 0;
        let mut pkts: Vec<TxPacket> = Vec::new();
        let mut ask_credit = false;
        while !data.is_empty() && pkts.len() < 8 {
            let n = data.len().min(c.peer_credit() as usize).min(MAX_PKT_DATA);
            if n == 0 {
                ask_credit = !c.credit_requested;
                c.credit_requested = true;
                break;
            }
            let hdr = Box::new(header(cid, c, op::RW, 0, n as u32).to_bytes());
            c.fwd_cnt_sent = c.fwd_cnt;
            c.tx_cnt = c.tx_cnt.wrapping_add(n as u32);
            pkts.push(TxPacket {
                hdr,
                data: Some(data.split_to(n)),
            });
            sent += n;
        }
        self.tx_backlog.extend(pkts);
        if ask_credit {
            self.queue_ctrl(id, op::CREDIT_REQUEST, 0);
        }
        self.flush_tx();
        Ok(sent)
    }

    /// Like [`Vsock::try_send_chunk`] for borrowed bytes (copied once if any can go).
    pub fn try_send(&mut self, id: ConnId, data: &[u8]) -> Result<usize, VsockError> {
        let credit = self.conn(id).map_or(0, Conn::peer_credit) as usize;
        // At least one byte even without credit, so the stall is reported (CREDIT_REQUEST).
        let n = data.len().min(credit.max(1)).min(8 * MAX_PKT_DATA);
        let mut c = Chunk::new(data[..n].to_vec());
        self.try_send_chunk(id, &mut c)
    }

    /// Sends all of `data`, sleeping while the peer has no credit for it.
    pub fn send_chunk(&mut self, id: ConnId, mut data: Chunk) -> Result<(), VsockError> {
        while !data.is_empty() {
            let seen = interrupts::count();
            let n = self.try_send_chunk(id, &mut data)?;
            if !data.is_empty() && n == 0 && !self.poll() {
                interrupts::idle_since(seen);
            }
        }
        Ok(())
    }

    /// Sends all of `data` (owned: no copy).
    pub fn send_vec(&mut self, id: ConnId, data: Vec<u8>) -> Result<(), VsockError> {
        self.send_chunk(id, Chunk::new(data))
    }

    /// Sends all of `data` (copied once).
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<(), VsockError> {
        self.send_vec(id, data.to_vec())
    }

    /// Takes up to `max` received bytes as one chunk (no copy), if any.
    pub fn recv_chunk(&mut self, id: ConnId, max: usize) -> Result<Option<Chunk>, VsockError> {
        let c = self.conn_mut(id)?;
        let chunk = c.pop_rx(max);
        self.after_consume(id);
        Ok(chunk)
    }

    /// Copies received bytes into `buf`; `Ok(0)` when none are buffered (see
    /// [`Vsock::at_eof`] for end of stream).
    pub fn recv(&mut self, id: ConnId, buf: &mut [u8]) -> Result<usize, VsockError> {
        let mut n = 0;
        self.recv_with(id, buf.len(), |s| {
            buf[n..n + s.len()].copy_from_slice(s);
            n += s.len();
        })
    }

    /// Hands up to `max` received bytes to `f`, chunk by chunk in order, and
    /// consumes them. Returns how many.
    pub fn recv_with(
        &mut self,
        id: ConnId,
        max: usize,
        mut f: impl FnMut(&[u8]),
    ) -> Result<usize, VsockError> {
        let c = self.conn_mut(id)?;
        let mut n = 0;
        while n < max {
            let Some(chunk) = c.pop_rx(max - n) else {
                break;
            };
            f(chunk.as_slice());
            n += chunk.len();
        }
        self.after_consume(id);
        Ok(n)
    }

    /// Drops up to `max` received bytes; returns how many.
    pub fn skip(&mut self, id: ConnId, max: usize) -> Result<usize, VsockError> {
        self.recv_with(id, max, |_| {})
    }

    fn after_consume(&mut self, id: ConnId) {
        if self.conn(id).is_some_and(Conn::wants_credit_update) {
            self.queue_ctrl(id, op::CREDIT_UPDATE, 0);
            self.flush_tx();
        }
    }

    /// Bytes waiting to be read on `id`.
    pub fn available(&self, id: ConnId) -> usize {
        self.conn(id).map_or(0, |c| c.rx_len)
    }

    /// The peer will send nothing more and everything it sent was read (or the
    /// connection does not exist).
    pub fn at_eof(&self, id: ConnId) -> bool {
        self.conn(id)
            .is_none_or(|c| c.rx_len == 0 && c.peer_done_sending())
    }

    /// The connection is reset or the peer will accept nothing more.
    pub fn is_closed(&self, id: ConnId) -> bool {
        self.conn(id).is_none_or(|c| c.peer_done_receiving())
    }

    /// Closes `id`: SHUTDOWN to the peer (whose RST frees the slot), or an
    /// immediate free if the connection is already reset.
    pub fn close(&mut self, id: ConnId) {
        let Ok(c) = self.conn_mut(id) else { return };
        c.closed_by_app = true;
        c.rx.clear();
        c.rx_len = 0;
        if c.state == State::Closed {
            self.conns[id] = None;
            return;
        }
        if !c.local_shutdown {
            c.local_shutdown = true;
            self.queue_ctrl(id, op::SHUTDOWN, SHUTDOWN_RCV | SHUTDOWN_SEND);
            self.flush_tx();
        }
    }

    /// Blocks until every queued packet has been consumed by the device (before
    /// the guest exits, so the host sees our last words).
    pub fn flush_blocking(&mut self) {
        let size = usize::from(self.txq.size());
        self.wait_until(|v| v.tx_backlog.is_empty() && v.txq.free_count() == size);
    }

    /// Number of open (not yet freed) connections.
    pub fn open_connections(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    /// Loops on `poll` (sleeping between interrupts) until `cond` holds.
    pub fn wait_until(&mut self, mut cond: impl FnMut(&Self) -> bool) {
        loop {
            let seen = interrupts::count();
            let progress = self.poll();
            if cond(self) {
                return;
            }
            if !progress {
                interrupts::idle_since(seen);
            }
        }
    }

    /// Services the device: completed tx buffers, received packets, events, and
    /// the tx backlog. Returns whether anything happened.
    pub fn poll(&mut self) -> bool {
        let mut progress = false;
        if interrupts::take_irq(self.irq) {
            self.dev.ack_interrupt();
        }
        while let Some((head, _)) = self.txq.pop_used() {
            if let Some(slot) = self.tx_bufs.get_mut(usize::from(head)) {
                *slot = None;
            }
            progress = true;
        }
        let mut reposted = false;
        while let Some((head, len)) = self.rxq.pop_used() {
            progress = true;
            let Some(mut buf) = self
                .rx_bufs
                .get_mut(usize::from(head))
                .and_then(Option::take)
            else {
                continue;
            };
            let len = (len as usize).min(buf.capacity());
            // SAFETY: the device wrote `len` bytes (its used length, clamped to the
            // buffer's capacity) at the start of the buffer before returning it.
            unsafe { buf.set_len(len) };
            let buf = Rc::new(buf);
            if let Some(h) = Header::decode(&buf) {
                let end = HDR_SIZE.saturating_add(h.len as usize).min(len);
                self.on_packet(&h, Chunk::shared(buf.clone(), HDR_SIZE, end));
            }
            // Reuse the buffer unless a connection kept its payload.
            let next = Rc::try_unwrap(buf).unwrap_or_else(|_| Vec::with_capacity(RX_BUF_SIZE));
            self.post_rx(next);
            reposted = true;
        }
        if reposted {
            self.dev.notify(QUEUE_RX);
        }
        let mut events = false;
        while let Some((head, len)) = self.evq.pop_used() {
            progress = true;
            let Some(buf) = self
                .ev_bufs
                .get_mut(usize::from(head))
                .and_then(Option::take)
            else {
                continue;
            };
            if len >= 4
                && u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) == EVENT_TRANSPORT_RESET
            {
                self.transport_reset();
            }
            self.post_event(buf);
            events = true;
        }
        if events {
            self.dev.notify(QUEUE_EVENT);
        }
        progress | self.flush_tx()
    }

    fn transport_reset(&mut self) {
        self.cid = self.dev.config_u64(0);
        for slot in self.conns.iter_mut() {
            if let Some(c) = slot {
                if c.closed_by_app {
                    *slot = None;
                } else {
                    c.state = State::Closed;
                }
            }
        }
    }

    fn on_packet(&mut self, h: &Header, data: Chunk) {
        self.stats.rx_packets += 1;
        if h.type_ != TYPE_STREAM {
            if h.op != op::RST {
                self.reply_rst(h);
            }
            return;
        }
        let found = self.conns.iter().position(|c| {
            c.as_ref().is_some_and(|c| {
                c.local_port == h.dst_port && c.peer_port == h.src_port && c.peer_cid == h.src_cid
            })
        });
        let Some(id) = found else {
            if h.op == op::REQUEST && self.listeners.contains(&h.dst_port) {
                let mut c = Conn::new(h.dst_port, h.src_cid, h.src_port, State::Established);
                c.update_peer_credit(h);
                let id = self.insert(c);
                self.queue_ctrl(id, op::RESPONSE, 0);
                self.accept_q.push_back(id);
            } else if h.op != op::RST {
                self.reply_rst(h);
            }
            return;
        };
        let Some(c) = self.conns[id].as_mut() else {
            return;
        };
        c.update_peer_credit(h);
        match h.op {
            op::RESPONSE if c.state == State::Connecting => c.state = State::Established,
            op::RST => {
                c.state = State::Closed;
                if c.closed_by_app {
                    self.conns[id] = None;
                }
            }
            op::SHUTDOWN => {
                c.peer_shutdown |= h.flags & (SHUTDOWN_RCV | SHUTDOWN_SEND);
                if c.peer_shutdown == SHUTDOWN_RCV | SHUTDOWN_SEND {
                    // Clean disconnect ends with our RST (virtio 1.x §5.10.6.6).
                    c.state = State::Closed;
                    let freed = c.closed_by_app;
                    self.queue_ctrl(id, op::RST, 0);
                    if freed {
                        self.conns[id] = None;
                    }
                }
            }
            op::RW if c.state == State::Established && !c.closed_by_app => {
                if data.len() > c.rx_room() {
                    // The peer ignored our credit: reset rather than buffer without bound.
                    c.state = State::Closed;
                    self.queue_ctrl(id, op::RST, 0);
                } else if !data.is_empty() {
                    self.stats.rx_bytes += data.len() as u64;
                    if data.len() <= COPY_THRESHOLD {
                        self.stats.rx_copied += data.len() as u64;
                        c.push_rx(Chunk::new(data.as_slice().to_vec()));
                    } else {
                        c.push_rx(data);
                    }
                }
            }
            op::RW => {}
            op::CREDIT_REQUEST => self.queue_ctrl(id, op::CREDIT_UPDATE, 0),
            op::CREDIT_UPDATE => {}
            _ => {
                c.state = State::Closed;
                self.queue_ctrl(id, op::RST, 0);
            }
        }
    }

    fn reply_rst(&mut self, h: &Header) {
        let r = Header {
            src_cid: self.cid,
            dst_cid: h.src_cid,
            src_port: h.dst_port,
            dst_port: h.src_port,
            len: 0,
            type_: TYPE_STREAM,
            op: op::RST,
            flags: 0,
            buf_alloc: 0,
            fwd_cnt: 0,
        };
        self.tx_backlog.push_back(TxPacket {
            hdr: Box::new(r.to_bytes()),
            data: None,
        });
    }

    fn queue_ctrl(&mut self, id: ConnId, op: u16, flags: u32) {
        let cid = self.cid;
        let Some(c) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let hdr = Box::new(header(cid, c, op, flags, 0).to_bytes());
        c.fwd_cnt_sent = c.fwd_cnt;
        self.tx_backlog.push_back(TxPacket { hdr, data: None });
    }

    /// Moves backlog packets onto the tx queue; returns whether any moved.
    fn flush_tx(&mut self) -> bool {
        let mut moved = false;
        while let Some(p) = self.tx_backlog.front() {
            let hdr = Buf::readable(&p.hdr[..]);
            let pushed = match &p.data {
                Some(d) => self.txq.push(&[hdr, Buf::readable(d.as_slice())]),
                None => self.txq.push(&[hdr]),
            };
            let Some(head) = pushed else { break };
            let Some(p) = self.tx_backlog.pop_front() else {
                break;
            };
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += p.data.as_ref().map_or(0, |d| d.len() as u64);
            if let Some(slot) = self.tx_bufs.get_mut(usize::from(head)) {
                *slot = Some(p);
            }
            moved = true;
        }
        if moved {
            self.dev.notify(QUEUE_TX);
        }
        moved
    }
}

fn header(cid: u64, c: &Conn, op: u16, flags: u32, len: u32) -> Header {
    Header {
        src_cid: cid,
        dst_cid: c.peer_cid,
        src_port: c.local_port,
        dst_port: c.peer_port,
        len,
        type_: TYPE_STREAM,
        op,
        flags,
        buf_alloc: BUF_ALLOC,
        fwd_cnt: c.fwd_cnt,
    }
}
