//! Shared helpers for the virtio unit tests: a recording mock device, guest memory,
//! and a driver that walks a transport through the virtio-mmio init sequence.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use virtio_queue::QueueT;
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::device::{
    ActivateContext, ActivateError, FdRegistrar, Served, VirtioDevice, EPOLLIN, VIRTIO_F_VERSION_1,
};
use super::mmio::{status, MmioTransport};
use crate::devices::bus::BusDevice;

/// Guest memory for tests: 2 MiB at 0.
pub fn memory() -> GuestMemoryMmap<()> {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20_0000)]).unwrap()
}

/// What a queue looked like when handed to the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSeen {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
}

/// Everything the mock device saw.
#[derive(Default, Debug)]
pub struct Log {
    pub acked: Option<u64>,
    pub activations: Vec<Vec<QueueSeen>>,
    /// Name of the thread each `activate`/`reset` ran on.
    pub lifecycle_threads: Vec<String>,
    pub resets: usize,
    pub notified: Vec<(usize, String)>,
    pub fd_events: Vec<(RawFd, u32)>,
    pub config_writes: Vec<(u64, Vec<u8>)>,
    /// A clone of the backend eventfd the device registered on attach.
    pub backend_evt: Option<EventFd>,
    /// The fd number the device registered (the clone above has another).
    pub registered_fd: Option<RawFd>,
}

/// A device with two queues (max 16 and 8) that records every call.
pub struct MockDevice {
    pub log: Arc<Mutex<Log>>,
    pub fail_activate: bool,
    pub config: [u8; 8],
    /// Registered with the event loop on attach; writing it produces `fd_ready`.
    pub backend_evt: Option<EventFd>,
    pub notify_tx: Option<Sender<&'static str>>,
    /// Panic in `queue_notified` (to test the loop's panic handling).
    pub panic_on_notify: bool,
}

impl MockDevice {
    pub fn new() -> (Self, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let dev = Self {
            log: log.clone(),
            fail_activate: false,
            config: [1, 2, 3, 4, 5, 6, 7, 8],
            backend_evt: None,
            notify_tx: None,
            panic_on_notify: false,
        };
        (dev, log)
    }
}

pub const MOCK_FEATURES: u64 = VIRTIO_F_VERSION_1 | 0b101;
pub const MOCK_TYPE: u32 = 42;

impl VirtioDevice for MockDevice {
    fn device_type(&self) -> u32 {
        MOCK_TYPE
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16, 8]
    }
    fn avail_features(&self) -> u64 {
        MOCK_FEATURES
    }
    fn ack_features(&mut self, features: u64) {
        self.log.lock().unwrap().acked = Some(features);
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            if let Some(v) = offset
                .checked_add(i as u64)
                .and_then(|o| self.config.get(o as usize))
            {
                *b = *v;
            }
        }
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.log
            .lock()
            .unwrap()
            .config_writes
            .push((offset, data.to_vec()));
    }
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let seen = ctx
            .queues
            .iter()
            .map(|q| {
                let s = q.state();
                QueueSeen {
                    size: q.size(),
                    desc: s.desc_table,
                    avail: s.avail_ring,
                    used: s.used_ring,
                }
            })
            .collect();
        let mut log = self.log.lock().unwrap();
        log.activations.push(seen);
        log.lifecycle_threads.push(thread_name());
        drop(log);
        if self.fail_activate {
            return Err(ActivateError::Backend("mock refuses".into()));
        }
        Ok(())
    }
    fn reset(&mut self) {
        let mut log = self.log.lock().unwrap();
        log.resets += 1;
        log.lifecycle_threads.push(thread_name());
    }
    fn queue_notified(&mut self, queue_index: usize) -> Served {
        assert!(!self.panic_on_notify, "mock device panics on purpose");
        let name = std::thread::current().name().unwrap_or("").to_string();
        self.log.lock().unwrap().notified.push((queue_index, name));
        if let Some(tx) = &self.notify_tx {
            let _ = tx.send("queue");
        }
        Served::Done
    }
    fn attach_event_loop(&mut self, registrar: FdRegistrar) {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        registrar.add(evt.as_raw_fd(), EPOLLIN).unwrap();
        let mut log = self.log.lock().unwrap();
        log.backend_evt = Some(evt.try_clone().unwrap());
        log.registered_fd = Some(evt.as_raw_fd());
        drop(log);
        self.backend_evt = Some(evt);
    }
    fn fd_ready(&mut self, fd: RawFd, events: u32) {
        if let Some(evt) = &self.backend_evt {
            let _ = evt.read();
        }
        self.log.lock().unwrap().fd_events.push((fd, events));
        if let Some(tx) = &self.notify_tx {
            let _ = tx.send("fd");
        }
    }
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// Whether `fd` is readable right now (an eventfd with a non-zero counter),
/// without reading it.
pub fn readable(fd: &impl AsRawFd) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; poll only writes `revents`.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLIN != 0
}

