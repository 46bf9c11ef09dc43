//! The agent's side of a run's preopened directories: the image that
//! follows the module (see `kvmsandbox_proto::wasmfs`) becomes the runner's
//! preopens, borrowing the received bytes, and the writable directories'
//! contents after the run become the image sent back.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use kvmsandbox_proto::msg::WasmSpec;
use kvmsandbox_proto::wasmfs::{decode_image, EntryKind, ImageEntry, WasmFs};
use kvmsandbox_wasm_runner as runner;

/// A request's directories, borrowing the received image.
pub struct Decoded<'a> {
    dirs: Vec<(&'a [u8], bool, Vec<runner::FsEntry<'a>>)>,
}

impl Decoded<'_> {
    /// The runner's view of them.
    pub fn preopens(&self) -> Vec<runner::Preopen<'_>> {
        self.dirs
            .iter()
            .map(|(guest_path, read_only, entries)| runner::Preopen {
                guest_path,
                read_only: *read_only,
                entries,
            })
            .collect()
    }
}

/// `req`'s directories from `image`, and the tree's caps.
pub fn preopens<'a>(
    req: &'a WasmSpec,
    image: &'a [u8],
) -> Result<(Decoded<'a>, runner::FsLimits), String> {
    let limits = crate::wasm::fs_limits(req);
    let Some(fs) = req.fs.as_ref() else {
        return Ok((Decoded { dirs: Vec::new() }, limits));
    };
    let mut dirs: Vec<(&[u8], bool, Vec<runner::FsEntry>)> = fs
        .dirs
        .iter()
        .map(|dir| (dir.guest_path.as_bytes(), dir.read_only, Vec::new()))
        .collect();
    let records =
        decode_image(image, dirs.len()).map_err(|e| format!("bad directory image: {e}"))?;
    for record in records {
        let kind = match record.kind {
            EntryKind::Dir => runner::EntryKind::Dir,
            EntryKind::File => runner::EntryKind::File(record.data),
            EntryKind::Symlink => runner::EntryKind::Symlink(record.data),
            EntryKind::Unchanged => {
                return Err(String::from("an `unchanged` entry in a request's image"))
            }
        };
        // decode_image checked the index against `dirs.len()`.
        if let Some(dir) = dirs.get_mut(record.dir as usize) {
            dir.2.push(runner::FsEntry {
                path: record.path,
                kind,
            });
        }
    }
    Ok((Decoded { dirs }, limits))
}

/// The image of the writable directories' contents (`out`, in the order of
/// `fs`'s writable directories).
pub fn result_image(fs: &WasmFs, out: &[runner::DirOutput]) -> Vec<u8> {
    let writable = fs
        .dirs
        .iter()
        .enumerate()
        .filter(|(_, dir)| !dir.read_only)
        .map(|(index, _)| index as u32);
    let mut image = Vec::new();
    for (dir, output) in writable.zip(out) {
        for entry in &output.entries {
            let (kind, data): (EntryKind, &[u8]) = match &entry.kind {
                runner::OutKind::Dir => (EntryKind::Dir, b""),
                runner::OutKind::File(bytes) => (EntryKind::File, bytes),
                runner::OutKind::Unchanged(origin) => (EntryKind::Unchanged, origin),
                runner::OutKind::Symlink(target) => (EntryKind::Symlink, target),
            };
            ImageEntry {
                dir,
                kind,
                path: &entry.path,
                data,
            }
            .encode(&mut image);
        }
    }
    image
}
