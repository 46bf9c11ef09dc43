//! Parsing one virtio-blk request out of a descriptor chain, with every check the
//! guest could make us skip.
//!
//! Layout we accept (what Linux and our micro guest send): a device-readable header
//! descriptor of at least 16 bytes (`type: u32, reserved: u32, sector: u64`), zero
//! or more data descriptors, and a last device-writable status descriptor of at
//! least 1 byte. Parsing only reads the header; it touches no backend, so it is
//! pure and fuzzable. Failures say whether a status byte may be written
//! ([`ParseFailure::status`]): if the status descriptor itself is bad we must not
//! write anywhere, and the chain is returned with used length 0.

use virtio_queue::desc::split::Descriptor;
use vm_memory::{Address, ByteValued, Bytes, GuestAddress, GuestMemory};

/// Bytes per virtio-blk sector (fixed by the spec, whatever `blk_size` says).
pub const SECTOR_SIZE: u64 = 512;
/// Length of the request header.
pub const HEADER_LEN: u32 = 16;
/// Length of a GET_ID answer.
pub const ID_BYTES: usize = 20;

/// virtio-blk request type codes.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Write.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Flush.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Device id string.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

/// Status byte: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status byte: I/O or request error.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status byte: request type not supported.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// The request header as it sits in guest memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestHeader {
    /// Request type (`VIRTIO_BLK_T_*`).
    pub request_type: u32,
    /// Reserved (ioprio in legacy).
    pub reserved: u32,
    /// First 512-byte sector.
    pub sector: u64,
}

// SAFETY: RequestHeader is repr(C), made of plain integers with no padding
// (4 + 4 + 8 bytes), so every byte pattern is a valid value.
unsafe impl ByteValued for RequestHeader {}

/// What the guest asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestType {
    /// Read sectors into the data buffers.
    In,
    /// Write the data buffers to sectors.
    Out,
    /// Make earlier writes durable.
    Flush,
    /// Write the device id string into the data buffer.
    GetId,
    /// Anything else (answered with UNSUPP).
    Unsupported(u32),
}

impl From<u32> for RequestType {
    fn from(t: u32) -> Self {
        match t {
            VIRTIO_BLK_T_IN => Self::In,
            VIRTIO_BLK_T_OUT => Self::Out,
            VIRTIO_BLK_T_FLUSH => Self::Flush,
            VIRTIO_BLK_T_GET_ID => Self::GetId,
            other => Self::Unsupported(other),
        }
    }
}

/// A validated request: every data range lies inside guest memory with the right
/// direction, and IN/OUT ranges lie inside the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The operation.
    pub request_type: RequestType,
    /// First sector (meaningful for IN/OUT).
    pub sector: u64,
    /// Data buffers in order: (guest address, length).
    pub data: Vec<(GuestAddress, u32)>,
    /// Sum of the data lengths.
    pub data_len: u64,
    /// Where the status byte goes.
    pub status: GuestAddress,
}

/// Why a chain is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The chain has no descriptors.
    #[error("empty descriptor chain")]
    EmptyChain,
    /// The chain did not end (loop, bad index, or longer than allowed).
    #[error("descriptor chain is truncated or longer than {0} descriptors")]
    ChainTooLong(usize),
    /// The last descriptor is not a usable status byte.
    #[error("status descriptor at {addr:#x} (len {len}, write-only {writable}) is unusable")]
    BadStatus {
        /// Its address.
        addr: u64,
        /// Its length.
        len: u32,
        /// Whether the device may write it.
        writable: bool,
    },
    /// The header descriptor is write-only or shorter than 16 bytes.
    #[error("header descriptor at {addr:#x} (len {len}) is not a readable 16-byte header")]
    BadHeader {
        /// Its address.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// A descriptor points outside guest memory.
    #[error("descriptor {addr:#x}+{len:#x} is outside guest memory")]
    OutOfMemory {
        /// Its address.
        addr: u64,
        /// Its length.
        len: u32,
    },
    /// A data buffer has the wrong direction for the request type.
    #[error("data descriptor at {addr:#x} must be {} for {request_type:?}", if *.need_writable { "device-writable" } else { "device-readable" })]
    WrongDirection {
        /// Its address.
        addr: u64,
        /// What the request type needs.
        need_writable: bool,
        /// The request type.
        request_type: RequestType,
    },
    /// IN/OUT/GET_ID without data.
    #[error("{0:?} request has no data")]
    NoData(RequestType),
    /// IN/OUT data length not a whole number of sectors.
    #[error("data length {0} is not a multiple of 512")]
    UnalignedLength(u64),
    /// The sector range runs past the end of the disk (or overflows).
    #[error("sectors {sector}+{len} bytes are past the disk end ({capacity} sectors)")]
    OutOfRange {
        /// First sector.
        sector: u64,
        /// Data length in bytes.
        len: u64,
        /// Disk size in sectors.
        capacity: u64,
    },
}

