//! Preopened directories of a WASM run on the wire.
//!
//! `RunWasm`'s [`WasmFs`] names the directories (guest path, read-only or
//! not), the caps of the guest's in-memory tree, and the length of the
//! *image* of their contents, which follows the module's bytes in the same
//! `Data` frames (so no frame grows with the files). After the run, an
//! agent that was given a writable directory sends the image of the
//! writable directories' contents as `Data` frames and a `DataEnd` before
//! the final message.
//!
//! An image is a sequence of records, each: u32 directory index, u8
//! [`EntryKind`], u32 path length, the path (relative, UTF-8 not required),
//! u64 data length, the data (file bytes, symlink target, or for
//! [`EntryKind::Unchanged`] the path the file was loaded from). Decoding
//! borrows from the image, checks every length against what is left and
//! never allocates from a length.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::ProtoError;

/// Most directories one run may have.
pub const MAX_DIRS: usize = 64;
/// Longest path in an image record or a guest path.
pub const MAX_PATH: usize = 4096;

/// One preopened directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmDirSpec {
    /// The path the module sees, e.g. `/data`.
    pub guest_path: String,
    /// The module may not change it.
    pub read_only: bool,
}

/// The file system part of a `RunWasm`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmFs {
    /// The directories, preopened as fds 3, 4, ... in order.
    pub dirs: Vec<WasmDirSpec>,
    /// Bytes of the contents image that follow the module.
    pub image_len: u64,
    /// Cap on the tree's bytes (contents, names, link targets); `None`:
    /// the agent's default.
    pub max_bytes: Option<u64>,
    /// Cap on the tree's inodes; `None`: the agent's default.
    pub max_inodes: Option<u64>,
}

/// What an image record is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory (no data).
    Dir,
    /// A regular file; data: its bytes.
    File,
    /// A symbolic link; data: its target.
    Symlink,
    /// (Results only) a file the module did not change; data: the path it
    /// was loaded from.
    Unchanged,
}

impl EntryKind {
    fn to_u8(self) -> u8 {
        match self {
            Self::Dir => 0,
            Self::File => 1,
            Self::Symlink => 2,
            Self::Unchanged => 3,
        }
    }

    fn from_u8(v: u8) -> Result<Self, ProtoError> {
        Ok(match v {
            0 => Self::Dir,
            1 => Self::File,
            2 => Self::Symlink,
            3 => Self::Unchanged,
            _ => {
                return Err(ProtoError::InvalidValue {
                    field: "image.kind",
                    value: u64::from(v),
                })
            }
        })
    }
}

/// One record of an image, borrowing its bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ImageEntry<'a> {
    /// Index into [`WasmFs::dirs`].
    pub dir: u32,
    /// What it is.
    pub kind: EntryKind,
    /// Path relative to the directory.
    pub path: &'a [u8],
    /// File bytes, link target or origin path.
    pub data: &'a [u8],
}

impl ImageEntry<'_> {
    /// Bytes this record takes in an image.
    pub fn encoded_len(&self) -> usize {
        4 + 1 + 4 + self.path.len() + 8 + self.data.len()
    }

    /// Appends the record to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dir.to_le_bytes());
        out.push(self.kind.to_u8());
        out.extend_from_slice(&(self.path.len() as u32).to_le_bytes());
        out.extend_from_slice(self.path);
        out.extend_from_slice(&(self.data.len() as u64).to_le_bytes());
        out.extend_from_slice(self.data);
    }
}

