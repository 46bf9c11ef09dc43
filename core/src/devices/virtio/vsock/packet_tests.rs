//! Unit tests for packet parsing/writing over mock guest memory.

use super::*;
use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{GuestAddress, GuestMemoryMmap};

fn mem() -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap()
}

fn hdr(op: u16, len: u32) -> VsockHeader {
    VsockHeader {
        src_cid: 3,
        dst_cid: 2,
        src_port: 1000,
        dst_port: 52,
        len,
        type_: TYPE_STREAM,
        op,
        flags: 0,
        buf_alloc: 4096,
        fwd_cnt: 7,
    }
}

fn rd(addr: u64, len: u32) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, 0, 0))
}

fn wr(addr: u64, len: u32) -> RawDescriptor {
    RawDescriptor::from(Descriptor::new(addr, len, VRING_DESC_F_WRITE as u16, 0))
}

fn parse(m: &GuestMemoryMmap<()>, descs: &[RawDescriptor]) -> Result<Packet, PacketError> {
    let q = MockSplitQueue::new(m, 16);
    let chain = q.build_desc_chain(descs).unwrap();
    parse_tx(m, chain)
}

#[test]
fn header_round_trips_through_bytes() {
    let h = hdr(Op::Rw as u16, 5);
    let b = h.to_bytes();
    assert_eq!(&b[24..28], &5u32.to_le_bytes());
    assert_eq!(VsockHeader::from_bytes(&b), h);
}

#[test]
fn parses_header_and_data_in_separate_descriptors() {
    let m = mem();
    m.write_slice(&hdr(Op::Rw as u16, 5).to_bytes(), GuestAddress(0x10_0000))
        .unwrap();
    m.write_slice(b"hello", GuestAddress(0x20_0000)).unwrap();
    let p = parse(&m, &[rd(0x10_0000, HDR_SIZE as u32), rd(0x20_0000, 5)]).unwrap();
    assert_eq!(p.op, Op::Rw);
    assert_eq!(p.hdr.dst_port, 52);
    assert_eq!(p.data, b"hello");
}

#[test]
fn parses_header_split_across_descriptors_and_data_inline() {
    let m = mem();
    let mut bytes = hdr(Op::Rw as u16, 3).to_bytes().to_vec();
    bytes.extend_from_slice(b"abc");
    m.write_slice(&bytes[..10], GuestAddress(0x10_0000))
        .unwrap();
    m.write_slice(&bytes[10..], GuestAddress(0x20_0000))
        .unwrap();
    let p = parse(
        &m,
        &[rd(0x10_0000, 10), rd(0x20_0000, (bytes.len() - 10) as u32)],
    )
    .unwrap();
    assert_eq!(p.data, b"abc");
}

#[test]
fn control_packet_ignores_payload() {
    let m = mem();
    m.write_slice(
        &hdr(Op::Request as u16, 0).to_bytes(),
        GuestAddress(0x10_0000),
    )
    .unwrap();
    let p = parse(&m, &[rd(0x10_0000, HDR_SIZE as u32)]).unwrap();
    assert_eq!(p.op, Op::Request);
    assert!(p.data.is_empty());
}

#[test]
fn len_larger_than_buffer_is_rejected() {
    let m = mem();
    m.write_slice(&hdr(Op::Rw as u16, 100).to_bytes(), GuestAddress(0x10_0000))
        .unwrap();
    let e = parse(&m, &[rd(0x10_0000, HDR_SIZE as u32), rd(0x20_0000, 99)]).unwrap_err();
    assert!(
        matches!(
            e,
            PacketError::DataBeyondChain {
                hdr: VsockHeader { len: 100, .. },
                avail: 99
            }
        ),
        "{e}"
    );
    assert_eq!(e.header().unwrap().src_port, 1000);
}

#[test]
fn len_above_max_is_rejected() {
    let m = mem();
    m.write_slice(
        &hdr(Op::Rw as u16, u32::MAX).to_bytes(),
        GuestAddress(0x10_0000),
    )
    .unwrap();
    let e = parse(
        &m,
        &[rd(0x10_0000, HDR_SIZE as u32), rd(0x20_0000, 0xffff_0000)],
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            PacketError::DataTooLong(VsockHeader { len: u32::MAX, .. })
        ),
        "{e}"
    );
}

