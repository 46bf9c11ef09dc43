//! The virtio-vsock device model: features, config space (`guest_cid`), the three
//! queues, and the glue between them and the [`Muxer`].
//!
//! Queue 0 (rx) holds guest buffers we fill with packets for the guest; queue 1
//! (tx) holds the guest's packets; queue 2 (event) is only for transport reset
//! events, which we never send, so its buffers are simply kept. Every batch of used
//! buffers raises the interrupt once. Host sockets are watched through the event
//! loop's [`FdRegistrar`]; their readiness arrives in `fd_ready`, which also runs
//! before activation (hosts may connect early: their REQUEST waits in the muxer
//! until the guest posts rx buffers).
//!
//! Chains are read and written through virtio-queue's `Reader`/`Writer`, built
//! (walked and checked) once per chain; an rx buffer is checked before a packet is
//! taken from the muxer, so a bad buffer costs no stream data. If writing a taken
//! packet fails anyway, its connection is reset: the guest never sees a stream
//! with a hole in it, and credit stays exact. A tx chain whose payload lies outside
//! guest memory resets the stream its header names, for the same reason. Chains
//! using INDIRECT descriptors (not offered) are given back unread.

use std::os::fd::RawFd;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use virtio_queue::{Queue, QueueOwnedT, QueueState, QueueT, Reader, Writer};
use vm_memory::GuestMemoryMmap;

use super::muxer::{Muxer, MuxerError};
use super::packet::{self, HDR_SIZE, MAX_PKT_DATA};
use super::DEFAULT_GUEST_CID;
use crate::devices::virtio::chain::uses_indirect;
use crate::devices::virtio::device::{
    ActivateContext, ActivateError, FdRegistrar, Interrupt, Served, VirtioDevice, TYPE_VSOCK,
    VIRTIO_F_VERSION_1,
};
use crate::devices::virtio::state::{DeviceKindState, DeviceStateError};

/// Layout version of [`VsockState`].
pub const VSOCK_STATE_VERSION: u32 = 1;

/// What a snapshot keeps of the vsock device. Connections are not part of it: a
/// snapshot is only taken with none open, and restoring drops the current ones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VsockState {
    /// [`VSOCK_STATE_VERSION`] when taken.
    pub version: u32,
    /// The CID the guest read from config space. A restored device takes it (the
    /// guest knows no other); each VM's vsock is its own Unix socket, so two VMs
    /// with one CID do not collide.
    pub guest_cid: u64,
    /// Features the driver accepted.
    pub acked_features: u64,
}

/// Queue sizes: rx, tx, event.
const QUEUE_SIZES: [u16; 3] = [256, 256, 256];
const RXQ: usize = 0;
const TXQ: usize = 1;
const EVQ: usize = 2;

/// How to build a [`Vsock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsockConfig {
    /// The guest's context id (≥ 3).
    pub guest_cid: u64,
    /// Where the host listener lives; guest-initiated connections to port P go to
    /// `<uds_path>_P`.
    pub uds_path: PathBuf,
}

impl VsockConfig {
    /// A config with the default guest CID (3).
    pub fn new(uds_path: impl Into<PathBuf>) -> Self {
        VsockConfig {
            guest_cid: DEFAULT_GUEST_CID,
            uds_path: uds_path.into(),
        }
    }

    /// The same config with another guest CID.
    pub fn with_cid(mut self, guest_cid: u64) -> Self {
        self.guest_cid = guest_cid;
        self
    }
}

/// Errors building the device.
#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    /// CIDs 0-2 are reserved (hypervisor, local, host); above u32 is not addressable.
    #[error("invalid guest CID {0}: must be between 3 and 2^32 - 2")]
    InvalidCid(u64),
    /// The backend could not be set up (socket path exists, directory missing…).
    #[error(transparent)]
    Backend(#[from] MuxerError),
}

struct Active {
    mem: GuestMemoryMmap<()>,
    queues: Vec<Queue>,
    interrupt: Interrupt,
}

/// The virtio-vsock device.
pub struct Vsock {
    guest_cid: u64,
    acked_features: u64,
    muxer: Muxer,
    active: Option<Active>,
}

