//! One connection: say Hello, then serve requests until the host hangs up.
//!
//! Requests are keyed by request id, so frames of several operations may
//! interleave (an exec's `Stdin`/`Kill` arrive while its output streams back).
//! Quick requests are answered inline; an exec runs on its own threads; uploads
//! (`WriteFile`, the module of `RunWasm`) keep per-id state until `DataEnd`.
//! When the connection drops, every command it started is killed.
//!
//! The loop never blocks on a command: stdin is queued per command within the
//! protocol's window (see [`crate::stdin`]), so Ping, Kill and Shutdown are
//! always read. A request id stays taken while its command runs or its upload is
//! open; a second request with that id is refused and the first goes on.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use kvmsandbox_proto::msg::{caps, Hello};
use kvmsandbox_proto::{ErrorCode, Message, PROTOCOL_VERSION};

use crate::exec::{self, ExecControl};
use crate::stdin::Push;
use crate::wire::{code_of, Reader, Writer};
use crate::{files, fs_ops};

/// What the agent does on `Shutdown` (host process: exit; PID 1: end the VM).
#[derive(Clone, Copy)]
pub struct ShutdownHook {
    /// Runs before the answer: after `Ok` the host may assume the data is safe.
    pub prepare: fn(),
    /// How long to wait after `Ok` for the host to hang up, the only proof that
    /// the answer left the guest before [`Self::end`] takes the transport down.
    pub linger: Duration,
    /// Ends the agent.
    pub end: fn() -> !,
}

/// Capabilities of this agent.
pub const CAPS: u64 = caps::EXEC | caps::FILES | caps::ECHO | caps::STDIN_ACK | caps::FS;

/// An upload in progress.
enum Upload {
    /// `WriteFile` into this file; `path` for messages.
    File { file: File, path: String },
    /// Drop the remaining chunks (the request already failed or is unsupported).
    Discard,
}

/// Serves one connection until EOF or a fatal error.
pub fn serve(conn: File, shutdown: ShutdownHook) -> io::Result<()> {
    let out = Writer::new(conn.try_clone()?);
    let mut input = Reader::new(conn);
    out.send(
        0,
        Message::Hello(Hello {
            version: u16::from(PROTOCOL_VERSION),
            kind: "linux".into(),
            capabilities: CAPS,
        }),
    )?;
    let mut execs: HashMap<u32, ExecControl> = HashMap::new();
    let mut uploads: HashMap<u32, Upload> = HashMap::new();
    let result = loop {
        let frame = match input.next() {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = out.error(0, ErrorCode::Invalid, format!("malformed frame: {e}"));
                break Err(e);
            }
            Err(e) => break Err(e),
        };
        execs.retain(|_, c| !c.finished());
        let id = frame.request_id;
        if matches!(frame.msg, Message::Shutdown) {
            (shutdown.prepare)();
            if out.send(id, Message::Ok).is_ok() {
                input.wait_hangup(Instant::now() + shutdown.linger);
            }
            (shutdown.end)()
        }
        if let Err(e) = handle(id, frame.msg, &out, &mut execs, &mut uploads) {
            break Err(e);
        }
    };
    for c in execs.values() {
        c.disconnect();
    }
    result
}

/// Handles one frame. Errors are connection failures only.
fn handle(
    id: u32,
    msg: Message,
    out: &Writer,
    execs: &mut HashMap<u32, ExecControl>,
    uploads: &mut HashMap<u32, Upload>,
) -> io::Result<()> {
    match msg {
        Message::Ping { nonce } => out.send(id, Message::Pong { nonce }),
        Message::Echo { data } => out.send(id, Message::EchoReply { data }),
        Message::Exec(_) | Message::WriteFile { .. } | Message::RunWasm(_)
            if execs.contains_key(&id) || uploads.contains_key(&id) =>
        {
            out.error(
                id,
                ErrorCode::AlreadyExists,
                format!("request id {id} is already in use by a running request"),
            )
        }
        Message::Exec(spec) => {
            let argv0 = spec.argv.first().cloned().unwrap_or_default();
            match exec::start(spec, id, out.clone()) {
                Ok(c) => {
                    execs.insert(id, c);
                    Ok(())
                }
                Err(e) => out.error(id, code_of(&e), format!("exec {argv0}: {e}")),
            }
        }
        Message::Stdin { data } => {
            if let Some(c) = execs.get(&id) {
                if let Push::Overrun { held } = c.stdin(data) {
                    eprintln!(
                        "kvmsandbox-agent: request {id}: host overran the stdin window \
                         ({held} bytes unacknowledged); stdin closed, excess dropped"
                    );
                }
            }
            Ok(())
        }
        Message::StdinEof => {
            if let Some(c) = execs.get(&id) {
                c.close_stdin();
            }
            Ok(())
        }
        Message::Kill { signal } => {
            if let Some(c) = execs.get(&id) {
                c.kill(signal);
            }
            Ok(())
        }
        Message::WriteFile { path, mode } => match files::create(&path, mode) {
            Ok(file) => {
                uploads.insert(id, Upload::File { file, path });
                Ok(())
            }
            Err(e) => {
                uploads.insert(id, Upload::Discard);
                out.error(id, code_of(&e), format!("write {path}: {e}"))
            }
        },
        Message::Data { data } => match uploads.get_mut(&id) {
            Some(Upload::File { file, path }) => {
                if let Err(e) = files::append(file, &data) {
                    let msg = format!("write {path}: {e}");
                    uploads.insert(id, Upload::Discard);
                    return out.error(id, code_of(&e), msg);
                }
                Ok(())
            }
            Some(Upload::Discard) | None => Ok(()),
        },
        Message::DataEnd => match uploads.remove(&id) {
            Some(Upload::File { file, path }) => match file.sync_data() {
                Ok(()) => out.send(id, Message::Ok),
                Err(e) => out.error(id, code_of(&e), format!("sync {path}: {e}")),
            },
            Some(Upload::Discard) | None => Ok(()),
        },
        Message::ReadFile { path } => files::send(&path, id, out),
        Message::Stat { path, follow } => fs_ops::stat(&path, follow, id, out),
        Message::ListDir { path } => fs_ops::list(&path, id, out),
        Message::MakeDir {
            path,
            mode,
            parents,
        } => fs_ops::make_dir(&path, mode, parents, id, out),
        Message::Remove { path, recursive } => fs_ops::remove(&path, recursive, id, out),
        Message::Rename { from, to } => fs_ops::rename(&from, &to, id, out),
        Message::RunWasm(_) => {
            // Its module chunks follow; drop them.
            uploads.insert(id, Upload::Discard);
            out.error(
                id,
                ErrorCode::Unsupported,
                "the Linux agent does not run WASM",
            )
        }
        Message::DiskRead { .. } | Message::DiskWrite { .. } | Message::DiskFlush { .. } => out
            .error(
                id,
                ErrorCode::Unsupported,
                "the Linux agent does not serve raw disks",
            ),
        Message::Unknown { msg_type, .. } => out.error(
            id,
            ErrorCode::Unsupported,
            format!("message type {msg_type:#06x} is not known to this agent"),
        ),
        other => out.error(
            id,
            ErrorCode::Invalid,
            format!("{} is not a request the agent accepts", other.name()),
        ),
    }
}
