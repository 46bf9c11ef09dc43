//! `vsock_muxer`: the whole virtio-vsock device (`Vsock`: queues, `parse_tx`,
//! the muxer's routing and every connection's state machine and credit
//! accounting) fed arbitrary guest packets, with real host Unix sockets on the
//! other side doing arbitrary things (accept, write, half-close, hang up).
//!
//! The harness plays both the guest driver (tx/rx rings in guest memory) and the
//! event loop (it polls the fds the muxer watches and calls `fd_ready`). Host
//! listeners exist for guest ports 5 and 6; port 7 has none (RST expected).
//!
//! Besides "never panic", every packet the device puts in an rx buffer is checked
//! against the device's promises: from the host CID to the guest CID, STREAM type,
//! a known op, used length = header + `hdr.len`, `hdr.len` ≤ buffer room.
//!
//! Host-initiated connections (`CONNECT <port>\n` on the main listener) are
//! covered too: the listener and timer fds are only registered once the device is
//! attached to an event loop (`FdRegistrar::new` is crate-private), so the harness
//! finds them as the fds `Vsock::new` opened (/proc/self/fd before and after) and
//! polls them itself.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::fd::RawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use kvmsandbox::devices::virtio::device::VIRTIO_F_VERSION_1;
use kvmsandbox::devices::virtio::vsock::packet::{Op, VsockHeader, HDR_SIZE, TYPE_STREAM};
use kvmsandbox::devices::virtio::vsock::{Vsock, VsockConfig, HOST_CID};
use kvmsandbox::devices::virtio::{ActivateContext, Interrupt, VirtioDevice};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::input::Input;
use crate::ring::{self, Layout, F_NEXT, F_WRITE};
use crate::tmp;

const GUEST_CID: u64 = 3;
const QSIZE: u16 = 32;
const RX_BUFS: u64 = 0x2_0000;
const RX_BUF_LEN: u64 = 0x1000;
const TX_BUFS: u64 = 0x6_0000;
const TX_BUF_LEN: u64 = 0x200;
/// Guest ports with a host listener behind them.
const LISTEN_PORTS: [u32; 2] = [5, 6];
/// Most operations per input.
const MAX_OPS: usize = 128;

struct Harness {
    mem: GuestMemoryMmap<()>,
    rx: Layout,
    tx: Layout,
    rx_avail: u16,
    rx_used_seen: u16,
    tx_avail: u16,
    tx_desc: u16,
    /// Each rx descriptor's length, to check what the device wrote into it.
    rx_len: Vec<u32>,
    dev: Vsock,
    listeners: Vec<UnixListener>,
    streams: Vec<UnixStream>,
    /// The muxer's listener and timer fds (see the module note).
    device_fds: Vec<RawFd>,
    uds: PathBuf,
}

/// The process's open fds (without the one listing them).
fn open_fds() -> Vec<RawFd> {
    let mut fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                if target.starts_with("/proc") {
                    return None; // the directory being read
                }
                e.file_name().to_str()?.parse().ok()
            })
            .collect()
        })
        .unwrap_or_default();
    fds.sort_unstable();
    fds
}

impl Harness {
    fn post_rx(&mut self, len: u32) {
        let d = self.rx_avail % QSIZE;
        let addr = RX_BUFS + u64::from(d) * RX_BUF_LEN;
        ring::write_desc(&self.mem, &self.rx, d, addr, len, F_WRITE, 0);
        self.rx_len[usize::from(d)] = len;
        ring::set_avail_slot(&self.mem, &self.rx, self.rx_avail, d);
        self.rx_avail = self.rx_avail.wrapping_add(1);
        ring::set_avail_idx(&self.mem, &self.rx, self.rx_avail);
    }

    /// Puts one tx chain of up to three descriptors holding `bytes`.
    fn send(&mut self, bytes: &[u8], cuts: &[usize], write_only_first: bool) {
        let mut pieces = Vec::new();
        let mut rest = bytes;
        for &c in cuts {
            let (a, b) = rest.split_at(c.min(rest.len()));
            pieces.push(a);
            rest = b;
        }
        pieces.push(rest);
        let head = self.tx_desc % QSIZE;
        let n = pieces.len() as u16;
        for (k, p) in pieces.iter().enumerate() {
            let d = (head + k as u16) % QSIZE;
            let addr = TX_BUFS + u64::from(d) * TX_BUF_LEN;
            let _ = self
                .mem
                .write_slice(&p[..p.len().min(TX_BUF_LEN as usize)], GuestAddress(addr));
            let mut flags = if k == 0 && write_only_first {
                F_WRITE
            } else {
                0
            };
            if (k as u16) + 1 < n {
                flags |= F_NEXT;
            }
            ring::write_desc(
                &self.mem,
                &self.tx,
                d,
                addr,
                p.len() as u32,
                flags,
                (d + 1) % QSIZE,
            );
        }
        self.tx_desc = self.tx_desc.wrapping_add(n);
        ring::set_avail_slot(&self.mem, &self.tx, self.tx_avail, head);
        self.tx_avail = self.tx_avail.wrapping_add(1);
        ring::set_avail_idx(&self.mem, &self.tx, self.tx_avail);
        self.dev.queue_notified(1);
    }

