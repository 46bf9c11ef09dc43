//! The virtio-mmio transport (virtio 1.x §4.2.2, "modern", Version 2).
//!
//! Owns the register file of one device window: feature negotiation, queue setup,
//! the status state machine and interrupt status. The guest is never trusted: bad
//! sizes, addresses, selectors, widths and out-of-order status writes are ignored or
//! put the device in DEVICE_NEEDS_RESET; nothing panics.
//!
//! Register accesses run on vCPU threads, whose seccomp filter allows no device
//! I/O (a vsock activation or reset talks to host sockets). So a Status write only
//! *records* what the device must do (a reset, an activation with the queue states
//! captured at DRIVER_OK) and writes the transport's control eventfd; the device
//! event loop then calls [`MmioTransport::apply_pending`] on its own thread, as
//! Firecracker's activate eventfd does. Pending work is a fixed-size record, not a
//! queue: a reset cancels an activation recorded before it, so any burst of guest
//! writes collapses to "reset, then maybe activate", applied in that order.
//!
//! Queue notifications go through one `EventFd` per queue. The VMM registers each as
//! a KVM ioeventfd at `base + NOTIFY_REG_OFFSET` with datamatch = queue index, so a
//! notify normally never reaches this code; if it does (no ioeventfd), the write is
//! forwarded to the same eventfd, and the event-loop path is identical either way.

use std::fmt::Write as _;

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::device::{ActivateContext, Interrupt, Served, VirtioDevice, VIRTIO_F_VERSION_1};
use crate::devices::bus::BusDevice;

/// "virt" in little endian.
pub const MMIO_MAGIC_VALUE: u32 = 0x7472_6976;
/// The modern virtio-mmio layout.
pub const MMIO_VERSION: u32 = 2;
/// Our vendor id ("KVMS").
pub const VENDOR_ID: u32 = 0x534d_564b;
/// Offset of the QueueNotify register: register ioeventfds here.
pub const NOTIFY_REG_OFFSET: u64 = 0x50;
/// Offset where device-specific config space starts.
pub const CONFIG_SPACE_OFFSET: u64 = 0x100;

/// Device status bits (virtio 1.x §2.1), from virtio-bindings.
pub mod status {
    use virtio_bindings::virtio_config as c;
    /// Guest found the device.
    pub const ACKNOWLEDGE: u32 = c::VIRTIO_CONFIG_S_ACKNOWLEDGE;
    /// Guest knows how to drive it.
    pub const DRIVER: u32 = c::VIRTIO_CONFIG_S_DRIVER;
    /// Driver is set up and ready.
    pub const DRIVER_OK: u32 = c::VIRTIO_CONFIG_S_DRIVER_OK;
    /// Feature negotiation done.
    pub const FEATURES_OK: u32 = c::VIRTIO_CONFIG_S_FEATURES_OK;
    /// Device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u32 = c::VIRTIO_CONFIG_S_NEEDS_RESET;
    /// Guest gave up on the device.
    pub const FAILED: u32 = c::VIRTIO_CONFIG_S_FAILED;
}

mod reg {
    pub const MAGIC: u64 = 0x00;
    pub const VERSION: u64 = 0x04;
    pub const DEVICE_ID: u64 = 0x08;
    pub const VENDOR_ID: u64 = 0x0c;
    pub const DEVICE_FEATURES: u64 = 0x10;
    pub const DEVICE_FEATURES_SEL: u64 = 0x14;
    pub const DRIVER_FEATURES: u64 = 0x20;
    pub const DRIVER_FEATURES_SEL: u64 = 0x24;
    pub const QUEUE_SEL: u64 = 0x30;
    pub const QUEUE_NUM_MAX: u64 = 0x34;
    pub const QUEUE_NUM: u64 = 0x38;
    pub const QUEUE_READY: u64 = 0x44;
    pub const QUEUE_NOTIFY: u64 = 0x50;
    pub const INTERRUPT_STATUS: u64 = 0x60;
    pub const INTERRUPT_ACK: u64 = 0x64;
    pub const STATUS: u64 = 0x70;
    pub const QUEUE_DESC_LOW: u64 = 0x80;
    pub const QUEUE_DESC_HIGH: u64 = 0x84;
    pub const QUEUE_DRIVER_LOW: u64 = 0x90;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x94;
    pub const QUEUE_DEVICE_LOW: u64 = 0xa0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0xa4;
    pub const SHM_LEN_LOW: u64 = 0xb0;
    pub const SHM_LEN_HIGH: u64 = 0xb4;
    pub const CONFIG_GENERATION: u64 = 0xfc;
}

