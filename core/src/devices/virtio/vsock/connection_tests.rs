//! Connection state machine and flow-control tests over real Unix socket pairs.

use super::*;
use std::io::{Read, Write};

const CID: u64 = 3;

fn pair() -> (UnixStream, UnixStream) {
    let (ours, host) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    (ours, host)
}

fn guest_pkt(
    c: &Connection<UnixStream>,
    op: Op,
    data: &[u8],
    buf_alloc: u32,
    fwd_cnt: u32,
) -> Packet {
    Packet {
        hdr: VsockHeader {
            src_cid: CID,
            dst_cid: HOST_CID,
            src_port: c.peer_port(),
            dst_port: c.local_port(),
            len: data.len() as u32,
            type_: TYPE_STREAM,
            op: op as u16,
            flags: 0,
            buf_alloc,
            fwd_cnt,
        },
        op,
        data: data.to_vec(),
    }
}

fn established(now: Instant) -> (Connection<UnixStream>, UnixStream) {
    let (ours, host) = pair();
    let mut c = Connection::new_local_init(ours, CID, 1024, 5000, now);
    let req = c.recv_pkt(4096, now).unwrap();
    assert_eq!(req.op, Op::Request);
    let resp = guest_pkt(&c, Op::Response, &[], 65536, 0);
    c.send_pkt(&resp, now);
    let mut host = host;
    let mut line = [0u8; 8];
    host.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"OK 1024\n");
    (c, host)
}

#[test]
fn host_initiated_handshake() {
    let now = Instant::now();
    let (ours, _host) = pair();
    let mut c = Connection::new_local_init(ours, CID, 1024, 5000, now);
    assert!(c.has_pending_rx());
    let p = c.recv_pkt(4096, now).unwrap();
    assert_eq!(p.op, Op::Request);
    assert_eq!((p.hdr.src_cid, p.hdr.dst_cid), (HOST_CID, CID));
    assert_eq!((p.hdr.src_port, p.hdr.dst_port), (1024, 5000));
    assert_eq!(p.hdr.buf_alloc, TX_BUF_SIZE);
    assert_eq!(c.state(), State::Connecting);
    assert_eq!(
        c.interest(),
        0,
        "nothing to read from the host before RESPONSE"
    );
    drop(c);
    let (c, _host) = established(now);
    assert_eq!(c.state(), State::Established);
    assert_eq!(c.interest(), EPOLLIN);
}

#[test]
fn guest_initiated_gets_response() {
    let now = Instant::now();
    let (ours, _host) = pair();
    let req = VsockHeader {
        src_cid: CID,
        dst_cid: 2,
        src_port: 777,
        dst_port: 52,
        type_: 1,
        op: 1,
        buf_alloc: 100,
        ..Default::default()
    };
    let mut c = Connection::new_peer_init(ours, CID, &req);
    let p = c.recv_pkt(4096, now).unwrap();
    assert_eq!(p.op, Op::Response);
    assert_eq!((p.hdr.src_port, p.hdr.dst_port), (52, 777));
    assert_eq!(c.peer_credit(), 100);
    assert!(c.recv_pkt(4096, now).is_none());
}

#[test]
fn connect_timeout_resets_and_closes_host() {
    let now = Instant::now();
    let (ours, mut host) = pair();
    let mut c = Connection::new_local_init(ours, CID, 1024, 5000, now);
    c.recv_pkt(4096, now).unwrap();
    c.on_timeout(now + Duration::from_millis(10));
    assert_eq!(c.state(), State::Connecting, "not yet");
    c.on_timeout(now + CONNECT_TIMEOUT);
    assert_eq!(c.state(), State::Killed);
    assert_eq!(c.recv_pkt(4096, now).unwrap().op, Op::Rst);
    assert!(c.is_done());
    let mut b = [0u8; 1];
    assert_eq!(host.read(&mut b).unwrap(), 0, "host sees EOF");
}