    /// Reads and checks every rx buffer the device used since last time.
    fn drain_rx(&mut self) {
        let used = ring::used_idx(&self.mem, &self.rx);
        while self.rx_used_seen != used {
            let (id, len) = ring::used_elem(&self.mem, &self.rx, self.rx_used_seen);
            self.rx_used_seen = self.rx_used_seen.wrapping_add(1);
            assert!(id < u32::from(QSIZE), "used id {id} out of range");
            if len == 0 {
                continue; // An unusable buffer handed back empty.
            }
            let room = self.rx_len[id as usize];
            let mut raw = [0u8; HDR_SIZE];
            let addr = RX_BUFS + u64::from(id) * RX_BUF_LEN;
            self.mem
                .read_slice(&mut raw, GuestAddress(addr))
                .expect("rx buffers are in memory");
            let h = VsockHeader::from_bytes(&raw);
            assert_eq!(
                (h.src_cid, h.dst_cid),
                (HOST_CID, GUEST_CID),
                "bad cids in {h:?}"
            );
            assert_eq!(h.type_, TYPE_STREAM, "bad type in {h:?}");
            assert!(Op::from_u16(h.op).is_some(), "unknown op in {h:?}");
            assert_eq!(
                len as usize,
                HDR_SIZE + h.len as usize,
                "used len vs header {h:?}"
            );
            assert!(len <= room, "wrote {len} bytes into a {room}-byte buffer");
            if crate::trace_enabled() {
                eprintln!(
                    "vsock_muxer: rx {:?} {}:{} -> {}:{} len {}",
                    Op::from_u16(h.op),
                    h.src_cid,
                    h.src_port,
                    h.dst_cid,
                    h.dst_port,
                    h.len
                );
            }
        }
    }

    /// The event loop: poll the fds the muxer watches, report readiness.
    fn pump(&mut self) {
        for _ in 0..4 {
            let mut watched = self.dev.muxer().watched_fds();
            for &fd in &self.device_fds {
                if !watched.iter().any(|&(w, _)| w == fd) {
                    watched.push((fd, libc::EPOLLIN as u32));
                }
            }
            let mut pfds: Vec<libc::pollfd> = watched
                .iter()
                .map(|&(fd, ev)| libc::pollfd {
                    fd,
                    events: (ev & 0xffff) as i16,
                    revents: 0,
                })
                .collect();
            if pfds.is_empty() {
                return;
            }
            // SAFETY: `pfds` is a valid, exclusively borrowed array of `len` pollfd
            // structs for the duration of the call; timeout 0 never blocks.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 0) };
            if n <= 0 {
                return;
            }
            for p in pfds.iter().filter(|p| p.revents != 0) {
                self.dev.fd_ready(p.fd, u32::from(p.revents as u16));
            }
        }
    }

    fn accept_all(&mut self) {
        for l in &self.listeners {
            while let Ok((s, _)) = l.accept() {
                let _ = s.set_nonblocking(true);
                self.streams.push(s);
            }
        }
    }
}

