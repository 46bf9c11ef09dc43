//! The virtio-mmio (version 2) transport, driver side: probe, status handshake,
//! feature negotiation, queue setup, notify and interrupt acknowledgement. Every
//! register access is volatile; each one is a VM exit, so drivers touch them only
//! when needed.

use core::fmt;
use core::ptr::{read_volatile, write_volatile};

use super::queue::Virtqueue;
use super::F_VERSION_1;

const MAGIC: u32 = 0x7472_6976; // "virt"
pub(crate) const REG_MAGIC: usize = 0x000;
pub(crate) const REG_VERSION: usize = 0x004;
pub(crate) const REG_DEVICE_ID: usize = 0x008;
pub(crate) const REG_DEVICE_FEATURES: usize = 0x010;
pub(crate) const REG_DEVICE_FEATURES_SEL: usize = 0x014;
pub(crate) const REG_DRIVER_FEATURES: usize = 0x020;
pub(crate) const REG_DRIVER_FEATURES_SEL: usize = 0x024;
pub(crate) const REG_QUEUE_SEL: usize = 0x030;
pub(crate) const REG_QUEUE_NUM_MAX: usize = 0x034;
pub(crate) const REG_QUEUE_NUM: usize = 0x038;
pub(crate) const REG_QUEUE_READY: usize = 0x044;
pub(crate) const REG_QUEUE_NOTIFY: usize = 0x050;
pub(crate) const REG_INTERRUPT_STATUS: usize = 0x060;
pub(crate) const REG_INTERRUPT_ACK: usize = 0x064;
pub(crate) const REG_STATUS: usize = 0x070;
pub(crate) const REG_QUEUE_DESC: usize = 0x080;
pub(crate) const REG_QUEUE_DRIVER: usize = 0x090;
pub(crate) const REG_QUEUE_DEVICE: usize = 0x0a0;
pub(crate) const REG_CONFIG: usize = 0x100;

/// Device status bits.
pub(crate) mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const FAILED: u32 = 128;
}

/// Why a device could not be brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioError {
    /// No virtio-mmio device at this address.
    BadMagic { base: u64, found: u32 },
    /// A legacy (version 1) or unknown transport.
    UnsupportedVersion { base: u64, found: u32 },
    /// The device is not the kind the boot info announced.
    WrongDevice {
        base: u64,
        expected: u32,
        found: u32,
    },
    /// The device does not offer VIRTIO_F_VERSION_1.
    NotModern { base: u64 },
    /// The device cleared FEATURES_OK after we wrote our features.
    FeaturesRejected { base: u64, features: u64 },
    /// The queue does not exist (QueueNumMax is 0) or is already live.
    QueueUnavailable { base: u64, index: u32 },
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadMagic { base, found } => {
                write!(f, "no virtio-mmio device at {base:#x} (magic {found:#x})")
            }
            Self::UnsupportedVersion { base, found } => {
                write!(
                    f,
                    "virtio-mmio device at {base:#x} has version {found}, need 2"
                )
            }
            Self::WrongDevice {
                base,
                expected,
                found,
            } => {
                write!(
                    f,
                    "virtio-mmio device at {base:#x} is type {found}, expected {expected}"
                )
            }
            Self::NotModern { base } => {
                write!(f, "virtio device at {base:#x} does not offer VERSION_1")
            }
            Self::FeaturesRejected { base, features } => {
                write!(
                    f,
                    "virtio device at {base:#x} rejected features {features:#x}"
                )
            }
            Self::QueueUnavailable { base, index } => {
                write!(f, "virtio device at {base:#x} has no usable queue {index}")
            }
        }
    }
}

/// One virtio-mmio register window.
pub struct MmioTransport {
    base: usize,
}

impl MmioTransport {
    /// Checks magic, version and device id at `base`, then resets the device.
    pub fn probe(base: u64, device_id: u32) -> Result<Self, MmioError> {
        let t = MmioTransport {
            base: base as usize,
        };
        let magic = t.read(REG_MAGIC);
        if magic != MAGIC {
            return Err(MmioError::BadMagic { base, found: magic });
        }
        let version = t.read(REG_VERSION);
        if version != 2 {
            return Err(MmioError::UnsupportedVersion {
                base,
                found: version,
            });
        }
        let id = t.read(REG_DEVICE_ID);
        if id != device_id {
            return Err(MmioError::WrongDevice {
                base,
                expected: device_id,
                found: id,
            });
        }
        t.write(REG_STATUS, 0);
        Ok(t)
    }

