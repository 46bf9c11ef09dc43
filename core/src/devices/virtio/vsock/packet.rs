//! virtio-vsock packets: the 44-byte `virtio_vsock_hdr` plus payload, read from a tx
//! descriptor chain and written into an rx chain.
//!
//! Pure functions over guest memory and descriptors, so they can be unit-tested with
//! mock memory and fuzzed. The guest controls every byte and every descriptor here:
//! each length is checked (header present, `len` within the chain and within
//! [`MAX_PKT_DATA`]) and every failure is a typed [`PacketError`], never a panic.
//!
//! The header may be split across descriptors (virtio 1.x forbids devices from
//! assuming a layout); the payload is whatever follows the 44 header bytes. Payloads
//! are copied out of guest memory: packets are at most 64 KiB and copying keeps the
//! muxer free of guest-memory lifetimes.
//!
//! The device reads and writes chains through virtio-queue's `Reader`/`Writer`
//! ([`read_tx`], [`write_rx_to`]): the chain is walked and every buffer checked
//! against guest memory once, when they are built, and all I/O goes through that
//! one validated view, so a guest cannot change a chain between a capacity check
//! and the write. [`parse_tx`]/[`write_rx`] do the same over a descriptor list
//! (direction checked per descriptor) for tests and fuzzing.

use std::io::{Read, Write};

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Reader, Writer};
use vm_memory::{Address, Bytes, GuestMemory, GuestMemoryError};

pub use kvmsandbox_proto::vsock::{HDR_SIZE, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM};
/// Largest payload we accept from or hand to the guest in one packet.
pub const MAX_PKT_DATA: u32 = 64 * 1024;

/// Packet operations (`virtio_vsock_hdr.op`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Op {
    /// Connection request.
    Request = 1,
    /// Connection accepted.
    Response = 2,
    /// Connection reset / refused.
    Rst = 3,
    /// One or both directions shut down (see `flags`).
    Shutdown = 4,
    /// Stream data.
    Rw = 5,
    /// Unsolicited credit information.
    CreditUpdate = 6,
    /// Asks the peer for a CREDIT_UPDATE.
    CreditRequest = 7,
}

impl Op {
    /// Decodes a wire value.
    pub fn from_u16(v: u16) -> Option<Op> {
        Some(match v {
            1 => Op::Request,
            2 => Op::Response,
            3 => Op::Rst,
            4 => Op::Shutdown,
            5 => Op::Rw,
            6 => Op::CreditUpdate,
            7 => Op::CreditRequest,
            _ => return None,
        })
    }
}

pub use kvmsandbox_proto::vsock::VsockHeader;

/// A parsed packet: a header whose `op` and `type_` are known, plus the payload
/// (non-empty only for [`Op::Rw`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The header; `hdr.len == data.len()` for packets we build.
    pub hdr: VsockHeader,
    /// The decoded `hdr.op`.
    pub op: Op,
    /// Payload bytes.
    pub data: Vec<u8>,
}

