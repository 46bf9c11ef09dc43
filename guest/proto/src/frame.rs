//! Frame header and framing: how a [`Message`] becomes bytes and back.
//!
//! Header (14 bytes, little endian):
//! ```text
//! 0..2   magic  "KS"
//! 2      version (PROTOCOL_VERSION)
//! 3      flags  (none defined yet: senders write 0, receivers ignore them)
//! 4..6   message type (u16, see msg::Message::msg_type)
//! 6..10  request id (u32)
//! 10..14 payload length (u32, at most MAX_FRAME)
//! ```
//! Decoding checks the header as soon as its bytes are present, so garbage is
//! rejected without waiting for a full frame; a frame needing more bytes is
//! `Ok(None)`, never an error and never a panic.

use alloc::vec::Vec;

use crate::error::ProtoError;
use crate::msg::Message;

/// The first two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"KS";
/// Protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 14;
/// Largest payload of one frame (1 MiB). Bigger data is streamed as several frames.
pub const MAX_FRAME: usize = 1 << 20;
/// Largest data chunk a sender should put in one `Data`/`Stdout`/... frame,
/// leaving room for the message's own fields.
pub const MAX_CHUNK: usize = MAX_FRAME - 64;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Id of the request this frame belongs to (0 for the agent's Hello).
    pub request_id: u32,
    /// Header flags (reserved, carried through).
    pub flags: u8,
    /// The message.
    pub msg: Message,
}

impl Frame {
    /// A frame with no flags.
    pub fn new(request_id: u32, msg: Message) -> Self {
        Self {
            request_id,
            flags: 0,
            msg,
        }
    }

    /// Encodes header + payload into a fresh buffer.
    pub fn encode(&self) -> Result<Vec<u8>, ProtoError> {
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.extend_from_slice(&MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(self.flags);
        out.extend_from_slice(&self.msg.msg_type().to_le_bytes());
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.extend_from_slice(&[0u8; 4]);
        self.msg.encode_payload(&mut out);
        let len = out.len() - HEADER_LEN;
        if len > MAX_FRAME {
            return Err(ProtoError::PayloadTooLarge { len });
        }
        // Fits: checked against MAX_FRAME just above.
        out[10..14].copy_from_slice(&(len as u32).to_le_bytes());
        Ok(out)
    }

    /// Decodes one frame from the front of `buf`.
    ///
    /// `Ok(Some((frame, consumed)))` when a whole frame is there, `Ok(None)` when more
    /// bytes are needed, an error when the bytes can never become a valid frame.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, ProtoError> {
        let Some(header) = check_header(buf)? else {
            return Ok(None);
        };
        let total = HEADER_LEN + header.len;
        let Some(payload) = buf.get(HEADER_LEN..total) else {
            return Ok(None);
        };
        let msg = Message::decode_payload(header.msg_type, payload)?;
        Ok(Some((
            Frame {
                request_id: header.request_id,
                flags: header.flags,
                msg,
            },
            total,
        )))
    }
}

/// The fields of a checked header.
struct Header {
    flags: u8,
    msg_type: u16,
    request_id: u32,
    len: usize,
}

/// Validates as much of the header as `buf` holds.
fn check_header(buf: &[u8]) -> Result<Option<Header>, ProtoError> {
    for (i, want) in MAGIC.iter().enumerate() {
        match buf.get(i) {
            Some(b) if b == want => {}
            Some(_) => {
                let found = [
                    buf.first().copied().unwrap_or(0),
                    buf.get(1).copied().unwrap_or(0),
                ];
                return Err(ProtoError::BadMagic { found });
            }
            None => return Ok(None),
        }
    }
    match buf.get(2) {
        Some(&PROTOCOL_VERSION) => {}
        Some(&found) => return Err(ProtoError::UnsupportedVersion { found }),
        None => return Ok(None),
    }
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    // Any type number is accepted here: an unknown one decodes to
    // `Message::Unknown`, so a newer peer's optional messages keep the stream in sync.
    let msg_type = u16::from_le_bytes([h[4], h[5]]);
    let request_id = u32::from_le_bytes([h[6], h[7], h[8], h[9]]);
    let len = u32::from_le_bytes([h[10], h[11], h[12], h[13]]);
    if len as usize > MAX_FRAME {
        return Err(ProtoError::TooLong { len });
    }
    Ok(Some(Header {
        flags: h[3],
        msg_type,
        request_id,
        len: len as usize,
    }))
}

/// Accumulates bytes from a stream and yields whole frames.
///
/// Transport-agnostic (no I/O): feed it what `read` returned, then pull frames.
#[derive(Default, Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= MAX_FRAME {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is buffered. After an error the stream is out of
    /// sync and the connection should be dropped.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtoError> {
        let pending = self.buf.get(self.start..).unwrap_or(&[]);
        match Frame::decode(pending)? {
            Some((frame, used)) => {
                self.start += used;
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}
