//! Writing a snapshot file: metadata and VM state (bincode, bounded), then the
//! memory image at the next page boundary, written sparse (all-zero pages stay
//! holes), then the header and table with every checksum. The file is written
//! beside `path` and renamed over it at the end: a snapshot loaded from the old
//! file maps it, and must never see it rewritten underneath.

use super::format::{Header, Section, Tag, PAGE};
use super::{SandboxSnapshot, SnapshotFileError, VmStateRef};
use bincode::Options as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The metadata section is at most this long (paths and a command line).
pub(super) const MAX_META: u64 = 1 << 20;
/// The VM state section is at most this long (16 vCPUs take ~150 KiB).
pub(super) const MAX_STATE: u64 = 8 << 20;
/// The memory image is copied through a buffer of this size.
pub(super) const CHUNK: usize = 1 << 20;

/// The bincode settings of both sections (varint integers, a size limit).
pub(super) fn codec(limit: u64) -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_limit(limit)
        .reject_trailing_bytes()
}

fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SnapshotFileError + 'a {
    move |source| SnapshotFileError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn encode<T: serde::Serialize>(tag: Tag, v: &T, limit: u64) -> Result<Vec<u8>, SnapshotFileError> {
    codec(limit)
        .serialize(v)
        .map_err(|e| SnapshotFileError::Decode {
            tag: tag.name(),
            reason: format!("cannot encode: {e}"),
        })
}

/// See the module notes.
pub(super) fn save(snap: &SandboxSnapshot, path: &Path) -> Result<(), SnapshotFileError> {
    let vm = snap.vm();
    let meta = encode(Tag::Meta, snap.meta(), MAX_META)?;
    let state = encode(
        Tag::VmState,
        &VmStateRef {
            version: vm.version,
            vcpus: &vm.vcpus,
            irqchip: &vm.irqchip,
            pit: &vm.pit,
            clock: &vm.clock,
            devices: &vm.devices,
        },
        MAX_STATE,
    )?;
    let mem_len = vm.memory.size();
    if mem_len != snap.meta().mem_size {
        return Err(SnapshotFileError::MemorySize {
            image: mem_len,
            meta: snap.meta().mem_size,
        });
    }
    let meta_off = Header::encoded_len(Tag::ALL.len()) as u64;
    let state_off = meta_off + meta.len() as u64;
    let mem_off = (state_off + state.len() as u64).div_ceil(PAGE) * PAGE;
    let file_len = mem_off + mem_len;

    let tmp = temp_path(path);
    let file = File::create(&tmp).map_err(io("creating", &tmp))?;
    let r = (|| {
        file.set_len(file_len).map_err(io("sizing", &tmp))?;
        file.write_all_at(&meta, meta_off)
            .map_err(io("writing metadata to", &tmp))?;
        file.write_all_at(&state, state_off)
            .map_err(io("writing VM state to", &tmp))?;
        let mem_crc = copy_memory(snap, &file, mem_off, &tmp)?;
        let section = |tag: Tag, offset: u64, length: u64, crc: u32| Section {
            tag,
            version: tag.version(),
            offset,
            length,
            crc,
        };
        let header = Header {
            guest: snap.guest().code(),
            file_len,
            sections: vec![
                section(
                    Tag::Meta,
                    meta_off,
                    meta.len() as u64,
                    crc32fast::hash(&meta),
                ),
                section(
                    Tag::VmState,
                    state_off,
                    state.len() as u64,
                    crc32fast::hash(&state),
                ),
                section(Tag::Memory, mem_off, mem_len, mem_crc),
            ],
        };
        file.write_all_at(&header.encode(), 0)
            .map_err(io("writing the header of", &tmp))?;
        file.sync_all().map_err(io("syncing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("renaming into place", path))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// `path` with a suffix naming this process, in the same directory.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Copies the image into `file` at `at`, skipping all-zero pages; returns its CRC.
fn copy_memory(
    snap: &SandboxSnapshot,
    file: &File,
    at: u64,
    path: &Path,
) -> Result<u32, SnapshotFileError> {
    let mem = &snap.vm().memory;
    let (src, base, len) = (mem.file(), mem.offset(), mem.size());
    let mut buf = vec![0u8; CHUNK];
    let mut crc = crc32fast::Hasher::new();
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        src.read_exact_at(&mut buf[..n], base + off)
            .map_err(|source| SnapshotFileError::Io {
                what: "reading the memory image for",
                path: path.to_path_buf(),
                source,
            })?;
        crc.update(&buf[..n]);
        for (i, page) in buf[..n].chunks(PAGE as usize).enumerate() {
            if page.iter().any(|&b| b != 0) {
                let o = at + off + (i as u64) * PAGE;
                file.write_all_at(page, o)
                    .map_err(io("writing the memory image to", path))?;
            }
        }
        off += n as u64;
    }
    Ok(crc.finalize())
}