#[test]
fn guest_rst_during_connect_closes_host_silently() {
    let now = Instant::now();
    let (ours, mut host) = pair();
    let mut c = Connection::new_local_init(ours, CID, 1024, 5000, now);
    c.recv_pkt(4096, now).unwrap();
    let rst = guest_pkt(&c, Op::Rst, &[], 0, 0);
    c.send_pkt(&rst, now);
    assert!(c.is_done());
    let mut b = [0u8; 1];
    assert_eq!(host.read(&mut b).unwrap(), 0);
}

#[test]
fn rw_both_ways_within_credit() {
    let now = Instant::now();
    let (mut c, mut host) = established(now);
    let rw = guest_pkt(&c, Op::Rw, b"ping", 65536, 0);
    c.send_pkt(&rw, now);
    let mut b = [0u8; 4];
    host.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    assert_eq!(c.fwd_cnt.0, 4);

    host.write_all(b"pong!").unwrap();
    c.notify(EPOLLIN, now);
    let p = c.recv_pkt(4096, now).unwrap();
    assert_eq!(p.op, Op::Rw);
    assert_eq!(p.data, b"pong!");
    assert_eq!(p.hdr.len, 5);
    assert_eq!(p.hdr.fwd_cnt, 4);
    assert_eq!(c.peer_credit(), 65536 - 5);
}

#[test]
fn rx_packet_respects_buffer_size() {
    let now = Instant::now();
    let (mut c, mut host) = established(now);
    host.write_all(&[7u8; 100]).unwrap();
    c.notify(EPOLLIN, now);
    let p = c.recv_pkt(30, now).unwrap();
    assert_eq!(p.data.len(), 30);
    let p = c.recv_pkt(100, now).unwrap();
    assert_eq!(p.data.len(), 70);
}

#[test]
fn header_only_buffer_keeps_data_for_a_bigger_one() {
    let now = Instant::now();
    let (mut c, mut host) = established(now);
    host.write_all(b"data").unwrap();
    c.notify(EPOLLIN, now);
    assert!(c.recv_pkt(0, now).is_none());
    assert!(c.has_pending_rx(), "data still owed");
    assert_eq!(c.interest() & EPOLLIN, 0, "no busy polling meanwhile");
    assert_eq!(c.recv_pkt(100, now).unwrap().data, b"data");
}

#[test]
fn credit_exhaustion_then_update_resumes() {
    let now = Instant::now();
    let (mut c, mut host) = established(now);
    // The guest shrinks its buffer to 8 bytes.
    let upd = guest_pkt(&c, Op::CreditUpdate, &[], 8, 0);
    c.send_pkt(&upd, now);
    host.write_all(&[1u8; 20]).unwrap();
    c.notify(EPOLLIN, now);
    let p = c.recv_pkt(4096, now).unwrap();
    assert_eq!(p.data.len(), 8, "never more than the credit");
    assert_eq!(c.peer_credit(), 0);
    assert_eq!(c.recv_pkt(4096, now).unwrap().op, Op::CreditRequest);
    assert!(c.recv_pkt(4096, now).is_none());
    assert_eq!(c.interest() & EPOLLIN, 0, "no reading without credit");
    c.notify(EPOLLIN, now);
    assert!(c.recv_pkt(4096, now).is_none());

    // The guest consumed the 8 bytes.
    let upd = guest_pkt(&c, Op::CreditUpdate, &[], 8, 8);
    c.send_pkt(&upd, now);
    assert_eq!(c.peer_credit(), 8);
    assert_eq!(c.interest() & EPOLLIN, EPOLLIN);
    c.notify(EPOLLIN, now);
    assert_eq!(c.recv_pkt(4096, now).unwrap().data.len(), 8);
}

