//! Carrying out one parsed virtio-blk request: moving bytes between the backend and
//! guest memory in bounded chunks (a guest cannot make us allocate more than
//! [`CHUNK`] bytes, whatever lengths it sends) and choosing the status byte.

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
    let result = match req.request_type {
        RequestType::In => {
            copy(req, disk, mem, scratch, Direction::DiskToGuest).map(|()| req.data_len)
        }
        RequestType::Out if disk.read_only => Err(()),
        RequestType::Out => copy(req, disk, mem, scratch, Direction::GuestToDisk).map(|()| 0),
        RequestType::Flush => disk.backend.flush().map(|()| 0).map_err(|_| ()),
        RequestType::GetId => write_id(req, disk.id, mem),
        RequestType::Unsupported(_) => return (VIRTIO_BLK_S_UNSUPP, 0),
    };
    match result {
        // A sum of many u32 lengths can exceed u32; the used-ring length saturates.
        Ok(written) => (VIRTIO_BLK_S_OK, u32::try_from(written).unwrap_or(u32::MAX)),
        Err(()) => (VIRTIO_BLK_S_IOERR, 0),
    }
}

#[derive(Clone, Copy)]
enum Direction {
    DiskToGuest,
    GuestToDisk,
}

fn copy<M: GuestMemory>(
    req: &Request,
    disk: &Disk<'_>,
    mem: &M,
    scratch: &mut Vec<u8>,
    dir: Direction,
) -> Result<(), ()> {
    if scratch.len() < CHUNK {
        scratch.resize(CHUNK, 0);
    }
    // The parser checked sector + data_len against the capacity without overflow.
    let mut disk_off = req.sector.checked_mul(SECTOR_SIZE).ok_or(())?;
    for &(addr, len) in &req.data {
        let mut done: u64 = 0;
        while done < u64::from(len) {
            let n = (u64::from(len) - done).min(CHUNK as u64) as usize;
            let buf = &mut scratch[..n];
            let gaddr = addr.checked_add(done).ok_or(())?;
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
            done += n as u64;
            disk_off += n as u64;
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
