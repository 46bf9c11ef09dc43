//! Reading a snapshot file. Everything is checked before anything is built:
//! length, header and table (format.rs), each section's bounds and CRC-32 (the
//! memory image too, read once through the page cache), the decoded state's
//! layout versions and its agreement with the metadata. Only then is the memory
//! image mapped: the snapshot keeps the file open read-only and VMs map it
//! `MAP_PRIVATE`, so RAM pages are shared with the page cache until a guest
//! writes them. Nothing copies the image; in exchange the file must not change
//! while it is in use (`save` never rewrites a file in place, it renames a new
//! one over it, so saving to the same path is safe).

use super::format::{Header, Section, Tag, HEADER_LEN, PAGE};
use super::save::{codec, CHUNK, MAX_META, MAX_STATE};
use super::{GuestKind, SandboxSnapshot, SnapshotFileError, SnapshotMeta, VmStateOwned};
use crate::vmm::snapshot::memory::MemorySnapshot;
use crate::vmm::snapshot::{clock, irqchip, pit, vcpu, VmSnapshot, VM_SNAPSHOT_VERSION};
use bincode::Options as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Reads `buf.len()` bytes at an offset of the source.
type ReadAt<'a> = dyn Fn(&mut [u8], u64) -> std::io::Result<()> + 'a;

/// What a file holds, checked; the memory image is left where it is.
struct Parsed {
    guest: GuestKind,
    meta: SnapshotMeta,
    state: VmStateOwned,
    memory: Section,
}

/// Checks a whole snapshot file held in memory (what the fuzz target drives):
/// the same checks as [`SandboxSnapshot::load`], without mapping anything.
pub fn parse(bytes: &[u8]) -> Result<(GuestKind, SnapshotMeta), SnapshotFileError> {
    let read = |buf: &mut [u8], at: u64| -> std::io::Result<()> {
        let src = usize::try_from(at)
            .ok()
            .and_then(|a| bytes.get(a..a.checked_add(buf.len())?))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    };
    let p = check(&read, bytes.len() as u64, Path::new("<memory>"))?;
    Ok((p.guest, p.meta))
}

pub(super) fn load(path: &Path) -> Result<SandboxSnapshot, SnapshotFileError> {
    let io = |what: &'static str| {
        move |source| SnapshotFileError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let file = File::open(path).map_err(io("opening"))?;
    let len = file.metadata().map_err(io("stat"))?.len();
    let p = check(&|b, at| file.read_exact_at(b, at), len, path)?;
    let vm = VmSnapshot {
        version: p.state.version,
        memory: Arc::new(MemorySnapshot::from_file(
            file,
            p.memory.offset,
            p.memory.length,
        )),
        vcpus: p.state.vcpus,
        irqchip: p.state.irqchip,
        pit: p.state.pit,
        clock: p.state.clock,
        devices: p.state.devices,
    };
    Ok(SandboxSnapshot::loaded(p.guest, p.meta, vm))
}

fn check(read: &ReadAt<'_>, len: u64, path: &Path) -> Result<Parsed, SnapshotFileError> {
    let io = |what: &'static str| {
        move |source| SnapshotFileError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut head = vec![0u8; (HEADER_LEN as u64).min(len) as usize];
    read(&mut head, 0).map_err(io("reading the header of"))?;
    let count = Header::section_count(&head)? as usize;
    let table_len = Header::encoded_len(count) as u64;
    if len < table_len {
        return Err(SnapshotFileError::Truncated {
            what: "section table",
            need: table_len,
            have: len,
        });
    }
    let mut table = vec![0u8; table_len as usize];
    read(&mut table, 0).map_err(io("reading the section table of"))?;
    let header = Header::decode(&table)?;
    if len < header.file_len {
        return Err(SnapshotFileError::Truncated {
            what: "file",
            need: header.file_len,
            have: len,
        });
    }
    if len != header.file_len {
        return Err(SnapshotFileError::Length {
            have: len,
            recorded: header.file_len,
        });
    }
    let guest = GuestKind::from_code(header.guest).ok_or(SnapshotFileError::GuestKind {
        found: header.guest,
    })?;
    let section = |tag| {
        header
            .section(tag)
            .ok_or(SnapshotFileError::MissingSection { tag: tag.name() })
    };
    let meta: SnapshotMeta = decode(read, section(Tag::Meta)?, MAX_META, path)?;
    let state: VmStateOwned = decode(read, section(Tag::VmState)?, MAX_STATE, path)?;
    let memory = section(Tag::Memory)?;
    consistent(&meta, &state, memory)?;
    let computed = memory_crc(read, memory, path)?;
    if computed != memory.crc {
        return Err(SnapshotFileError::Checksum {
            what: Tag::Memory.name(),
            stored: memory.crc,
            computed,
        });
    }
    Ok(Parsed {
        guest,
        meta,
        state,
        memory,
    })
}

