//! virtio-blk: a raw disk image served over one virtqueue.
//!
//! Split four ways: `device` (features, config space, activate/reset, the queue
//! handler), `request` (pure parsing and checking of a descriptor chain),
//! `execute` (moving bytes between guest memory and the backend), `backend`
//! (the file I/O trait and its raw-file implementation).

pub mod backend;
pub mod device;
pub mod execute;
pub mod request;

pub use backend::{BlockBackend, FileBackend};
pub use device::{Block, BlockConfig, BlockError};