fn take<'a>(buf: &mut &'a [u8], n: u64, field: &'static str) -> Result<&'a [u8], ProtoError> {
    let left = buf.len();
    let n = usize::try_from(n)
        .ok()
        .filter(|n| *n <= left)
        .ok_or(ProtoError::Truncated {
            field,
            needed: usize::try_from(n).unwrap_or(usize::MAX),
            left,
        })?;
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn u32_at(buf: &mut &[u8], field: &'static str) -> Result<u32, ProtoError> {
    let bytes = take(buf, 4, field)?;
    Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn u64_at(buf: &mut &[u8], field: &'static str) -> Result<u64, ProtoError> {
    let mut out = [0u8; 8];
    out.copy_from_slice(take(buf, 8, field)?);
    Ok(u64::from_le_bytes(out))
}

/// The records of `image`, in order, for `dirs` directories.
pub fn decode_image(image: &[u8], dirs: usize) -> Result<Vec<ImageEntry<'_>>, ProtoError> {
    let mut buf = image;
    let mut out = Vec::new();
    while !buf.is_empty() {
        let dir = u32_at(&mut buf, "image.dir")?;
        if dir as usize >= dirs {
            return Err(ProtoError::InvalidValue {
                field: "image.dir",
                value: u64::from(dir),
            });
        }
        let kind = EntryKind::from_u8(take(&mut buf, 1, "image.kind")?[0])?;
        let path_len = u32_at(&mut buf, "image.path")?;
        if path_len as usize > MAX_PATH {
            return Err(ProtoError::InvalidValue {
                field: "image.path",
                value: u64::from(path_len),
            });
        }
        let path = take(&mut buf, u64::from(path_len), "image.path")?;
        let data_len = u64_at(&mut buf, "image.data")?;
        let data = take(&mut buf, data_len, "image.data")?;
        out.push(ImageEntry {
            dir,
            kind,
            path,
            data,
        });
    }
    Ok(out)
}

impl WasmFs {
    /// The encoded form (carried as one bytes field of `RunWasm`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.dirs.len() as u32).to_le_bytes());
        for dir in &self.dirs {
            out.extend_from_slice(&(dir.guest_path.len() as u32).to_le_bytes());
            out.extend_from_slice(dir.guest_path.as_bytes());
            out.push(u8::from(dir.read_only));
        }
        out.extend_from_slice(&self.image_len.to_le_bytes());
        for cap in [self.max_bytes, self.max_inodes] {
            match cap {
                Some(v) => {
                    out.push(1);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                None => out.push(0),
            }
        }
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes)' form; trailing bytes are
    /// ignored (room to grow).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtoError> {
        let mut buf = bytes;
        let count = u32_at(&mut buf, "wasm_fs.dirs")? as usize;
        if count > MAX_DIRS {
            return Err(ProtoError::InvalidValue {
                field: "wasm_fs.dirs",
                value: count as u64,
            });
        }
        let mut dirs = Vec::new();
        for _ in 0..count {
            let len = u32_at(&mut buf, "wasm_fs.guest_path")?;
            if len as usize > MAX_PATH {
                return Err(ProtoError::InvalidValue {
                    field: "wasm_fs.guest_path",
                    value: u64::from(len),
                });
            }
            let raw = take(&mut buf, u64::from(len), "wasm_fs.guest_path")?;
            let guest_path = core::str::from_utf8(raw)
                .map_err(|_| ProtoError::InvalidUtf8 {
                    field: "wasm_fs.guest_path",
                })?
                .into();
            let read_only = match take(&mut buf, 1, "wasm_fs.read_only")?[0] {
                0 => false,
                1 => true,
                v => {
                    return Err(ProtoError::InvalidValue {
                        field: "wasm_fs.read_only",
                        value: u64::from(v),
                    })
                }
            };
            dirs.push(WasmDirSpec {
                guest_path,
                read_only,
            });
        }
        let image_len = u64_at(&mut buf, "wasm_fs.image_len")?;
        let mut caps = [None, None];
        for cap in &mut caps {
            *cap = match take(&mut buf, 1, "wasm_fs.cap")?[0] {
                0 => None,
                1 => Some(u64_at(&mut buf, "wasm_fs.cap")?),
                v => {
                    return Err(ProtoError::InvalidValue {
                        field: "wasm_fs.cap",
                        value: u64::from(v),
                    })
                }
            };
        }
        Ok(WasmFs {
            dirs,
            image_len,
            max_bytes: caps[0],
            max_inodes: caps[1],
        })
    }

    /// Whether the agent sends an image back (some directory is writable).
    pub fn returns_image(&self) -> bool {
        self.dirs.iter().any(|dir| !dir.read_only)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_round_trips_and_bad_values_are_errors() {
        let fs = WasmFs {
            dirs: alloc::vec![
                WasmDirSpec {
                    guest_path: "/data".into(),
                    read_only: true,
                },
                WasmDirSpec {
                    guest_path: "/out".into(),
                    read_only: false,
                },
            ],
            image_len: 1234,
            max_bytes: Some(1 << 20),
            max_inodes: None,
        };
        let bytes = fs.to_bytes();
        assert_eq!(WasmFs::from_bytes(&bytes), Ok(fs.clone()));
        assert!(fs.returns_image());
        for cut in 0..bytes.len() {
            assert!(WasmFs::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut many = bytes.clone();
        many[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            WasmFs::from_bytes(&many),
            Err(ProtoError::InvalidValue { .. })
        ));
    }

    #[test]
    fn image_round_trips_and_lengths_are_checked() {
        let entries = [
            ImageEntry {
                dir: 0,
                kind: EntryKind::Dir,
                path: b"sub",
                data: b"",
            },
            ImageEntry {
                dir: 1,
                kind: EntryKind::File,
                path: b"sub/f",
                data: b"hello",
            },
        ];
        let mut image = Vec::new();
        for entry in &entries {
            entry.encode(&mut image);
        }
        assert_eq!(
            image.len(),
            entries.iter().map(ImageEntry::encoded_len).sum::<usize>()
        );
        assert_eq!(decode_image(&image, 2).unwrap(), entries);
        assert!(
            decode_image(&image, 1).is_err(),
            "directory index out of range"
        );
        for cut in 1..image.len() {
            if cut == entries[0].encoded_len() {
                continue; // a whole first record is a valid image
            }
            assert!(decode_image(&image[..cut], 2).is_err(), "cut at {cut}");
        }
        // A data length of u64::MAX is refused, not allocated.
        let mut huge = Vec::new();
        ImageEntry {
            dir: 0,
            kind: EntryKind::File,
            path: b"f",
            data: b"",
        }
        .encode(&mut huge);
        let at = huge.len() - 8;
        huge[at..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_image(&huge, 1),
            Err(ProtoError::Truncated { .. })
        ));
    }
}