/// A parse failure and where, if anywhere, its status byte may be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    /// What was wrong.
    pub error: RequestError,
    /// The status descriptor's address, if it is itself valid.
    pub status: Option<GuestAddress>,
}

fn in_memory<M: GuestMemory>(mem: &M, d: &Descriptor) -> bool {
    let len = d.len() as usize;
    len == 0 || mem.check_range(d.addr(), len, vm_memory::Permissions::Read)
}

/// Parses a chain of at most `max_descriptors` descriptors against a disk of
/// `capacity` sectors.
pub fn parse<M: GuestMemory>(
    chain: impl IntoIterator<Item = Descriptor>,
    mem: &M,
    capacity: u64,
    max_descriptors: usize,
) -> Result<Request, ParseFailure> {
    let fail = |error, status| Err(ParseFailure { error, status });

    // One extra so an over-long chain is noticed without walking all of it.
    let descs: Vec<Descriptor> = chain.into_iter().take(max_descriptors + 1).collect();
    let Some(last) = descs.last().copied() else {
        return fail(RequestError::EmptyChain, None);
    };
    if descs.len() > max_descriptors || last.has_next() {
        return fail(RequestError::ChainTooLong(max_descriptors), None);
    }

    // Status first: it decides whether we can report anything at all.
    let status_ok = descs.len() >= 2 && last.is_write_only() && last.len() >= 1;
    if !status_ok || !in_memory(mem, &last) {
        let error = if status_ok {
            RequestError::OutOfMemory {
                addr: last.addr().raw_value(),
                len: last.len(),
            }
        } else {
            RequestError::BadStatus {
                addr: last.addr().raw_value(),
                len: last.len(),
                writable: last.is_write_only(),
            }
        };
        return fail(error, None);
    }
    let status = last.addr();

    let head = descs[0];
    if head.is_write_only() || head.len() < HEADER_LEN {
        return fail(
            RequestError::BadHeader {
                addr: head.addr().raw_value(),
                len: head.len(),
            },
            Some(status),
        );
    }
    let header: RequestHeader = match mem.read_obj(head.addr()) {
        Ok(h) => h,
        Err(_) => {
            return fail(
                RequestError::OutOfMemory {
                    addr: head.addr().raw_value(),
                    len: head.len(),
                },
                Some(status),
            )
        }
    };
    let request_type = RequestType::from(header.request_type);

    let data_descs = &descs[1..descs.len() - 1];
    let mut data = Vec::with_capacity(data_descs.len());
    let mut data_len: u64 = 0;
    for d in data_descs {
        if !in_memory(mem, d) {
            return fail(
                RequestError::OutOfMemory {
                    addr: d.addr().raw_value(),
                    len: d.len(),
                },
                Some(status),
            );
        }
        let need_writable = match request_type {
            RequestType::In | RequestType::GetId => Some(true),
            RequestType::Out => Some(false),
            RequestType::Flush | RequestType::Unsupported(_) => None,
        };
        if let Some(need_writable) = need_writable {
            if d.is_write_only() != need_writable {
                return fail(
                    RequestError::WrongDirection {
                        addr: d.addr().raw_value(),
                        need_writable,
                        request_type,
                    },
                    Some(status),
                );
            }
        }
        data_len += u64::from(d.len());
        data.push((d.addr(), d.len()));
    }

    match request_type {
        RequestType::In | RequestType::Out => {
            if data_len == 0 {
                return fail(RequestError::NoData(request_type), Some(status));
            }
            if data_len & (SECTOR_SIZE - 1) != 0 {
                return fail(RequestError::UnalignedLength(data_len), Some(status));
            }
            let end = header.sector.checked_add(data_len / SECTOR_SIZE);
            if end.is_none_or(|end| end > capacity) {
                return fail(
                    RequestError::OutOfRange {
                        sector: header.sector,
                        len: data_len,
                        capacity,
                    },
                    Some(status),
                );
            }
        }
        RequestType::GetId if data_len == 0 => {
            return fail(RequestError::NoData(request_type), Some(status));
        }
        _ => {}
    }

    Ok(Request {
        request_type,
        sector: header.sector,
        data,
        data_len,
        status,
    })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
