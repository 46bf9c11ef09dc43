//! The snapshot file's fixed-size parts: a header and a section table, both
//! little-endian and covered by one CRC-32, so that everything after them can be
//! located and checked before a byte of it is trusted. Each section has its own
//! tag, layout version, bounds and CRC-32. The memory section starts on a page
//! boundary so it can be mapped straight from the file.

use super::SnapshotFileError;

/// First bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"KVMSBSNP";
/// The file layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Header bytes (the section table follows at once).
pub const HEADER_LEN: usize = 64;
/// Bytes per section table entry.
pub const ENTRY_LEN: usize = 32;
/// At most this many sections (this version writes 3).
pub const MAX_SECTIONS: u32 = 16;
/// The memory image is aligned to this in the file.
pub const PAGE: u64 = 4096;

/// What a section holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// [`super::SnapshotMeta`], bincode.
    Meta,
    /// The VM's component states, bincode.
    VmState,
    /// Guest RAM, raw, page-aligned.
    Memory,
}

impl Tag {
    /// Every tag, each required exactly once.
    pub const ALL: [Tag; 3] = [Tag::Meta, Tag::VmState, Tag::Memory];

    /// Its number in the file.
    pub fn code(self) -> u32 {
        match self {
            Tag::Meta => 1,
            Tag::VmState => 2,
            Tag::Memory => 3,
        }
    }

    /// The layout version of the section this build writes and reads.
    pub fn version(self) -> u32 {
        1
    }

    /// Name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Tag::Meta => "metadata",
            Tag::VmState => "VM state",
            Tag::Memory => "memory image",
        }
    }

    fn from_code(code: u32) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| t.code() == code)
    }
}

/// One section table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    /// What it holds.
    pub tag: Tag,
    /// Its layout version.
    pub version: u32,
    /// Byte offset in the file.
    pub offset: u64,
    /// Byte length.
    pub length: u64,
    /// CRC-32 of its bytes.
    pub crc: u32,
}

/// The parsed header and section table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Guest kind code (see `super::GuestKind`).
    pub guest: u32,
    /// Total file length the writer produced.
    pub file_len: u64,
    /// The sections, in table order.
    pub sections: Vec<Section>,
}

impl Header {
    /// Bytes of header plus table.
    pub fn encoded_len(sections: usize) -> usize {
        HEADER_LEN + sections * ENTRY_LEN
    }

    /// Header and table as written to the file.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; Self::encoded_len(self.sections.len())];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.guest.to_le_bytes());
        b[16..20].copy_from_slice(&(self.sections.len() as u32).to_le_bytes());
        b[24..32].copy_from_slice(&self.file_len.to_le_bytes());
        for (i, s) in self.sections.iter().enumerate() {
            let e = &mut b[HEADER_LEN + i * ENTRY_LEN..][..ENTRY_LEN];
            e[0..4].copy_from_slice(&s.tag.code().to_le_bytes());
            e[4..8].copy_from_slice(&s.version.to_le_bytes());
            e[8..16].copy_from_slice(&s.offset.to_le_bytes());
            e[16..24].copy_from_slice(&s.length.to_le_bytes());
            e[24..28].copy_from_slice(&s.crc.to_le_bytes());
        }
        let crc = header_crc(&b);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The number of sections a file's first [`HEADER_LEN`] bytes announce, after
    /// checking magic and version.
    pub fn section_count(head: &[u8]) -> Result<u32, SnapshotFileError> {
        if head.len() < HEADER_LEN {
            return Err(SnapshotFileError::Truncated {
                what: "header",
                need: HEADER_LEN as u64,
                have: head.len() as u64,
            });
        }
        if head[0..8] != MAGIC {
            let mut found = [0u8; 8];
            found.copy_from_slice(&head[0..8]);
            return Err(SnapshotFileError::Magic { found });
        }
        let version = le32(head, 8);
        if version != FORMAT_VERSION {
            return Err(SnapshotFileError::FormatVersion { found: version });
        }
        let count = le32(head, 16);
        if count > MAX_SECTIONS {
            return Err(SnapshotFileError::SectionCount { count });
        }
        Ok(count)
    }

    /// Parses header plus table (`b` holds exactly that many bytes) and checks
    /// everything that needs no other byte of the file: checksum, known and unique
    /// tags, section versions, bounds within `file_len`, memory alignment.
    pub fn decode(b: &[u8]) -> Result<Header, SnapshotFileError> {
        let count = Self::section_count(b)? as usize;
        let need = Self::encoded_len(count);
        if b.len() < need {
            return Err(SnapshotFileError::Truncated {
                what: "section table",
                need: need as u64,
                have: b.len() as u64,
            });
        }
        let b = &b[..need];
        let (stored, computed) = (le32(b, 20), header_crc(b));
        if stored != computed {
            return Err(SnapshotFileError::Checksum {
                what: "header",
                stored,
                computed,
            });
        }
        let file_len = le64(b, 24);
        let mut sections: Vec<Section> = Vec::with_capacity(count);
        for i in 0..count {
            let e = &b[HEADER_LEN + i * ENTRY_LEN..][..ENTRY_LEN];
            let code = le32(e, 0);
            let tag =
                Tag::from_code(code).ok_or(SnapshotFileError::UnknownSection { tag: code })?;
            if sections.iter().any(|s| s.tag == tag) {
                return Err(SnapshotFileError::DuplicateSection { tag: tag.name() });
            }
            let s = Section {
                tag,
                version: le32(e, 4),
                offset: le64(e, 8),
                length: le64(e, 16),
                crc: le32(e, 24),
            };
            if s.version != tag.version() {
                return Err(SnapshotFileError::SectionVersion {
                    tag: tag.name(),
                    found: s.version,
                    supported: tag.version(),
                });
            }
            if tag == Tag::Memory && !s.offset.is_multiple_of(PAGE) {
                return Err(SnapshotFileError::MemoryAlignment { offset: s.offset });
            }
            let end = s.offset.checked_add(s.length);
            if s.offset < need as u64 || end.is_none_or(|e| e > file_len) {
                return Err(SnapshotFileError::SectionBounds {
                    tag: tag.name(),
                    offset: s.offset,
                    length: s.length,
                    file_len,
                });
            }
            sections.push(s);
        }
        if let Some(t) = Tag::ALL
            .iter()
            .find(|t| !sections.iter().any(|s| s.tag == **t))
        {
            return Err(SnapshotFileError::MissingSection { tag: t.name() });
        }
        Ok(Header {
            guest: le32(b, 12),
            file_len,
            sections,
        })
    }

    /// The section with `tag` (present: [`Header::decode`] checked).
    pub fn section(&self, tag: Tag) -> Option<Section> {
        self.sections.iter().copied().find(|s| s.tag == tag)
    }
}

/// CRC-32 of header plus table with the checksum field itself left out.
fn header_crc(b: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[..20]);
    h.update(&b[24..]);
    h.finalize()
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
