//! Device + muxer tests: a mock guest driver (virtio-queue's `MockSplitQueue` over
//! real guest memory), the device driven through the `VirtioDevice` trait, a real
//! epoll + `FdRegistrar`, and real Unix sockets in a temp directory.

use super::*;
use crate::devices::virtio::device::{decode, VIRTIO_F_VERSION_1};
use crate::devices::virtio::vsock::muxer::FIRST_LOCAL_PORT;
use crate::devices::virtio::vsock::packet::{
    Op, Packet, VsockHeader, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM,
};
use crate::devices::virtio::vsock::HOST_CID;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, Bytes, GuestAddress};
use vmm_sys_util::epoll::{Epoll, EpollEvent};
use vmm_sys_util::eventfd::EventFd;

const QSIZE: u16 = 256;
const RX_BUFS: u64 = 0x10_0000;
const TX_BUFS: u64 = 0x30_0000;
const BUF: u64 = 0x1000;
const CID: u64 = 3;

struct Guest {
    mem: &'static GuestMemoryMmap<()>,
    rx: MockSplitQueue<'static, GuestMemoryMmap<()>>,
    tx: MockSplitQueue<'static, GuestMemoryMmap<()>>,
    rx_next: u16,
    tx_next: u16,
    rx_seen: u16,
    epoll: Arc<Epoll>,
    dev: Vsock,
    interrupt: Interrupt,
    _dir: TempDir,
    path: PathBuf,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "vsock-dev-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

fn hdr(op: Op, src_port: u32, dst_port: u32, len: u32) -> VsockHeader {
    VsockHeader {
        src_cid: CID,
        dst_cid: HOST_CID,
        src_port,
        dst_port,
        len,
        type_: TYPE_STREAM,
        op: op as u16,
        flags: 0,
        buf_alloc: 65536,
        fwd_cnt: 0,
    }
}

impl Guest {
    fn new() -> Guest {
        let dir = tempdir();
        let path = dir.0.join("v.sock");
        let mem: &'static GuestMemoryMmap<()> = Box::leak(Box::new(
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x100_0000)]).unwrap(),
        ));
        let rx = MockSplitQueue::create(mem, GuestAddress(0), QSIZE);
        let tx = MockSplitQueue::create(mem, GuestAddress(0x8000), QSIZE);
        let ev = MockSplitQueue::create(mem, GuestAddress(0x10000), QSIZE);
        let mut dev = Vsock::new(VsockConfig {
            guest_cid: CID,
            uds_path: path.clone(),
        })
        .unwrap();
        let epoll = Arc::new(Epoll::new().unwrap());
        dev.attach_event_loop(FdRegistrar::new(epoll.clone(), 0));
        dev.ack_features(VIRTIO_F_VERSION_1);
        let interrupt = Interrupt::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let queues = vec![
            rx.create_queue().unwrap(),
            tx.create_queue().unwrap(),
            ev.create_queue().unwrap(),
        ];
        dev.activate(ActivateContext {
            mem: mem.clone(),
            queues,
            interrupt: interrupt.clone(),
        })
        .unwrap();
        Guest {
            mem,
            rx,
            tx,
            rx_next: 0,
            tx_next: 0,
            rx_seen: 0,
            epoll,
            dev,
            interrupt,
            _dir: dir,
            path,
        }
    }

    /// Offers `n` 4 KiB rx buffers.
    fn post_rx(&mut self, n: u16) {
        for _ in 0..n {
            let i = self.rx_next;
            let d = Descriptor::new(
                RX_BUFS + u64::from(i) * BUF,
                BUF as u32,
                VRING_DESC_F_WRITE as u16,
                0,
            );
            self.rx
                .add_desc_chains(&[RawDescriptor::from(d)], i)
                .unwrap();
            self.rx_next = (i + 1) % QSIZE;
        }
        self.dev.queue_notified(RXQ);
    }

    /// Puts a raw tx chain (header bytes + data, as given) and kicks tx.
    fn send_raw(&mut self, descs: &[(Vec<u8>, bool)]) {
        let start = self.tx_next;
        let mut raw = Vec::new();
        for (k, (bytes, write_only)) in descs.iter().enumerate() {
            let i = (start + k as u16) % QSIZE;
            let addr = TX_BUFS + u64::from(i) * 0x8000;
            self.mem.write_slice(bytes, GuestAddress(addr)).unwrap();
            let mut flags = if *write_only {
                VRING_DESC_F_WRITE as u16
            } else {
                0
            };
            let last = k == descs.len() - 1;
            if !last {
                flags |= VRING_DESC_F_NEXT as u16;
            }
            raw.push(RawDescriptor::from(Descriptor::new(
                addr,
                bytes.len() as u32,
                flags,
                (i + 1) % QSIZE,
            )));
        }
        // add_desc_chains stores consecutive indices starting at `start`.
        assert!(start as usize + descs.len() <= QSIZE as usize);
        self.tx.add_desc_chains(&raw, start).unwrap();
        self.tx_next = (start + descs.len() as u16) % QSIZE;
        if self.tx_next as usize + 8 > QSIZE as usize {
            self.tx_next = 0;
        }
        self.dev.queue_notified(TXQ);
    }

    fn send(&mut self, h: VsockHeader, data: &[u8]) {
        let mut h = h;
        h.len = data.len() as u32;
        if data.is_empty() {
            self.send_raw(&[(h.to_bytes().to_vec(), false)]);
        } else {
            self.send_raw(&[(h.to_bytes().to_vec(), false), (data.to_vec(), false)]);
        }
    }

    /// Packets the device put in the rx queue since last time.
    fn recv(&mut self) -> Vec<Packet> {
        let used = self.rx.used_addr();
        let idx: u16 = self.mem.read_obj(used.unchecked_add(2)).unwrap();
        let mut out = Vec::new();
        while self.rx_seen != idx {
            let slot = u64::from(self.rx_seen % QSIZE);
            let id: u32 = self.mem.read_obj(used.unchecked_add(4 + slot * 8)).unwrap();
            let len: u32 = self.mem.read_obj(used.unchecked_add(8 + slot * 8)).unwrap();
            let addr = RX_BUFS + u64::from(id) * BUF;
            let mut raw = [0u8; packet::HDR_SIZE];
            self.mem.read_slice(&mut raw, GuestAddress(addr)).unwrap();
            let h = VsockHeader::from_bytes(&raw);
            assert_eq!(len as usize, packet::HDR_SIZE + h.len as usize);
            let mut data = vec![0u8; h.len as usize];
            self.mem
                .read_slice(&mut data, GuestAddress(addr + packet::HDR_SIZE as u64))
                .unwrap();
            out.push(Packet {
                hdr: h,
                op: Op::from_u16(h.op).unwrap(),
                data,
            });
            self.rx_seen = self.rx_seen.wrapping_add(1);
        }
        out
    }

    /// Runs the event loop's job until the fds go quiet.
    fn pump(&mut self) {
        let mut events = vec![EpollEvent::default(); 32];
        let mut quiet = 0;
        let mut rounds = 0;
        while quiet < 3 {
            rounds += 1;
            assert!(rounds < 200, "event loop never goes quiet (busy fd)");
            let n = self.epoll.wait(20, &mut events).unwrap();
            if n == 0 {
                quiet += 1;
            }
            for ev in &events[..n] {
                let (_, _, fd) = decode(ev.data());
                self.dev.fd_ready(fd as RawFd, ev.events());
            }
        }
    }

    /// Pumps until a packet arrives (or panics after 2 s).
    fn expect_pkt(&mut self) -> Packet {
        let start = Instant::now();
        loop {
            let mut p = self.recv();
            if !p.is_empty() {
                assert_eq!(p.len(), 1, "{p:?}");
                return p.remove(0);
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "no packet arrived"
            );
            self.pump();
        }
    }

    /// A host connects with `CONNECT <port>`, the guest accepts. Returns the host
    /// stream and the local port.
    fn host_connect(&mut self, guest_port: u32) -> (UnixStream, u32) {
        let mut host = UnixStream::connect(&self.path).unwrap();
        host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        host.write_all(format!("CONNECT {guest_port}\n").as_bytes())
            .unwrap();
        self.post_rx(4);
        let req = self.expect_pkt();
        assert_eq!(req.op, Op::Request);
        assert_eq!(
            (req.hdr.src_cid, req.hdr.dst_cid, req.hdr.dst_port),
            (HOST_CID, CID, guest_port)
        );
        let local = req.hdr.src_port;
        self.send(hdr(Op::Response, guest_port, local, 0), &[]);
        let mut line = String::new();
        BufReader::new(&host).read_line(&mut line).unwrap();
        assert_eq!(line, format!("OK {local}\n"));
        (host, local)
    }
}

