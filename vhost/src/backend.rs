//! Our [`Vsock`] device model behind rust-vmm's vhost-user backend framework.
//!
//! The framework owns the vrings (addresses, kick and call eventfds) and calls
//! [`VhostUserBackend::handle_event`] on one worker thread for every kick and for
//! the listener we add. The device, written for our own VMM, wants instead to own
//! its queues, one interrupt eventfd and an event loop for its host sockets, so:
//! - once the frontend has started and enabled rx and tx, the device is activated
//!   with copies of those queues (it advances its own copies from then on);
//! - QEMU keeps the event queue to itself (its vhost-vsock device hands the backend
//!   only rx and tx), so the device gets a never-ready stand-in for it — our device
//!   never writes to the event queue anyway;
//! - the device's interrupt is a private eventfd, drained after every call into the
//!   device and forwarded to the rx and tx call eventfds (signalling a queue with
//!   nothing new is harmless; the interrupt does not say which queue was used);
//! - the device's host sockets sit in a [`DeviceFds`] set whose epoll fd is one
//!   more listener of the framework's worker.
//!
//! Limitation: `GET_VRING_BASE` reports the framework's copy of the ring position,
//! not the device's, so stopping and resuming rings without a guest reset (live
//! migration, `stop`/`cont`) is not supported. A guest driver reset works: the
//! frontend stops the rings, we reset the device, and it starts from new rings.

use std::ops::Deref;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};

use kvmsandbox::devices::virtio::device::VIRTIO_F_VERSION_1;
use kvmsandbox::devices::virtio::vhost_adapter::DeviceFds;
use kvmsandbox::devices::virtio::vsock::{Vsock, VsockConfig, VsockError};
use kvmsandbox::devices::virtio::{ActivateContext, Interrupt, Served, VirtioDevice};
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Rings the frontend hands us: rx and tx (QEMU keeps the event queue).
pub const NUM_QUEUES: usize = 2;
/// The largest ring we accept. QEMU 10's vhost-user-vsock-device uses 1024-entry
/// rings (more than our own VMM offers); the device model serves any size, as it
/// only pops chains and adds used entries.
pub const MAX_QUEUE_SIZE: usize = 1024;
/// Event id of the device's host-socket set in the framework's epoll; ids up to
/// and including `NUM_QUEUES` belong to the framework.
pub const DEVICE_FDS_EVENT: u16 = NUM_QUEUES as u16 + 1;
/// The event queue's size in the stand-in the device is activated with.
const EVENT_QUEUE_SIZE: u16 = 256;
/// Longest config read served (the vsock config space is 8 bytes).
const MAX_CONFIG_READ: u32 = 256;

/// Guest memory as the framework maps it.
pub type Memory = GuestMemoryAtomic<GuestMemoryMmap<()>>;

