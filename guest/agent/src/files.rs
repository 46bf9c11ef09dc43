//! File transfer: `WriteFile` (create/truncate, then `Data` chunks, then `DataEnd`)
//! and `ReadFile` (stream the file back as `Data` chunks and `DataEnd`).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use kvmsandbox_proto::Message;

use crate::wire::{code_of, Writer};

/// Bytes per `Data` frame sent back.
const READ_CHUNK: usize = 512 * 1024;

/// Opens `path` for a `WriteFile` with permission bits `mode`.
pub fn create(path: &str, mode: u32) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    // `mode` only applies to new files (and is masked by umask): make it exact.
    f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
    Ok(f)
}

/// Appends one chunk.
pub fn append(f: &mut File, data: &[u8]) -> io::Result<()> {
    f.write_all(data)
}

/// Serves `ReadFile`. Returns an error only if the connection failed.
pub fn send(path: &str, id: u32, out: &Writer) -> io::Result<()> {
    let mut f = match open_regular(path) {
        Ok(f) => f,
        Err(e) => return out.error(id, code_of(&e), format!("read {path}: {e}")),
    };
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return out.error(id, code_of(&e), format!("read {path}: {e}")),
        };
        out.send(
            id,
            Message::Data {
                data: buf[..n].to_vec(),
            },
        )?;
    }
    out.send(id, Message::DataEnd)
}

fn open_regular(path: &str) -> io::Result<File> {
    let f = File::open(path)?;
    if f.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a directory",
        ));
    }
    Ok(f)
}