#[test]
fn device_identity_and_config() {
    let g = Guest::new();
    assert_eq!(g.dev.device_type(), 19);
    assert_eq!(g.dev.queue_max_sizes().len(), 3);
    assert_eq!(
        g.dev.avail_features() & VIRTIO_F_VERSION_1,
        VIRTIO_F_VERSION_1
    );
    let mut b = [0xaau8; 8];
    g.dev.read_config(0, &mut b);
    assert_eq!(u64::from_le_bytes(b), CID);
    let mut b = [0u8; 4];
    g.dev.read_config(4, &mut b);
    assert_eq!(b, [0; 4]);
    let mut b = [0x55u8; 4];
    g.dev.read_config(6, &mut b);
    assert_eq!(b, [0, 0, 0x55, 0x55], "out-of-range bytes untouched");
    g.dev.read_config(u64::MAX, &mut b);
}

#[test]
fn host_connect_request_response_and_bytes_both_ways() {
    let mut g = Guest::new();
    let (mut host, local) = g.host_connect(1234);
    assert!(local >= FIRST_LOCAL_PORT);
    assert!(g.interrupt.status() != 0, "interrupt raised");

    host.write_all(b"hello guest").unwrap();
    let p = g.expect_pkt();
    assert_eq!(p.op, Op::Rw);
    assert_eq!(p.data, b"hello guest");
    assert_eq!((p.hdr.src_port, p.hdr.dst_port), (local, 1234));

    g.send(hdr(Op::Rw, 1234, local, 0), b"hello host");
    let mut b = [0u8; 10];
    host.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"hello host");

    // A second host gets a different port.
    let (_h2, local2) = g.host_connect(1234);
    assert_ne!(local, local2);
    assert_eq!(g.dev.muxer().connection_count(), 2);
}