/// Why a descriptor chain could not be turned into / filled with a packet.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// The chain had no descriptor at all.
    #[error("empty descriptor chain")]
    EmptyChain,
    /// A tx chain contained a device-writable descriptor (at guest address `0`).
    #[error("tx chain has a write-only descriptor at {0:#x}")]
    WriteOnlyTxDescriptor(u64),
    /// An rx chain contained a device-readable descriptor (at guest address `0`).
    #[error("rx chain has a read-only descriptor at {0:#x}")]
    ReadOnlyRxDescriptor(u64),
    /// The chain's readable bytes cannot hold a header.
    #[error("chain holds {0} bytes, less than the {HDR_SIZE}-byte header")]
    HeaderTooSmall(usize),
    /// `hdr.len` exceeds the largest packet we accept.
    #[error("packet length {} exceeds the maximum of {MAX_PKT_DATA}", .0.len)]
    DataTooLong(VsockHeader),
    /// `hdr.len` exceeds what the chain holds after the header.
    #[error("packet length {} exceeds the {avail} data bytes in the chain", .hdr.len)]
    DataBeyondChain {
        /// The header (its `len` is the offending value).
        hdr: VsockHeader,
        /// Bytes following the header in the chain.
        avail: usize,
    },
    /// The header's `op` is not a known operation.
    #[error("unknown vsock op {}", .0.op)]
    UnknownOp(VsockHeader),
    /// The header's `type` is not STREAM.
    #[error("unsupported vsock socket type {}", .0.type_)]
    UnknownType(VsockHeader),
    /// An rx chain is too small for the packet.
    #[error("rx chain of {have} bytes cannot hold a {need}-byte packet")]
    RxChainTooSmall {
        /// Bytes needed (header + payload).
        need: usize,
        /// Writable bytes in the chain.
        have: usize,
    },
    /// A descriptor address range overflows the guest address space.
    #[error("descriptor at {addr:#x} + {len} overflows")]
    AddressOverflow {
        /// Descriptor address.
        addr: u64,
        /// Offset into it.
        len: u64,
    },
    /// Guest memory access failed (address outside guest RAM).
    #[error("guest memory access failed: {0}")]
    Memory(#[from] GuestMemoryError),
    /// The payload could not be read although the chain's buffers were validated.
    #[error("payload of {} bytes could not be read from the chain", .0.len)]
    DataUnreadable(VsockHeader),
    /// Copying through a validated chain view failed after `done` bytes.
    #[error("chain copy failed after {done} bytes: {source}")]
    Copy {
        /// Bytes copied before the failure.
        done: usize,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl PacketError {
    /// The packet header when it was read before the error (so a RST can be sent).
    pub fn header(&self) -> Option<&VsockHeader> {
        match self {
            PacketError::UnknownOp(h)
            | PacketError::UnknownType(h)
            | PacketError::DataTooLong(h)
            | PacketError::DataUnreadable(h)
            | PacketError::DataBeyondChain { hdr: h, .. } => Some(h),
            _ => None,
        }
    }
}

/// Copies up to `buf.len()` bytes from the readable descriptors, starting `skip`
/// bytes into the chain. Returns bytes copied.
fn gather<M: GuestMemory + ?Sized>(
    mem: &M,
    descs: &[Descriptor],
    mut skip: usize,
    buf: &mut [u8],
) -> Result<usize, PacketError> {
    let mut done = 0;
    for d in descs {
        if done == buf.len() {
            break;
        }
        let dlen = d.len() as usize;
        if skip >= dlen {
            skip -= dlen;
            continue;
        }
        let n = (dlen - skip).min(buf.len() - done);
        let addr = d
            .addr()
            .checked_add(skip as u64)
            .ok_or(PacketError::AddressOverflow {
                addr: d.addr().raw_value(),
                len: skip as u64,
            })?;
        mem.read_slice(&mut buf[done..done + n], addr)?;
        done += n;
        skip = 0;
    }
    Ok(done)
}

/// Parses a guest tx chain (device-readable descriptors only) into a packet.
pub fn parse_tx<M, I>(mem: &M, chain: I) -> Result<Packet, PacketError>
where
    M: GuestMemory + ?Sized,
    I: IntoIterator<Item = Descriptor>,
{
    let mut descs = Vec::new();
    let mut total: usize = 0;
    for d in chain {
        if d.is_write_only() {
            return Err(PacketError::WriteOnlyTxDescriptor(d.addr().raw_value()));
        }
        total = total.saturating_add(d.len() as usize);
        descs.push(d);
    }
    if descs.is_empty() {
        return Err(PacketError::EmptyChain);
    }
    if total < HDR_SIZE {
        return Err(PacketError::HeaderTooSmall(total));
    }
    let mut raw = [0u8; HDR_SIZE];
    gather(mem, &descs, 0, &mut raw)?;
    let (hdr, op) = checked_header(&raw, total - HDR_SIZE)?;
    let mut data = Vec::new();
    if op == Op::Rw && hdr.len > 0 {
        data.resize(hdr.len as usize, 0);
        gather(mem, &descs, HDR_SIZE, &mut data)?;
    }
    Ok(Packet { hdr, op, data })
}

fn checked_header(raw: &[u8; HDR_SIZE], avail: usize) -> Result<(VsockHeader, Op), PacketError> {
    let hdr = VsockHeader::from_bytes(raw);
    if hdr.type_ != TYPE_STREAM {
        return Err(PacketError::UnknownType(hdr));
    }
    let op = Op::from_u16(hdr.op).ok_or(PacketError::UnknownOp(hdr))?;
    if hdr.len > MAX_PKT_DATA {
        return Err(PacketError::DataTooLong(hdr));
    }
    if hdr.len as usize > avail {
        return Err(PacketError::DataBeyondChain { hdr, avail });
    }
    Ok((hdr, op))
}

/// Reads a guest tx packet through a validated chain view (device-readable
/// buffers only; a `Reader` leaves device-writable ones out).
pub fn read_tx(reader: &mut Reader<'_>) -> Result<Packet, PacketError> {
    let total = reader.available_bytes();
    if total < HDR_SIZE {
        return Err(PacketError::HeaderTooSmall(total));
    }
    let mut raw = [0u8; HDR_SIZE];
    reader
        .read_exact(&mut raw)
        .map_err(|source| PacketError::Copy { done: 0, source })?;
    let (hdr, op) = checked_header(&raw, total - HDR_SIZE)?;
    let mut data = Vec::new();
    if op == Op::Rw && hdr.len > 0 {
        data.resize(hdr.len as usize, 0);
        if reader.read_exact(&mut data).is_err() {
            // The header is known: the caller resets the stream it names.
            return Err(PacketError::DataUnreadable(hdr));
        }
    }
    Ok(Packet { hdr, op, data })
}

/// The header of a tx chain a `Reader` refused (some buffer outside guest memory),
/// read from the leading device-readable descriptors alone, so the stream it names
/// can be reset rather than lose the packet unnoticed. `None` if the header itself
/// is not readable.
pub fn header_of_broken_tx<M, I>(mem: &M, readable: I) -> Option<VsockHeader>
where
    M: GuestMemory + ?Sized,
    I: IntoIterator<Item = Descriptor>,
{
    let mut raw = [0u8; HDR_SIZE];
    let mut descs = Vec::new();
    let mut total = 0usize;
    for d in readable {
        if total >= HDR_SIZE {
            break;
        }
        total = total.saturating_add(d.len() as usize);
        descs.push(d);
    }
    match gather(mem, &descs, 0, &mut raw) {
        Ok(HDR_SIZE) => Some(VsockHeader::from_bytes(&raw)),
        _ => None,
    }
}

/// Writes `pkt` (header with `len` = payload size, then payload) through a
/// validated rx chain view. Returns the bytes written (for the used ring). Check
/// [`Writer::available_bytes`] before taking the packet from its source: this
/// fails only if the chain is too small or a validated buffer cannot be written.
pub fn write_rx_to(writer: &mut Writer<'_>, pkt: &Packet) -> Result<u32, PacketError> {
    let have = writer.available_bytes();
    let need = HDR_SIZE + pkt.data.len();
    if need > have || pkt.data.len() > MAX_PKT_DATA as usize {
        return Err(PacketError::RxChainTooSmall { need, have });
    }
    let mut hdr = pkt.hdr;
    hdr.len = pkt.data.len() as u32;
    writer
        .write_all(&hdr.to_bytes())
        .and_then(|()| writer.write_all(&pkt.data))
        .map_err(|source| PacketError::Copy {
            done: writer.bytes_written(),
            source,
        })?;
    Ok(need as u32)
}

/// Total writable bytes of an rx chain (header + payload room).
pub fn rx_capacity<I>(chain: I) -> Result<usize, PacketError>
where
    I: IntoIterator<Item = Descriptor>,
{
    let mut total: usize = 0;
    let mut any = false;
    for d in chain {
        if !d.is_write_only() {
            return Err(PacketError::ReadOnlyRxDescriptor(d.addr().raw_value()));
        }
        any = true;
        total = total.saturating_add(d.len() as usize);
    }
    if !any {
        return Err(PacketError::EmptyChain);
    }
    Ok(total)
}

/// Writes `pkt` (header with `len` set to the payload size, then payload) into a
/// guest rx chain. Returns the bytes written (for the used ring).
pub fn write_rx<M, I>(mem: &M, chain: I, pkt: &Packet) -> Result<u32, PacketError>
where
    M: GuestMemory + ?Sized,
    I: IntoIterator<Item = Descriptor>,
{
    let descs: Vec<Descriptor> = chain.into_iter().collect();
    let have = rx_capacity(descs.iter().copied())?;
    let need = HDR_SIZE + pkt.data.len();
    if need > have || pkt.data.len() > MAX_PKT_DATA as usize {
        return Err(PacketError::RxChainTooSmall { need, have });
    }
    let mut hdr = pkt.hdr;
    hdr.len = pkt.data.len() as u32;
    let raw = hdr.to_bytes();
    let mut src: [&[u8]; 2] = [&raw, &pkt.data];
    let mut which = 0;
    for d in &descs {
        let mut off = 0usize;
        let dlen = d.len() as usize;
        while off < dlen && which < 2 {
            if src[which].is_empty() {
                which += 1;
                continue;
            }
            let n = (dlen - off).min(src[which].len());
            let addr = d
                .addr()
                .checked_add(off as u64)
                .ok_or(PacketError::AddressOverflow {
                    addr: d.addr().raw_value(),
                    len: off as u64,
                })?;
            mem.write_slice(&src[which][..n], addr)?;
            src[which] = &src[which][n..];
            off += n;
        }
        if which >= 2 {
            break;
        }
    }
    Ok(need as u32)
}

#[cfg(test)]
#[path = "packet_tests.rs"]
mod tests;
