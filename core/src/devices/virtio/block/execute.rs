//! Carrying out one parsed virtio-blk request: moving bytes between the backend and
//! guest memory in bounded chunks (a guest cannot make us allocate more than
//! [`CHUNK`] bytes, whatever lengths it sends) and choosing the status byte.
//!
//! A read or write can be carried out in steps ([`execute_step`]): one request may
//! cover the whole disk, and the device must not hold its transport lock (which
//! vCPUs and `kill` wait on) for all of it.

use vm_memory::{Address, Bytes, GuestAddress, GuestMemory};

use super::backend::BlockBackend;
use super::request::{
    Request, RequestType, ID_BYTES, SECTOR_SIZE, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK,
    VIRTIO_BLK_S_UNSUPP,
};

/// Largest bounce buffer used per copy step.
pub const CHUNK: usize = 64 * 1024;

/// What the device knows about its disk when executing a request.
pub struct Disk<'a> {
    /// The storage.
    pub backend: &'a dyn BlockBackend,
    /// Writes are refused with IOERR.
    pub read_only: bool,
    /// GET_ID answer (zero padded).
    pub id: &'a [u8; ID_BYTES],
}

/// Executes `req`; returns the status byte and how many bytes the device wrote
/// into device-writable buffers before the status byte (for the used ring).
pub fn execute<M: GuestMemory>(
    req: &Request,
    disk: &Disk<'_>,
    mem: &M,
    scratch: &mut Vec<u8>,
) -> (u8, u32) {
    let mut progress = 0;
    let mut budget = u64::MAX;
    // An unlimited budget always finishes; IOERR is the safe answer otherwise.
    execute_step(req, disk, mem, scratch, &mut progress, &mut budget)
        .unwrap_or((VIRTIO_BLK_S_IOERR, 0))
}

/// Moves at most `*budget` data bytes of `req`, starting `*progress` bytes in, and
/// advances both. Returns the status and used length once the request is finished
/// (or failed), `None` while data is left (call again with the same `progress`).
pub fn execute_step<M: GuestMemory>(
    req: &Request,
    disk: &Disk<'_>,
    mem: &M,
    scratch: &mut Vec<u8>,
    progress: &mut u64,
    budget: &mut u64,
) -> Option<(u8, u32)> {
    let dir = match req.request_type {
        RequestType::In => Direction::DiskToGuest,
        RequestType::Out if disk.read_only => return Some((VIRTIO_BLK_S_IOERR, 0)),
        RequestType::Out => Direction::GuestToDisk,
        RequestType::Flush => {
            let ok = disk.backend.flush().is_ok();
            return Some(if ok {
                (VIRTIO_BLK_S_OK, 0)
            } else {
                (VIRTIO_BLK_S_IOERR, 0)
            });
        }
        RequestType::GetId => {
            return Some(match write_id(req, disk.id, mem) {
                Ok(n) => (VIRTIO_BLK_S_OK, u32::try_from(n).unwrap_or(u32::MAX)),
                Err(()) => (VIRTIO_BLK_S_IOERR, 0),
            })
        }
        RequestType::Unsupported(_) => return Some((VIRTIO_BLK_S_UNSUPP, 0)),
    };
    let want = (req.data_len - (*progress).min(req.data_len)).min(*budget);
    match copy(req, disk, mem, scratch, dir, *progress, want) {
        Ok(()) => {
            *progress += want;
            *budget -= want;
        }
        Err(()) => return Some((VIRTIO_BLK_S_IOERR, 0)),
    }
    if *progress < req.data_len {
        return None;
    }
    let written = match dir {
        Direction::DiskToGuest => req.data_len,
        Direction::GuestToDisk => 0,
    };
    // A sum of many u32 lengths can exceed u32; the used-ring length saturates.
    Some((VIRTIO_BLK_S_OK, u32::try_from(written).unwrap_or(u32::MAX)))
}

#[derive(Clone, Copy)]
enum Direction {
    DiskToGuest,
    GuestToDisk,
}

/// Moves `count` data bytes starting `start` bytes into the request's data.
fn copy<M: GuestMemory>(
    req: &Request,
    disk: &Disk<'_>,
    mem: &M,
    scratch: &mut Vec<u8>,
    dir: Direction,
    start: u64,
    count: u64,
) -> Result<(), ()> {
    if scratch.len() < CHUNK {
        scratch.resize(CHUNK, 0);
    }
    // The parser checked sector + data_len against the capacity without overflow.
    let base = req.sector.checked_mul(SECTOR_SIZE).ok_or(())?;
    let mut disk_off = base.checked_add(start).ok_or(())?;
    let end = start.checked_add(count).ok_or(())?;
    let mut seg_start: u64 = 0;
    for &(addr, len) in &req.data {
        let seg_end = seg_start + u64::from(len);
        // The part of this segment inside [start, end).
        let from = start.max(seg_start);
        let to = end.min(seg_end);
        let mut pos = from;
        while pos < to {
            let n = (to - pos).min(CHUNK as u64) as usize;
            let buf = &mut scratch[..n];
            let gaddr = addr.checked_add(pos - seg_start).ok_or(())?;
            match dir {
                Direction::DiskToGuest => {
                    disk.backend.read_at(buf, disk_off).map_err(|_| ())?;
                    mem.write_slice(buf, gaddr).map_err(|_| ())?;
                }
                Direction::GuestToDisk => {
                    mem.read_slice(buf, gaddr).map_err(|_| ())?;
                    disk.backend.write_at(buf, disk_off).map_err(|_| ())?;
                }
            }
            pos += n as u64;
            disk_off += n as u64;
        }
        seg_start = seg_end;
        if seg_start >= end {
            break;
        }
    }
    Ok(())
}

fn write_id<M: GuestMemory>(req: &Request, id: &[u8; ID_BYTES], mem: &M) -> Result<u64, ()> {
    let mut rest: &[u8] = id;
    let mut written = 0u64;
    for &(addr, len) in &req.data {
        if rest.is_empty() {
            break;
        }
        let n = rest.len().min(len as usize);
        mem.write_slice(&rest[..n], addr).map_err(|_| ())?;
        rest = &rest[n..];
        written += n as u64;
    }
    Ok(written)
}

/// Convenience for callers that hold a status address: writes the byte.
pub fn write_status<M: GuestMemory>(mem: &M, status: GuestAddress, value: u8) -> bool {
    mem.write_obj(value, status).is_ok()
}
