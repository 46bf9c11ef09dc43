//! The hybrid-vsock backend (Firecracker-compatible): routes guest packets to host
//! Unix sockets and back.
//!
//! - Host-initiated: a host process connects to the listener at `uds_path` and
//!   writes `CONNECT <port>\n`; we send the guest a REQUEST from a fresh local port
//!   (≥ [`FIRST_LOCAL_PORT`], unique), and on its RESPONSE write `OK <local_port>\n`
//!   to the host, after which the stream carries raw bytes.
//! - Guest-initiated: a REQUEST to CID 2 port P connects to the Unix listener at
//!   `<uds_path>_<P>`; nothing there means RST.
//!
//! Packets from a CID other than the guest's are dropped; packets to a CID other
//! than the host, to unknown connections or that fail to parse get a RST.
//!
//! The muxer owns every host fd and keeps the device event loop's epoll in step
//! with what each connection wants ([`Connection::interest`]); an fd with nothing to
//! wait for is removed entirely, since epoll reports hang-ups even with no events
//! requested. Timeouts (host that never sends its line, guest that never answers a
//! REQUEST, grace after a host hang-up) run off one timerfd armed for the earliest
//! deadline.
//!
//! Packets for the guest wait in `rxq` (connection keys with something pending, and
//! standalone RSTs) until the device has rx buffers to put them in.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmm_sys_util::timerfd::TimerFd;

use super::connection::{Connection, CONNECT_TIMEOUT};
use super::packet::{Op, Packet, VsockHeader, TYPE_STREAM};
use super::unix::{self, BindError, ConnectLine, MAX_CONNECT_LINE};
use super::HOST_CID;
use crate::devices::virtio::device::{FdRegistrar, EPOLLIN};

/// First port we hand out for host-initiated connections.
pub const FIRST_LOCAL_PORT: u32 = 1024;
/// Most live streams (including hosts that have not sent their line yet).
pub const MAX_CONNECTIONS: usize = 1024;
/// Most standalone RSTs queued for the guest; beyond this the device stops taking
/// tx packets until the guest posts rx buffers.
pub const MAX_PENDING_RST: usize = 256;
/// Most connections accepted per listener wake-up (keeps each call short).
const ACCEPT_BATCH: usize = 32;

/// Errors creating the muxer.
#[derive(Debug, thiserror::Error)]
pub enum MuxerError {
    /// The listening socket could not be created.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The timerfd could not be created.
    #[error("cannot create the vsock timer: {0}")]
    Timer(io::Error),
}

type ConnKey = (u32, u32); // (local/host port, peer/guest port)

enum RxItem {
    Conn(ConnKey),
    Rst(VsockHeader),
}

/// A host that connected to `uds_path` and has not finished its CONNECT line.
struct PendingHost {
    stream: UnixStream,
    line: Vec<u8>,
    deadline: Instant,
}

/// The vsock backend: host sockets, connections and the queue of packets for the guest.
pub struct Muxer {
    guest_cid: u64,
    uds_path: PathBuf,
    /// (dev, inode) of the socket file we created, so Drop only removes ours.
    uds_id: Option<(u64, u64)>,
    listener: UnixListener,
    timer: TimerFd,
    timer_deadline: Option<Instant>,
    registrar: Option<FdRegistrar>,
    /// Events currently registered per fd.
    registered: HashMap<RawFd, u32>,
    conns: HashMap<ConnKey, Connection<UnixStream>>,
    conn_by_fd: HashMap<RawFd, ConnKey>,
    hosts: HashMap<RawFd, PendingHost>,
    rxq: VecDeque<RxItem>,
    in_rxq: HashSet<ConnKey>,
    pending_rst: usize,
    next_local_port: u32,
}

impl Muxer {
    /// Binds the listener at `uds_path`. A socket file already there is replaced
    /// only if nobody listens on it; anything else there is [`BindError::PathExists`].
    pub fn new(guest_cid: u64, uds_path: &Path) -> Result<Muxer, MuxerError> {
        let listener = unix::bind_listener(uds_path)?;
        let uds_id = std::fs::metadata(uds_path).ok().map(|m| (m.dev(), m.ino()));
        let timer = TimerFd::new()
            .map_err(|e| MuxerError::Timer(io::Error::from_raw_os_error(e.errno())))?;
        // SAFETY: F_GETFL/F_SETFL on an fd we own; no memory is passed.
        let ok = unsafe {
            let fl = libc::fcntl(timer.as_raw_fd(), libc::F_GETFL);
            fl >= 0 && libc::fcntl(timer.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) >= 0
        };
        if !ok {
            return Err(MuxerError::Timer(io::Error::last_os_error()));
        }
        Ok(Muxer {
            guest_cid,
            uds_path: uds_path.to_path_buf(),
            uds_id,
            listener,
            timer,
            timer_deadline: None,
            registrar: None,
            registered: HashMap::new(),
            conns: HashMap::new(),
            conn_by_fd: HashMap::new(),
            hosts: HashMap::new(),
            rxq: VecDeque::new(),
            in_rxq: HashSet::new(),
            pending_rst: 0,
            next_local_port: FIRST_LOCAL_PORT,
        })
    }

