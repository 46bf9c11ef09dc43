//! Hostile descriptor chains against a device with live host streams: rx buffers
//! the device cannot write, tx chains whose payload cannot be read, and INDIRECT
//! descriptors (never offered). What must hold: no stream loses or reorders bytes
//! silently (a broken stream is reset, the guest gets a RST and the host EOF), the
//! credit the host counts equals what the guest received, other connections keep
//! working, and an indirect table is never followed.

use super::*;
use std::io::ErrorKind;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_INDIRECT;

const NEXT: u16 = VRING_DESC_F_NEXT as u16;
const WRITE: u16 = VRING_DESC_F_WRITE as u16;
const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;
/// Past the end of the test's 16 MiB of guest memory.
const OUTSIDE: u64 = 0x1000_0000;
const MEM_END: u64 = 0x100_0000;
/// Free guest memory (above the tx buffers) for indirect tables, their targets and
/// hand-built tx headers.
const TABLE: u64 = 0xc0_0000;
const TARGET: u64 = 0xd0_0000;
const HDR_AT: u64 = 0xe0_0000;
const POISON: u8 = 0xa5;

fn desc(addr: u64, len: u32, flags: u16, next: u16) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, flags, next))
}

/// An indirect table at `at` holding `entries`, and the descriptor naming it.
fn indirect_table(g: &Guest, at: u64, entries: &[RawDescriptor]) -> RawDescriptor {
    for (k, e) in entries.iter().enumerate() {
        g.mem
            .write_obj(*e, GuestAddress(at + 16 * k as u64))
            .unwrap();
    }
    desc(at, 16 * entries.len() as u32, INDIRECT, 0)
}

impl Guest {
    /// Adds one chain to a queue at consecutive descriptor indices (`next` links
    /// filled in), then notifies the device. Returns the head index.
    fn add_chain(&mut self, queue: usize, descs: &[RawDescriptor]) -> u16 {
        let (vq, next_free) = if queue == RXQ {
            (&self.rx, &mut self.rx_next)
        } else {
            (&self.tx, &mut self.tx_next)
        };
        if usize::from(*next_free) + descs.len() > usize::from(QSIZE) {
            *next_free = 0;
        }
        let start = *next_free;
        let linked: Vec<RawDescriptor> = descs
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let d = Descriptor::from(*d);
                let last = k + 1 == descs.len();
                let flags = if last { d.flags() } else { d.flags() | NEXT };
                desc(d.addr().0, d.len(), flags, start + k as u16 + 1)
            })
            .collect();
        vq.add_desc_chains(&linked, start).unwrap();
        *next_free = start + descs.len() as u16;
        self.dev.queue_notified(queue);
        start
    }

    /// (head, len) of every rx buffer used since last time, without decoding them.
    fn used_rx(&mut self) -> Vec<(u32, u32)> {
        let used = self.rx.used_addr();
        let idx: u16 = self.mem.read_obj(used.unchecked_add(2)).unwrap();
        let mut out = Vec::new();
        while self.rx_seen != idx {
            let slot = u64::from(self.rx_seen % QSIZE);
            let id: u32 = self.mem.read_obj(used.unchecked_add(4 + slot * 8)).unwrap();
            let len: u32 = self.mem.read_obj(used.unchecked_add(8 + slot * 8)).unwrap();
            out.push((id, len));
            self.rx_seen = self.rx_seen.wrapping_add(1);
        }
        out
    }

    /// Uses up the rx buffers earlier steps left posted (one byte of `host` data
    /// each), so the next buffers the device sees are the ones a test posts.
    /// Returns the bytes the guest received.
    fn drain_posted_rx(&mut self, host: &mut UnixStream) -> u32 {
        for n in 1..=64 {
            host.write_all(b".").unwrap();
            self.pump();
            if self.recv().is_empty() {
                // That byte waits for a buffer: take it with one more.
                self.post_rx(1);
                assert_eq!(self.expect_pkt().data, b".");
                return n;
            }
        }
        panic!("rx buffers never ran out");
    }

    /// Sends a CREDIT_UPDATE for the connection (guest `port`, host `local`).
    fn credit(&mut self, port: u32, local: u32, buf_alloc: u32, fwd_cnt: u32) {
        let mut h = hdr(Op::CreditUpdate, port, local, 0);
        h.buf_alloc = buf_alloc;
        h.fwd_cnt = fwd_cnt;
        self.send(h, &[]);
    }

    /// Data packets for `local` until `want` bytes arrived (CREDIT_REQUESTs are
    /// allowed in between), one good rx buffer at a time.
    fn read_stream(&mut self, local: u32, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < want {
            self.post_rx(1);
            let p = self.expect_pkt();
            assert_eq!(p.hdr.src_port, local, "{p:?}");
            match p.op {
                Op::Rw => got.extend_from_slice(&p.data),
                Op::CreditRequest => {}
                other => panic!("unexpected {other:?} in the stream"),
            }
        }
        got
    }
}