impl Vsock {
    /// Validates the config and binds the host listener at `cfg.uds_path`.
    pub fn new(cfg: VsockConfig) -> Result<Vsock, VsockError> {
        if !Self::valid_cid(cfg.guest_cid) {
            return Err(VsockError::InvalidCid(cfg.guest_cid));
        }
        let muxer = Muxer::new(cfg.guest_cid, &cfg.uds_path)?;
        Ok(Vsock {
            guest_cid: cfg.guest_cid,
            acked_features: 0,
            muxer,
            active: None,
        })
    }

    /// The guest's context id.
    pub fn guest_cid(&self) -> u64 {
        self.guest_cid
    }

    /// The backend (for tests and diagnostics).
    pub fn muxer(&self) -> &Muxer {
        &self.muxer
    }

    fn valid_cid(cid: u64) -> bool {
        (3..u64::from(u32::MAX)).contains(&cid)
    }

    /// Serves the tx queue: every guest packet goes to the muxer.
    fn process_tx(&mut self) -> bool {
        let Some(a) = self.active.as_mut() else {
            return false;
        };
        let mut used = false;
        while !self.muxer.tx_blocked() {
            let Some(chain) = a.queues[TXQ].pop_descriptor_chain(&a.mem) else {
                break;
            };
            let head = chain.head_index();
            if !uses_indirect(&a.mem, &a.queues[TXQ], head) {
                match Reader::new(&a.mem, chain.clone()) {
                    Ok(mut reader) => match packet::read_tx(&mut reader) {
                        Ok(pkt) => self.muxer.send_pkt(&pkt),
                        Err(e) => {
                            if let Some(h) = e.header() {
                                self.muxer.reject(h);
                            }
                        }
                    },
                    // Some buffer lies outside guest memory. If the header is still
                    // readable, the stream it names lost this packet: reset it.
                    Err(_) => {
                        if let Some(h) = packet::header_of_broken_tx(&a.mem, chain.readable()) {
                            self.muxer.reject(&h);
                        }
                    }
                }
            }
            // A used-ring write can only fail if the guest broke its own ring.
            let _ = a.queues[TXQ].add_used(&a.mem, head, 0);
            used = true;
        }
        used
    }

    /// Fills rx buffers with whatever the muxer has for the guest.
    fn process_rx(&mut self) -> bool {
        let Some(a) = self.active.as_mut() else {
            return false;
        };
        let mut used = false;
        while self.muxer.has_pending_rx() {
            let Some(chain) = a.queues[RXQ].pop_descriptor_chain(&a.mem) else {
                break;
            };
            let head = chain.head_index();
            let writer = if uses_indirect(&a.mem, &a.queues[RXQ], head) {
                None
            } else {
                Writer::new(&a.mem, chain).ok()
            };
            let mut writer = match writer {
                Some(w) if w.available_bytes() >= HDR_SIZE => w,
                _ => {
                    // Unusable buffer: give it back empty rather than stall on it.
                    let _ = a.queues[RXQ].add_used(&a.mem, head, 0);
                    used = true;
                    continue;
                }
            };
            let max_data = (writer.available_bytes() - HDR_SIZE).min(MAX_PKT_DATA as usize);
            match self.muxer.recv_pkt(max_data) {
                Some(pkt) => {
                    let len = match packet::write_rx_to(&mut writer, &pkt) {
                        Ok(n) => n,
                        Err(_) => {
                            // Taken from the stream but not delivered: end the stream.
                            self.muxer.rx_failed(&pkt.hdr);
                            0
                        }
                    };
                    let _ = a.queues[RXQ].add_used(&a.mem, head, len);
                    used = true;
                }
                None => {
                    // Nothing after all: leave the buffer for next time.
                    a.queues[RXQ].go_to_previous_position();
                    break;
                }
            }
        }
        used
    }

