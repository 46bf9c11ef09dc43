//! One running command: spawn it in its own process group, stream its stdout and
//! stderr as frames while it runs, feed it stdin from the host, enforce the
//! timeout (SIGKILL to the whole group), and finish with `ExecExit` once the
//! process has exited and both pipes are drained.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use kvmsandbox_proto::frame::MAX_CHUNK;
use kvmsandbox_proto::msg::ExecSpec;
use kvmsandbox_proto::Message;

use crate::children;
use crate::wire::Writer;

/// Stdin chunks queued for the child before the connection's reader blocks.
const STDIN_QUEUE: usize = 16;
/// Output read size (one frame each).
const OUT_CHUNK: usize = 64 * 1024;

/// A handle the connection loop keeps to steer a running command.
pub struct ExecControl {
    pid: i32,
    stdin: Option<SyncSender<Vec<u8>>>,
    done: Arc<AtomicBool>,
}

impl ExecControl {
    /// Queues bytes for the child's stdin (dropped if stdin was not requested or closed).
    pub fn stdin(&mut self, data: Vec<u8>) {
        if let Some(tx) = &self.stdin {
            if tx.send(data).is_err() {
                self.stdin = None;
            }
        }
    }

    /// Closes the child's stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Sends `signal` to the command's process group, unless it already finished.
    pub fn kill(&self, signal: i32) {
        if !self.done.load(Ordering::SeqCst) {
            // SAFETY: kill(2) on our child's process group; no memory involved.
            unsafe { libc::kill(-self.pid, signal) };
        }
    }

    /// Whether `ExecExit` has been sent.
    pub fn finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

/// Starts `spec`; sends `ExecStarted` and, later, output and `ExecExit` on `out`.
pub fn start(spec: ExecSpec, id: u32, out: Writer) -> io::Result<ExecControl> {
    let Some((prog, args)) = spec.argv.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "exec: empty argv",
        ));
    };
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = children::spawn_owned(&mut cmd)?;
    let pid_u = child.id();
    // Pids fit in i32 on Linux (pid_max <= 2^22).
    let pid = pid_u as i32;
    out.send(id, Message::ExecStarted { pid: pid_u })?;

    let stdin = child.stdin.take().map(|s| {
        let (tx, rx) = mpsc::sync_channel(STDIN_QUEUE);
        thread::spawn(move || feed_stdin(s, rx));
        tx
    });
    let pumps: Vec<_> = [
        child.stdout.take().map(|p| pump(p, id, out.clone(), false)),
        child.stderr.take().map(|p| pump(p, id, out.clone(), true)),
    ]
    .into_iter()
    .flatten()
    .collect();

    let done = Arc::new(AtomicBool::new(false));
    let timed_out = Arc::new(AtomicBool::new(false));
    let (stop_timer, timer_rx) = mpsc::channel::<()>();
    if let Some(ms) = spec.timeout_ms {
        let timed_out = timed_out.clone();
        thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = timer_rx.recv_timeout(Duration::from_millis(ms))
            {
                timed_out.store(true, Ordering::SeqCst);
                // SAFETY: kill(2) on the child's process group, which still exists
                // (the waiter has not reaped the leader yet: it signals us first).
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
        });
    }
    let done2 = done.clone();
    thread::spawn(move || {
        let status = child.wait();
        drop(stop_timer);
        children::release(pid_u);
        for p in pumps {
            let _ = p.join();
        }
        let msg = match status {
            Ok(st) => Message::ExecExit {
                code: st.code(),
                signal: st.signal(),
                timed_out: timed_out.load(Ordering::SeqCst),
            },
            Err(e) => Message::Error {
                code: crate::wire::code_of(&e),
                message: format!("waiting for pid {pid}: {e}"),
            },
        };
        done2.store(true, Ordering::SeqCst);
        let _ = out.send(id, msg);
    });
    Ok(ExecControl { pid, stdin, done })
}

/// Copies one output pipe into `Stdout`/`Stderr` frames until EOF.
fn pump(
    mut pipe: impl Read + Send + 'static,
    id: u32,
    out: Writer,
    is_err: bool,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; OUT_CHUNK.min(MAX_CHUNK)];
        loop {
            let n = match pipe.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let data = buf[..n].to_vec();
            let msg = if is_err {
                Message::Stderr { data }
            } else {
                Message::Stdout { data }
            };
            if out.send(id, msg).is_err() {
                // Host gone: keep draining so the child never blocks on a full pipe.
                let _ = io::copy(&mut pipe, &mut io::sink());
                return;
            }
        }
    })
}

/// Writes queued host data into the child's stdin; closes it when the queue closes.
fn feed_stdin(mut stdin: ChildStdin, rx: Receiver<Vec<u8>>) {
    let mut open = true;
    for chunk in rx {
        if open && stdin.write_all(&chunk).is_err() {
            // The child closed its stdin; keep draining the queue so the host's
            // frames never block the connection.
            open = false;
        }
    }
}