#[test]
fn host_connect_before_activation_is_served_after() {
    let dir = tempdir();
    let path = dir.0.join("early.sock");
    let mut dev = Vsock::new(VsockConfig {
        guest_cid: CID,
        uds_path: path.clone(),
    })
    .unwrap();
    let epoll = Arc::new(Epoll::new().unwrap());
    dev.attach_event_loop(FdRegistrar::new(epoll.clone(), 0));
    let mut host = UnixStream::connect(&path).unwrap();
    host.write_all(b"CONNECT 77\n").unwrap();
    let mut events = vec![EpollEvent::default(); 8];
    for _ in 0..5 {
        let n = epoll.wait(20, &mut events).unwrap();
        for ev in &events[..n] {
            dev.fd_ready(decode(ev.data()).2 as RawFd, ev.events());
        }
    }
    assert!(dev.muxer().has_pending_rx(), "REQUEST waits for the guest");
}

#[test]
fn header_only_rx_buffer_does_not_spin() {
    let mut g = Guest::new();
    let (mut host, _) = g.host_connect(1234);
    // Use up the buffers host_connect posted, then offer one that fits a header only.
    host.write_all(b"a").unwrap();
    assert_eq!(g.expect_pkt().data, b"a");
    host.write_all(b"b").unwrap();
    assert_eq!(g.expect_pkt().data, b"b");
    host.write_all(b"c").unwrap();
    assert_eq!(g.expect_pkt().data, b"c");
    let i = g.rx_next;
    let d = Descriptor::new(
        RX_BUFS + u64::from(i) * BUF,
        packet::HDR_SIZE as u32,
        VRING_DESC_F_WRITE as u16,
        0,
    );
    g.rx.add_desc_chains(&[RawDescriptor::from(d)], i).unwrap();
    g.rx_next += 1;
    g.dev.queue_notified(RXQ);
    host.write_all(b"stuck").unwrap();
    g.pump();
    assert!(g.recv().is_empty());
}

