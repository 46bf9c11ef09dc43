//! Directories for a WASM module: what the caller hands in (files as bytes,
//! or a host directory copied in up front) and what comes back after the
//! run. The guest gets a copy in its own memory, never a window onto the
//! host's file system; the result is data, which [`WasmDirOutput::write_to`]
//! can put in a host directory the caller names.
//!
//! A host directory is copied with bounds (total bytes, entries) and
//! without following symlinks (a symlink is copied as a symlink, so nothing
//! outside the directory is read). Writing a result back trusts nothing in
//! it: paths must be plain relative paths, and an entry is only written
//! beneath directories this same write created.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use kvmsandbox_proto::wasmfs::{self, EntryKind, ImageEntry, WasmDirSpec, WasmFs};
use kvmsandbox_proto::ProtoError;

/// Default cap on what [`WasmDir::from_host`] copies in, in bytes.
pub const DEFAULT_MAX_COPY: u64 = 64 << 20;
/// Most entries [`WasmDir::from_host`] copies in.
pub const MAX_COPY_ENTRIES: usize = 65_536;

/// One item of a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmFile {
    /// Path relative to the directory, `/`-separated.
    pub path: String,
    /// What it is.
    pub kind: WasmFileKind,
}

/// What an item is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WasmFileKind {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(String),
}

/// A directory to preopen for the module.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmDir {
    /// The path the module sees, e.g. `/data`.
    pub guest_path: String,
    /// Refuse every change (the module gets `EROFS`).
    pub read_only: bool,
    /// Its contents (parents before children, or made on the way).
    pub files: Vec<WasmFile>,
}

/// Caps on the guest's in-memory tree for one run (the contents handed in
/// count too); `None`: the agent's defaults (64 MiB, 65 536 inodes, and at
/// most a quarter of the guest's free heap).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmFsLimits {
    /// Most bytes: contents, names and link targets.
    pub max_bytes: Option<u64>,
    /// Most files, directories and symlinks.
    pub max_inodes: Option<u64>,
}

/// A writable directory's contents after the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmDirOutput {
    /// The guest path it was preopened at.
    pub guest_path: String,
    /// Everything in it now, parents before children.
    pub files: Vec<WasmFile>,
}

/// Why a directory could not be copied in or written out.
#[derive(Debug, thiserror::Error)]
pub enum WasmDirError {
    /// Reading or writing the host directory failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The host path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The host directory holds more than the cap.
    #[error("{path} holds more than {limit} {unit}")]
    TooBig {
        /// The host directory.
        path: PathBuf,
        /// The cap.
        limit: u64,
        /// `bytes` or `entries`.
        unit: &'static str,
    },
    /// A name that is not UTF-8 (paths travel as UTF-8 strings).
    #[error("{path} has a name that is not UTF-8")]
    NotUtf8 {
        /// The host path.
        path: PathBuf,
    },
    /// A result entry whose path is not a plain relative path, or that is
    /// not beneath a directory of the same result.
    #[error("result entry {path:?} is not a relative path beneath the directory")]
    BadPath {
        /// The path as given.
        path: String,
    },
}

fn io_error<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> WasmDirError + 'p {
    move |source| WasmDirError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl WasmDir {
    /// A directory with no contents at `guest_path`.
    pub fn new(guest_path: impl Into<String>, read_only: bool) -> Self {
        WasmDir {
            guest_path: guest_path.into(),
            read_only,
            files: Vec::new(),
        }
    }

    /// Adds a file with these bytes (its parent directories are made).
    pub fn with_file(mut self, path: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push(WasmFile {
            path: path.into(),
            kind: WasmFileKind::File(bytes.into()),
        });
        self
    }

    /// A copy of host directory `host` (at most `max_bytes` of contents and
    /// [`MAX_COPY_ENTRIES`] entries; symlinks copied, not followed).
    pub fn from_host(
        guest_path: impl Into<String>,
        host: impl AsRef<Path>,
        read_only: bool,
        max_bytes: u64,
    ) -> Result<Self, WasmDirError> {
        let host = host.as_ref();
        let mut dir = WasmDir::new(guest_path, read_only);
        let mut bytes = 0u64;
        copy_in(host, host, "", &mut dir.files, &mut bytes, max_bytes)?;
        Ok(dir)
    }
}

