//! `vsock_packet`: the pure packet code of virtio-vsock over guest-built chains:
//! `parse_tx` (header split anywhere, lengths lying), `header_of_broken_tx` (what
//! the device resets a stream by when a `Reader` refuses the chain), `rx_capacity`
//! and `write_rx`.
//!
//! Input: descriptor count, then per descriptor (address, length, write-only),
//! a payload length for the rx packet, then bytes copied into guest memory at
//! `DATA_START` (what the header and payload bytes read back as).

use kvmsandbox::devices::virtio::vsock::packet::{
    header_of_broken_tx, parse_tx, rx_capacity, write_rx, Op, Packet, VsockHeader, HDR_SIZE,
    MAX_PKT_DATA, TYPE_STREAM,
};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{Bytes, GuestAddress};

use crate::input::Input;
use crate::mem::{self, DATA_START};
use crate::ring::{F_NEXT, F_WRITE};

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let n = inp.u8() % 6;
    let mut descs = Vec::with_capacity(usize::from(n));
    for i in 0..n {
        let addr = mem::address(&mut inp);
        let len = mem::length(&mut inp);
        let write = if inp.bool() { F_WRITE } else { 0 };
        let next = if i + 1 < n { F_NEXT } else { 0 };
        descs.push(Descriptor::new(addr, len, write | next, u16::from(i) + 1));
    }
    let rx_data_len = usize::from(inp.u16());
    let m = mem::guest_memory();
    let payload = inp.rest();
    let _ = m.write_slice(
        &payload[..payload.len().min(0x7000)],
        GuestAddress(DATA_START),
    );

    let readable = descs.iter().copied().take_while(|d| !d.is_write_only());
    let broken_hdr = header_of_broken_tx(&m, readable);
    if let Ok(pkt) = parse_tx(&m, descs.iter().copied()) {
        assert_eq!(
            broken_hdr,
            Some(pkt.hdr),
            "the header read alone differs from the parsed one"
        );
        assert_eq!(pkt.hdr.type_, TYPE_STREAM, "parsed a non-stream packet");
        assert_eq!(
            Some(pkt.op),
            Op::from_u16(pkt.hdr.op),
            "op does not match the header"
        );
        assert!(
            pkt.hdr.len <= MAX_PKT_DATA,
            "accepted len {} > max",
            pkt.hdr.len
        );
        let expect = if pkt.op == Op::Rw {
            pkt.hdr.len as usize
        } else {
            0
        };
        assert_eq!(
            pkt.data.len(),
            expect,
            "payload length differs from hdr.len for {:?}",
            pkt.op
        );
        let total: u64 = descs.iter().map(|d| u64::from(d.len())).sum();
        assert!(
            HDR_SIZE as u64 + pkt.data.len() as u64 <= total,
            "payload beyond the chain"
        );
    }

    let cap = rx_capacity(descs.iter().copied());
    let pkt = Packet {
        hdr: VsockHeader {
            src_cid: 2,
            dst_cid: 3,
            src_port: 1,
            dst_port: 2,
            len: 0,
            type_: TYPE_STREAM,
            op: Op::Rw as u16,
            flags: 0,
            buf_alloc: 1,
            fwd_cnt: 0,
        },
        op: Op::Rw,
        data: vec![0x5a; rx_data_len],
    };
    if let Ok(written) = write_rx(&m, descs.iter().copied(), &pkt) {
        let need = HDR_SIZE + pkt.data.len();
        assert_eq!(written as usize, need, "write_rx reported a wrong length");
        let cap = cap.unwrap_or(0);
        assert!(need <= cap, "wrote {need} bytes into a {cap}-byte rx chain");
    }
}
