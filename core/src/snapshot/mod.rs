//! A sandbox at one instant, as a value: the VM's snapshot plus what is needed
//! to check that a sandbox (or a fork's configuration) fits it: guest kind,
//! memory size, vCPUs, disks, command line. Cheap to clone (one `Arc`), and it
//! can be saved to a file and loaded back (format.rs, save.rs, load.rs): loading
//! checks every byte before anything uses it, and maps the memory image from
//! the file instead of copying it.

mod format;
mod load;
mod save;

pub use format::{FORMAT_VERSION, MAGIC};
pub use load::parse;

use crate::devices::virtio::state::DeviceState;
use crate::vmm::snapshot::clock::ClockState;
use crate::vmm::snapshot::irqchip::IrqchipState;
use crate::vmm::snapshot::pit::PitState;
use crate::vmm::snapshot::vcpu::VcpuState;
use crate::vmm::snapshot::VmSnapshot;
use std::path::PathBuf;
use std::sync::Arc;

/// The guest a snapshot was taken of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum GuestKind {
    /// The micro guest.
    Micro,
    /// A Linux guest.
    Linux,
}

impl GuestKind {
    /// Its number in a snapshot file's header.
    pub fn code(self) -> u32 {
        match self {
            GuestKind::Micro => 1,
            GuestKind::Linux => 2,
        }
    }

    /// The kind with header number `code`.
    pub fn from_code(code: u32) -> Option<GuestKind> {
        [GuestKind::Micro, GuestKind::Linux]
            .into_iter()
            .find(|k| k.code() == code)
    }

    /// Name for messages.
    pub fn name(self) -> &'static str {
        match self {
            GuestKind::Micro => "micro guest",
            GuestKind::Linux => "Linux guest",
        }
    }
}

/// A disk attached when the snapshot was taken. Disk contents are not part of a
/// snapshot: a fork opens the same path again (or an override) and its size must
/// match.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskRecord {
    /// The image it was opened from.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Attached read-only.
    pub read_only: bool,
}

/// What a snapshot was taken of.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotMeta {
    /// Guest RAM in bytes.
    pub mem_size: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Disks, in guest order.
    pub disks: Vec<DiskRecord>,
    /// The extra command-line words the guest was booted with.
    pub cmdline: String,
}

/// Errors saving or loading a snapshot file; each names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// The file could not be opened, read, written or mapped.
    #[error("{what} of snapshot file {path} failed: {source}")]
    Io {
        /// What was done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The host's error.
        source: std::io::Error,
    },
    /// The file ends before `what` does.
    #[error("snapshot file truncated: {what} needs {need} bytes, the file has {have}")]
    Truncated {
        /// The part cut off.
        what: &'static str,
        /// Bytes it needs.
        need: u64,
        /// Bytes there are.
        have: u64,
    },
    /// Not a snapshot file.
    #[error("not a snapshot file: magic {found:02x?}, expected {MAGIC:02x?}")]
    Magic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// Written by another layout version.
    #[error("snapshot file format version {found}, this build reads {FORMAT_VERSION}")]
    FormatVersion {
        /// Version in the file.
        found: u32,
    },
    /// A guest kind this build does not know.
    #[error("snapshot file names guest kind {found}, known kinds are 1 (micro) and 2 (Linux)")]
    GuestKind {
        /// Code in the file.
        found: u32,
    },
    /// More sections than any version writes.
    #[error(
        "snapshot file announces {count} sections, at most {} are read",
        format::MAX_SECTIONS
    )]
    SectionCount {
        /// Announced count.
        count: u32,
    },
    /// A section tag this build does not know.
    #[error("snapshot file has a section with unknown tag {tag}")]
    UnknownSection {
        /// The tag.
        tag: u32,
    },
    /// A section appears twice.
    #[error("snapshot file has two {tag} sections")]
    DuplicateSection {
        /// The section.
        tag: &'static str,
    },
    /// A required section is missing.
    #[error("snapshot file has no {tag} section")]
    MissingSection {
        /// The section.
        tag: &'static str,
    },
    /// A section of another layout version.
    #[error("{tag} section version {found}, this build reads {supported}")]
    SectionVersion {
        /// The section.
        tag: &'static str,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A section reaches outside the file (or into the header).
    #[error(
        "{tag} section at {offset} of {length} bytes lies outside the file's {file_len} bytes"
    )]
    SectionBounds {
        /// The section.
        tag: &'static str,
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
        /// The file's recorded length.
        file_len: u64,
    },
    /// The memory image does not start on a page boundary.
    #[error("memory image at offset {offset} is not page-aligned")]
    MemoryAlignment {
        /// Its offset.
        offset: u64,
    },
    /// A CRC-32 does not match.
    #[error(
        "snapshot file corrupt: {what} checksum is {computed:#010x}, the file says {stored:#010x}"
    )]
    Checksum {
        /// The part.
        what: &'static str,
        /// CRC in the file.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A section's contents do not decode.
    #[error("{tag} section does not decode: {reason}")]
    Decode {
        /// The section.
        tag: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The sections contradict each other or the layout versions inside.
    #[error("snapshot file inconsistent: {what} is {found}, expected {expected}")]
    Inconsistent {
        /// What differs.
        what: &'static str,
        /// Value found.
        found: u64,
        /// Value expected.
        expected: u64,
    },
    /// The file's length is not the one its header records.
    #[error("snapshot file is {have} bytes long, its header says {recorded}")]
    Length {
        /// Actual length.
        have: u64,
        /// Recorded length.
        recorded: u64,
    },
    /// The memory image's size is not the guest RAM size the metadata records.
    #[error("the memory image is {image} bytes, the metadata says {meta} bytes of RAM")]
    MemorySize {
        /// Image bytes.
        image: u64,
        /// Bytes in the metadata.
        meta: u64,
    },
}

/// The VM state section: every component but memory, in a fixed field order.
#[derive(serde::Serialize)]
struct VmStateRef<'a> {
    version: u32,
    vcpus: &'a [VcpuState],
    irqchip: &'a IrqchipState,
    pit: &'a Option<PitState>,
    clock: &'a ClockState,
    devices: &'a [DeviceState],
}

