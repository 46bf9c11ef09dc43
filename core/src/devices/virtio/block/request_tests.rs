//! Pure parser tests: descriptor lists in, `Request` or `ParseFailure` out.

use super::*;
use crate::devices::virtio::test_utils::memory;

const W: u16 = 2; // VIRTQ_DESC_F_WRITE
const N: u16 = 1; // VIRTQ_DESC_F_NEXT

fn hdr(mem: &vm_memory::GuestMemoryMmap<()>, t: u32, sector: u64) {
    mem.write_obj(
        RequestHeader {
            request_type: t,
            reserved: 0,
            sector,
        },
        GuestAddress(0x1000),
    )
    .unwrap();
}

fn chain(parts: &[(u64, u32, u16)]) -> Vec<Descriptor> {
    let n = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(i, &(a, l, f))| {
            Descriptor::new(a, l, if i + 1 < n { f | N } else { f }, i as u16 + 1)
        })
        .collect()
}

#[test]
fn parses_a_read() {
    let mem = memory();
    hdr(&mem, VIRTIO_BLK_T_IN, 3);
    let r = parse(
        chain(&[(0x1000, 16, 0), (0x2000, 1024, W), (0x3000, 1, W)]),
        &mem,
        8,
        10,
    )
    .unwrap();
    assert_eq!(r.request_type, RequestType::In);
    assert_eq!(r.sector, 3);
    assert_eq!(r.data, vec![(GuestAddress(0x2000), 1024)]);
    assert_eq!(r.data_len, 1024);
    assert_eq!(r.status, GuestAddress(0x3000));
}

#[test]
fn empty_and_over_long_chains_have_no_status() {
    let mem = memory();
    let e = parse(Vec::new(), &mem, 8, 10).unwrap_err();
    assert_eq!(
        e,
        ParseFailure {
            error: RequestError::EmptyChain,
            status: None
        }
    );
    hdr(&mem, VIRTIO_BLK_T_IN, 0);
    let mut parts = vec![(0x1000, 16, 0)];
    parts.extend(std::iter::repeat_n((0x2000u64, 512u32, W), 20));
    parts.push((0x3000, 1, W));
    let e = parse(chain(&parts), &mem, 100, 10).unwrap_err();
    assert_eq!(
        e,
        ParseFailure {
            error: RequestError::ChainTooLong(10),
            status: None
        }
    );
}

#[test]
fn truncated_chain_is_rejected() {
    let mem = memory();
    hdr(&mem, VIRTIO_BLK_T_FLUSH, 0);
    // The last descriptor still says NEXT: the iterator stopped early (loop/bad index).
    let descs = vec![
        Descriptor::new(0x1000, 16, N, 1),
        Descriptor::new(0x3000, 1, W | N, 0),
    ];
    let e = parse(descs, &mem, 8, 10).unwrap_err();
    assert_eq!(e.status, None);
    assert!(matches!(e.error, RequestError::ChainTooLong(10)));
}

#[test]
fn errors_carry_the_status_address_when_usable() {
    let mem = memory();
    hdr(&mem, VIRTIO_BLK_T_OUT, 7);
    let e = parse(
        chain(&[(0x1000, 16, 0), (0x2000, 1024, 0), (0x3000, 1, W)]),
        &mem,
        8,
        10,
    )
    .unwrap_err();
    assert_eq!(e.status, Some(GuestAddress(0x3000)));
    assert_eq!(
        e.error,
        RequestError::OutOfRange {
            sector: 7,
            len: 1024,
            capacity: 8
        }
    );
    assert!(e.error.to_string().contains("8 sectors"));
}

#[test]
fn flush_ignores_direction_of_stray_data() {
    let mem = memory();
    hdr(&mem, VIRTIO_BLK_T_FLUSH, 0);
    let r = parse(
        chain(&[(0x1000, 16, 0), (0x2000, 7, W), (0x3000, 1, W)]),
        &mem,
        8,
        10,
    )
    .unwrap();
    assert_eq!(r.request_type, RequestType::Flush);
}

#[test]
fn unknown_type_parses_as_unsupported() {
    let mem = memory();
    hdr(&mem, 99, 0);
    let r = parse(chain(&[(0x1000, 16, 0), (0x3000, 1, W)]), &mem, 8, 10).unwrap();
    assert_eq!(r.request_type, RequestType::Unsupported(99));
}