fn header(inp: &mut Input, payload_len: usize) -> VsockHeader {
    let sel = inp.u8();
    let ports = [5u32, 6, 7, 1024, 1025];
    VsockHeader {
        src_cid: if sel & 1 == 0 {
            GUEST_CID
        } else {
            u64::from(inp.u8() % 5)
        },
        dst_cid: if sel & 2 == 0 {
            HOST_CID
        } else {
            u64::from(inp.u8() % 5)
        },
        src_port: 1000 + u32::from(inp.u8() % 3),
        dst_port: if sel & 4 == 0 {
            ports[usize::from(inp.u8()) % ports.len()]
        } else {
            inp.u32()
        },
        len: if sel & 8 == 0 {
            payload_len as u32
        } else {
            inp.u32()
        },
        type_: if sel & 16 == 0 {
            TYPE_STREAM
        } else {
            inp.u16()
        },
        op: if sel & 32 == 0 {
            u16::from(inp.u8() % 7) + 1
        } else {
            inp.u16()
        },
        flags: u32::from(inp.u8() % 4),
        buf_alloc: if sel & 64 == 0 { 0x1_0000 } else { inp.u32() },
        fwd_cnt: if sel & 128 == 0 { 0 } else { inp.u32() },
    }
}

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    // Declared first so it is removed after everything bound inside it.
    let sockets = tmp::SocketDir::new();
    let uds = sockets.socket();
    let mut listeners = Vec::new();
    for port in LISTEN_PORTS {
        let mut p = uds.clone().into_os_string();
        p.push(format!("_{port}"));
        let l = UnixListener::bind(&p).expect("fuzz harness: bind port listener");
        l.set_nonblocking(true)
            .expect("fuzz harness: nonblocking listener");
        listeners.push((l, p));
    }
    let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)])
        .expect("fuzz harness: memory");
    let (rx, tx, ev) = (
        Layout::packed(0, QSIZE),
        Layout::packed(0x1000, QSIZE),
        Layout::packed(0x2000, 4),
    );
    let before = open_fds();
    let mut dev =
        Vsock::new(VsockConfig::new(&uds).with_cid(GUEST_CID)).expect("fuzz harness: vsock");
    let device_fds: Vec<RawFd> = open_fds()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    dev.ack_features(VIRTIO_F_VERSION_1);
    let queues = [rx, tx, ev]
        .iter()
        .map(|l| ring::queue(&m, l, 256).expect("fuzz harness: valid queues"))
        .collect();
    let interrupt = Interrupt::new(EventFd::new(EFD_NONBLOCK).expect("fuzz harness: eventfd"));
    dev.activate(ActivateContext {
        mem: m.clone(),
        queues,
        interrupt,
    })
    .expect("fuzz harness: activation with VERSION_1 and 3 queues");

    let mut h = Harness {
        mem: m,
        rx,
        tx,
        rx_avail: 0,
        rx_used_seen: 0,
        tx_avail: 0,
        tx_desc: 0,
        rx_len: vec![0; usize::from(QSIZE)],
        dev,
        listeners: listeners.into_iter().map(|(l, _)| l).collect(),
        streams: Vec::new(),
        device_fds,
        uds: uds.clone(),
    };

    let mut ops = 0;
    while !inp.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = inp.u8();
        // Low 3 bits: the action; higher bits: its variant.
        match op & 7 {
            0 | 1 => {
                let payload_len = usize::from(inp.u8());
                let hdr = header(&mut inp, payload_len);
                let mut bytes = hdr.to_bytes().to_vec();
                bytes.extend_from_slice(inp.bytes(payload_len));
                let cuts: Vec<usize> = (0..op >> 6).map(|_| usize::from(inp.u8() % 64)).collect();
                h.send(&bytes, &cuts, op & 8 != 0);
            }
            2 => {
                let lens = [4096u32, 44, 64, 43, 0, 300];
                for _ in 0..(op >> 4 & 7) + 1 {
                    if h.rx_avail.wrapping_sub(h.rx_used_seen) >= QSIZE {
                        h.drain_rx();
                        break;
                    }
                    let len = lens[usize::from(inp.u8()) % lens.len()];
                    h.post_rx(len);
                }
                h.dev.queue_notified(0);
            }
            3 => {
                h.accept_all();
                if !h.streams.is_empty() {
                    let k = usize::from(inp.u8()) % h.streams.len();
                    match op >> 4 & 3 {
                        0 | 1 => {
                            let n = usize::from(inp.u8());
                            let _ = h.streams[k].write(inp.bytes(n));
                        }
                        2 => {
                            let _ = h.streams[k].shutdown(Shutdown::Write);
                        }
                        _ => {
                            drop(h.streams.swap_remove(k));
                        }
                    }
                }
            }
            5 => {
                // A host connects to the main listener and asks for a guest port
                // (mostly one the guest side of this harness uses).
                if let Ok(mut s) = UnixStream::connect(&h.uds) {
                    let _ = s.set_nonblocking(true);
                    let line = if op & 0x40 == 0 {
                        format!("CONNECT {}\n", 1000 + u32::from(inp.u8() % 3)).into_bytes()
                    } else {
                        let n = usize::from(inp.u8() % 32);
                        inp.bytes(n).to_vec()
                    };
                    let _ = s.write(&line);
                    h.streams.push(s);
                }
            }
            4 => {
                // Host reads what the guest sent (frees socket buffer space).
                let mut buf = [0u8; 4096];
                for s in &mut h.streams {
                    let _ = s.read(&mut buf);
                }
            }
            _ => {} // Only the event loop runs.
        }
        h.pump();
        h.drain_rx();
        // Keep rx buffers available so the device can always make progress.
        while h.rx_avail.wrapping_sub(h.rx_used_seen) < 4 {
            h.post_rx(4096);
        }
        h.dev.queue_notified(0);
        h.drain_rx();
    }
    drop(h);
}