pub fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(offset, &mut b);
    u32::from_le_bytes(b)
}

pub fn write32(t: &mut MmioTransport, offset: u64, v: u32) {
    t.write(offset, &v.to_le_bytes());
}

/// Queue `i` lives at 0x1000 * (i + 1): descriptors, then avail at +0x400, used at +0x800.
pub fn queue_addrs(i: u64) -> (u64, u64, u64) {
    let base = 0x1000 * (i + 1);
    (base, base + 0x400, base + 0x800)
}

/// ACK, DRIVER, accept `features`, FEATURES_OK. Returns the status read back.
pub fn negotiate(t: &mut MmioTransport, features: u64) -> u32 {
    write32(t, 0x70, status::ACKNOWLEDGE);
    write32(t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    write32(t, 0x24, 0);
    write32(t, 0x20, features as u32);
    write32(t, 0x24, 1);
    write32(t, 0x20, (features >> 32) as u32);
    write32(
        t,
        0x70,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    read32(t, 0x70)
}

/// Sets up queue `i` with `size` at [`queue_addrs`] and marks it ready.
pub fn setup_queue(t: &mut MmioTransport, i: u32, size: u32) {
    let (d, a, u) = queue_addrs(u64::from(i));
    write32(t, 0x30, i);
    write32(t, 0x38, size);
    write32(t, 0x80, d as u32);
    write32(t, 0x84, (d >> 32) as u32);
    write32(t, 0x90, a as u32);
    write32(t, 0x94, (a >> 32) as u32);
    write32(t, 0xa0, u as u32);
    write32(t, 0xa4, (u >> 32) as u32);
    write32(t, 0x44, 1);
}

/// The whole init sequence for a device with `sizes.len()` queues, ending in
/// DRIVER_OK, then what the event loop does for it (the activation is applied).
pub fn full_init(t: &mut MmioTransport, sizes: &[u32]) {
    full_init_pending(t, sizes);
    loop_applies(t);
}

/// [`full_init`] without the event loop's part: the activation is only recorded.
pub fn full_init_pending(t: &mut MmioTransport, sizes: &[u32]) {
    let st = negotiate(t, VIRTIO_F_VERSION_1);
    assert_ne!(st & status::FEATURES_OK, 0);
    for (i, &s) in sizes.iter().enumerate() {
        setup_queue(t, i as u32, s);
    }
    write32(t, 0x70, st | status::DRIVER_OK);
}

/// What the event loop does when a transport's control eventfd fires.
pub fn loop_applies(t: &mut MmioTransport) {
    let _ = t.ctl_evt().read();
    t.apply_pending();
}

/// A transport around a fresh mock device.
pub fn mock_transport() -> (MmioTransport, Arc<Mutex<Log>>) {
    let (dev, log) = MockDevice::new();
    let t =
        MmioTransport::new(memory(), Box::new(dev), EventFd::new(EFD_NONBLOCK).unwrap()).unwrap();
    (t, log)
}