#[test]
fn absurd_peer_credit_is_bounded() {
    let now = Instant::now();
    let (mut c, _host) = established(now);
    let upd = guest_pkt(&c, Op::CreditUpdate, &[], u32::MAX, 0);
    c.send_pkt(&upd, now);
    assert_eq!(c.peer_credit(), MAX_PEER_BUF_ALLOC);
    // A fwd_cnt ahead of what we ever sent does not turn into huge credit.
    let upd = guest_pkt(&c, Op::CreditUpdate, &[], u32::MAX, 1_000_000);
    c.send_pkt(&upd, now);
    assert_eq!(c.peer_credit(), 0);
    // Counters wrap correctly around 2^32.
    c.rx_cnt = Wrapping(5);
    let upd = guest_pkt(&c, Op::CreditUpdate, &[], 100, u32::MAX - 4);
    c.send_pkt(&upd, now);
    assert_eq!(c.peer_credit(), 90);
}

#[test]
fn credit_request_gets_credit_update() {
    let now = Instant::now();
    let (mut c, _host) = established(now);
    let req = guest_pkt(&c, Op::CreditRequest, &[], 4096, 0);
    c.send_pkt(&req, now);
    let p = c.recv_pkt(4096, now).unwrap();
    assert_eq!(p.op, Op::CreditUpdate);
    assert_eq!(p.hdr.buf_alloc, TX_BUF_SIZE);
}

#[test]
fn guest_overrunning_credit_gets_rst_and_slow_host_gets_credit_update() {
    let now = Instant::now();
    let (mut c, mut host) = established(now);
    let chunk = vec![9u8; 64 * 1024];
    let mut sent = 0usize;
    // Fill the host socket buffer and our tx_buf, without the host reading.
    while c.state() != State::Killed && sent < 16 * 1024 * 1024 {
        if c.tx_buffered() + chunk.len() > TX_BUF_SIZE as usize {
            break;
        }
        let rw = guest_pkt(&c, Op::Rw, &chunk, 65536, 0);
        c.send_pkt(&rw, now);
        sent += chunk.len();
    }
    assert_eq!(c.state(), State::Established);
    assert!(c.tx_buffered() > 0);
    assert_eq!(c.interest() & EPOLLOUT, EPOLLOUT);

    // The host drains everything: the flush frees space the guest has not heard of.
    let reader = std::thread::spawn(move || {
        let mut got = 0usize;
        let mut b = vec![0u8; 65536];
        while got < sent {
            got += host.read(&mut b).unwrap();
        }
        host
    });
    while c.tx_buffered() > 0 {
        c.notify(EPOLLOUT, now);
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut host = reader.join().unwrap();
    let p = c.recv_pkt(4096, now).unwrap();
    assert_eq!(p.op, Op::CreditUpdate);
    assert_eq!(p.hdr.fwd_cnt as usize, sent);

    // Now overrun: send far more than TX_BUF_SIZE while the host sleeps.
    let mut overran = false;
    for _ in 0..64 {
        let rw = guest_pkt(&c, Op::Rw, &chunk, 65536, 0);
        c.send_pkt(&rw, now);
        if c.state() == State::Killed {
            overran = true;
            break;
        }
    }
    assert!(overran);
    assert!(c.last_error.as_deref().unwrap_or("").contains("overran"));
    assert_eq!(c.recv_pkt(4096, now).unwrap().op, Op::Rst);
    host.set_nonblocking(true).unwrap();
    let mut b = vec![0u8; 1 << 20];
    loop {
        match host.read(&mut b) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("host should see EOF, got {e}"),
        }
    }
}

