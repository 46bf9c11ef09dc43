//! The contract between a virtio device model and the virtio-mmio transport.
//!
//! A device (blk, vsock) knows its features, its config space and how to serve its
//! queues; it never sees a register. The transport ([`super::mmio::MmioTransport`])
//! owns the registers and the queue state while the driver sets things up, and once
//! the driver set DRIVER_OK hands the device everything it needs to work in one
//! [`ActivateContext`]: guest memory, the ready queues and an [`Interrupt`] handle.
//!
//! Who calls what, and on which thread:
//! - vCPU threads (through the bus, holding the transport's lock): only the pure
//!   calls `device_type`, `queue_max_sizes`, `avail_features`, `read_config`,
//!   `write_config`. A vCPU thread's seccomp filter allows no device I/O, so these
//!   must make no syscall beyond memory and locking.
//! - the device event-loop thread ([`super::event_loop::DeviceEventLoop`], holding the
//!   same lock): `attach_event_loop` (once, when the loop starts); `reset`,
//!   `ack_features` and `activate`, which a guest Status write only recorded (the
//!   loop applies them in order before anything else of that device); `queue_notified`
//!   (after the guest kicked a queue; only once activated); `fd_ready` (a backend fd
//!   the device registered became ready; called whether or not activated).
//! - the thread taking or restoring a VM snapshot (holding the same lock, vCPUs
//!   paused; never a filtered thread): `save_state`, `active_queues`,
//!   `check_state`, `restore_state`.
//!
//! Because every call holds the transport's mutex, a device never needs its own
//! locking. Calls must be short: they block the guest's vCPUs that touch the device,
//! so `queue_notified` does a bounded amount of work and returns [`Served::More`]
//! to be called again after the loop served everything else.
//! Nothing here may panic on guest input.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use vm_memory::GuestMemoryMmap;

use super::state::{DeviceKindState, DeviceStateError};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

/// `VIRTIO_F_VERSION_1`, bit 32: every device we offer is a modern (1.x) device and
/// must include this bit in [`VirtioDevice::avail_features`].
pub const VIRTIO_F_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;

/// Interrupt-status bit: a used ring was updated.
pub const VIRTIO_MMIO_INT_VRING: u32 = virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_VRING;
/// Interrupt-status bit: the configuration space changed.
pub const VIRTIO_MMIO_INT_CONFIG: u32 = virtio_bindings::virtio_mmio::VIRTIO_MMIO_INT_CONFIG;

/// Device type id for virtio-blk.
pub const TYPE_BLOCK: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
/// Device type id for virtio-vsock.
pub const TYPE_VSOCK: u32 = virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK;

/// What [`VirtioDevice::queue_notified`] left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// Nothing more to do until the next notification.
    Done,
    /// The device stopped at its per-wakeup budget with work left: the transport
    /// signals the queue again so the loop calls back after serving the others.
    More,
}

/// Everything a device needs once the driver has set it up (DRIVER_OK).
pub struct ActivateContext {
    /// Guest memory; descriptor addresses are guest-physical addresses in here.
    pub mem: GuestMemoryMmap<()>,
    /// One queue per entry of [`VirtioDevice::queue_max_sizes`], in the same order,
    /// each ready and checked with `is_valid` against `mem`.
    pub queues: Vec<virtio_queue::Queue>,
    /// Raise the device's interrupt after adding to a used ring.
    pub interrupt: Interrupt,
}

/// Errors a device may return from [`VirtioDevice::activate`]. The transport then
/// sets DEVICE_NEEDS_RESET in the status register; the guest sees a failed device.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The driver set up a different number of queues than the device needs.
    #[error("device needs {expected} queues, driver set up {got}")]
    QueueCount {
        /// Number the device needs.
        expected: usize,
        /// Number handed over.
        got: usize,
    },
    /// The driver did not accept a feature the device cannot work without.
    #[error("required feature bit {0} was not negotiated")]
    MissingFeature(u32),
    /// The device's backend could not be set up.
    #[error("device backend failed to start: {0}")]
    Backend(String),
}

