//! Copying a command's stdout/stderr pipes into frames. A pump ends at EOF, or
//! when its command's supervisor gives up on the pipe (a process that escaped
//! containment still holds it open): the `Abandon` switch wakes every pump of the
//! command out of `poll`, so the agent never waits on a pipe it cannot close.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::thread;

use kvmsandbox_proto::frame::MAX_CHUNK;
use kvmsandbox_proto::Message;

use crate::wire::Writer;

/// Output read size (one frame each).
const OUT_CHUNK: usize = 64 * 1024;

/// An eventfd that, once set, tells the pumps of one command to stop.
pub struct Abandon(OwnedFd);

impl Abandon {
    /// A fresh, unset switch.
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain eventfd(2) call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: eventfd returned a fresh fd that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Sets the switch (idempotent: the counter just grows).
    pub fn set(&self) {
        let one: u64 = 1;
        // SAFETY: write(2) of 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn try_clone(&self) -> io::Result<Self> {
        Ok(Self(self.0.try_clone()?))
    }
}

/// Which pipe a pump copies.
#[derive(Clone, Copy)]
pub enum Pipe {
    /// stdout → `Stdout` frames.
    Stdout,
    /// stderr → `Stderr` frames.
    Stderr,
}

/// Starts a pump; `on_closed` runs once the pump is done with the pipe.
pub fn pump(
    pipe: OwnedFd,
    which: Pipe,
    id: u32,
    out: Writer,
    abandon: &Abandon,
    on_closed: Box<dyn FnOnce() + Send>,
) -> io::Result<()> {
    let abandon = abandon.try_clone()?;
    let pipe = File::from(pipe);
    thread::Builder::new().name("pump".into()).spawn(move || {
        copy(pipe, which, id, &out, &abandon);
        on_closed();
    })?;
    Ok(())
}

fn copy(mut pipe: File, which: Pipe, id: u32, out: &Writer, abandon: &Abandon) {
    let mut buf = vec![0u8; OUT_CHUNK.min(MAX_CHUNK)];
    let mut host_gone = false;
    loop {
        match wait_readable(&pipe, abandon) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        let n = match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        if host_gone {
            // Keep draining so the command never blocks on a full pipe.
            continue;
        }
        let data = buf[..n].to_vec();
        let msg = match which {
            Pipe::Stdout => Message::Stdout { data },
            Pipe::Stderr => Message::Stderr { data },
        };
        host_gone = out.send(id, msg).is_err();
    }
}

/// Waits until `pipe` is readable (or at EOF): `Ok(false)` if abandoned first.
fn wait_readable(pipe: &File, abandon: &Abandon) -> io::Result<bool> {
    let mut fds = [
        libc::pollfd {
            fd: pipe.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: abandon.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: poll(2) on two valid pollfds that live across the call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if fds[1].revents != 0 {
        return Ok(false);
    }
    Ok(true)
}
