//! What a VM snapshot keeps of one virtio device: the transport's registers and
//! queue positions ([`TransportState`], owned by mmio_state.rs) plus the device
//! model's own state (`BlockState` in block/device.rs, `VsockState` in
//! vsock/device.rs). Plain data with a layout version each, so the Sandbox layer
//! can write it into snapshot files; capturing and applying live with the
//! component that owns the fields.
//!
//! A device is only captured when it is quiescent: nothing half done that the
//! snapshot could not carry (a Status write the event loop has not applied, a
//! partly served blk request, a live vsock stream, packets queued for the guest).
//! Refusing is cheaper and more honest than losing such work silently.

use serde::{Deserialize, Serialize};

use super::block::device::BlockState;
use super::vsock::device::VsockState;

/// Layout version of [`TransportState`].
pub const TRANSPORT_STATE_VERSION: u32 = 1;

/// One virtqueue as the snapshot saw it: the driver's setup plus where the device
/// had got to in the rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSnapshot {
    /// Largest size the device offers.
    pub max_size: u16,
    /// Size the driver chose.
    pub size: u16,
    /// QueueReady.
    pub ready: bool,
    /// Descriptor table address.
    pub desc_table: u64,
    /// Available ring address.
    pub avail_ring: u64,
    /// Used ring address.
    pub used_ring: u64,
    /// Next available-ring entry the device will take.
    pub next_avail: u16,
    /// Next used-ring entry the device will fill.
    pub next_used: u16,
    /// VIRTIO_F_RING_EVENT_IDX in use (no device offers it today).
    pub event_idx: bool,
}

impl From<virtio_queue::QueueState> for QueueSnapshot {
    fn from(q: virtio_queue::QueueState) -> Self {
        QueueSnapshot {
            max_size: q.max_size,
            size: q.size,
            ready: q.ready,
            desc_table: q.desc_table,
            avail_ring: q.avail_ring,
            used_ring: q.used_ring,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx: q.event_idx_enabled,
        }
    }
}

impl From<QueueSnapshot> for virtio_queue::QueueState {
    fn from(q: QueueSnapshot) -> Self {
        virtio_queue::QueueState {
            max_size: q.max_size,
            next_avail: q.next_avail,
            next_used: q.next_used,
            event_idx_enabled: q.event_idx,
            size: q.size,
            ready: q.ready,
            desc_table: q.desc_table,
            avail_ring: q.avail_ring,
            used_ring: q.used_ring,
        }
    }
}

/// The virtio-mmio register file of one device window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportState {
    /// [`TRANSPORT_STATE_VERSION`] when taken.
    pub version: u32,
    /// Device type id behind the window (2 = blk, 19 = vsock).
    pub device_type: u32,
    /// Status register (without the DEVICE_NEEDS_RESET bit, see `needs_reset`).
    pub status: u32,
    /// DeviceFeaturesSel.
    pub device_features_sel: u32,
    /// DriverFeaturesSel.
    pub driver_features_sel: u32,
    /// What the driver wrote to DriverFeatures.
    pub driver_features: u64,
    /// Features accepted at FEATURES_OK (handed to the device on activation).
    pub accepted_features: u64,
    /// QueueSel.
    pub queue_sel: u32,
    /// The device was activated (DRIVER_OK applied by the event loop).
    pub activated: bool,
    /// The device had asked for a reset (DEVICE_NEEDS_RESET).
    pub needs_reset: bool,
    /// InterruptStatus bits the driver had not acknowledged yet.
    pub interrupt_status: u32,
    /// ConfigGeneration (constant today: config space never changes).
    pub config_generation: u32,
    /// Every queue, by index; positions are the device's while activated.
    pub queues: Vec<QueueSnapshot>,
}

/// A device model's own state, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceKindState {
    /// virtio-blk.
    Block(BlockState),
    /// virtio-vsock.
    Vsock(VsockState),
}

impl DeviceKindState {
    /// The virtio device type id of this state.
    pub fn device_type(&self) -> u32 {
        match self {
            DeviceKindState::Block(_) => super::device::TYPE_BLOCK,
            DeviceKindState::Vsock(_) => super::device::TYPE_VSOCK,
        }
    }
}

/// One device of a VM snapshot: its transport and the device behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Registers and queues.
    pub transport: TransportState,
    /// The device model.
    pub device: DeviceKindState,
}

/// Why a device's state cannot be captured or applied.
#[derive(Debug, thiserror::Error)]
pub enum DeviceStateError {
    /// The device holds work a snapshot could not carry; try again once it is idle.
    #[error("device type {device_type} is not quiescent: {reason}")]
    NotQuiescent {
        /// The device's type id.
        device_type: u32,
        /// What is still going on.
        reason: String,
    },
    /// This device model cannot be snapshotted.
    #[error("device type {0} has no snapshot support")]
    Unsupported(u32),
    /// A state struct of another layout version.
    #[error("{what} state version {found}, this build reads {expected}")]
    Version {
        /// Which struct.
        what: &'static str,
        /// Version in the state.
        found: u32,
        /// Version this build writes.
        expected: u32,
    },
    /// The state belongs to another kind of device.
    #[error("the snapshot has a device of type {snapshot} here, this VM has type {device}")]
    DeviceType {
        /// Type in the snapshot.
        snapshot: u32,
        /// Type of this VM's device.
        device: u32,
    },
    /// The queues differ in number or maximum size.
    #[error("the snapshot's device has queue max sizes {snapshot:?}, this one {device:?}")]
    QueueLayout {
        /// Max sizes in the snapshot.
        snapshot: Vec<u16>,
        /// Max sizes of this device.
        device: Vec<u16>,
    },
    /// A saved queue cannot be set up again (bad size or address) or lies
    /// outside guest memory.
    #[error("queue {index} of the snapshot is invalid: {reason}")]
    InvalidQueue {
        /// Queue index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The disk is of another size than the one snapshotted.
    #[error("the snapshot's disk has {snapshot} sectors, this disk has {device}")]
    DiskSize {
        /// Sectors in the snapshot.
        snapshot: u64,
        /// Sectors of this disk.
        device: u64,
    },
    /// The disk was read-only in one and writable in the other.
    #[error("the snapshot's disk is {}, this disk is {}", ro(*snapshot), ro(*device))]
    DiskReadOnly {
        /// Read-only in the snapshot.
        snapshot: bool,
        /// Read-only here.
        device: bool,
    },
    /// The disk's GET_ID serial differs.
    #[error("the snapshot's disk id is {snapshot:?}, this disk's is {device:?}")]
    DiskId {
        /// Id in the snapshot.
        snapshot: String,
        /// Id of this disk.
        device: String,
    },
    /// A vsock CID that cannot be a guest's.
    #[error("the snapshot's vsock guest CID {0} is invalid")]
    InvalidCid(u64),
}

fn ro(read_only: bool) -> &'static str {
    if read_only {
        "read-only"
    } else {
        "writable"
    }
}