    fn read(&self, reg: usize) -> u32 {
        // SAFETY: `base` is a virtio-mmio window from the boot info, identity-mapped;
        // reg is one of the transport's 32-bit registers inside it.
        unsafe { read_volatile((self.base + reg) as *const u32) }
    }

    fn write(&self, reg: usize, val: u32) {
        // SAFETY: as for `read`.
        unsafe { write_volatile((self.base + reg) as *mut u32, val) }
    }

    /// ACKNOWLEDGE + DRIVER, then negotiates `VERSION_1 | (wanted & offered)` and
    /// checks FEATURES_OK. Returns the negotiated features.
    pub fn negotiate(&self, wanted: u64) -> Result<u64, MmioError> {
        self.write(REG_STATUS, status::ACKNOWLEDGE);
        self.write(REG_STATUS, status::ACKNOWLEDGE | status::DRIVER);
        self.write(REG_DEVICE_FEATURES_SEL, 0);
        let lo = u64::from(self.read(REG_DEVICE_FEATURES));
        self.write(REG_DEVICE_FEATURES_SEL, 1);
        let hi = u64::from(self.read(REG_DEVICE_FEATURES));
        let offered = lo | (hi << 32);
        if offered & F_VERSION_1 == 0 {
            self.fail();
            return Err(MmioError::NotModern {
                base: self.base as u64,
            });
        }
        let features = (wanted | F_VERSION_1) & offered;
        self.write(REG_DRIVER_FEATURES_SEL, 0);
        self.write(REG_DRIVER_FEATURES, features as u32);
        self.write(REG_DRIVER_FEATURES_SEL, 1);
        self.write(REG_DRIVER_FEATURES, (features >> 32) as u32);
        let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        self.write(REG_STATUS, s);
        if self.read(REG_STATUS) & status::FEATURES_OK == 0 {
            self.fail();
            return Err(MmioError::FeaturesRejected {
                base: self.base as u64,
                features,
            });
        }
        Ok(features)
    }

    fn fail(&self) {
        let s = self.read(REG_STATUS);
        self.write(REG_STATUS, s | status::FAILED);
    }

    /// Allocates queue `index` with up to `want` entries and hands it to the device.
    pub fn setup_queue(&self, index: u32, want: u16) -> Result<Virtqueue, MmioError> {
        self.write(REG_QUEUE_SEL, index);
        let max = self.read(REG_QUEUE_NUM_MAX);
        if max == 0 || self.read(REG_QUEUE_READY) != 0 {
            return Err(MmioError::QueueUnavailable {
                base: self.base as u64,
                index,
            });
        }
        // Power of two for a split queue, at most what the device allows.
        let mut size: u16 = if want.is_power_of_two() { want } else { 64 };
        while u32::from(size) > max && size > 1 {
            size /= 2;
        }
        let q = Virtqueue::new(size, index);
        self.write(REG_QUEUE_NUM, u32::from(size));
        let (desc, driver, device) = q.addresses();
        for (reg, addr) in [
            (REG_QUEUE_DESC, desc),
            (REG_QUEUE_DRIVER, driver),
            (REG_QUEUE_DEVICE, device),
        ] {
            self.write(reg, addr as u32);
            self.write(reg + 4, (addr >> 32) as u32);
        }
        self.write(REG_QUEUE_READY, 1);
        Ok(q)
    }

    /// Sets DRIVER_OK: the device is live.
    pub fn driver_ok(&self) {
        let s = self.read(REG_STATUS);
        self.write(REG_STATUS, s | status::DRIVER_OK);
    }

    /// Tells the device queue `index` has new buffers.
    pub fn notify(&self, index: u32) {
        // Ring writes must be visible before the doorbell (an exit to the host).
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.write(REG_QUEUE_NOTIFY, index);
    }

    /// Reads and acknowledges the interrupt status; returns the bits.
    pub fn ack_interrupt(&self) -> u32 {
        let s = self.read(REG_INTERRUPT_STATUS);
        if s != 0 {
            self.write(REG_INTERRUPT_ACK, s);
        }
        s
    }

    /// A 32-bit word of the device config space.
    pub fn config_u32(&self, offset: usize) -> u32 {
        self.read(REG_CONFIG + offset)
    }

    /// A 64-bit config field (two 32-bit reads, low first).
    pub fn config_u64(&self, offset: usize) -> u64 {
        let lo = u64::from(self.config_u32(offset));
        let hi = u64::from(self.config_u32(offset + 4));
        lo | (hi << 32)
    }
}
