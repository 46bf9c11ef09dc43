//! Unix-socket plumbing for the hybrid vsock backend: binding the listener (with
//! stale-socket cleanup), a connect that never blocks the event loop, and the
//! `CONNECT <port>\n` line hosts send first.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Longest `CONNECT <port>\n` line we read before giving up on a host.
pub const MAX_CONNECT_LINE: usize = 32;

/// Why the listening socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// Something other than a stale socket is at the path (or a live listener).
    #[error("{0} already exists (a file, or a socket someone listens on)")]
    PathExists(PathBuf),
    /// The parent directory does not exist.
    #[error("directory of {0} does not exist")]
    DirectoryMissing(PathBuf),
    /// No permission to create the socket there.
    #[error("no permission to create {0}")]
    PermissionDenied(PathBuf),
    /// The path does not fit in `sockaddr_un` (107 bytes).
    #[error("socket path {0} is longer than 107 bytes")]
    PathTooLong(PathBuf),
    /// Any other failure.
    #[error("cannot listen on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

const SUN_PATH_MAX: usize = 107;

/// Binds a non-blocking listener at `path`. A socket file already there is removed
/// only if nobody is listening on it (a leftover from a crashed process).
pub fn bind_listener(path: &Path) -> Result<UnixListener, BindError> {
    use std::os::unix::ffi::OsStrExt;
    let owned = path.to_path_buf();
    if path.as_os_str().as_bytes().len() > SUN_PATH_MAX {
        return Err(BindError::PathTooLong(owned));
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(BindError::PathExists(owned));
        }
        match connect_nonblocking(path) {
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                std::fs::remove_file(path).map_err(|source| BindError::Io {
                    path: owned.clone(),
                    source,
                })?;
            }
            _ => return Err(BindError::PathExists(owned)),
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => BindError::DirectoryMissing(owned.clone()),
        io::ErrorKind::PermissionDenied => BindError::PermissionDenied(owned.clone()),
        io::ErrorKind::AddrInUse | io::ErrorKind::AlreadyExists => {
            BindError::PathExists(owned.clone())
        }
        _ => BindError::Io {
            path: owned.clone(),
            source: e,
        },
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| BindError::Io {
            path: owned,
            source,
        })?;
    Ok(listener)
}

/// Connects to a Unix stream listener without blocking (a full backlog gives
/// `EAGAIN` instead of stalling the device thread). The stream is non-blocking.
pub fn connect_nonblocking(path: &Path) -> io::Result<UnixStream> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() > SUN_PATH_MAX || bytes.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we exclusively own.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
    // SAFETY: `addr` is a valid sockaddr_un and `len` lies within it (path ≤ 107
    // bytes plus NUL); connect(2) only reads it.
    let ret = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(UnixStream::from(owned))
}

/// Outcome of feeding bytes of a host's first line.
#[derive(Debug, PartialEq, Eq)]
pub enum ConnectLine {
    /// Need more bytes.
    Incomplete,
    /// A valid `CONNECT <port>` line.
    Port(u32),
    /// Not a valid line (or too long): close the host stream.
    Invalid,
}

/// Parses the accumulated bytes of a host's first line.
pub fn parse_connect_line(buf: &[u8]) -> ConnectLine {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= MAX_CONNECT_LINE {
            ConnectLine::Invalid
        } else {
            ConnectLine::Incomplete
        };
    };
    let line = &buf[..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Ok(text) = std::str::from_utf8(line) else {
        return ConnectLine::Invalid;
    };
    let mut words = text.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some("CONNECT"), Some(port), None)
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            port.parse()
                .map(ConnectLine::Port)
                .unwrap_or(ConnectLine::Invalid)
        }
        _ => ConnectLine::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_lines() {
        assert_eq!(
            parse_connect_line(b"CONNECT 1234\n"),
            ConnectLine::Port(1234)
        );
        assert_eq!(parse_connect_line(b"CONNECT 52\r\n"), ConnectLine::Port(52));
        assert_eq!(parse_connect_line(b"CONNECT 12"), ConnectLine::Incomplete);
        assert_eq!(
            parse_connect_line(b"CONNECT 99999999999\n"),
            ConnectLine::Invalid
        );
        assert_eq!(parse_connect_line(b"CONNECT -1\n"), ConnectLine::Invalid);
        assert_eq!(parse_connect_line(b"CONNECT\n"), ConnectLine::Invalid);
        assert_eq!(parse_connect_line(b"HELLO 1\n"), ConnectLine::Invalid);
        assert_eq!(parse_connect_line(b"CONNECT 1 2\n"), ConnectLine::Invalid);
        assert_eq!(
            parse_connect_line(&[b'A'; MAX_CONNECT_LINE]),
            ConnectLine::Invalid
        );
        assert_eq!(parse_connect_line(b"CONNECT \xff\n"), ConnectLine::Invalid);
    }

    #[test]
    fn bind_replaces_only_stale_sockets() {
        let dir = tempdir();
        let path = dir.join("s.sock");
        let l = bind_listener(&path).unwrap();
        assert!(
            matches!(bind_listener(&path), Err(BindError::PathExists(_))),
            "live listener kept"
        );
        drop(l);
        // The file stays behind; nobody listens: it is replaced.
        assert!(path.exists());
        let _l = bind_listener(&path).unwrap();

        let file = dir.join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            bind_listener(&file),
            Err(BindError::PathExists(_))
        ));
        assert!(matches!(
            bind_listener(&dir.join("nope/s.sock")),
            Err(BindError::DirectoryMissing(_))
        ));
        let long = dir.join("x".repeat(120));
        assert!(matches!(
            bind_listener(&long),
            Err(BindError::PathTooLong(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nonblocking_connect() {
        let dir = tempdir();
        let path = dir.join("l.sock");
        assert!(connect_nonblocking(&path).is_err());
        let l = bind_listener(&path).unwrap();
        let s = connect_nonblocking(&path).unwrap();
        let (_peer, _) = loop {
            match l.accept() {
                Ok(x) => break x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        drop(s);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "vsock-unix-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