#[test]
fn host_data_after_connect_line_is_not_lost() {
    let mut g = Guest::new();
    let mut host = UnixStream::connect(&g.path).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    host.write_all(b"CONNECT 5\nearly").unwrap();
    g.post_rx(4);
    let req = g.expect_pkt();
    g.send(hdr(Op::Response, 5, req.hdr.src_port, 0), &[]);
    let p = g.expect_pkt();
    assert_eq!(p.data, b"early");
}

#[test]
fn guest_rst_to_request_closes_host() {
    let mut g = Guest::new();
    let mut host = UnixStream::connect(&g.path).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    host.write_all(b"CONNECT 9\n").unwrap();
    g.post_rx(4);
    let req = g.expect_pkt();
    g.send(hdr(Op::Rst, 9, req.hdr.src_port, 0), &[]);
    let mut s = String::new();
    assert_eq!(host.read_to_string(&mut s).unwrap(), 0, "closed without OK");
    assert_eq!(g.dev.muxer().connection_count(), 0);
}

#[test]
fn guest_silence_times_out_the_host() {
    let mut g = Guest::new();
    let mut host = UnixStream::connect(&g.path).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    host.write_all(b"CONNECT 9\n").unwrap();
    g.post_rx(4);
    assert_eq!(g.expect_pkt().op, Op::Request);
    g.dev
        .muxer
        .run_timeouts(Instant::now() + Duration::from_secs(10));
    g.dev.queue_notified(RXQ);
    assert_eq!(g.expect_pkt().op, Op::Rst);
    let mut s = String::new();
    assert_eq!(host.read_to_string(&mut s).unwrap(), 0);
}

#[test]
fn malformed_connect_lines_close_the_host_stream() {
    let mut g = Guest::new();
    for line in [
        &b"CONNECT abc\n"[..],
        b"HELLO\n",
        b"CONNECT 1 2\n",
        &[b'x'; 64][..],
    ] {
        let mut host = UnixStream::connect(&g.path).unwrap();
        host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        host.write_all(line).unwrap();
        g.post_rx(1);
        g.pump();
        let mut b = [0u8; 16];
        // EOF, or a reset when unread bytes were left behind: either way, closed.
        match host.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!(
                "stream open after {:?}: {other:?}",
                String::from_utf8_lossy(line)
            ),
        }
    }
    assert!(g.recv().is_empty(), "no REQUEST for a bad line");
    // A host that hangs up mid-line is forgotten too.
    let mut host = UnixStream::connect(&g.path).unwrap();
    host.write_all(b"CONN").unwrap();
    drop(host);
    g.pump();
    assert!(g.recv().is_empty());
}

#[test]
fn guest_initiated_connect_to_listener() {
    let mut g = Guest::new();
    let listener = UnixListener::bind(format!("{}_52", g.path.display())).unwrap();
    g.post_rx(8);
    g.send(hdr(Op::Request, 6000, 52, 0), &[]);
    let (mut host, _) = listener.accept().unwrap();
    host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let p = g.expect_pkt();
    assert_eq!(p.op, Op::Response);
    assert_eq!(
        (p.hdr.src_port, p.hdr.dst_port, p.hdr.dst_cid),
        (52, 6000, CID)
    );

    g.send(hdr(Op::Rw, 6000, 52, 0), b"from guest");
    let mut b = [0u8; 10];
    host.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"from guest");
    host.write_all(b"from host").unwrap();
    let p = g.expect_pkt();
    assert_eq!((p.op, p.data.as_slice()), (Op::Rw, &b"from host"[..]));

    // Guest closes both directions: RST back, host sees EOF.
    let mut sd = hdr(Op::Shutdown, 6000, 52, 0);
    sd.flags = SHUTDOWN_RCV | SHUTDOWN_SEND;
    g.send(sd, &[]);
    assert_eq!(g.expect_pkt().op, Op::Rst);
    assert_eq!(host.read(&mut b).unwrap(), 0);
    assert_eq!(g.dev.muxer().connection_count(), 0);
}