fn copy_in(
    top: &Path,
    dir: &Path,
    prefix: &str,
    out: &mut Vec<WasmFile>,
    bytes: &mut u64,
    max_bytes: u64,
) -> Result<(), WasmDirError> {
    let mut names: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io_error("reading directory", dir))?
        .collect::<Result<_, _>>()
        .map_err(io_error("reading directory", dir))?;
    names.sort_by_key(fs::DirEntry::file_name);
    for entry in names {
        let host_path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| WasmDirError::NotUtf8 {
                path: host_path.clone(),
            })?;
        let path = format!("{prefix}{name}");
        if out.len() >= MAX_COPY_ENTRIES {
            return Err(WasmDirError::TooBig {
                path: top.to_path_buf(),
                limit: MAX_COPY_ENTRIES as u64,
                unit: "entries",
            });
        }
        let meta = fs::symlink_metadata(&host_path).map_err(io_error("inspecting", &host_path))?;
        let mut charge = |n: u64| {
            *bytes = bytes.saturating_add(n);
            if *bytes > max_bytes {
                Err(WasmDirError::TooBig {
                    path: top.to_path_buf(),
                    limit: max_bytes,
                    unit: "bytes",
                })
            } else {
                Ok(())
            }
        };
        charge(path.len() as u64)?;
        let kind = if meta.file_type().is_symlink() {
            let target = fs::read_link(&host_path).map_err(io_error("reading link", &host_path))?;
            let target =
                target
                    .into_os_string()
                    .into_string()
                    .map_err(|_| WasmDirError::NotUtf8 {
                        path: host_path.clone(),
                    })?;
            charge(target.len() as u64)?;
            WasmFileKind::Symlink(target)
        } else if meta.is_dir() {
            out.push(WasmFile {
                path: path.clone(),
                kind: WasmFileKind::Dir,
            });
            copy_in(top, &host_path, &format!("{path}/"), out, bytes, max_bytes)?;
            continue;
        } else if meta.is_file() {
            charge(meta.len())?;
            // Read at most what the cap allows, even if the file grows meanwhile.
            let mut data = Vec::new();
            let file = fs::File::open(&host_path).map_err(io_error("opening", &host_path))?;
            io::Read::read_to_end(&mut io::Read::take(file, meta.len()), &mut data)
                .map_err(io_error("reading", &host_path))?;
            WasmFileKind::File(data)
        } else {
            continue; // sockets, fifos, devices: not copied
        };
        out.push(WasmFile { path, kind });
    }
    Ok(())
}

/// The wire form of `dirs`: the `WasmFs` field and the contents image.
pub(crate) fn encode(dirs: &[WasmDir], limits: WasmFsLimits) -> (WasmFs, Vec<u8>) {
    let mut image = Vec::new();
    for (index, dir) in dirs.iter().enumerate() {
        for file in &dir.files {
            let (kind, data): (EntryKind, &[u8]) = match &file.kind {
                WasmFileKind::Dir => (EntryKind::Dir, b""),
                WasmFileKind::File(bytes) => (EntryKind::File, bytes),
                WasmFileKind::Symlink(target) => (EntryKind::Symlink, target.as_bytes()),
            };
            ImageEntry {
                dir: index as u32,
                kind,
                path: file.path.as_bytes(),
                data,
            }
            .encode(&mut image);
        }
    }
    let fs = WasmFs {
        dirs: dirs
            .iter()
            .map(|dir| WasmDirSpec {
                guest_path: dir.guest_path.clone(),
                read_only: dir.read_only,
            })
            .collect(),
        image_len: image.len() as u64,
        max_bytes: limits.max_bytes,
        max_inodes: limits.max_inodes,
    };
    (fs, image)
}

fn utf8(bytes: &[u8], field: &'static str) -> Result<String, ProtoError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtoError::InvalidUtf8 { field })
}

/// The tree's caps as the host bounds what comes back: `limits`, or the
/// guest's defaults (64 MiB, 65 536 inodes), and never past 4 GiB / 16 Mi
/// inodes whatever a caller asked (more than any guest's RAM holds).
pub(crate) fn tree_caps(limits: WasmFsLimits) -> (u64, u64) {
    (
        limits.max_bytes.unwrap_or(64 << 20).min(4 << 30),
        limits.max_inodes.unwrap_or(65_536).min(16 << 20),
    )
}