struct InterruptInner {
    status: AtomicU32,
    evt: EventFd,
    needs_reset: std::sync::atomic::AtomicBool,
}

/// The device's interrupt line: the transport's InterruptStatus register plus the
/// eventfd the VMM registered as a KVM irqfd for the device's GSI.
///
/// Cheap to clone; usable from any thread. The transport keeps one clone to answer
/// InterruptStatus reads and InterruptACK writes.
#[derive(Clone)]
pub struct Interrupt {
    inner: Arc<InterruptInner>,
}

impl Interrupt {
    /// Wraps the irq eventfd (registered by the VMM as an irqfd).
    pub fn new(evt: EventFd) -> Self {
        Self {
            inner: Arc::new(InterruptInner {
                status: AtomicU32::new(0),
                evt,
                needs_reset: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Marks "used ring updated" and raises the interrupt. Call after `add_used`.
    pub fn signal_used_queue(&self) -> io::Result<()> {
        self.signal(VIRTIO_MMIO_INT_VRING)
    }

    /// Marks "config space changed" and raises the interrupt.
    pub fn signal_config_change(&self) -> io::Result<()> {
        self.signal(VIRTIO_MMIO_INT_CONFIG)
    }

    fn signal(&self, bit: u32) -> io::Result<()> {
        self.inner.status.fetch_or(bit, Ordering::SeqCst);
        self.inner.evt.write(1)
    }

    /// Current InterruptStatus bits.
    pub fn status(&self) -> u32 {
        self.inner.status.load(Ordering::SeqCst)
    }

    /// Clears the given InterruptStatus bits (the guest's InterruptACK write).
    pub fn ack(&self, bits: u32) {
        self.inner.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Clears every status bit and the needs-reset flag (device reset).
    pub fn clear(&self) {
        self.inner.status.store(0, Ordering::SeqCst);
        self.inner.needs_reset.store(false, Ordering::SeqCst);
    }

    /// The device found its queue state unusable (e.g. the guest moved the avail
    /// index by more than the queue size): the transport then reports
    /// DEVICE_NEEDS_RESET in its status register, and a config-change interrupt
    /// tells the driver (virtio 1.x §2.1.2). The device stops using the queue.
    pub fn signal_needs_reset(&self) -> io::Result<()> {
        self.inner.needs_reset.store(true, Ordering::SeqCst);
        self.signal_config_change()
    }

    /// Sets InterruptStatus and the needs-reset flag to a snapshot's values without
    /// raising the interrupt: whether the guest still had one pending is part of
    /// the irqchip state restored with them.
    pub fn restore(&self, status: u32, needs_reset: bool) {
        self.inner.status.store(status, Ordering::SeqCst);
        self.inner.needs_reset.store(needs_reset, Ordering::SeqCst);
    }

    /// True once [`Interrupt::signal_needs_reset`] was called since the last reset.
    pub fn needs_reset(&self) -> bool {
        self.inner.needs_reset.load(Ordering::SeqCst)
    }

    /// The irq eventfd (for tests and for the VMM's irqfd registration).
    pub fn eventfd(&self) -> &EventFd {
        &self.inner.evt
    }
}

/// Lets a device watch its own backend fds (listening and connected Unix sockets…)
/// on the device event-loop thread. Given to the device once, through
/// [`VirtioDevice::attach_event_loop`]; the device keeps it and adds/removes fds as
/// connections come and go. When an fd is ready the loop calls
/// [`VirtioDevice::fd_ready`] with that fd and the epoll event bits.
///
/// Cheap to clone. The device must `remove` an fd before closing it (epoll would
/// otherwise keep reporting a reused fd number to the wrong owner).
///
/// Registrations are level-triggered: `fd_ready` must consume the readiness (read
/// until `EAGAIN`, or `modify`/`remove` the fd), or the loop will call it again
/// at once and spin.
#[derive(Clone)]
pub struct FdRegistrar {
    epoll: Arc<Epoll>,
    device_index: u32,
}

/// Event bits for [`FdRegistrar::add`]/[`FdRegistrar::modify`] (epoll's).
pub const EPOLLIN: u32 = libc::EPOLLIN as u32;
/// Writable.
pub const EPOLLOUT: u32 = libc::EPOLLOUT as u32;
/// Peer closed its write side.
pub const EPOLLRDHUP: u32 = libc::EPOLLRDHUP as u32;
/// Hang-up (always reported).
pub const EPOLLHUP: u32 = libc::EPOLLHUP as u32;
/// Error (always reported).
pub const EPOLLERR: u32 = libc::EPOLLERR as u32;

/// Tag in the top byte of an epoll event's data: a device's own backend fd.
pub(crate) const TAG_DEVICE_FD: u64 = 2;

impl FdRegistrar {
    pub(crate) fn new(epoll: Arc<Epoll>, device_index: u32) -> Self {
        Self {
            epoll,
            device_index,
        }
    }

    /// A registrar on a caller's epoll, for harnesses that run the loop's steps
    /// themselves (fuzzing). Event data: the fd in the low 32 bits.
    #[cfg(feature = "test-utils")]
    pub fn for_harness(epoll: Arc<Epoll>) -> Self {
        Self::new(epoll, 0)
    }

    fn event(&self, fd: RawFd, events: u32) -> EpollEvent {
        EpollEvent::new(
            EventSet::from_bits_truncate(events),
            encode(TAG_DEVICE_FD, self.device_index, fd as u32),
        )
    }

    /// Starts watching `fd` for `events` (level-triggered).
    pub fn add(&self, fd: RawFd, events: u32) -> io::Result<()> {
        self.epoll
            .ctl(ControlOperation::Add, fd, self.event(fd, events))
    }

    /// Changes the events watched on `fd` (e.g. add EPOLLOUT while output is queued).
    pub fn modify(&self, fd: RawFd, events: u32) -> io::Result<()> {
        self.epoll
            .ctl(ControlOperation::Modify, fd, self.event(fd, events))
    }

    /// Stops watching `fd`. Call before closing it.
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        self.epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default())
    }
}

/// Packs (tag, device index, value) into epoll's 64-bit user data.
pub(crate) fn encode(tag: u64, device_index: u32, value: u32) -> u64 {
    (tag << 56) | ((u64::from(device_index) & 0x00ff_ffff) << 32) | u64::from(value)
}

/// Unpacks [`encode`].
pub(crate) fn decode(data: u64) -> (u64, u32, u32) {
    (data >> 56, ((data >> 32) & 0x00ff_ffff) as u32, data as u32)
}

/// A virtio device model driven by the virtio-mmio transport.
///
/// Implementors: blk (`super::block::Block`) and vsock. See the module note for
/// which thread calls what. All methods get `&mut self` under the transport's lock.
pub trait VirtioDevice: Send {
    /// The virtio device type id (2 = blk, 19 = vsock; see `TYPE_*`).
    fn device_type(&self) -> u32;

    /// Maximum size of each queue; its length is the number of queues. Each entry
    /// must be a power of two, 1..=32768.
    fn queue_max_sizes(&self) -> &[u16];

    /// Feature bits the device offers. Must include [`VIRTIO_F_VERSION_1`]. Do not
    /// offer `VIRTIO_RING_F_EVENT_IDX` unless you handle notification suppression.
    fn avail_features(&self) -> u64;

    /// The features the driver accepted, already masked to `avail_features` (always
    /// with VERSION_1). Called on the event-loop thread right before each `activate`;
    /// [`VirtioDevice::reset`] forgets them.
    fn ack_features(&mut self, features: u64);

    /// Reads device config space at `offset` (relative to config start, i.e. MMIO
    /// 0x100). Out-of-range bytes must be left as they are (the transport zeroes
    /// `data` first); never panic on any offset/length.
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// Writes device config space; ignore what is read-only or out of range.
    fn write_config(&mut self, offset: u64, data: &[u8]);

    /// The driver set DRIVER_OK: start serving the queues (event-loop thread; the
    /// transport then calls `queue_notified` for every queue once). On error the
    /// transport sets DEVICE_NEEDS_RESET and will never call `queue_notified`.
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError>;

    /// The driver wrote 0 to Status (or the VMM resets the device; event-loop
    /// thread, before any later activation): drop the queues,
    /// guest memory and interrupt from `activate`, forget negotiated features. The
    /// device must be able to `activate` again afterwards. Backend fds registered
    /// with the [`FdRegistrar`] may stay registered (e.g. vsock listeners).
    fn reset(&mut self);

    /// The guest notified queue `queue_index` (its eventfd was drained already).
    /// Only called while activated. Pop chains, serve them, `add_used`, and raise
    /// the interrupt once per batch. Do at most a bounded amount of work and return
    /// [`Served::More`] if chains are left.
    fn queue_notified(&mut self, queue_index: usize) -> Served;

    /// The VM has stopped for good and its event loop is gone (called on the
    /// thread that stops the VM, never on a filtered one): close backend
    /// connections so their peers see the end at once. Default: nothing to close.
    fn stop_backend(&mut self) {}

    /// Called once, on the event-loop thread, when the loop that serves this device
    /// starts. Keep the registrar to watch backend fds. Default: nothing to watch.
    fn attach_event_loop(&mut self, registrar: FdRegistrar) {
        let _ = registrar;
    }

    /// A backend fd registered through the [`FdRegistrar`] is ready; `events` are
    /// epoll bits ([`EPOLLIN`], [`EPOLLOUT`], [`EPOLLHUP`]…). May be called before
    /// activation or after reset: check your own state.
    fn fd_ready(&mut self, fd: RawFd, events: u32) {
        let _ = (fd, events);
    }

    /// The device's own state for a snapshot (see the module note for the thread).
    /// Refuse with [`DeviceStateError::NotQuiescent`] while holding work the state
    /// cannot carry. Default: no snapshot support.
    fn save_state(&self) -> Result<DeviceKindState, DeviceStateError> {
        Err(DeviceStateError::Unsupported(self.device_type()))
    }

    /// The queues handed over by `activate`, with the device's ring positions, in
    /// queue order; empty unless activated.
    fn active_queues(&self) -> Vec<virtio_queue::QueueState> {
        Vec::new()
    }

    /// Whether `state` was taken of a device like this one (kind, disk size…).
    /// Changes nothing; [`VirtioDevice::restore_state`] may only fail where this does.
    fn check_state(&self, state: &DeviceKindState) -> Result<(), DeviceStateError> {
        let _ = state;
        Err(DeviceStateError::Unsupported(self.device_type()))
    }

    /// Becomes the snapshotted device: everything `reset` does (backend
    /// connections of the current guest are closed), then `state`, and with
    /// `active` the queues and interrupt as after `activate`, but serving nothing
    /// yet: the transport then signals every ready queue, so the event loop does
    /// the device work.
    fn restore_state(
        &mut self,
        state: &DeviceKindState,
        active: Option<ActivateContext>,
    ) -> Result<(), DeviceStateError> {
        let _ = (state, active);
        Err(DeviceStateError::Unsupported(self.device_type()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_sets_status_signals_and_acks() {
        let irq = Interrupt::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
        let clone = irq.clone();
        clone.signal_used_queue().unwrap();
        assert_eq!(irq.status(), VIRTIO_MMIO_INT_VRING);
        irq.signal_config_change().unwrap();
        assert_eq!(irq.status(), VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
        assert_eq!(irq.eventfd().read().unwrap(), 2);
        irq.ack(VIRTIO_MMIO_INT_VRING);
        assert_eq!(irq.status(), VIRTIO_MMIO_INT_CONFIG);
        irq.clear();
        assert_eq!(irq.status(), 0);
    }

    #[test]
    fn epoll_data_round_trips() {
        let d = encode(TAG_DEVICE_FD, 0x12_3456, 0xdead_beef);
        assert_eq!(decode(d), (TAG_DEVICE_FD, 0x12_3456, 0xdead_beef));
    }
}