#[test]
fn guest_connect_to_missing_listener_gets_rst() {
    let mut g = Guest::new();
    g.post_rx(2);
    g.send(hdr(Op::Request, 6001, 53, 0), &[]);
    let p = g.expect_pkt();
    assert_eq!(p.op, Op::Rst);
    assert_eq!(
        (p.hdr.src_port, p.hdr.dst_port, p.hdr.src_cid, p.hdr.dst_cid),
        (53, 6001, HOST_CID, CID)
    );
}

#[test]
fn host_close_sends_shutdown_then_guest_rst_cleans_up() {
    let mut g = Guest::new();
    let (host, local) = g.host_connect(1234);
    drop(host);
    let p = g.expect_pkt();
    assert_eq!(p.op, Op::Shutdown);
    assert_eq!(p.hdr.flags, SHUTDOWN_RCV | SHUTDOWN_SEND);
    g.send(hdr(Op::Rst, 1234, local, 0), &[]);
    g.pump();
    assert_eq!(g.dev.muxer().connection_count(), 0);
    assert!(g.recv().is_empty(), "no answer to a RST");
}

#[test]
fn host_close_without_guest_answer_gets_rst_after_grace() {
    let mut g = Guest::new();
    let (host, _) = g.host_connect(1234);
    drop(host);
    assert_eq!(g.expect_pkt().op, Op::Shutdown);
    g.dev
        .muxer
        .run_timeouts(Instant::now() + Duration::from_secs(10));
    g.dev.queue_notified(RXQ);
    assert_eq!(g.expect_pkt().op, Op::Rst);
    assert_eq!(g.dev.muxer().connection_count(), 0);
}

#[test]
fn bad_packets_get_rst_or_are_dropped() {
    let mut g = Guest::new();
    g.post_rx(16);
    // Unknown connection.
    g.send(hdr(Op::Rw, 7000, 999, 0), b"x");
    let p = g.expect_pkt();
    assert_eq!((p.op, p.hdr.src_port, p.hdr.dst_port), (Op::Rst, 999, 7000));
    // RST to an unknown connection: no answer.
    g.send(hdr(Op::Rst, 7000, 999, 0), &[]);
    // Wrong source CID: dropped.
    let mut h = hdr(Op::Request, 7000, 52, 0);
    h.src_cid = 42;
    g.send(h, &[]);
    g.pump();
    assert!(g.recv().is_empty());
    // Wrong destination CID: RST.
    let mut h = hdr(Op::Request, 7000, 52, 0);
    h.dst_cid = 7;
    g.send(h, &[]);
    assert_eq!(g.expect_pkt().op, Op::Rst);
    // Unknown op and unknown type: RST.
    let mut h = hdr(Op::Rw, 7000, 52, 0);
    h.op = 42;
    g.send(h, &[]);
    assert_eq!(g.expect_pkt().op, Op::Rst);
    let mut h = hdr(Op::Request, 7000, 52, 0);
    h.type_ = 2;
    g.send(h, &[]);
    assert_eq!(g.expect_pkt().op, Op::Rst);
    // len beyond the chain: RST.
    let mut h = hdr(Op::Rw, 7000, 52, 0);
    h.len = 5000;
    g.send_raw(&[(h.to_bytes().to_vec(), false), (vec![0; 10], false)]);
    assert_eq!(g.expect_pkt().op, Op::Rst);
    // A write-only tx descriptor / too-short header: consumed, nothing to answer.
    g.send_raw(&[(hdr(Op::Request, 7000, 52, 0).to_bytes().to_vec(), true)]);
    g.send_raw(&[(vec![1, 2, 3], false)]);
    g.pump();
    assert!(g.recv().is_empty());
}