/// The result image the agent sent, as each writable directory's contents
/// (unchanged files filled in from the request's own bytes). What it decodes
/// to is bounded by the tree's caps (`limits`): a guest cannot make the host
/// expand a small image into a large one (e.g. one input file named unchanged
/// a million times).
pub(crate) fn decode(
    dirs: &[WasmDir],
    image: &[u8],
    limits: WasmFsLimits,
) -> Result<Vec<WasmDirOutput>, ProtoError> {
    let (max_bytes, max_inodes) = tree_caps(limits);
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut out: Vec<WasmDirOutput> = dirs
        .iter()
        .map(|dir| WasmDirOutput {
            guest_path: dir.guest_path.clone(),
            files: Vec::new(),
        })
        .collect();
    let inputs: Vec<BTreeMap<&str, &[u8]>> = dirs
        .iter()
        .map(|dir| {
            dir.files
                .iter()
                .filter_map(|file| match &file.kind {
                    WasmFileKind::File(bytes) => Some((file.path.as_str(), bytes.as_slice())),
                    _ => None,
                })
                .collect()
        })
        .collect();
    for entry in wasmfs::decode_image(image, dirs.len())? {
        inodes += 1;
        if inodes > max_inodes {
            return Err(ProtoError::InvalidValue {
                field: "image.entries",
                value: inodes,
            });
        }
        let index = entry.dir as usize;
        let path = utf8(entry.path, "image.path")?;
        let kind = match entry.kind {
            EntryKind::Dir => WasmFileKind::Dir,
            EntryKind::File => WasmFileKind::File(entry.data.to_vec()),
            EntryKind::Symlink => WasmFileKind::Symlink(utf8(entry.data, "image.data")?),
            EntryKind::Unchanged => {
                let origin = utf8(entry.data, "image.data")?;
                let bytes = inputs[index]
                    .get(origin.as_str())
                    .ok_or(ProtoError::InvalidValue {
                        field: "image.unchanged",
                        value: entry.data.len() as u64,
                    })?;
                WasmFileKind::File(bytes.to_vec())
            }
        };
        let size = match &kind {
            WasmFileKind::File(b) => b.len(),
            WasmFileKind::Symlink(t) => t.len(),
            _ => 0,
        } as u64;
        bytes = bytes.saturating_add(size + path.len() as u64);
        if bytes > max_bytes {
            return Err(ProtoError::InvalidValue {
                field: "image.total_bytes",
                value: bytes,
            });
        }
        out[index].files.push(WasmFile { path, kind });
    }
    Ok(dirs
        .iter()
        .zip(out)
        .filter(|(dir, _)| !dir.read_only)
        .map(|(_, output)| output)
        .collect())
}

/// `path` as plain relative components, or `None`.
fn relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let plain = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    plain.then(|| p.to_path_buf())
}

impl WasmDirOutput {
    /// Writes these contents into host directory `dest` (made if missing;
    /// existing files of the same names are replaced). Nothing is written
    /// outside `dest`: every path must be plain and relative, and every
    /// parent must be a directory this write made or found as a directory.
    pub fn write_to(&self, dest: impl AsRef<Path>) -> Result<(), WasmDirError> {
        let dest = dest.as_ref();
        fs::create_dir_all(dest).map_err(io_error("creating", dest))?;
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        dirs.insert(PathBuf::new());
        for file in &self.files {
            let bad = || WasmDirError::BadPath {
                path: file.path.clone(),
            };
            let rel = relative(&file.path).ok_or_else(bad)?;
            let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
            if !dirs.contains(&parent) {
                return Err(bad());
            }
            let target = dest.join(&rel);
            match &file.kind {
                WasmFileKind::Dir => {
                    match fs::symlink_metadata(&target) {
                        Ok(meta) if meta.is_dir() => {}
                        Ok(_) => return Err(bad()),
                        Err(_) => fs::create_dir(&target).map_err(io_error("creating", &target))?,
                    }
                    dirs.insert(rel);
                }
                WasmFileKind::File(bytes) => {
                    remove_non_dir(&target)?;
                    fs::write(&target, bytes).map_err(io_error("writing", &target))?;
                }
                WasmFileKind::Symlink(link) => {
                    remove_non_dir(&target)?;
                    std::os::unix::fs::symlink(link, &target)
                        .map_err(io_error("creating symlink", &target))?;
                }
            }
        }
        Ok(())
    }
}