/// Reads from `host` and expects EOF or a reset: the stream is gone.
fn assert_closed(host: &mut UnixStream) {
    let mut b = [0u8; 16];
    match host.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("host stream still open: {other:?}"),
    }
}

/// Expects nothing to read on `host` right now (still open, nothing delivered).
fn assert_quiet(host: &mut UnixStream) {
    host.set_nonblocking(true).unwrap();
    let mut b = [0u8; 16];
    match host.read(&mut b) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("host got {other:?}, expected nothing"),
    }
    host.set_nonblocking(false).unwrap();
}

#[test]
fn unusable_rx_buffers_cost_no_stream_data_and_keep_credit_exact() {
    let mut g = Guest::new();
    let (mut other, other_local) = g.host_connect(1235);
    let (mut host, local) = g.host_connect(1234);
    let seen = g.drain_posted_rx(&mut host);
    // The guest has consumed all it received and gives 8 more bytes of credit.
    g.credit(1234, local, 8, seen);

    // Buffers the device cannot fill, then host data: each one comes back empty.
    let poisoned = TARGET;
    g.mem
        .write_slice(&[POISON; 4096], GuestAddress(poisoned))
        .unwrap();
    let bad: Vec<Vec<RawDescriptor>> = vec![
        vec![desc(OUTSIDE, 4096, WRITE, 0)],
        vec![desc(MEM_END - 16, 4096, WRITE, 0)],
        vec![desc(RX_BUFS, packet::HDR_SIZE as u32 - 1, WRITE, 0)],
        vec![desc(RX_BUFS, 4096, 0, 0)],
        // A good first buffer, then one outside memory: nothing may be written to
        // the first part and the packet lost with the second.
        vec![desc(poisoned, 64, WRITE, 0), desc(OUTSIDE, 4096, WRITE, 0)],
        vec![indirect_table(&g, TABLE, &[desc(poisoned, 4096, WRITE, 0)])],
    ];
    let mut heads = Vec::new();
    for chain in &bad {
        heads.push(g.add_chain(RXQ, chain));
    }
    host.write_all(b"abcdefghXYZ").unwrap();
    g.pump();
    let used = g.used_rx();
    let want: Vec<(u32, u32)> = heads.iter().map(|&h| (u32::from(h), 0)).collect();
    assert_eq!(
        used, want,
        "every unusable buffer comes back empty, in order"
    );
    let mut written = [0u8; 4096];
    g.mem
        .read_slice(&mut written, GuestAddress(poisoned))
        .unwrap();
    assert!(
        written.iter().all(|&b| b == POISON),
        "nothing written through a refused chain"
    );

    // The stream is intact and within the credit: exactly 8 bytes, then a wait.
    assert_eq!(g.read_stream(local, 8), b"abcdefgh");
    g.post_rx(1);
    g.pump();
    let extra = g.recv();
    assert!(
        extra.iter().all(|p| p.op == Op::CreditRequest),
        "no data beyond the credit: {extra:?}"
    );
    // Once the guest reports those 8 bytes consumed, the rest follows.
    g.credit(1234, local, 8, seen + 8);
    let mut rest = Vec::new();
    while rest.len() < 3 {
        g.pump();
        for p in g.recv() {
            assert_eq!((p.op, p.hdr.src_port), (Op::Rw, local), "{p:?}");
            rest.extend(p.data);
        }
        if rest.len() < 3 {
            g.post_rx(1);
        }
    }
    assert_eq!(rest, b"XYZ");
    assert_eq!(g.dev.muxer().connection_count(), 2);

    // Both connections still work both ways.
    g.send(hdr(Op::Rw, 1234, local, 0), b"up");
    let mut b = [0u8; 2];
    host.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"up");
    other.write_all(b"other").unwrap();
    assert_eq!(g.read_stream(other_local, 5), b"other");
}