#[test]
fn guest_shutdown_send_half_closes_host() {
    let now = Instant::now();
    let (mut c, mut host) = established(now);
    let rw = guest_pkt(&c, Op::Rw, b"last", 65536, 0);
    c.send_pkt(&rw, now);
    let mut sd = guest_pkt(&c, Op::Shutdown, &[], 65536, 0);
    sd.hdr.flags = SHUTDOWN_SEND;
    c.send_pkt(&sd, now);
    let mut all = Vec::new();
    host.read_to_end(&mut all).unwrap();
    assert_eq!(all, b"last");
    // The other direction still works.
    host.write_all(b"reply").unwrap();
    c.notify(EPOLLIN, now);
    assert_eq!(c.recv_pkt(4096, now).unwrap().data, b"reply");
    // Rw after SHUTDOWN(SEND) is a protocol violation.
    let rw = guest_pkt(&c, Op::Rw, b"x", 65536, 0);
    c.send_pkt(&rw, now);
    assert_eq!(c.recv_pkt(4096, now).unwrap().op, Op::Rst);
}

#[test]
fn guest_full_shutdown_gets_rst() {
    let now = Instant::now();
    let (mut c, mut host) = established(now);
    let mut sd = guest_pkt(&c, Op::Shutdown, &[], 65536, 0);
    sd.hdr.flags = SHUTDOWN_SEND | SHUTDOWN_RCV;
    c.send_pkt(&sd, now);
    assert_eq!(c.state(), State::Killed);
    assert_eq!(c.recv_pkt(4096, now).unwrap().op, Op::Rst);
    assert!(c.is_done());
    let mut b = [0u8; 1];
    assert_eq!(host.read(&mut b).unwrap(), 0);
}

#[test]
fn host_half_close_sends_shutdown_send() {
    let now = Instant::now();
    let (mut c, host) = established(now);
    host.shutdown(Shutdown::Write).unwrap();
    c.notify(EPOLLIN, now);
    let p = c.recv_pkt(4096, now).unwrap();
    assert_eq!(p.op, Op::Shutdown);
    assert_eq!(p.hdr.flags, SHUTDOWN_SEND);
    assert_eq!(c.interest() & EPOLLIN, 0, "no reading after EOF");
    // Guest data still reaches the host.
    let rw = guest_pkt(&c, Op::Rw, b"tail", 65536, 0);
    c.send_pkt(&rw, now);
    let mut host = host;
    let mut b = [0u8; 4];
    host.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"tail");
}

#[test]
fn host_close_sends_data_then_shutdown_then_rst_after_grace() {
    let now = Instant::now();
    let (mut c, mut host) = established(now);
    host.write_all(b"bye").unwrap();
    drop(host);
    c.notify(EPOLLIN | EPOLLHUP, now);
    assert_eq!(c.recv_pkt(4096, now).unwrap().data, b"bye");
    c.notify(EPOLLIN | EPOLLHUP, now);
    // The read hits EOF and the SHUTDOWN goes out in the same slot.
    let p = c.recv_pkt(4096, now).unwrap();
    assert_eq!(c.state(), State::Closing);
    assert_eq!(p.op, Op::Shutdown);
    assert_eq!(p.hdr.flags, SHUTDOWN_RCV | SHUTDOWN_SEND);
    c.on_timeout(now + Duration::from_millis(1));
    assert_eq!(c.state(), State::Closing);
    c.on_timeout(now + CLOSE_GRACE);
    assert_eq!(c.recv_pkt(4096, now).unwrap().op, Op::Rst);
    assert!(c.is_done());
}

#[test]
fn unexpected_packets_reset() {
    let now = Instant::now();
    let (mut c, _host) = established(now);
    let req = guest_pkt(&c, Op::Request, &[], 65536, 0);
    c.send_pkt(&req, now);
    assert_eq!(c.recv_pkt(4096, now).unwrap().op, Op::Rst);
    assert!(c.is_done());

    let (ours, _host) = pair();
    let mut c = Connection::new_local_init(ours, CID, 1024, 5000, now);
    let rw = guest_pkt(&c, Op::Rw, b"early", 65536, 0);
    c.send_pkt(&rw, now);
    // RST wins over the queued REQUEST.
    assert_eq!(c.recv_pkt(4096, now).unwrap().op, Op::Rst);
    assert!(c.last_error.is_some());
}
