//! The host end of a guest vsock port: the VMM's vsock device exposes a Unix
//! socket; a host connection to guest port P writes `CONNECT P\n` and gets
//! `OK <host port>\n` back (Firecracker's "hybrid vsock" handshake). After that the
//! Unix stream carries the guest stream's bytes unchanged.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest acknowledgement line accepted.
const MAX_ACK: usize = 64;

/// Connects to guest vsock `port` through the VMM's Unix socket at `path`,
/// waiting at most `timeout` for the acknowledgement.
pub fn connect_hybrid(path: &Path, port: u32, timeout: Duration) -> io::Result<UnixStream> {
    hybrid_handshake(UnixStream::connect(path)?, port, timeout)
}

/// The `CONNECT <port>\n` / `OK <port>\n` exchange on a stream already connected
/// to the VMM's socket (so a caller can record the stream before waiting on it).
pub(crate) fn hybrid_handshake(
    mut s: UnixStream,
    port: u32,
    timeout: Duration,
) -> io::Result<UnixStream> {
    // A zero timeout is refused by the socket calls: it means "at once" here.
    let timeout = timeout.max(Duration::from_millis(1));
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("CONNECT {port}\n").as_bytes())?;
    // Byte by byte: anything after the newline already belongs to the guest stream.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if s.read(&mut b)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("vsock port {port}: connection closed during the CONNECT handshake"),
            ));
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > MAX_ACK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("vsock port {port}: handshake reply longer than {MAX_ACK} bytes"),
            ));
        }
    }
    let text = String::from_utf8_lossy(&line);
    if !text.starts_with("OK ") {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            format!("vsock port {port}: handshake answered `{text}` instead of `OK <port>`"),
        ));
    }
    s.set_read_timeout(None)?;
    s.set_write_timeout(None)?;
    Ok(s)
}