#[test]
fn undeliverable_rx_packet_resets_only_its_connection() {
    let mut g = Guest::new();
    let (mut other, other_local) = g.host_connect(1235);
    let (mut host, local) = g.host_connect(1234);
    g.drain_posted_rx(&mut host);
    // Data waits for a buffer; the device takes it and then fails to deliver it.
    host.write_all(b"lost").unwrap();
    g.pump();
    let pkt = g.dev.muxer.recv_pkt(4096).expect("host data is pending");
    assert_eq!(pkt.data, b"lost");
    g.dev.muxer.rx_failed(&pkt.hdr);

    g.post_rx(1);
    let p = g.expect_pkt();
    assert_eq!(
        (p.op, p.hdr.src_port, p.hdr.dst_port),
        (Op::Rst, local, 1234)
    );
    assert_closed(&mut host);
    assert_eq!(g.dev.muxer().connection_count(), 1);

    other.write_all(b"still here").unwrap();
    assert_eq!(g.read_stream(other_local, 10), b"still here");
    g.send(hdr(Op::Rw, 1235, other_local, 0), b"ok");
    let mut b = [0u8; 2];
    other.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ok");
    // A later connection works too.
    let (mut again, again_local) = g.host_connect(1234);
    again.write_all(b"new").unwrap();
    assert_eq!(g.read_stream(again_local, 3), b"new");
}

#[test]
fn tx_payload_outside_memory_resets_its_connection() {
    let mut g = Guest::new();
    let (mut other, other_local) = g.host_connect(1235);
    g.post_rx(8);
    for (payload, name) in [
        (desc(OUTSIDE, 5, 0, 0), "outside"),
        (desc(MEM_END - 2, 5, 0, 0), "straddling the end"),
    ] {
        let (mut host, local) = g.host_connect(1234);
        let h = hdr(Op::Rw, 1234, local, 5);
        g.mem
            .write_slice(&h.to_bytes(), GuestAddress(HDR_AT))
            .unwrap();
        g.add_chain(TXQ, &[desc(HDR_AT, packet::HDR_SIZE as u32, 0, 0), payload]);
        let p = g.expect_pkt();
        assert_eq!(
            (p.op, p.hdr.src_port, p.hdr.dst_port),
            (Op::Rst, local, 1234),
            "payload {name}"
        );
        assert_closed(&mut host);
        assert_eq!(g.dev.muxer().connection_count(), 1, "payload {name}");
    }
    g.send(hdr(Op::Rw, 1235, other_local, 0), b"fine");
    let mut b = [0u8; 4];
    other.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"fine");
    other.write_all(b"back").unwrap();
    assert_eq!(g.read_stream(other_local, 4), b"back");
}

#[test]
fn tx_chain_with_indirect_descriptor_is_not_followed() {
    let mut g = Guest::new();
    let listener = UnixListener::bind(format!("{}_52", g.path.display())).unwrap();
    listener.set_nonblocking(true).unwrap();
    let (mut host, local) = g.host_connect(1234);
    g.post_rx(8);
    let used_before = g.tx.used().idx().load();

    // Header direct, payload only through an indirect table.
    g.mem
        .write_slice(
            &hdr(Op::Rw, 1234, local, 5).to_bytes(),
            GuestAddress(HDR_AT),
        )
        .unwrap();
    g.mem.write_slice(b"hello", GuestAddress(TARGET)).unwrap();
    let table = indirect_table(&g, TABLE, &[desc(TARGET, 5, 0, 0)]);
    g.add_chain(TXQ, &[desc(HDR_AT, packet::HDR_SIZE as u32, 0, 0), table]);
    // The whole packet (a REQUEST to a live listener) only in an indirect table.
    let request = TARGET + 0x1000;
    g.mem
        .write_slice(
            &hdr(Op::Request, 6000, 52, 0).to_bytes(),
            GuestAddress(request),
        )
        .unwrap();
    let table = indirect_table(
        &g,
        TABLE + 0x1000,
        &[desc(request, packet::HDR_SIZE as u32, 0, 0)],
    );
    g.add_chain(TXQ, &[table]);

    g.pump();
    assert_eq!(
        g.tx.used().idx().load(),
        used_before.wrapping_add(2),
        "both chains returned"
    );
    assert_quiet(&mut host);
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the REQUEST in the table was not acted on"
    );
    assert!(g.recv().is_empty(), "no answer to a packet never read");
    assert_eq!(g.dev.muxer().connection_count(), 1);

    // The stream carries the next direct packet as its first bytes.
    g.send(hdr(Op::Rw, 1234, local, 0), b"world");
    let mut b = [0u8; 5];
    host.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"world");
}
