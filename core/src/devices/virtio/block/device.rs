//! The virtio-blk device model: what it offers (features, config space), opening
//! its disk with errors a caller can act on, and serving its one queue.
//!
//! Each call serves a bounded amount: at most [`REQUESTS_PER_WAKEUP`] requests and
//! [`BYTES_PER_WAKEUP`] data bytes. A request larger than that is carried over
//! (in flight) to the next call, and the device asks to be called again
//! ([`Served::More`]), so a guest streaming huge requests cannot hold the
//! transport lock (which vCPUs and the loop's stop wait on) for longer than one
//! budget, nor starve the other devices of the loop.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use virtio_queue::{Queue, QueueState, QueueT};
use vm_memory::GuestMemoryMmap;

use super::backend::{BlockBackend, FileBackend};
use super::execute::{execute_step, write_status, Disk};
use super::request::{parse, Request, RequestError, ID_BYTES, SECTOR_SIZE, VIRTIO_BLK_S_IOERR};
use crate::devices::virtio::chain::uses_indirect;
use crate::devices::virtio::device::{
    ActivateContext, ActivateError, Interrupt, Served, VirtioDevice, TYPE_BLOCK, VIRTIO_F_VERSION_1,
};
use crate::devices::virtio::state::{DeviceKindState, DeviceStateError};
use virtio_bindings::virtio_blk as vb;

/// Layout version of [`BlockState`].
pub const BLOCK_STATE_VERSION: u32 = 1;

/// What a snapshot keeps of a virtio-blk device. The disk's contents are not in
/// it (as in Firecracker): only what detects being restored onto another disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockState {
    /// [`BLOCK_STATE_VERSION`] when taken.
    pub version: u32,
    /// Disk size in 512-byte sectors (what the guest read from config space).
    pub capacity: u64,
    /// Whether the disk was exposed read-only.
    pub read_only: bool,
    /// The GET_ID serial (trailing zero bytes dropped).
    pub id: Vec<u8>,
    /// Features the driver accepted.
    pub acked_features: u64,
}

/// Maximum size of the request queue.
pub const QUEUE_SIZE: u16 = 256;
/// Most data segments per request (advertised as `seg_max`).
pub const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Feature bit: `seg_max` is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << vb::VIRTIO_BLK_F_SEG_MAX;
/// Feature bit: the disk is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << vb::VIRTIO_BLK_F_RO;
/// Feature bit: `blk_size` is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << vb::VIRTIO_BLK_F_BLK_SIZE;
/// Feature bit: FLUSH is supported.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << vb::VIRTIO_BLK_F_FLUSH;
/// Most requests finished per queue notification before yielding to the loop.
pub const REQUESTS_PER_WAKEUP: usize = 64;
/// Most data bytes moved per queue notification before yielding to the loop.
pub const BYTES_PER_WAKEUP: u64 = 1 << 20;
/// Test builds only: a disk with this id panics whenever its queue is served, so
/// tests can check that a dead device event loop stops the VM.
#[cfg(feature = "test-utils")]
pub const PANIC_ON_NOTIFY_ID: &str = "kvmsb-test-panic";
/// Bytes of config space we expose (capacity … blk_size).
pub const CONFIG_LEN: usize = 24;

/// How to build a virtio-blk device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockConfig {
    /// Raw disk image (size a multiple of 512).
    pub path: PathBuf,
    /// Expose the disk read-only (writes fail with IOERR; the file is opened read-only).
    pub read_only: bool,
    /// Serial returned by GET_ID, at most 20 bytes.
    pub id: Option<String>,
}