/// Removes a file or symlink at `path` (never follows it); a directory
/// there is an error.
fn remove_non_dir(path: &Path) -> Result<(), WasmDirError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Err(WasmDirError::BadPath {
            path: path.display().to_string(),
        }),
        Ok(_) => fs::remove_file(path).map_err(io_error("replacing", path)),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kvmsb-wasmdir-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn host_copy_keeps_symlinks_as_links_and_is_bounded() {
        let src = tmp("src");
        fs::create_dir(src.join("sub")).unwrap();
        fs::write(src.join("sub/a.txt"), b"alpha").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("out")).unwrap();
        let dir = WasmDir::from_host("/data", &src, true, 1 << 20).unwrap();
        assert_eq!(
            dir.files,
            [
                WasmFile {
                    path: "out".into(),
                    kind: WasmFileKind::Symlink("/etc/passwd".into())
                },
                WasmFile {
                    path: "sub".into(),
                    kind: WasmFileKind::Dir
                },
                WasmFile {
                    path: "sub/a.txt".into(),
                    kind: WasmFileKind::File(b"alpha".to_vec())
                },
            ]
        );
        assert!(matches!(
            WasmDir::from_host("/data", &src, true, 10),
            Err(WasmDirError::TooBig { limit: 10, .. })
        ));
        fs::remove_dir_all(&src).unwrap();
    }

    #[test]
    fn result_image_round_trips_and_fills_in_unchanged_files() {
        let dirs = [
            WasmDir::new("/in", true).with_file("a", b"A".to_vec()),
            WasmDir::new("/out", false).with_file("keep", b"K".to_vec()),
        ];
        let (fs_spec, image) = encode(&dirs, WasmFsLimits::default());
        assert_eq!(fs_spec.image_len, image.len() as u64);
        let mut result = Vec::new();
        for (kind, path, data) in [
            (EntryKind::Unchanged, &b"keep"[..], &b"keep"[..]),
            (EntryKind::Dir, b"d", b""),
            (EntryKind::File, b"d/new", b"N"),
        ] {
            ImageEntry {
                dir: 1,
                kind,
                path,
                data,
            }
            .encode(&mut result);
        }
        let out = decode(&dirs, &result, WasmFsLimits::default()).unwrap();
        assert_eq!(out.len(), 1, "read-only directories do not come back");
        assert_eq!(out[0].files[0].kind, WasmFileKind::File(b"K".to_vec()));
        let mut bogus = Vec::new();
        ImageEntry {
            dir: 1,
            kind: EntryKind::Unchanged,
            path: b"x",
            data: b"nope",
        }
        .encode(&mut bogus);
        assert!(decode(&dirs, &bogus, WasmFsLimits::default()).is_err());
    }

    /// A small image cannot decode into a large one: one 4 KiB input file
    /// named unchanged 1000 times would be 4 MB on the host.
    #[test]
    fn a_result_image_is_bounded_by_the_tree_caps() {
        let dirs = [WasmDir::new("/out", false).with_file("big", vec![7u8; 4096])];
        let mut image = Vec::new();
        for _ in 0..1000 {
            ImageEntry {
                dir: 0,
                kind: EntryKind::Unchanged,
                path: b"a",
                data: b"big",
            }
            .encode(&mut image);
        }
        let limits = WasmFsLimits {
            max_bytes: Some(1 << 20),
            max_inodes: None,
        };
        assert!(matches!(
            decode(&dirs, &image, limits),
            Err(ProtoError::InvalidValue {
                field: "image.total_bytes",
                ..
            })
        ));
        let few = WasmFsLimits {
            max_bytes: None,
            max_inodes: Some(10),
        };
        assert!(matches!(
            decode(&dirs, &image, few),
            Err(ProtoError::InvalidValue {
                field: "image.entries",
                ..
            })
        ));
        assert_eq!(
            decode(&dirs, &image, WasmFsLimits::default()).unwrap()[0]
                .files
                .len(),
            1000
        );
    }

    #[test]
    fn write_back_stays_inside_the_destination() {
        let dest = tmp("dest");
        let ok = WasmDirOutput {
            guest_path: "/out".into(),
            files: vec![
                WasmFile {
                    path: "d".into(),
                    kind: WasmFileKind::Dir,
                },
                WasmFile {
                    path: "d/f".into(),
                    kind: WasmFileKind::File(b"x".to_vec()),
                },
                WasmFile {
                    path: "l".into(),
                    kind: WasmFileKind::Symlink("/".into()),
                },
            ],
        };
        ok.write_to(&dest).unwrap();
        assert_eq!(fs::read(dest.join("d/f")).unwrap(), b"x");
        for path in ["../escape", "/abs", "l/through-link", "missing/f", "d/../x"] {
            let bad = WasmDirOutput {
                guest_path: "/out".into(),
                files: vec![WasmFile {
                    path: path.into(),
                    kind: WasmFileKind::File(b"y".to_vec()),
                }],
            };
            assert!(
                matches!(bad.write_to(&dest), Err(WasmDirError::BadPath { .. })),
                "{path} was accepted"
            );
        }
        assert!(!dest.join("l/through-link").exists());
        fs::remove_dir_all(&dest).unwrap();
    }
}
