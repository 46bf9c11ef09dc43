//! File transfer over the control connection: streamed in chunks both ways, so
//! any size works without holding the file in memory. Both directions end by
//! [`AgentLimits::default_deadline`](super::AgentLimits::default_deadline); a read
//! stops at [`AgentLimits::max_output`](super::AgentLimits::max_output) bytes (the
//! agent decides how much it sends, and `out` is often a `Vec`).

use std::io::{self, Read, Write};
use std::time::Instant;

use kvmsandbox_proto::Message;

use super::client::AgentClient;
use super::conn::Wait;
use super::error::AgentError;

/// Bytes per `Data` frame sent.
const WRITE_CHUNK: usize = 512 * 1024;

impl AgentClient {
    /// Creates/truncates `path` in the guest with permission bits `mode` and fills
    /// it from `data`. Returns the bytes written. If reading `data` fails, the part
    /// already sent stays in the guest file and the read error is returned.
    pub fn write_file(
        &mut self,
        path: &str,
        mut data: impl Read,
        mode: u32,
    ) -> Result<u64, AgentError> {
        let op = "write_file";
        let id = self.request(
            op,
            Message::WriteFile {
                path: path.to_string(),
                mode,
            },
        )?;
        let mut buf = vec![0u8; WRITE_CHUNK];
        let mut total = 0u64;
        let mut local_err = None;
        let start = Instant::now();
        let budget = self.limits.default_deadline;
        loop {
            // Each write is bounded by the socket's write timeout; a guest draining
            // slowly enough to dodge it is stopped here.
            if start.elapsed() > budget {
                return Err(AgentError::Timeout { op, after: budget });
            }
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    local_err = Some(e);
                    break;
                }
            };
            self.conn.send(
                op,
                id,
                Message::Data {
                    data: buf[..n].to_vec(),
                },
            )?;
            total += n as u64;
        }
        self.conn.send(op, id, Message::DataEnd)?;
        self.expect_ok(op, id)?;
        match local_err {
            Some(e) => Err(AgentError::Io {
                op: "write_file (reading the source)",
                source: e,
            }),
            None => Ok(total),
        }
    }

    /// Streams `path` from the guest into `out`. Returns the bytes read.
    pub fn read_file(&mut self, path: &str, mut out: impl Write) -> Result<u64, AgentError> {
        let op = "read_file";
        let id = self.request(
            op,
            Message::ReadFile {
                path: path.to_string(),
            },
        )?;
        let mut total = 0u64;
        let mut received = 0u64;
        let mut local_err = None;
        let wait = Wait::within(Some(self.timeout), Some(self.limits.default_deadline));
        loop {
            match self.conn.recv_for(op, id, wait)? {
                Message::Data { data } => {
                    received += data.len() as u64;
                    self.check_output(op, received)?;
                    if local_err.is_none() {
                        // Keep draining after a local failure so the stream stays in sync.
                        match out.write_all(&data) {
                            Ok(()) => total += data.len() as u64,
                            Err(e) => local_err = Some(e),
                        }
                    }
                }
                Message::DataEnd => break,
                other => {
                    return Err(AgentError::Unexpected {
                        op,
                        got: other.name(),
                    })
                }
            }
        }
        match local_err {
            Some(e) => Err(AgentError::Io {
                op: "read_file (writing the output)",
                source: e,
            }),
            None => Ok(total),
        }
    }
}