#[test]
fn malformed_packet_on_a_live_connection_resets_it() {
    let mut g = Guest::new();
    let (mut host, local) = g.host_connect(1234);
    let mut h = hdr(Op::Rw, 1234, local, 0);
    h.len = 100;
    g.send_raw(&[(h.to_bytes().to_vec(), false), (vec![0; 10], false)]);
    assert_eq!(g.expect_pkt().op, Op::Rst);
    let mut b = [0u8; 4];
    assert_eq!(host.read(&mut b).unwrap(), 0);
}

#[test]
fn random_tx_input_never_panics() {
    let mut g = Guest::new();
    let _listener = UnixListener::bind(format!("{}_5", g.path.display())).unwrap();
    g.post_rx(64);
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let r = rnd();
        let mut h = hdr(
            Op::from_u16((r % 9) as u16).unwrap_or(Op::Rw),
            (rnd() % 4) as u32,
            (rnd() % 8) as u32,
            0,
        );
        h.op = (r % 9) as u16;
        if r & 0x100 != 0 {
            h.type_ = (rnd() % 3) as u16;
        }
        if r & 0x200 != 0 {
            h.src_cid = rnd() % 5;
        }
        h.flags = (rnd() % 4) as u32;
        h.buf_alloc = rnd() as u32;
        h.fwd_cnt = rnd() as u32;
        let data_len = (rnd() % 200) as usize;
        h.len = if r & 0x400 != 0 {
            rnd() as u32
        } else {
            data_len as u32
        };
        let mut bytes = h.to_bytes().to_vec();
        let cut = (rnd() % 50) as usize;
        let split = cut.min(bytes.len());
        let tail = bytes.split_off(split);
        let mut descs = vec![(bytes, r & 0x800 != 0)];
        let mut rest = tail;
        rest.extend(std::iter::repeat_n(0xab, data_len));
        if !rest.is_empty() {
            descs.push((rest, false));
        }
        if descs[0].0.is_empty() {
            descs.remove(0);
        }
        if descs.is_empty() {
            continue;
        }
        g.send_raw(&descs);
        if rnd() % 8 == 0 {
            g.recv();
            g.post_rx(8);
        }
    }
    g.pump();
    g.recv();
}

#[test]
fn reset_closes_host_streams_and_reactivation_works() {
    let mut g = Guest::new();
    let (mut host, _) = g.host_connect(1234);
    g.dev.reset();
    let mut b = [0u8; 4];
    assert_eq!(host.read(&mut b).unwrap(), 0);
    assert_eq!(g.dev.muxer().connection_count(), 0);
    assert!(g.path.exists(), "listener survives a reset");
}

#[test]
fn new_rejects_bad_paths_and_cids_and_drop_removes_socket() {
    let dir = tempdir();
    let file = dir.0.join("file");
    std::fs::write(&file, b"").unwrap();
    let err = Vsock::new(VsockConfig {
        guest_cid: 3,
        uds_path: file.clone(),
    })
    .err()
    .unwrap();
    assert!(
        matches!(
            err,
            VsockError::Backend(MuxerError::Bind(super::super::unix::BindError::PathExists(
                _
            )))
        ),
        "{err}"
    );
    let err = Vsock::new(VsockConfig {
        guest_cid: 3,
        uds_path: dir.0.join("no/such/dir.sock"),
    })
    .err()
    .unwrap();
    assert!(err.to_string().contains("does not exist"), "{err}");
    for cid in [0, 1, 2, u64::MAX] {
        assert!(
            matches!(Vsock::new(VsockConfig::new(dir.0.join("c.sock")).with_cid(cid)), Err(VsockError::InvalidCid(c)) if c == cid)
        );
    }
    let path = dir.0.join("ok.sock");
    let dev = Vsock::new(VsockConfig::new(&path)).unwrap();
    assert_eq!(dev.guest_cid(), 3);
    assert!(path.exists());
    drop(dev);
    assert!(!Path::new(&path).exists(), "Drop removes the socket file");
}

#[path = "bad_chain_tests.rs"]
mod bad_chains;