    /// The guest's context id.
    pub fn guest_cid(&self) -> u64 {
        self.guest_cid
    }

    /// Number of live connections (not counting hosts still sending their line).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Packets waiting for a guest rx buffer (connection entries and RSTs).
    pub fn pending_rx_count(&self) -> usize {
        self.rxq.len()
    }

    /// Restoring a snapshot: drops every connection of the current guest (as
    /// [`Muxer::reset`]: their host streams read EOF) and takes the snapshot's
    /// CID. The listener, and hosts still sending their CONNECT line, stay.
    pub fn restore(&mut self, guest_cid: u64) {
        self.reset();
        self.guest_cid = guest_cid;
    }

    /// Starts watching our fds in the device event loop.
    pub fn attach(&mut self, registrar: FdRegistrar) {
        self.registrar = Some(registrar);
        let stale: Vec<RawFd> = self.registered.keys().copied().collect();
        self.registered.clear();
        self.set_interest(self.listener.as_raw_fd(), EPOLLIN);
        self.set_interest(self.timer.as_raw_fd(), EPOLLIN);
        for fd in stale {
            self.resync_fd(fd);
        }
    }

    fn resync_fd(&mut self, fd: RawFd) {
        if self.hosts.contains_key(&fd) {
            self.set_interest(fd, EPOLLIN);
        } else if let Some(key) = self.conn_by_fd.get(&fd).copied() {
            self.sync_conn(key);
        }
    }

    /// All fds we currently watch, with their events (for tests and diagnostics).
    pub fn watched_fds(&self) -> Vec<(RawFd, u32)> {
        self.registered.iter().map(|(f, e)| (*f, *e)).collect()
    }

    fn set_interest(&mut self, fd: RawFd, events: u32) {
        let cur = self.registered.get(&fd).copied();
        let result = match (cur, events) {
            (None, 0) => return,
            (Some(_), 0) => {
                self.registered.remove(&fd);
                // Fails harmlessly if the fd was already closed (epoll forgot it).
                self.registrar.as_ref().map(|r| r.remove(fd))
            }
            (None, ev) => {
                self.registered.insert(fd, ev);
                self.registrar.as_ref().map(|r| r.add(fd, ev))
            }
            (Some(old), ev) if old == ev => return,
            (Some(_), ev) => {
                self.registered.insert(fd, ev);
                self.registrar.as_ref().map(|r| r.modify(fd, ev))
            }
        };
        if let Some(Err(_)) = result {
            // ENOENT/EEXIST after an fd number was reused: retry as a fresh add.
            if events != 0 {
                if let Some(r) = &self.registrar {
                    let _ = r.remove(fd);
                    let _ = r.add(fd, events);
                }
            }
        }
    }

