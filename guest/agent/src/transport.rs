//! Listening sockets. Whatever the transport, an accepted connection becomes a
//! plain [`File`] over the socket fd, so everything after `accept` is one code path.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use crate::args::Transport;

/// A bound, listening socket.
pub enum Listener {
    /// AF_VSOCK.
    Vsock(OwnedFd),
    /// AF_UNIX, with its path (removed on shutdown).
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds and listens on `t`.
    pub fn bind(t: &Transport) -> io::Result<Self> {
        match t {
            Transport::Vsock(port) => bind_vsock(*port).map(Self::Vsock),
            Transport::Unix(path) => {
                // A stale socket file from an earlier run would make bind fail.
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Ok(Self::Unix(UnixListener::bind(path)?, path.clone()))
            }
        }
    }

    /// Waits for the next connection.
    pub fn accept(&self) -> io::Result<File> {
        match self {
            Self::Unix(l, _) => {
                let (stream, _) = l.accept()?;
                Ok(File::from(OwnedFd::from(stream)))
            }
            Self::Vsock(fd) => {
                // SAFETY: `fd` is a listening socket we own; null address pointers are
                // allowed by accept4; the returned fd is checked before use.
                let rc = unsafe {
                    libc::accept4(
                        fd.as_raw_fd(),
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC,
                    )
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: accept4 returned a fresh fd that nothing else owns.
                Ok(File::from(unsafe { OwnedFd::from_raw_fd(rc) }))
            }
        }
    }

    /// Removes the Unix socket file, if any.
    pub fn cleanup(&self) {
        if let Self::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn bind_vsock(port: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh socket fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_vm is plain old data; all-zero is a valid starting value.
    let mut addr: libc::sockaddr_vm = unsafe { std::mem::zeroed() };
    addr.svm_family = libc::AF_VSOCK as libc::sa_family_t;
    addr.svm_port = port;
    addr.svm_cid = libc::VMADDR_CID_ANY;
    let len = std::mem::size_of::<libc::sockaddr_vm>() as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_vm of `len` bytes that outlives the call.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_vm).cast(),
            len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: listen on a bound socket we own.
    if unsafe { libc::listen(fd.as_raw_fd(), 16) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}
