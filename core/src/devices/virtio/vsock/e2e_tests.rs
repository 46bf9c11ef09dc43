//! End to end without KVM: the vsock device inside the real virtio-mmio transport,
//! served by the real device event-loop thread, driven by a mock guest driver
//! (register writes + `MockSplitQueue` rings, queue kicks through the transport's
//! eventfds as KVM's ioeventfds would) and a host process on the Unix socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::packet::{Op, VsockHeader, HDR_SIZE, TYPE_STREAM};
use super::{Vsock, VsockConfig, HOST_CID};
use crate::devices::virtio::device::VIRTIO_F_VERSION_1;
use crate::devices::virtio::mmio::status;
use crate::devices::virtio::test_utils::{negotiate, write32};
use crate::devices::virtio::{DeviceEventLoop, MmioTransport};

const QSIZE: u16 = 64;
const RX_BUFS: u64 = 0x10_0000;
const TX_BUF: u64 = 0x20_0000;

fn setup_queue(t: &mut MmioTransport, i: u32, q: &MockSplitQueue<GuestMemoryMmap<()>>) {
    write32(t, 0x30, i);
    write32(t, 0x38, u32::from(QSIZE));
    for (reg, addr) in [
        (0x80, q.desc_table_addr()),
        (0x90, q.avail_addr()),
        (0xa0, q.used_addr()),
    ] {
        write32(t, reg, addr.raw_value() as u32);
        write32(t, reg + 4, (addr.raw_value() >> 32) as u32);
    }
    write32(t, 0x44, 1);
}

fn used_idx(mem: &GuestMemoryMmap<()>, q: &MockSplitQueue<GuestMemoryMmap<()>>) -> u16 {
    mem.read_obj(q.used_addr().unchecked_add(2)).unwrap()
}

/// Waits for the rx used ring to reach `n` entries and decodes entry `n - 1`.
fn wait_rx(
    mem: &GuestMemoryMmap<()>,
    q: &MockSplitQueue<GuestMemoryMmap<()>>,
    n: u16,
) -> (VsockHeader, Vec<u8>) {
    let start = Instant::now();
    while used_idx(mem, q) < n {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "rx packet {n} never came"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let slot = u64::from((n - 1) % QSIZE);
    let id: u32 = mem
        .read_obj(q.used_addr().unchecked_add(4 + slot * 8))
        .unwrap();
    let addr = RX_BUFS + u64::from(id) * 0x1000;
    let mut raw = [0u8; HDR_SIZE];
    mem.read_slice(&mut raw, GuestAddress(addr)).unwrap();
    let h = VsockHeader::from_bytes(&raw);
    let mut data = vec![0u8; h.len as usize];
    mem.read_slice(&mut data, GuestAddress(addr + HDR_SIZE as u64))
        .unwrap();
    (h, data)
}

#[test]
fn host_stream_through_transport_and_event_loop() {
    let dir = std::env::temp_dir().join(format!("vsock-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("v.sock");
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let dev = Vsock::new(VsockConfig::new(&path)).unwrap();
    let irq = EventFd::new(EFD_NONBLOCK).unwrap();
    let mut t = MmioTransport::new(mem.clone(), Box::new(dev), irq.try_clone().unwrap()).unwrap();
    let queues: Vec<_> = (0..3u64)
        .map(|i| MockSplitQueue::create(&mem, GuestAddress(0x1_0000 * (i + 1)), QSIZE))
        .collect();
    let st = negotiate(&mut t, VIRTIO_F_VERSION_1);
    for (i, q) in queues.iter().enumerate() {
        setup_queue(&mut t, i as u32, q);
    }
    write32(&mut t, 0x70, st | status::DRIVER_OK);
    // Recorded only: the loop activates the device (this is a vCPU's view).
    assert!(!t.is_activated() && t.has_pending());
    let kicks: Vec<EventFd> = t
        .queue_evts()
        .iter()
        .map(|e| e.try_clone().unwrap())
        .collect();
    let t = Arc::new(Mutex::new(t));
    let lp = DeviceEventLoop::spawn(vec![t.clone()], "vsock-e2e", || Ok(()), |_| {}).unwrap();
    let t0 = std::time::Instant::now();
    while !t.lock().unwrap().is_activated() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        t.lock().unwrap().is_activated(),
        "the loop applied the activation"
    );

    // The guest offers 8 rx buffers.
    for i in 0..8u16 {
        let d = Descriptor::new(
            RX_BUFS + u64::from(i) * 0x1000,
            0x1000,
            VRING_DESC_F_WRITE as u16,
            0,
        );
        queues[0]
            .add_desc_chains(&[RawDescriptor::from(d)], i)
            .unwrap();
    }
    kicks[0].write(1).unwrap();

    let mut host = UnixStream::connect(&path).unwrap();
    host.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    host.write_all(b"CONNECT 1234\n").unwrap();
    let (req, _) = wait_rx(&mem, &queues[0], 1);
    assert_eq!(
        (req.op, req.dst_port, req.src_cid, req.dst_cid),
        (Op::Request as u16, 1234, HOST_CID, 3)
    );
    assert!(irq.read().unwrap() >= 1, "interrupt raised");

    let mut tx_idx = 0u16;
    let mut send = |h: VsockHeader, data: &[u8]| {
        let mut h = h;
        h.len = data.len() as u32;
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(data);
        let addr = TX_BUF + u64::from(tx_idx) * 0x1000;
        mem.write_slice(&bytes, GuestAddress(addr)).unwrap();
        let d = Descriptor::new(addr, bytes.len() as u32, 0, 0);
        queues[1]
            .add_desc_chains(&[RawDescriptor::from(d)], tx_idx)
            .unwrap();
        tx_idx += 1;
        kicks[1].write(1).unwrap();
    };
    let local = req.src_port;
    let guest = |op: Op| VsockHeader {
        src_cid: 3,
        dst_cid: HOST_CID,
        src_port: 1234,
        dst_port: local,
        type_: TYPE_STREAM,
        op: op as u16,
        buf_alloc: 65536,
        ..Default::default()
    };
    send(guest(Op::Response), &[]);
    let mut line = String::new();
    let mut reader = BufReader::new(host.try_clone().unwrap());
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, format!("OK {local}\n"));

    host.write_all(b"ping").unwrap();
    let (h, data) = wait_rx(&mem, &queues[0], 2);
    assert_eq!((h.op, data.as_slice()), (Op::Rw as u16, &b"ping"[..]));

    send(guest(Op::Rw), b"pong");
    let mut b = [0u8; 4];
    reader.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pong");

    lp.stop().unwrap();
    drop(t);
    assert!(!path.exists(), "socket file removed with the device");
    let _ = std::fs::remove_dir_all(&dir);
}
