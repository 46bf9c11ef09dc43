//! Everything that can be wrong with bytes on the wire. One enum so both agents and
//! the host report a malformed frame the same way; decoding never panics, it returns
//! one of these.

use core::fmt;

/// A frame or payload that cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtoError {
    /// The first bytes are not [`crate::frame::MAGIC`].
    BadMagic {
        /// The two bytes found (a missing second byte reads as 0).
        found: [u8; 2],
    },
    /// The header's version byte is not one we speak.
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// The header announces a payload larger than [`crate::frame::MAX_FRAME`].
    TooLong {
        /// The announced payload length.
        len: u32,
    },
    /// An encoder was asked to send a payload larger than [`crate::frame::MAX_FRAME`].
    PayloadTooLarge {
        /// The payload length that was refused.
        len: usize,
    },
    /// A field runs past the end of the payload.
    Truncated {
        /// The field being decoded.
        field: &'static str,
        /// Bytes it needed.
        needed: usize,
        /// Bytes left in the payload.
        left: usize,
    },
    /// A string field is not UTF-8.
    InvalidUtf8 {
        /// The field being decoded.
        field: &'static str,
    },
    /// A field holds a value outside its domain (e.g. an option tag other than 0/1).
    InvalidValue {
        /// The field being decoded.
        field: &'static str,
        /// The offending value.
        value: u64,
    },
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic { found } => {
                write!(f, "bad frame magic {:#04x} {:#04x}", found[0], found[1])
            }
            Self::UnsupportedVersion { found } => write!(f, "unsupported protocol version {found}"),
            Self::TooLong { len } => write!(
                f,
                "frame payload of {len} bytes exceeds the maximum of {}",
                crate::frame::MAX_FRAME
            ),
            Self::PayloadTooLarge { len } => write!(
                f,
                "refusing to encode a payload of {len} bytes (maximum {})",
                crate::frame::MAX_FRAME
            ),
            Self::Truncated {
                field,
                needed,
                left,
            } => write!(
                f,
                "field `{field}` needs {needed} bytes but only {left} are left in the payload"
            ),
            Self::InvalidUtf8 { field } => write!(f, "field `{field}` is not valid UTF-8"),
            Self::InvalidValue { field, value } => {
                write!(f, "field `{field}` has invalid value {value}")
            }
        }
    }
}

impl core::error::Error for ProtoError {}