/// Errors building a transport.
#[derive(Debug, thiserror::Error)]
pub enum MmioError {
    /// The device declared a queue max size virtio-queue rejects.
    #[error(
        "device queue {index} has invalid max size {size} (must be a power of two, 1..=32768)"
    )]
    InvalidQueueMaxSize {
        /// Queue index.
        index: usize,
        /// Declared max size.
        size: u16,
    },
    /// The device declared no queues.
    #[error("device type {0} declares no queues")]
    NoQueues(u32),
    /// Creating a queue or control eventfd failed.
    #[error("cannot create a transport eventfd: {0}")]
    EventFd(#[source] std::io::Error),
}

/// What the device event loop still has to do for a Status write (see the module
/// note). At most one reset and one activation, applied in that order.
#[derive(Default)]
struct Pending {
    reset: bool,
    /// Accepted features and the queue states captured at DRIVER_OK.
    activate: Option<(u64, Vec<virtio_queue::QueueState>)>,
}

/// One virtio-mmio device window. Put it on the MMIO bus at its base with length
/// `layout::MMIO_SIZE`, and give it to the device event loop.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap<()>,
    interrupt: Interrupt,
    queues: Vec<Queue>,
    queue_evts: Vec<EventFd>,
    /// Written when `pending` gained work for the event loop.
    ctl_evt: EventFd,
    pending: Pending,
    /// Features the driver accepted at FEATURES_OK (given to the device on activation).
    accepted_features: u64,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    activated: bool,
}

fn make_queues(device: &dyn VirtioDevice) -> Result<Vec<Queue>, MmioError> {
    device
        .queue_max_sizes()
        .iter()
        .enumerate()
        .map(|(index, &size)| {
            Queue::new(size).map_err(|_| MmioError::InvalidQueueMaxSize { index, size })
        })
        .collect()
}

impl MmioTransport {
    /// Wraps `device`. `irq_evt` is the eventfd the VMM registers as the irqfd of the
    /// device's GSI. Creates one non-blocking eventfd per queue.
    pub fn new(
        mem: GuestMemoryMmap<()>,
        device: Box<dyn VirtioDevice>,
        irq_evt: EventFd,
    ) -> Result<Self, MmioError> {
        let queues = make_queues(device.as_ref())?;
        if queues.is_empty() {
            return Err(MmioError::NoQueues(device.device_type()));
        }
        let queue_evts = (0..queues.len())
            .map(|_| EventFd::new(EFD_NONBLOCK).map_err(MmioError::EventFd))
            .collect::<Result<Vec<_>, _>>()?;
        let ctl_evt = EventFd::new(EFD_NONBLOCK).map_err(MmioError::EventFd)?;
        Ok(Self {
            device,
            mem,
            interrupt: Interrupt::new(irq_evt),
            queues,
            queue_evts,
            ctl_evt,
            pending: Pending::default(),
            accepted_features: 0,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            activated: false,
        })
    }

    /// One eventfd per queue, in queue order. Register `queue_evts()[i]` as a KVM
    /// ioeventfd at `base + NOTIFY_REG_OFFSET`, 4 bytes, datamatch `i as u32`.
    pub fn queue_evts(&self) -> &[EventFd] {
        &self.queue_evts
    }

    /// Written whenever a Status write left work for the event loop: watch it and
    /// call [`MmioTransport::apply_pending`] (after draining it) when it fires.
    pub fn ctl_evt(&self) -> &EventFd {
        &self.ctl_evt
    }

    /// Whether a reset or activation waits for [`MmioTransport::apply_pending`].
    pub fn has_pending(&self) -> bool {
        self.pending.reset || self.pending.activate.is_some()
    }

    /// The interrupt handle (its eventfd is the irqfd given at construction).
    pub fn interrupt(&self) -> &Interrupt {
        &self.interrupt
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        if self.interrupt.needs_reset() {
            self.status | status::DEVICE_NEEDS_RESET
        } else {
            self.status
        }
    }

    /// Whether the device is live: the event loop applied the activation recorded at
    /// DRIVER_OK, and the device has not since asked for a reset (a device in
    /// DEVICE_NEEDS_RESET is served no more).
    pub fn is_activated(&self) -> bool {
        self.activated && !self.interrupt.needs_reset()
    }

    /// The wrapped device.
    pub fn device(&self) -> &dyn VirtioDevice {
        self.device.as_ref()
    }

    /// The wrapped device, mutably.
    pub fn device_mut(&mut self) -> &mut dyn VirtioDevice {
        self.device.as_mut()
    }

    /// The event loop drained queue `index`'s eventfd: let the device serve it.
    /// Applies pending Status work first, so the device never serves a queue the
    /// driver has reset. Ignored before activation, after a failure, or for an
    /// unknown index. A device that stopped at its work budget gets its queue
    /// eventfd written again, so the loop comes back after serving the others.
    pub fn queue_event(&mut self, index: usize) -> Served {
        self.apply_pending();
        if self.is_activated() && index < self.queues.len() {
            return self.serve(index);
        }
        Served::Done
    }