#[test]
fn header_descriptor_too_small_is_rejected() {
    let m = mem();
    let e = parse(&m, &[rd(0x10_0000, 20)]).unwrap_err();
    assert!(matches!(e, PacketError::HeaderTooSmall(20)), "{e}");
}

#[test]
fn write_only_tx_descriptor_is_rejected() {
    let m = mem();
    let e = parse(&m, &[wr(0x10_0000, HDR_SIZE as u32)]).unwrap_err();
    assert!(
        matches!(e, PacketError::WriteOnlyTxDescriptor(0x10_0000)),
        "{e}"
    );
}

#[test]
fn unknown_op_and_type_keep_the_header() {
    let m = mem();
    m.write_slice(&hdr(99, 0).to_bytes(), GuestAddress(0x10_0000))
        .unwrap();
    let e = parse(&m, &[rd(0x10_0000, HDR_SIZE as u32)]).unwrap_err();
    assert!(matches!(e, PacketError::UnknownOp(_)), "{e}");
    assert_eq!(e.header().unwrap().src_port, 1000);

    let mut h = hdr(Op::Rw as u16, 0);
    h.type_ = 2; // SEQPACKET
    m.write_slice(&h.to_bytes(), GuestAddress(0x10_0000))
        .unwrap();
    let e = parse(&m, &[rd(0x10_0000, HDR_SIZE as u32)]).unwrap_err();
    assert!(matches!(e, PacketError::UnknownType(_)), "{e}");
    assert!(e.header().is_some());
}

#[test]
fn descriptor_outside_guest_memory_is_an_error() {
    let m = mem();
    let e = parse(&m, &[rd(0x1000_0000, HDR_SIZE as u32)]).unwrap_err();
    assert!(matches!(e, PacketError::Memory(_)), "{e}");
    let e = parse_tx(&m, [Descriptor::new(u64::MAX - 10, 64, 0, 0)]).unwrap_err();
    assert!(
        matches!(
            e,
            PacketError::Memory(_) | PacketError::AddressOverflow { .. }
        ),
        "{e}"
    );
}

#[test]
fn empty_chain_is_an_error() {
    let m = mem();
    assert!(matches!(parse_tx(&m, []), Err(PacketError::EmptyChain)));
}

#[test]
fn write_rx_spans_descriptors() {
    let m = mem();
    let q = MockSplitQueue::new(&m, 16);
    let chain = q
        .build_desc_chain(&[wr(0x10_0000, 30), wr(0x20_0000, 100)])
        .unwrap();
    let pkt = Packet {
        hdr: hdr(Op::Rw as u16, 0),
        op: Op::Rw,
        data: b"0123456789".to_vec(),
    };
    let n = write_rx(&m, chain, &pkt).unwrap();
    assert_eq!(n as usize, HDR_SIZE + 10);
    let mut raw = [0u8; HDR_SIZE];
    m.read_slice(&mut raw[..30], GuestAddress(0x10_0000))
        .unwrap();
    m.read_slice(&mut raw[30..], GuestAddress(0x20_0000))
        .unwrap();
    let h = VsockHeader::from_bytes(&raw);
    assert_eq!(h.len, 10);
    assert_eq!(h.op, Op::Rw as u16);
    let mut data = [0u8; 10];
    m.read_slice(&mut data, GuestAddress(0x20_0000 + 14))
        .unwrap();
    assert_eq!(&data, b"0123456789");
}

#[test]
fn write_rx_rejects_small_or_readable_chains() {
    let m = mem();
    let q = MockSplitQueue::new(&m, 16);
    let pkt = Packet {
        hdr: hdr(Op::Rw as u16, 0),
        op: Op::Rw,
        data: vec![1; 100],
    };
    let chain = q.build_desc_chain(&[wr(0x10_0000, 64)]).unwrap();
    let e = write_rx(&m, chain, &pkt).unwrap_err();
    assert!(
        matches!(
            e,
            PacketError::RxChainTooSmall {
                need: 144,
                have: 64
            }
        ),
        "{e}"
    );
    let chain = q.build_desc_chain(&[rd(0x10_0000, 4096)]).unwrap();
    assert!(matches!(
        write_rx(&m, chain, &pkt),
        Err(PacketError::ReadOnlyRxDescriptor(_))
    ));
}