/// A closed connection keeps its old fd number as a key until the guest has seen
/// its SHUTDOWN and RST. A new host that gets the same fd number meanwhile must
/// stay watched: before the fix, delivering the old connection's SHUTDOWN or RST
/// removed the new host's epoll registration, and its CONNECT line was never read
/// (the host waited the full connect timeout, then was dropped).
#[test]
fn a_reused_fd_number_is_not_unwatched_by_the_dead_connection() {
    let mut g = Guest::new();
    let mut reused = 0;
    for round in 0..10u32 {
        let guest_port = 2000 + round;
        let (host, local) = g.host_connect(guest_port);
        let before: Vec<RawFd> = g
            .dev
            .muxer()
            .watched_fds()
            .iter()
            .map(|(f, _)| *f)
            .collect();
        drop(host);
        // The device sees the close (its stream goes, a SHUTDOWN is pending) ...
        g.pump();
        // ... a new host connects at once and is accepted, maybe on the same fd ...
        let mut next = UnixStream::connect(&g.path).unwrap();
        next.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        g.pump();
        let after: Vec<RawFd> = g
            .dev
            .muxer()
            .watched_fds()
            .iter()
            .map(|(f, _)| *f)
            .collect();
        if after.iter().any(|f| !before.contains(f)) {
            // A fresh number: nothing to show this round.
        } else {
            reused += 1;
        }
        // ... then the guest takes the old connection's SHUTDOWN and answers RST.
        assert_eq!(g.expect_pkt().op, Op::Shutdown);
        g.send(hdr(Op::Rst, guest_port, local, 0), &[]);
        g.pump();
        // The new host must still be heard.
        next.write_all(format!("CONNECT {guest_port}\n").as_bytes())
            .unwrap();
        let req = g.expect_pkt();
        assert_eq!(
            req.op,
            Op::Request,
            "round {round}: the new host was not heard"
        );
        g.send(hdr(Op::Rst, guest_port, req.hdr.src_port, 0), &[]);
        g.pump();
        drop(next);
        g.pump();
    }
    assert!(
        reused > 0,
        "the fd number was never reused: the test showed nothing"
    );
}

#[test]
fn snapshot_state_refuses_live_streams_and_restoring_ends_them() {
    use crate::devices::virtio::state::{DeviceKindState, DeviceStateError};
    let mut g = Guest::new();
    let idle = g.dev.save_state().unwrap();
    assert_eq!(
        idle,
        DeviceKindState::Vsock(VsockState {
            version: VSOCK_STATE_VERSION,
            guest_cid: CID,
            acked_features: VIRTIO_F_VERSION_1,
        })
    );
    let (mut host, _) = g.host_connect(1234);
    match g.dev.save_state() {
        Err(DeviceStateError::NotQuiescent {
            device_type,
            reason,
        }) => {
            assert_eq!(device_type, TYPE_VSOCK);
            assert!(reason.contains("1 vsock connection"), "{reason}");
        }
        r => panic!("expected NotQuiescent, got {r:?}"),
    }
    // The snapshot's CID is taken; the current guest's streams end; the
    // listener stays.
    let other = DeviceKindState::Vsock(VsockState {
        version: VSOCK_STATE_VERSION,
        guest_cid: 77,
        acked_features: VIRTIO_F_VERSION_1,
    });
    g.dev.restore_state(&other, None).unwrap();
    let mut b = [0u8; 4];
    assert_eq!(host.read(&mut b).unwrap(), 0);
    assert_eq!(g.dev.muxer().connection_count(), 0);
    assert_eq!(g.dev.guest_cid(), 77);
    assert_eq!(g.dev.muxer().guest_cid(), 77);
    assert!(g.path.exists(), "listener survives a restore");
    assert_eq!(g.dev.save_state().unwrap(), other);
    let bad = DeviceKindState::Vsock(VsockState {
        version: VSOCK_STATE_VERSION,
        guest_cid: 2,
        acked_features: 0,
    });
    assert!(matches!(
        g.dev.check_state(&bad),
        Err(DeviceStateError::InvalidCid(2))
    ));
}