    /// Brings epoll, the rx queue and the connection table in line with `key`'s state.
    fn sync_conn(&mut self, key: ConnKey) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        let fd = c.fd();
        let (interest, has_stream, pending, done) = (
            c.interest(),
            c.has_stream(),
            c.has_pending_rx(),
            c.is_done(),
        );
        if has_stream {
            self.set_interest(fd, interest);
        } else if self.conn_by_fd.get(&fd) == Some(&key) {
            // The first sync since the stream closed: forget the fd. Later syncs of
            // this dead connection (its SHUTDOWN or RST still to reach the guest)
            // must not touch the number: a new host may have it by now.
            self.set_interest(fd, 0);
            self.conn_by_fd.remove(&fd);
        }
        if pending && self.in_rxq.insert(key) {
            self.rxq.push_back(RxItem::Conn(key));
        }
        if done {
            self.conns.remove(&key);
        }
    }

    /// Something may be waiting for an rx buffer.
    pub fn has_pending_rx(&self) -> bool {
        !self.rxq.is_empty()
    }

    /// Too many RSTs are queued: stop taking tx packets until rx drains.
    pub fn tx_blocked(&self) -> bool {
        self.pending_rst >= MAX_PENDING_RST
    }

    fn queue_rst_reply(&mut self, to: &VsockHeader) {
        if to.op == Op::Rst as u16 || self.pending_rst >= MAX_PENDING_RST {
            return;
        }
        self.pending_rst += 1;
        self.rxq.push_back(RxItem::Rst(VsockHeader {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: to.dst_port,
            dst_port: to.src_port,
            len: 0,
            type_: TYPE_STREAM,
            op: Op::Rst as u16,
            flags: 0,
            buf_alloc: 0,
            fwd_cnt: 0,
        }));
    }

    /// Handles a packet the guest sent.
    pub fn send_pkt(&mut self, pkt: &Packet) {
        let now = Instant::now();
        let h = &pkt.hdr;
        if h.src_cid != self.guest_cid {
            return;
        }
        if h.dst_cid != HOST_CID {
            self.queue_rst_reply(h);
            return;
        }
        let key = (h.dst_port, h.src_port);
        if let Some(c) = self.conns.get_mut(&key) {
            c.send_pkt(pkt, now);
            self.sync_conn(key);
        } else if pkt.op == Op::Request {
            self.guest_connect(&pkt.hdr);
        } else {
            self.queue_rst_reply(h);
        }
        self.rearm_timer(now);
    }

    /// A tx chain failed to parse after its header was read: reset the stream it
    /// belongs to (its byte stream can no longer be trusted) or answer with a RST.
    pub fn reject(&mut self, h: &VsockHeader) {
        if h.src_cid != self.guest_cid {
            return;
        }
        let key = (h.dst_port, h.src_port);
        if h.dst_cid == HOST_CID {
            if let Some(c) = self.conns.get_mut(&key) {
                c.last_error = Some("guest sent a malformed packet".into());
                c.kill(true);
                self.sync_conn(key);
                return;
            }
        }
        self.queue_rst_reply(h);
    }

    /// A packet taken with [`Muxer::recv_pkt`] could not be written to the guest:
    /// its stream has a hole now, so reset the connection (host stream closed, a
    /// RST queued for the guest).
    pub fn rx_failed(&mut self, h: &VsockHeader) {
        let key = (h.src_port, h.dst_port);
        if let Some(c) = self.conns.get_mut(&key) {
            c.last_error = Some("packet for the guest could not be delivered".into());
            c.kill(true);
            self.sync_conn(key);
        }
    }

    fn guest_connect(&mut self, req: &VsockHeader) {
        if self.conns.len() + self.hosts.len() >= MAX_CONNECTIONS {
            return self.queue_rst_reply(req);
        }
        let mut path = self.uds_path.clone().into_os_string();
        path.push(format!("_{}", req.dst_port));
        match unix::connect_nonblocking(Path::new(&path)) {
            Ok(stream) => {
                let key = (req.dst_port, req.src_port);
                let c = Connection::new_peer_init(stream, self.guest_cid, req);
                self.conn_by_fd.insert(c.fd(), key);
                self.conns.insert(key, c);
                self.sync_conn(key);
            }
            Err(_) => self.queue_rst_reply(req),
        }
    }

    /// The next packet for the guest, with at most `max_data` payload bytes.
    pub fn recv_pkt(&mut self, max_data: usize) -> Option<Packet> {
        let now = Instant::now();
        let mut out = None;
        // Each item at most once: a connection that cannot fill this buffer (e.g.
        // data but a header-only buffer) is queued again behind the others.
        for _ in 0..self.rxq.len() {
            let Some(item) = self.rxq.pop_front() else {
                break;
            };
            match item {
                RxItem::Rst(hdr) => {
                    self.pending_rst -= 1;
                    out = Some(Packet {
                        hdr,
                        op: Op::Rst,
                        data: Vec::new(),
                    });
                    break;
                }
                RxItem::Conn(key) => {
                    self.in_rxq.remove(&key);
                    let Some(c) = self.conns.get_mut(&key) else {
                        continue;
                    };
                    let p = c.recv_pkt(max_data, now);
                    self.sync_conn(key);
                    if p.is_some() {
                        out = p;
                        break;
                    }
                }
            }
        }
        self.rearm_timer(now);
        out
    }

    /// One of our fds is ready (called from the device's `fd_ready`).
    pub fn process_fd(&mut self, fd: RawFd, events: u32) {
        let now = Instant::now();
        if fd == self.listener.as_raw_fd() {
            self.accept_hosts(now);
        } else if fd == self.timer.as_raw_fd() {
            // Non-blocking: a stale readiness report just gives EAGAIN.
            let _ = self.timer.wait();
            self.timer_deadline = None;
            self.run_timeouts(now);
        } else if self.hosts.contains_key(&fd) {
            self.read_connect_line(fd, now);
        } else if let Some(key) = self.conn_by_fd.get(&fd).copied() {
            if let Some(c) = self.conns.get_mut(&key) {
                c.notify(events, now);
            }
            self.sync_conn(key);
        } else if let Some(r) = &self.registrar {
            // Not ours any more: stop hearing about it.
            let _ = r.remove(fd);
            self.registered.remove(&fd);
        }
        self.rearm_timer(now);
    }

    fn accept_hosts(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.conns.len() + self.hosts.len() >= MAX_CONNECTIONS
                        || stream.set_nonblocking(true).is_err()
                    {
                        continue; // dropped: the host sees EOF
                    }
                    let fd = stream.as_raw_fd();
                    self.hosts.insert(
                        fd,
                        PendingHost {
                            stream,
                            line: Vec::new(),
                            deadline: now + CONNECT_TIMEOUT,
                        },
                    );
                    self.set_interest(fd, EPOLLIN);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return, // WouldBlock, or a transient accept error
            }
        }
    }

    fn drop_host(&mut self, fd: RawFd) {
        self.set_interest(fd, 0);
        self.hosts.remove(&fd);
    }

    /// Reads a host's first line one byte at a time: whatever follows the newline
    /// is stream data for the guest and must stay in the socket.
    fn read_connect_line(&mut self, fd: RawFd, now: Instant) {
        let Some(h) = self.hosts.get_mut(&fd) else {
            return;
        };
        let verdict = loop {
            let mut b = [0u8; 1];
            match h.stream.read(&mut b) {
                Ok(0) => break ConnectLine::Invalid,
                Ok(_) => {
                    h.line.push(b[0]);
                    match unix::parse_connect_line(&h.line) {
                        ConnectLine::Incomplete if h.line.len() < MAX_CONNECT_LINE => {}
                        ConnectLine::Incomplete => break ConnectLine::Invalid,
                        v => break v,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ConnectLine::Incomplete,
                Err(_) => break ConnectLine::Invalid,
            }
        };
        match verdict {
            ConnectLine::Incomplete => {}
            ConnectLine::Invalid => self.drop_host(fd),
            ConnectLine::Port(port) => {
                let Some(local) = self.alloc_local_port() else {
                    return self.drop_host(fd);
                };
                let Some(h) = self.hosts.remove(&fd) else {
                    return;
                };
                let key = (local, port);
                let c = Connection::new_local_init(h.stream, self.guest_cid, local, port, now);
                self.conn_by_fd.insert(fd, key);
                self.conns.insert(key, c);
                self.sync_conn(key);
            }
        }
    }

    fn alloc_local_port(&mut self) -> Option<u32> {
        for _ in 0..=MAX_CONNECTIONS {
            let p = self.next_local_port;
            self.next_local_port = p.checked_add(1).unwrap_or(FIRST_LOCAL_PORT);
            if !self.conns.keys().any(|(l, _)| *l == p) {
                return Some(p);
            }
        }
        None
    }

    /// Applies every deadline that has passed by `now`.
    pub(crate) fn run_timeouts(&mut self, now: Instant) {
        let expired: Vec<ConnKey> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(c) = self.conns.get_mut(&key) {
                c.on_timeout(now);
            }
            self.sync_conn(key);
        }
        let late: Vec<RawFd> = self
            .hosts
            .iter()
            .filter(|(_, h)| h.deadline <= now)
            .map(|(f, _)| *f)
            .collect();
        for fd in late {
            self.drop_host(fd);
        }
    }

    fn rearm_timer(&mut self, now: Instant) {
        let next = self
            .conns
            .values()
            .filter_map(|c| c.deadline())
            .chain(self.hosts.values().map(|h| h.deadline))
            .min();
        if next == self.timer_deadline {
            return;
        }
        self.timer_deadline = next;
        let _ = match next {
            // A zero duration would disarm the timer: fire in a millisecond instead.
            Some(d) => self.timer.reset(
                d.saturating_duration_since(now)
                    .max(Duration::from_millis(1)),
                None,
            ),
            None => self.timer.clear(),
        };
    }

    /// The device was reset: the guest's connections are gone. Close their host
    /// streams without telling the (new) guest anything; keep the listener.
    pub fn reset(&mut self) {
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for key in keys {
            if let Some(c) = self.conns.get_mut(&key) {
                c.kill(false);
            }
            self.sync_conn(key);
        }
        self.rxq.clear();
        self.in_rxq.clear();
        self.pending_rst = 0;
        self.rearm_timer(Instant::now());
    }

    /// The VM is gone for good: every host stream is closed (its peer reads EOF
    /// at once instead of waiting on a guest that will never answer), connections
    /// still queued on the listener are dropped, and the listener refuses new ones.
    pub fn shutdown(&mut self) {
        self.reset();
        let hosts: Vec<RawFd> = self.hosts.keys().copied().collect();
        for fd in hosts {
            self.drop_host(fd);
        }
        // The listener is non-blocking: this ends at WouldBlock.
        while let Ok((queued, _)) = self.listener.accept() {
            drop(queued);
        }
        // SAFETY: shutdown(2) on the listening socket we own; no memory is passed.
        // Afterwards connect(2) to it fails with ECONNREFUSED.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        // Remove the socket file, but only if it is still the one we created.
        let ours = std::fs::symlink_metadata(&self.uds_path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.uds_id {
            let _ = std::fs::remove_file(&self.uds_path);
        }
    }
}