/// [`VmStateRef`] read back.
#[derive(serde::Deserialize)]
struct VmStateOwned {
    version: u32,
    vcpus: Vec<VcpuState>,
    irqchip: IrqchipState,
    pit: Option<PitState>,
    clock: ClockState,
    devices: Vec<DeviceState>,
}

struct Inner {
    guest: GuestKind,
    meta: SnapshotMeta,
    vm: VmSnapshot,
    /// Read from a file: its disk paths are somebody else's claim.
    from_file: bool,
}

/// A sandbox's snapshot: see the module notes. Clones share everything.
#[derive(Clone)]
pub struct SandboxSnapshot {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SandboxSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxSnapshot")
            .field("guest", &self.inner.guest)
            .field("meta", &self.inner.meta)
            .finish_non_exhaustive()
    }
}

impl SandboxSnapshot {
    /// Wraps a VM snapshot with what it was taken of.
    pub fn new(guest: GuestKind, meta: SnapshotMeta, vm: VmSnapshot) -> SandboxSnapshot {
        SandboxSnapshot {
            inner: Arc::new(Inner {
                guest,
                meta,
                vm,
                from_file: false,
            }),
        }
    }

    /// The guest kind.
    pub fn guest(&self) -> GuestKind {
        self.inner.guest
    }

    /// What it was taken of.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.inner.meta
    }

    /// The VM snapshot.
    pub fn vm(&self) -> &VmSnapshot {
        &self.inner.vm
    }

    /// Whether it was read from a file ([`SandboxSnapshot::load`]). Such a
    /// snapshot's disk paths are never opened on its word: a fork of it names
    /// its disks itself ([`crate::Sandbox::from_snapshot_disks`]).
    pub fn loaded_from_file(&self) -> bool {
        self.inner.from_file
    }

    /// A snapshot read from a file.
    pub(crate) fn loaded(guest: GuestKind, meta: SnapshotMeta, vm: VmSnapshot) -> SandboxSnapshot {
        SandboxSnapshot {
            inner: Arc::new(Inner {
                guest,
                meta,
                vm,
                from_file: true,
            }),
        }
    }

    /// Writes the snapshot to a new file at `path` (replacing one that exists).
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<(), SnapshotFileError> {
        save::save(self, path.as_ref())
    }

    /// Reads and checks a snapshot file; its memory image is mapped from the file,
    /// not copied (the file must not change while the snapshot or anything made
    /// from it lives).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<SandboxSnapshot, SnapshotFileError> {
        load::load(path.as_ref())
    }
}

#[cfg(any(test, feature = "test-utils"))]
pub mod sample;
#[cfg(test)]
mod tests;
