use super::*;
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use virtio_queue::desc::{split::Descriptor, RawDescriptor};
use virtio_queue::mock::MockSplitQueue;
use vm_memory::{Bytes, GuestAddress};

/// virtio's VRING_DESC_F_WRITE: the device writes this buffer.
const DESC_WRITE: u16 = 2;
/// The ring size QEMU 10's vhost-user-vsock-device sets up.
const QEMU_RING: u16 = 1024;

struct Tmp(PathBuf);
impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp(name: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("vhost-vsock-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

/// Rings laid out as a frontend would set them up (what SET_VRING_NUM/ADDR/KICK
/// and SET_VRING_ENABLE do inside the framework), with one writable rx buffer.
fn started_rings(mem: &GuestMemoryMmap<()>, atomic: &Memory) -> Vec<VringRwLock<Memory>> {
    let mut vrings = Vec::new();
    for (i, base) in [0x0u64, 0x10_0000].into_iter().enumerate() {
        let mock = MockSplitQueue::create(mem, GuestAddress(base), QEMU_RING);
        if i == 0 {
            let d = Descriptor::new(0x30_0000, 4096, DESC_WRITE, 0);
            mock.add_desc_chains(&[RawDescriptor::from(d)], 0).unwrap();
        }
        let v = VringRwLock::new(atomic.clone(), MAX_QUEUE_SIZE as u16).unwrap();
        v.set_queue_size(QEMU_RING);
        v.set_queue_info(
            mock.desc_table_addr().0,
            mock.avail_addr().0,
            mock.used_addr().0,
        )
        .unwrap();
        v.set_queue_ready(true);
        v.set_enabled(true);
        vrings.push(v);
    }
    vrings
}

#[test]
fn starts_on_qemu_sized_rings_without_version_1_from_the_frontend() {
    let dir = tmp("start");
    let backend = VsockBackend::new(VsockConfig::new(dir.0.join("v.sock"))).unwrap();
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let atomic = GuestMemoryAtomic::new(mem.clone());
    backend.update_memory(atomic.clone()).unwrap();
    // What QEMU's vhost-vsock acks: its own feature bits, never VERSION_1.
    backend.acked_features(VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits());
    let vrings = started_rings(&mem, &atomic);
    assert_eq!(vrings[0].get_ref().get_queue().size(), QEMU_RING);
    backend.handle_event(0, EventSet::IN, &vrings, 0).unwrap();
    assert!(backend.is_active(), "the device did not start");
    // A ring stop (GET_VRING_BASE) resets it.
    backend.stop_vring(0).unwrap();
    assert!(!backend.is_active());
}

#[test]
fn host_connection_reaches_the_guest_ring_and_its_call_fd() {
    let dir = tmp("call");
    let uds = dir.0.join("v.sock");
    let backend = VsockBackend::new(VsockConfig::new(&uds)).unwrap();
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x40_0000)]).unwrap();
    let atomic = GuestMemoryAtomic::new(mem.clone());
    backend.update_memory(atomic.clone()).unwrap();
    backend.acked_features(VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits());
    let vrings = started_rings(&mem, &atomic);
    let call = EventFd::new(EFD_NONBLOCK).unwrap();
    // SAFETY: the fd comes from a fresh dup that nothing else owns.
    let call_file = unsafe { File::from_raw_fd(call.try_clone().unwrap().into_raw_fd()) };
    vrings[0].set_call(Some(call_file));
    backend.handle_event(0, EventSet::IN, &vrings, 0).unwrap();
    assert!(backend.is_active());
    assert!(call.read().is_err(), "nothing was used yet");

    let mut host = UnixStream::connect(&uds).unwrap();
    host.write_all(b"CONNECT 1024\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut signalled = false;
    while !signalled && Instant::now() < deadline {
        backend
            .handle_event(DEVICE_FDS_EVENT, EventSet::IN, &vrings, 0)
            .unwrap();
        signalled = matches!(call.read(), Ok(n) if n > 0);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(signalled, "the frontend's call eventfd was never written");
    // The guest's rx buffer now holds the connection request (op 1 = REQUEST).
    let q = vrings[0].get_ref();
    let used = q.get_queue().used_ring();
    let idx: u16 = mem.read_obj(GuestAddress(used + 2)).unwrap();
    assert_eq!(idx, 1, "one rx buffer used");
    let op: u16 = mem.read_obj(GuestAddress(0x30_0000 + 30)).unwrap();
    assert_eq!(op, 1, "not a REQUEST packet");
}