/// Why a disk cannot be attached.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The file does not exist.
    #[error("disk image {0} does not exist")]
    NotFound(PathBuf),
    /// The path is a directory.
    #[error("disk image {0} is a directory")]
    IsDirectory(PathBuf),
    /// Opening was refused.
    #[error("no permission to open disk image {path} ({mode})")]
    PermissionDenied {
        /// The image.
        path: PathBuf,
        /// "read-only" or "read-write".
        mode: &'static str,
    },
    /// Size is not a whole number of sectors.
    #[error("disk image {path} is {size} bytes, not a multiple of 512")]
    UnalignedSize {
        /// The image.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// GET_ID answers carry at most 20 bytes.
    #[error("disk id {id:?} is {len} bytes, more than 20")]
    IdTooLong {
        /// The id.
        id: String,
        /// Its length in bytes.
        len: usize,
    },
    /// Any other I/O error opening or sizing the image.
    #[error("cannot open disk image {path}: {source}")]
    Io {
        /// The image.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

struct Active {
    mem: GuestMemoryMmap<()>,
    queue: Queue,
    interrupt: Interrupt,
    /// A request cut short by the byte budget: head, request, bytes done.
    in_flight: Option<(u16, Request, u64)>,
}

/// A virtio-blk device. Wrap it in an `MmioTransport`.
pub struct Block {
    backend: Box<dyn BlockBackend>,
    read_only: bool,
    id: [u8; ID_BYTES],
    capacity: u64,
    acked_features: u64,
    active: Option<Active>,
    scratch: Vec<u8>,
}

fn io_error(path: &Path, mode: &'static str, e: io::Error) -> BlockError {
    match e.kind() {
        io::ErrorKind::NotFound => BlockError::NotFound(path.to_path_buf()),
        io::ErrorKind::PermissionDenied => BlockError::PermissionDenied {
            path: path.to_path_buf(),
            mode,
        },
        _ if e.raw_os_error() == Some(libc::EISDIR) => BlockError::IsDirectory(path.to_path_buf()),
        _ => BlockError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

impl Block {
    /// Opens the image in `cfg` (read-only if asked) and checks its size and id.
    pub fn open(cfg: &BlockConfig) -> Result<Self, BlockError> {
        let path = cfg.path.as_path();
        let mode = if cfg.read_only {
            "read-only"
        } else {
            "read-write"
        };
        let meta = std::fs::metadata(path).map_err(|e| io_error(path, mode, e))?;
        if meta.is_dir() {
            return Err(BlockError::IsDirectory(path.to_path_buf()));
        }
        let mut file: File = OpenOptions::new()
            .read(true)
            .write(!cfg.read_only)
            .open(path)
            .map_err(|e| io_error(path, mode, e))?;
        // Seeking to the end also sizes block devices, whose metadata length is 0.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| io_error(path, mode, e))?;
        Self::build(
            Box::new(FileBackend::new(file, size)),
            path,
            cfg.read_only,
            cfg.id.as_deref(),
        )
    }

    /// A device over any backend (tests, in-memory disks). `name` is used in errors.
    pub fn with_backend(
        backend: Box<dyn BlockBackend>,
        name: &Path,
        read_only: bool,
        id: Option<&str>,
    ) -> Result<Self, BlockError> {
        Self::build(backend, name, read_only, id)
    }

    fn build(
        backend: Box<dyn BlockBackend>,
        path: &Path,
        read_only: bool,
        id: Option<&str>,
    ) -> Result<Self, BlockError> {
        let size = backend.len();
        if size & (SECTOR_SIZE - 1) != 0 {
            return Err(BlockError::UnalignedSize {
                path: path.to_path_buf(),
                size,
            });
        }
        let mut id_bytes = [0u8; ID_BYTES];
        if let Some(id) = id {
            if id.len() > ID_BYTES {
                return Err(BlockError::IdTooLong {
                    id: id.to_string(),
                    len: id.len(),
                });
            }
            id_bytes[..id.len()].copy_from_slice(id.as_bytes());
        }
        Ok(Self {
            backend,
            read_only,
            id: id_bytes,
            capacity: size / SECTOR_SIZE,
            acked_features: 0,
            active: None,
            scratch: Vec::new(),
        })
    }

    /// Disk size in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Features the driver accepted.
    pub fn acked_features(&self) -> u64 {
        self.acked_features
    }

    fn id_trimmed(&self) -> Vec<u8> {
        let end = self.id.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        self.id[..end].to_vec()
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut c = [0u8; CONFIG_LEN];
        c[0..8].copy_from_slice(&self.capacity.to_le_bytes());
        // 8..12 size_max: not offered. 16..20 geometry: not offered.
        c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        c[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        c
    }

    /// Serves available chains up to the per-wakeup budget; one interrupt per batch.
    fn process_queue(&mut self) -> Served {
        let Some(active) = self.active.as_mut() else {
            return Served::Done;
        };
        let disk = Disk {
            backend: self.backend.as_ref(),
            read_only: self.read_only,
            id: &self.id,
        };
        let max_descriptors = SEG_MAX as usize + 2;
        let mut used_any = false;
        let mut bytes = BYTES_PER_WAKEUP;
        let mut served = Served::Done;
        for _ in 0..REQUESTS_PER_WAKEUP {
            let (head, req, mut progress) = match active.in_flight.take() {
                Some(f) => f,
                None => {
                    let Some(chain) = active.queue.pop_descriptor_chain(&active.mem) else {
                        break;
                    };
                    let head = chain.head_index();
                    let parsed = if uses_indirect(&active.mem, &active.queue, head) {
                        // Not offered: refused without following it or writing anywhere.
                        Err(None)
                    } else {
                        parse(chain, &active.mem, self.capacity, max_descriptors).map_err(|f| {
                            f.status
                                .filter(|&a| write_status(&active.mem, a, status_for(&f.error)))
                        })
                    };
                    match parsed {
                        Ok(req) => (head, req, 0),
                        Err(status_written) => {
                            let len = u32::from(status_written.is_some());
                            if !Self::complete(active, head, len) {
                                break;
                            }
                            used_any = true;
                            continue;
                        }
                    }
                }
            };
            let step = execute_step(
                &req,
                &disk,
                &active.mem,
                &mut self.scratch,
                &mut progress,
                &mut bytes,
            );
            let Some((status, written)) = step else {
                active.in_flight = Some((head, req, progress));
                served = Served::More;
                break;
            };
            let len = if write_status(&active.mem, req.status, status) {
                written.saturating_add(1)
            } else {
                0
            };
            if !Self::complete(active, head, len) {
                break;
            }
            used_any = true;
            if bytes == 0 {
                served = Served::More;
                break;
            }
        }
        if served == Served::Done && active.in_flight.is_none() {
            // The request budget ran out with chains left: come back for them.
            if let Ok(avail) = active
                .queue
                .avail_idx(&active.mem, std::sync::atomic::Ordering::Acquire)
            {
                if avail.0 != active.queue.next_avail() && !active.interrupt.needs_reset() {
                    served = Served::More;
                }
            }
        }
        // pop_descriptor_chain stops quietly when the avail index ran more than a
        // queue's worth ahead (or an entry names a head out of range): the queue is
        // wedged until the driver resets the device, so say so instead of going silent.
        if let Ok(avail) = active
            .queue
            .avail_idx(&active.mem, std::sync::atomic::Ordering::Acquire)
        {
            let pending = avail - std::num::Wrapping(active.queue.next_avail());
            if pending.0 > active.queue.size() {
                let _ = active.interrupt.signal_needs_reset();
                served = Served::Done;
            }
        }
        if used_any {
            // An irqfd write only fails if the counter is saturated, which still interrupts.
            let _ = active.interrupt.signal_used_queue();
        }
        served
    }

    /// Puts `head` in the used ring; false (and DEVICE_NEEDS_RESET) if the ring is
    /// unusable (the guest moved it out of memory): stop serving then.
    fn complete(active: &mut Active, head: u16, len: u32) -> bool {
        if active.queue.add_used(&active.mem, head, len).is_err() {
            let _ = active.interrupt.signal_needs_reset();
            return false;
        }
        true
    }
}

/// Status byte for a malformed request (every parse failure is an I/O error; an
/// unknown request *type* parses fine and gets UNSUPP from `execute`).
fn status_for(_e: &RequestError) -> u8 {
    VIRTIO_BLK_S_IOERR
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn avail_features(&self) -> u64 {
        let ro = if self.read_only { VIRTIO_BLK_F_RO } else { 0 };
        VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH | ro
    }

    fn ack_features(&mut self, features: u64) {
        self.acked_features = features;
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = self.config_bytes();
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if start >= CONFIG_LEN {
            return;
        }
        let n = data.len().min(CONFIG_LEN - start);
        data[..n].copy_from_slice(&config[start..start + n]);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // Nothing writable (no writeback-cache toggle offered).
    }

    fn activate(&mut self, mut ctx: ActivateContext) -> Result<(), ActivateError> {
        if ctx.queues.len() != 1 {
            return Err(ActivateError::QueueCount {
                expected: 1,
                got: ctx.queues.len(),
            });
        }
        let queue = ctx.queues.remove(0);
        self.active = Some(Active {
            mem: ctx.mem,
            queue,
            interrupt: ctx.interrupt,
            in_flight: None,
        });
        Ok(())
    }

    fn reset(&mut self) {
        self.active = None;
        self.acked_features = 0;
    }

    fn queue_notified(&mut self, queue_index: usize) -> Served {
        #[cfg(feature = "test-utils")]
        if self.id.starts_with(PANIC_ON_NOTIFY_ID.as_bytes()) {
            panic!("test disk {PANIC_ON_NOTIFY_ID:?} panics on purpose");
        }
        if queue_index == 0 {
            self.process_queue()
        } else {
            Served::Done
        }
    }

    fn save_state(&self) -> Result<DeviceKindState, DeviceStateError> {
        if self.active.as_ref().is_some_and(|a| a.in_flight.is_some()) {
            return Err(DeviceStateError::NotQuiescent {
                device_type: TYPE_BLOCK,
                reason: "a request larger than one work budget is partly done".into(),
            });
        }
        Ok(DeviceKindState::Block(BlockState {
            version: BLOCK_STATE_VERSION,
            capacity: self.capacity,
            read_only: self.read_only,
            id: self.id_trimmed(),
            acked_features: self.acked_features,
        }))
    }

    fn active_queues(&self) -> Vec<QueueState> {
        self.active
            .as_ref()
            .map_or_else(Vec::new, |a| vec![a.queue.state()])
    }

    fn check_state(&self, state: &DeviceKindState) -> Result<(), DeviceStateError> {
        let DeviceKindState::Block(s) = state else {
            return Err(DeviceStateError::DeviceType {
                snapshot: state.device_type(),
                device: TYPE_BLOCK,
            });
        };
        if s.version != BLOCK_STATE_VERSION {
            return Err(DeviceStateError::Version {
                what: "virtio-blk",
                found: s.version,
                expected: BLOCK_STATE_VERSION,
            });
        }
        if s.capacity != self.capacity {
            return Err(DeviceStateError::DiskSize {
                snapshot: s.capacity,
                device: self.capacity,
            });
        }
        if s.read_only != self.read_only {
            return Err(DeviceStateError::DiskReadOnly {
                snapshot: s.read_only,
                device: self.read_only,
            });
        }
        let id = self.id_trimmed();
        if s.id != id {
            return Err(DeviceStateError::DiskId {
                snapshot: String::from_utf8_lossy(&s.id).into_owned(),
                device: String::from_utf8_lossy(&id).into_owned(),
            });
        }
        Ok(())
    }

    fn restore_state(
        &mut self,
        state: &DeviceKindState,
        active: Option<ActivateContext>,
    ) -> Result<(), DeviceStateError> {
        self.check_state(state)?;
        let DeviceKindState::Block(s) = state else {
            return Ok(()); // check_state refused every other kind
        };
        self.active = None;
        self.acked_features = s.acked_features & self.avail_features();
        if let Some(mut ctx) = active {
            if ctx.queues.len() != 1 {
                return Err(DeviceStateError::QueueLayout {
                    snapshot: ctx.queues.iter().map(|q| q.max_size()).collect(),
                    device: vec![QUEUE_SIZE],
                });
            }
            self.active = Some(Active {
                mem: ctx.mem,
                queue: ctx.queues.remove(0),
                interrupt: ctx.interrupt,
                in_flight: None,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
#[path = "malformed_tests.rs"]
mod malformed_tests;

#[cfg(test)]
#[path = "state_tests.rs"]
mod state_tests;