    /// Moves packets both ways until neither side can make progress, then raises
    /// the interrupt once if any buffer was used.
    fn run(&mut self) {
        let mut used = false;
        loop {
            let rx = self.process_rx();
            let tx = self.process_tx();
            used |= rx || tx;
            if !tx {
                break;
            }
        }
        if used {
            if let Some(a) = &self.active {
                // Only fails if the irq eventfd is broken; nothing useful to do then.
                let _ = a.interrupt.signal_used_queue();
            }
        }
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        TYPE_VSOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn avail_features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    fn ack_features(&mut self, features: u64) {
        self.acked_features = features & self.avail_features();
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let cfg = self.guest_cid.to_le_bytes();
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        for (i, b) in data.iter_mut().enumerate() {
            if let Some(v) = start.checked_add(i).and_then(|o| cfg.get(o)) {
                *b = *v;
            }
        }
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // guest_cid is read-only.
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        if ctx.queues.len() != QUEUE_SIZES.len() {
            return Err(ActivateError::QueueCount {
                expected: QUEUE_SIZES.len(),
                got: ctx.queues.len(),
            });
        }
        if self.acked_features & VIRTIO_F_VERSION_1 == 0 {
            return Err(ActivateError::MissingFeature(32));
        }
        self.active = Some(Active {
            mem: ctx.mem,
            queues: ctx.queues,
            interrupt: ctx.interrupt,
        });
        // Hosts may have connected before the guest was ready.
        self.run();
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.acked_features = 0;
        self.muxer.reset();
    }

    fn queue_notified(&mut self, queue_index: usize) -> Served {
        match queue_index {
            RXQ | TXQ => self.run(),
            // Event-queue buffers are kept for transport events we never send.
            EVQ => {}
            _ => {}
        }
        Served::Done
    }

    fn stop_backend(&mut self) {
        self.active = None;
        self.muxer.shutdown();
    }

    fn attach_event_loop(&mut self, registrar: FdRegistrar) {
        self.muxer.attach(registrar);
    }

    fn fd_ready(&mut self, fd: RawFd, events: u32) {
        self.muxer.process_fd(fd, events);
        self.run();
    }

    fn save_state(&self) -> Result<DeviceKindState, DeviceStateError> {
        let not_quiescent = |reason: String| DeviceStateError::NotQuiescent {
            device_type: TYPE_VSOCK,
            reason,
        };
        let live = self.muxer.connection_count();
        if live > 0 {
            return Err(not_quiescent(format!(
                "{live} vsock connection(s) are open"
            )));
        }
        let queued = self.muxer.pending_rx_count();
        if queued > 0 {
            return Err(not_quiescent(format!(
                "{queued} packet(s) wait to be delivered to the guest"
            )));
        }
        Ok(DeviceKindState::Vsock(VsockState {
            version: VSOCK_STATE_VERSION,
            guest_cid: self.guest_cid,
            acked_features: self.acked_features,
        }))
    }

    fn active_queues(&self) -> Vec<QueueState> {
        self.active
            .as_ref()
            .map_or_else(Vec::new, |a| a.queues.iter().map(|q| q.state()).collect())
    }

    fn check_state(&self, state: &DeviceKindState) -> Result<(), DeviceStateError> {
        let DeviceKindState::Vsock(s) = state else {
            return Err(DeviceStateError::DeviceType {
                snapshot: state.device_type(),
                device: TYPE_VSOCK,
            });
        };
        if s.version != VSOCK_STATE_VERSION {
            return Err(DeviceStateError::Version {
                what: "vsock",
                found: s.version,
                expected: VSOCK_STATE_VERSION,
            });
        }
        if !Self::valid_cid(s.guest_cid) {
            return Err(DeviceStateError::InvalidCid(s.guest_cid));
        }
        Ok(())
    }

    fn restore_state(
        &mut self,
        state: &DeviceKindState,
        active: Option<ActivateContext>,
    ) -> Result<(), DeviceStateError> {
        self.check_state(state)?;
        let DeviceKindState::Vsock(s) = state else {
            return Ok(()); // check_state refused every other kind
        };
        self.active = None;
        self.muxer.restore(s.guest_cid);
        self.guest_cid = s.guest_cid;
        self.acked_features = s.acked_features & self.avail_features();
        if let Some(ctx) = active {
            if ctx.queues.len() != QUEUE_SIZES.len() {
                return Err(DeviceStateError::QueueLayout {
                    snapshot: ctx.queues.iter().map(|q| q.max_size()).collect(),
                    device: QUEUE_SIZES.to_vec(),
                });
            }
            self.active = Some(Active {
                mem: ctx.mem,
                queues: ctx.queues,
                interrupt: ctx.interrupt,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