/// Reads a section (bounded by `limit`), checks its CRC and decodes it.
fn decode<T: serde::de::DeserializeOwned>(
    read: &ReadAt<'_>,
    s: Section,
    limit: u64,
    path: &Path,
) -> Result<T, SnapshotFileError> {
    let bad = |reason: String| SnapshotFileError::Decode {
        tag: s.tag.name(),
        reason,
    };
    if s.length > limit {
        return Err(bad(format!("{} bytes, at most {limit} are read", s.length)));
    }
    let mut b = vec![0u8; s.length as usize];
    read(&mut b, s.offset).map_err(|source| SnapshotFileError::Io {
        what: "reading a section of",
        path: path.to_path_buf(),
        source,
    })?;
    let computed = crc32fast::hash(&b);
    if computed != s.crc {
        return Err(SnapshotFileError::Checksum {
            what: s.tag.name(),
            stored: s.crc,
            computed,
        });
    }
    codec(limit).deserialize(&b).map_err(|e| bad(e.to_string()))
}

/// The state's layout versions are this build's and it agrees with the metadata.
fn consistent(
    meta: &SnapshotMeta,
    state: &VmStateOwned,
    memory: Section,
) -> Result<(), SnapshotFileError> {
    let expect = |what, found: u64, expected: u64| {
        if found == expected {
            Ok(())
        } else {
            Err(SnapshotFileError::Inconsistent {
                what,
                found,
                expected,
            })
        }
    };
    expect(
        "VM snapshot version",
        state.version.into(),
        VM_SNAPSHOT_VERSION.into(),
    )?;
    expect("vCPU states", state.vcpus.len() as u64, meta.vcpus.into())?;
    for v in &state.vcpus {
        expect(
            "vCPU state version",
            v.version.into(),
            vcpu::VCPU_STATE_VERSION.into(),
        )?;
    }
    expect(
        "irqchip state version",
        state.irqchip.version.into(),
        irqchip::IRQCHIP_STATE_VERSION.into(),
    )?;
    if let Some(p) = &state.pit {
        expect(
            "PIT state version",
            p.version.into(),
            pit::PIT_STATE_VERSION.into(),
        )?;
    }
    expect(
        "clock state version",
        state.clock.version.into(),
        clock::CLOCK_STATE_VERSION.into(),
    )?;
    // Bounded before the memory checksum reads the image: a file claiming a
    // huge sparse image is refused at once, not after minutes of reading.
    let at_most = |what, found: u64, max: u64| {
        if found <= max {
            Ok(())
        } else {
            Err(SnapshotFileError::Inconsistent {
                what,
                found,
                expected: max,
            })
        }
    };
    at_most(
        "memory size (at most)",
        meta.mem_size,
        crate::vmm::layout::MAX_MEM_SIZE,
    )?;
    at_most(
        "vCPU count (at most)",
        meta.vcpus.into(),
        crate::vmm::layout::MAX_VCPUS.into(),
    )?;
    expect("memory size modulo the page size", meta.mem_size % PAGE, 0)?;
    if meta.mem_size == 0 {
        return Err(SnapshotFileError::Inconsistent {
            what: "memory size",
            found: 0,
            expected: PAGE,
        });
    }
    if memory.length != meta.mem_size {
        return Err(SnapshotFileError::MemorySize {
            image: memory.length,
            meta: meta.mem_size,
        });
    }
    Ok(())
}

fn memory_crc(read: &ReadAt<'_>, s: Section, path: &Path) -> Result<u32, SnapshotFileError> {
    let mut buf = vec![0u8; CHUNK.min(s.length as usize)];
    let mut crc = crc32fast::Hasher::new();
    let mut off = 0u64;
    while off < s.length {
        let n = (s.length - off).min(CHUNK as u64) as usize;
        read(&mut buf[..n], s.offset + off).map_err(|source| SnapshotFileError::Io {
            what: "reading the memory image of",
            path: path.to_path_buf(),
            source,
        })?;
        crc.update(&buf[..n]);
        off += n as u64;
    }
    Ok(crc.finalize())
}
