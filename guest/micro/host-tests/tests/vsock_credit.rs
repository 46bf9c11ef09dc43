//! The micro guest's vsock credit accounting (guest/micro/src/virtio/vsock/conn.rs,
//! virtio 1.x §5.10.6.3): what we may send, what we tell the peer, and both
//! across the wrap of the 32-bit counters.

use kvmsandbox_micro_host_tests::chunk::Chunk;
use kvmsandbox_micro_host_tests::conn::{Conn, State, BUF_ALLOC};
use kvmsandbox_micro_host_tests::packet::{op, Header, TYPE_STREAM};

fn conn() -> Conn {
    Conn::new(1024, 2, 5000, State::Established)
}

/// A packet from the peer advertising `buf_alloc` and `fwd_cnt`.
fn peer(buf_alloc: u32, fwd_cnt: u32) -> Header {
    Header {
        src_cid: 2,
        dst_cid: 3,
        src_port: 5000,
        dst_port: 1024,
        len: 0,
        type_: TYPE_STREAM,
        op: op::CREDIT_UPDATE,
        flags: 0,
        buf_alloc,
        fwd_cnt,
    }
}

#[test]
fn peer_credit_is_buf_alloc_minus_bytes_in_flight() {
    let mut c = conn();
    assert_eq!(
        c.peer_credit(),
        0,
        "no credit before the peer said anything"
    );
    c.update_peer_credit(&peer(1000, 0));
    assert_eq!(c.peer_credit(), 1000);
    c.tx_cnt = 600;
    assert_eq!(c.peer_credit(), 400);
    c.tx_cnt = 1000;
    assert_eq!(c.peer_credit(), 0);
    c.update_peer_credit(&peer(1000, 600));
    assert_eq!(c.peer_credit(), 600);
    // The peer shrinking its buffer below what is in flight leaves no credit.
    c.update_peer_credit(&peer(100, 600));
    assert_eq!(c.peer_credit(), 0);
}

#[test]
fn peer_credit_survives_the_counter_wrap() {
    let mut c = conn();
    let start = u32::MAX - 100;
    c.tx_cnt = start;
    c.update_peer_credit(&peer(4096, start));
    assert_eq!(c.peer_credit(), 4096);
    c.tx_cnt = start.wrapping_add(300); // wrapped to 199
    assert!(c.tx_cnt < start);
    assert_eq!(c.peer_credit(), 4096 - 300);
    c.update_peer_credit(&peer(4096, start.wrapping_add(250)));
    assert_eq!(c.peer_credit(), 4096 - 50);
    c.update_peer_credit(&peer(4096, start.wrapping_add(300)));
    assert_eq!(c.peer_credit(), 4096);
}

#[test]
fn a_peer_claiming_more_than_we_sent_gets_no_credit() {
    let mut c = conn();
    c.tx_cnt = 10;
    c.update_peer_credit(&peer(4096, 20)); // fwd_cnt ahead of tx_cnt: nonsense
    assert_eq!(c.peer_credit(), 0);
}

#[test]
fn credit_from_the_peer_ends_a_credit_request() {
    let mut c = conn();
    c.credit_requested = true;
    c.update_peer_credit(&peer(0, 0));
    assert!(c.credit_requested, "no credit yet: still waiting");
    c.update_peer_credit(&peer(10, 0));
    assert!(!c.credit_requested);
}

#[test]
fn fwd_cnt_counts_bytes_taken_and_wraps() {
    let mut c = conn();
    c.fwd_cnt = u32::MAX - 10;
    c.fwd_cnt_sent = c.fwd_cnt;
    c.push_rx(Chunk::new(vec![7; 100]));
    c.push_rx(Chunk::new(vec![8; 50]));
    assert_eq!(c.rx_len, 150);
    assert_eq!(c.rx_room(), BUF_ALLOC as usize - 150);
    let a = c.pop_rx(30).expect("data");
    assert_eq!(a.len(), 30, "a partial take splits the front chunk");
    assert_eq!(c.fwd_cnt, 19, "30 bytes past u32::MAX - 10");
    let b = c.pop_rx(1000).expect("data");
    assert_eq!(b.len(), 70, "one chunk per take");
    let d = c.pop_rx(1000).expect("data");
    assert_eq!(d.as_slice(), &[8; 50][..]);
    assert!(c.pop_rx(1000).is_none());
    assert_eq!(c.rx_len, 0);
    assert_eq!(c.fwd_cnt, (u32::MAX - 10).wrapping_add(150));
    assert_eq!(c.fwd_cnt, 139);
}

#[test]
fn a_credit_update_goes_out_once_half_the_window_is_unadvertised() {
    let mut c = conn();
    let half = BUF_ALLOC as usize / 2;
    c.push_rx(Chunk::new(vec![0; half - 1]));
    assert!(!c.wants_credit_update(), "nothing consumed yet");
    c.pop_rx(usize::MAX).expect("data");
    assert!(
        !c.wants_credit_update(),
        "just under half consumed: the peer still has over half the window"
    );
    c.push_rx(Chunk::new(vec![0; 2]));
    c.pop_rx(usize::MAX).expect("data");
    assert!(
        c.wants_credit_update(),
        "over half consumed and not advertised"
    );
    c.fwd_cnt_sent = c.fwd_cnt; // what queue_ctrl does when the update goes out
    assert!(!c.wants_credit_update());
    // Data still buffered counts against the window as the peer sees it.
    c.push_rx(Chunk::new(vec![0; half]));
    c.pop_rx(1).expect("data");
    assert!(
        !c.wants_credit_update(),
        "the peer sees exactly half the window free"
    );
    c.push_rx(Chunk::new(vec![0; 1]));
    assert!(
        c.wants_credit_update(),
        "1 byte consumed, and more than half the window is still full"
    );
}

#[test]
fn the_credit_update_rule_holds_across_the_wrap() {
    let mut c = conn();
    c.fwd_cnt = u32::MAX - 1000;
    c.fwd_cnt_sent = c.fwd_cnt;
    c.push_rx(Chunk::new(vec![0; BUF_ALLOC as usize / 2 + 10]));
    c.pop_rx(usize::MAX).expect("data");
    assert!(c.fwd_cnt < c.fwd_cnt_sent, "fwd_cnt wrapped");
    assert!(c.wants_credit_update());
}

#[test]
fn only_an_established_connection_sends_credit_updates() {
    let mut c = Conn::new(1024, 2, 5000, State::Connecting);
    c.fwd_cnt = BUF_ALLOC;
    assert!(!c.wants_credit_update());
    c.state = State::Closed;
    assert!(!c.wants_credit_update());
}
