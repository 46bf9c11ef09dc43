//! What `Stat` and `ListDir` say about one file: the fields every face shows
//! (E2B-like `EntryInfo`), nothing platform-specific beyond the mode bits.

use alloc::string::String;

use crate::error::ProtoError;
use crate::msg::{Reader, Writer};

/// The type of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only when not followed).
    Symlink,
    /// Anything else (device, FIFO, socket), or a kind a newer peer added.
    Other,
}

impl FileKind {
    fn to_u8(self) -> u8 {
        match self {
            Self::File => 1,
            Self::Dir => 2,
            Self::Symlink => 3,
            Self::Other => 4,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::File,
            2 => Self::Dir,
            3 => Self::Symlink,
            _ => Self::Other,
        }
    }
}

/// One file's description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// The entry's name (for `Stat`: the last component of the path asked about).
    pub name: String,
    /// Its type.
    pub kind: FileKind,
    /// Size in bytes (for a link: the length of its target).
    pub size: u64,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Last modification, seconds since the Unix epoch (may be negative).
    pub mtime_sec: i64,
    /// Nanoseconds within that second.
    pub mtime_nsec: u32,
    /// A symbolic link's target.
    pub link_target: Option<String>,
}

impl FileStat {
    /// The fewest bytes one entry takes on the wire (bounds list counts).
    pub(crate) const MIN_ENCODED: usize = 4 + 1 + 8 + 4 + 8 + 4 + 1;

    pub(crate) fn encode(&self, w: &mut Writer<'_>) {
        w.str(&self.name);
        w.u8(self.kind.to_u8());
        w.u64(self.size);
        w.u32(self.mode);
        w.i64(self.mtime_sec);
        w.u32(self.mtime_nsec);
        w.opt_str(self.link_target.as_deref());
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<FileStat, ProtoError> {
        Ok(FileStat {
            name: r.string("file_stat.name")?,
            kind: FileKind::from_u8(r.u8("file_stat.kind")?),
            size: r.u64("file_stat.size")?,
            mode: r.u32("file_stat.mode")?,
            mtime_sec: r.i64("file_stat.mtime_sec")?,
            mtime_nsec: r.u32("file_stat.mtime_nsec")?,
            link_target: r.opt_string("file_stat.link_target")?,
        })
    }
}
