//! A guest streaming huge virtio-blk requests over a slow disk must not make the
//! loop's stop, or a vCPU's register access, wait for all of it: the device works
//! in bounded steps and the loop checks its stop flag between them.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::devices::virtio::block::request::VIRTIO_BLK_T_IN;
use crate::devices::virtio::block::{Block, BlockBackend};
use crate::devices::virtio::test_utils::{memory, negotiate, read32, write32};

/// 1 GiB of zeros that takes 2 ms per read call (a slow network disk).
struct SlowDisk(Arc<AtomicU64>);

impl BlockBackend for SlowDisk {
    fn read_at(&self, buf: &mut [u8], _offset: u64) -> io::Result<()> {
        std::thread::sleep(Duration::from_millis(2));
        buf.fill(0);
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn write_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        1 << 30
    }
}

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// A blk transport, activated, with 8 chains queued, each reading 200 MiB (200
/// descriptors of 1 MiB over the same guest buffer): ~50 s of backend time each.
fn huge_stream() -> (Arc<Mutex<MmioTransport>>, Arc<AtomicU64>) {
    let mem = memory();
    let read = Arc::new(AtomicU64::new(0));
    let dev = Block::with_backend(
        Box::new(SlowDisk(read.clone())),
        Path::new("slow"),
        true,
        None,
    )
    .unwrap();
    let mut t = MmioTransport::new(
        mem.clone(),
        Box::new(dev),
        EventFd::new(EFD_NONBLOCK).unwrap(),
    )
    .unwrap();
    let st = negotiate(&mut t, crate::devices::virtio::device::VIRTIO_F_VERSION_1);
    let vq = MockSplitQueue::create(&mem, GuestAddress(0x8000), 256);
    write32(&mut t, 0x30, 0);
    write32(&mut t, 0x38, 256);
    write32(&mut t, 0x80, vq.desc_table_addr().0 as u32);
    write32(&mut t, 0x90, vq.avail_addr().0 as u32);
    write32(&mut t, 0xa0, vq.used_addr().0 as u32);
    write32(&mut t, 0x44, 1);
    let hdr = 0x10_0000u64;
    mem.write_obj(VIRTIO_BLK_T_IN, GuestAddress(hdr)).unwrap();
    mem.write_obj(0u64, GuestAddress(hdr + 8)).unwrap();
    let per_chain = 200u16;
    let mut descs = Vec::new();
    for c in 0..8u16 {
        let base = c * (per_chain + 2);
        descs.push(Descriptor::new(hdr, 16, F_NEXT, base + 1));
        for i in 0..per_chain {
            descs.push(Descriptor::new(
                0x10_0000,
                1 << 20,
                F_NEXT | F_WRITE,
                base + 2 + i,
            ));
        }
        descs.push(Descriptor::new(0x1f_0000 + u64::from(c), 1, F_WRITE, 0));
    }
    // 8 * 202 descriptors do not fit a 256 table: queue them 1 chain at a time
    // in the same slots; the device reads a chain when it pops it, so queue one
    // chain and publish it 8 times (identical requests).
    let one: Vec<RawDescriptor> = descs[..usize::from(per_chain) + 2]
        .iter()
        .map(|d| RawDescriptor::from(*d))
        .collect();
    for _ in 0..8 {
        vq.add_desc_chains(&one, 0).unwrap();
    }
    write32(
        &mut t,
        0x70,
        st | crate::devices::virtio::mmio::status::DRIVER_OK,
    );
    (Arc::new(Mutex::new(t)), read)
}

/// Longest a register access or a stop may wait behind the request stream.
const PROMPT: Duration = Duration::from_secs(10);

#[test]
fn stop_and_register_access_during_a_huge_request_stream_are_prompt() {
    let (t, read) = huge_stream();
    let handle =
        DeviceEventLoop::spawn(vec![t.clone()], "virtio-blk-slow", || Ok(()), |_| {}).unwrap();
    // Let the stream get going (the activation serves the queue at once).
    let t0 = Instant::now();
    while read.load(Ordering::Relaxed) < 4 << 20 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        read.load(Ordering::Relaxed) >= 4 << 20,
        "the device is reading"
    );
    // A vCPU's MMIO access waits for at most one budget of work: 1 MiB in
    // 1-byte segments here, ~1 s in a debug build on a loaded 2-core machine,
    // against minutes for the whole stream. The bound proves "not the whole
    // stream", not a speed.
    let t1 = Instant::now();
    assert_eq!(read32(&mut lock(&t), 0x08), 2);
    assert!(
        t1.elapsed() < PROMPT,
        "register access took {:?}",
        t1.elapsed()
    );
    let t2 = Instant::now();
    handle.stop().unwrap();
    let took = t2.elapsed();
    assert!(took < PROMPT, "stop took {took:?}");
    // Far less than one request was read: the stream really was cut short.
    assert!(read.load(Ordering::Relaxed) < 200 << 20);
}