/// Errors setting the backend up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The device rejected its config or could not bind its socket.
    #[error("vsock device: {0}")]
    Device(#[from] VsockError),
    /// An eventfd or epoll instance could not be created.
    #[error("creating the backend's {what}: {source}")]
    Host {
        /// Which resource.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

struct State {
    /// `None` once [`VsockBackend::close`] dropped it.
    device: Option<Vsock>,
    mem: Option<Memory>,
    active: bool,
}

/// The vhost-user face of one [`Vsock`] device.
pub struct VsockBackend {
    state: Mutex<State>,
    fds: DeviceFds,
    irq: EventFd,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic on the worker thread leaves plain data behind: keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl VsockBackend {
    /// Binds the device's hybrid socket at `cfg.uds_path`.
    pub fn new(cfg: VsockConfig) -> Result<Self, BackendError> {
        let mut device = Vsock::new(cfg)?;
        let fds = DeviceFds::new().map_err(|source| BackendError::Host {
            what: "epoll set",
            source,
        })?;
        device.attach_event_loop(fds.registrar());
        let irq = EventFd::new(EFD_NONBLOCK).map_err(|source| BackendError::Host {
            what: "interrupt eventfd",
            source,
        })?;
        Ok(Self {
            state: Mutex::new(State {
                device: Some(device),
                mem: None,
                active: false,
            }),
            fds,
            irq,
        })
    }

    /// The fd to register with the framework's worker under [`DEVICE_FDS_EVENT`].
    pub fn device_fds(&self) -> std::os::fd::RawFd {
        self.fds.as_raw_fd()
    }

    /// Drops the device (which removes its socket file); later events are ignored.
    pub fn close(&self) {
        let mut st = lock(&self.state);
        st.active = false;
        st.device = None;
    }

    /// Whether the device is serving the rings (for tests and diagnostics).
    pub fn is_active(&self) -> bool {
        lock(&self.state).active
    }

    /// Activates the device once rx and tx are started and enabled.
    fn try_activate(&self, st: &mut State, vrings: &[VringRwLock<Memory>]) {
        let Some(mem) = st.mem.as_ref().map(|m| m.memory().deref().clone()) else {
            return;
        };
        if vrings.len() < NUM_QUEUES {
            return;
        }
        let mut queues = Vec::with_capacity(NUM_QUEUES + 1);
        for v in &vrings[..NUM_QUEUES] {
            let vs = v.get_ref();
            let q = vs.get_queue();
            if !vs.is_enabled() || !q.ready() {
                return;
            }
            if !q.is_valid(&mem) {
                eprintln!("kvmsandbox-vhost-vsock: a ring lies outside guest memory; not starting");
                return;
            }
            match Queue::try_from(q.state()) {
                Ok(copy) => queues.push(copy),
                Err(e) => {
                    eprintln!("kvmsandbox-vhost-vsock: copying a ring's state: {e}");
                    return;
                }
            }
        }
        let Ok(event_queue) = Queue::new(EVENT_QUEUE_SIZE) else {
            return;
        };
        queues.push(event_queue);
        let Ok(irq) = self.irq.try_clone() else {
            eprintln!("kvmsandbox-vhost-vsock: cannot clone the interrupt eventfd");
            return;
        };
        let Some(dev) = st.device.as_mut() else {
            return;
        };
        let ctx = ActivateContext {
            mem,
            queues,
            interrupt: Interrupt::new(irq),
        };
        match dev.activate(ctx) {
            Ok(()) => st.active = true,
            Err(e) => eprintln!("kvmsandbox-vhost-vsock: activating the device: {e}"),
        }
    }

    fn deactivate(&self) {
        let mut st = lock(&self.state);
        if st.active {
            if let Some(d) = st.device.as_mut() {
                d.reset();
            }
            st.active = false;
        }
    }

    /// Passes the device's interrupts on to the frontend's call eventfds.
    fn forward_interrupt(&self, vrings: &[VringRwLock<Memory>]) {
        // Non-blocking: WouldBlock means no interrupt since the last call.
        if matches!(self.irq.read(), Ok(n) if n > 0) {
            for v in vrings.iter().take(NUM_QUEUES) {
                // Fails only if the frontend closed its call fd; it will see the
                // used ring the next time it looks.
                let _ = v.signal_used_queue();
            }
        }
    }
}

impl VhostUserBackend for VsockBackend {
    type Bitmap = ();
    type Vring = VringRwLock<Memory>;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, features: u64) {
        // The frontend negotiates the transport (and VERSION_1) with the guest
        // itself and passes on only the device's own bits (QEMU's vhost-vsock:
        // SEQPACKET, RING_RESET, RING_PACKED), so VERSION_1 never arrives here.
        // The split-ring data path is the same either way on a little-endian host.
        if let Some(d) = lock(&self.state).device.as_mut() {
            d.ack_features((features | VIRTIO_F_VERSION_1) & d.avail_features());
        }
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG
    }

    fn reset_device(&self) {
        self.deactivate();
    }

    fn set_event_idx(&self, _enabled: bool) {
        // Never offered, so never enabled.
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let mut buf = vec![0u8; size.min(MAX_CONFIG_READ) as usize];
        if let Some(d) = lock(&self.state).device.as_ref() {
            d.read_config(u64::from(offset), &mut buf);
        }
        buf
    }

    fn update_memory(&self, mem: Memory) -> std::io::Result<()> {
        let mut st = lock(&self.state);
        if st.active {
            // The device keeps the memory it was activated with; a new table while
            // rings run (memory hotplug) is not supported.
            eprintln!("kvmsandbox-vhost-vsock: memory table changed while running; ignored until the next reset");
        }
        st.mem = Some(mem);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // Without one the framework cannot stop its worker, and dropping the
        // daemon (which joins the worker) would hang once the frontend has left.
        new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC).ok()
    }

    fn stop_vring(&self, _queue_index: u32) -> std::io::Result<()> {
        self.deactivate();
        Ok(())
    }

    fn handle_event(
        &self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[Self::Vring],
        _thread_id: usize,
    ) -> std::io::Result<()> {
        {
            let mut st = lock(&self.state);
            let q = usize::from(device_event);
            if q < NUM_QUEUES {
                if !st.active {
                    self.try_activate(&mut st, vrings);
                }
                if st.active {
                    if let Some(d) = st.device.as_mut() {
                        // A device that stopped at its per-wakeup budget goes on at
                        // once: this worker thread serves nothing else.
                        while d.queue_notified(q) == Served::More {}
                    }
                }
            } else if device_event == DEVICE_FDS_EVENT {
                if let Some(d) = st.device.as_mut() {
                    self.fds.dispatch(d)?;
                }
            }
        }
        self.forward_interrupt(vrings);
        Ok(())
    }
}

#[cfg(test)]
#[path = "backend_tests.rs"]
mod tests;