    fn serve(&mut self, index: usize) -> Served {
        let served = self.device.queue_notified(index);
        if served == Served::More {
            if let Some(evt) = self.queue_evts.get(index) {
                // A full counter still wakes the loop.
                let _ = evt.write(1);
            }
        }
        served
    }

    /// A backend fd the device registered is ready (event-loop thread). Pending
    /// Status work is applied first.
    pub fn fd_event(&mut self, fd: std::os::fd::RawFd, events: u32) {
        self.apply_pending();
        self.device.fd_ready(fd, events);
    }

    /// Does what Status writes recorded, on the calling (event-loop) thread: the
    /// device's `reset`, then its `ack_features` + `activate`, then serves every
    /// queue once (notifications that arrived before the activation was applied
    /// were dropped). A failed activation shows as DEVICE_NEEDS_RESET from here on.
    pub fn apply_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        if pending.reset {
            self.device.reset();
        }
        let Some((features, states)) = pending.activate else {
            return;
        };
        // Queue is not Clone; its state round-trips (it was set through the same
        // checked setters, so this cannot fail, but fail safe if it does).
        let queues: Result<Vec<Queue>, _> = states.into_iter().map(Queue::try_from).collect();
        let Ok(queues) = queues else {
            self.needs_reset();
            return;
        };
        self.device.ack_features(features);
        let ctx = ActivateContext {
            mem: self.mem.clone(),
            queues,
            interrupt: self.interrupt.clone(),
        };
        match self.device.activate(ctx) {
            Ok(()) => {
                self.activated = true;
                for i in 0..self.queues.len() {
                    if self.is_activated() {
                        self.serve(i);
                    }
                }
            }
            Err(_) => self.needs_reset(),
        }
    }

    fn signal_loop(&self) {
        // A full counter still wakes the loop: nothing is lost.
        let _ = self.ctl_evt.write(1);
    }

    /// Back to the power-on state (what a guest write of 0 to Status does). Safe on
    /// a vCPU thread: the device's own `reset` runs later, in [`Self::apply_pending`].
    pub fn reset(&mut self) {
        self.pending.activate = None;
        self.pending.reset = true;
        for q in &mut self.queues {
            // Same max size as at construction, which was valid then.
            if let Ok(fresh) = Queue::new(q.max_size()) {
                *q = fresh;
            }
        }
        self.queue_sel = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.accepted_features = 0;
        self.status = 0;
        self.activated = false;
        self.interrupt.clear();
        self.signal_loop();
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn has_status(&self, set: u32, clear: u32) -> bool {
        self.status & set == set && self.status & clear == 0
    }

    /// Queue registers may change only between FEATURES_OK and DRIVER_OK.
    fn queue_config_allowed(&self) -> bool {
        self.has_status(
            status::FEATURES_OK,
            status::DRIVER_OK | status::FAILED | status::DEVICE_NEEDS_RESET,
        )
    }

    fn update_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        if self.queue_config_allowed() {
            if let Some(q) = self.selected_queue() {
                f(q);
            }
        }
    }

    fn needs_reset(&mut self) {
        self.status |= status::DEVICE_NEEDS_RESET;
        if self.status & status::DRIVER_OK != 0 {
            // Spec §2.1.2: tell an active driver through a config-change interrupt.
            let _ = self.interrupt.signal_config_change();
        }
    }

    fn set_status(&mut self, v: u32) {
        use status::*;
        if v == 0 {
            self.reset();
            return;
        }
        if v & FAILED != 0 {
            self.status |= FAILED;
            return;
        }
        let old = self.status;
        match (old, v) {
            (0, ACKNOWLEDGE) => self.status = v,
            (ACKNOWLEDGE, x) if x == ACKNOWLEDGE | DRIVER => self.status = v,
            (x, y) if x == ACKNOWLEDGE | DRIVER && y == x | FEATURES_OK => {
                let accepted = self.driver_features & self.device.avail_features();
                if accepted & VIRTIO_F_VERSION_1 != 0 {
                    // Handed to the device with the activation (event-loop thread).
                    self.accepted_features = accepted;
                    self.status = v;
                }
                // Otherwise FEATURES_OK stays clear: the driver reads it back and gives up.
            }
            (x, y) if x == ACKNOWLEDGE | DRIVER | FEATURES_OK && y == x | DRIVER_OK => {
                self.status = v;
                self.activate();
            }
            _ => {} // Out-of-order or bit-clearing writes are ignored.
        }
    }

    /// DRIVER_OK: check the queues here (pure memory-map checks), record the
    /// activation for the event loop.
    fn activate(&mut self) {
        let all_valid = self.queues.iter().all(|q| q.is_valid(&self.mem));
        if !all_valid {
            self.needs_reset();
            return;
        }
        let states = self.queues.iter().map(|q| q.state()).collect();
        self.pending.activate = Some((self.accepted_features, states));
        self.signal_loop();
    }

    fn read_reg(&mut self, offset: u64) -> u32 {
        match offset {
            reg::MAGIC => MMIO_MAGIC_VALUE,
            reg::VERSION => MMIO_VERSION,
            reg::DEVICE_ID => self.device.device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => {
                let f = self.device.avail_features();
                match self.device_features_sel {
                    0 => f as u32,
                    1 => (f >> 32) as u32,
                    _ => 0,
                }
            }
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status(),
            // No shared-memory regions: length all ones means "absent".
            reg::SHM_LEN_LOW | reg::SHM_LEN_HIGH => u32::MAX,
            reg::CONFIG_GENERATION => 0,
            _ => 0,
        }
    }

    fn write_reg(&mut self, offset: u64, v: u32) {
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = v,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            // Only between DRIVER and FEATURES_OK.
            reg::DRIVER_FEATURES
                if self.has_status(status::DRIVER, status::FEATURES_OK | status::FAILED) =>
            {
                match self.driver_features_sel {
                    0 => {
                        self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_sel = v,
            reg::QUEUE_NUM => self.update_queue(|q| {
                if let Ok(size) = u16::try_from(v) {
                    // virtio-queue rejects 0, > max and non powers of two.
                    let _ = q.try_set_size(size);
                }
            }),
            reg::QUEUE_READY => self.update_queue(|q| q.set_ready(v == 1)),
            reg::QUEUE_DESC_LOW => self.update_queue(|q| q.set_desc_table_address(Some(v), None)),
            reg::QUEUE_DESC_HIGH => self.update_queue(|q| q.set_desc_table_address(None, Some(v))),
            reg::QUEUE_DRIVER_LOW => self.update_queue(|q| q.set_avail_ring_address(Some(v), None)),
            reg::QUEUE_DRIVER_HIGH => {
                self.update_queue(|q| q.set_avail_ring_address(None, Some(v)))
            }
            reg::QUEUE_DEVICE_LOW => self.update_queue(|q| q.set_used_ring_address(Some(v), None)),
            reg::QUEUE_DEVICE_HIGH => self.update_queue(|q| q.set_used_ring_address(None, Some(v))),
            // Before DRIVER_OK a notification means nothing: drop it. Between
            // DRIVER_OK and the loop applying the activation it is kept (and the
            // activation serves every queue anyway).
            reg::QUEUE_NOTIFY if self.status & status::DRIVER_OK != 0 => {
                if let Some(evt) = self.queue_evts.get(v as usize) {
                    // A full eventfd counter already wakes the loop; nothing is lost.
                    let _ = evt.write(1);
                }
            }
            reg::INTERRUPT_ACK => self.interrupt.ack(v),
            reg::STATUS => self.set_status(v),
            _ => {} // Read-only or unknown registers.
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= CONFIG_SPACE_OFFSET {
            self.device.read_config(offset - CONFIG_SPACE_OFFSET, data);
        } else if data.len() == 4 && offset & 3 == 0 {
            data.copy_from_slice(&self.read_reg(offset).to_le_bytes());
        }
        // Registers are 32-bit only: other widths read as zero.
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_SPACE_OFFSET {
            self.device.write_config(offset - CONFIG_SPACE_OFFSET, data);
        } else if let (Ok(bytes), 0) = (<[u8; 4]>::try_from(data), offset & 3) {
            self.write_reg(offset, u32::from_le_bytes(bytes));
        }
    }
}

/// The Linux command-line fragment announcing one virtio-mmio device, e.g.
/// `virtio_mmio.device=4K@0xd0000000:5` (needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES).
pub fn linux_cmdline_fragment(mmio_base: u64, size: u64, irq: u32) -> String {
    let mut s = String::from("virtio_mmio.device=");
    // Writing to a String cannot fail.
    let _ = if size != 0 && size & ((1 << 20) - 1) == 0 {
        write!(s, "{}M", size >> 20)
    } else if size != 0 && size & 1023 == 0 {
        write!(s, "{}K", size >> 10)
    } else {
        write!(s, "{size}")
    };
    let _ = write!(s, "@{mmio_base:#x}:{irq}");
    s
}

#[cfg(test)]
#[path = "mmio_tests.rs"]
mod tests;

#[path = "mmio_state.rs"]
mod state;
