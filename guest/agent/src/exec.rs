//! One running command and its supervisor. The command runs in its own cgroup
//! (falling back to its own process group) and is over when its first process has
//! exited *and* its output is drained — not merely when the first process exits.
//!
//! The supervisor thread owns every decision about the command's end:
//! * the deadline covers the whole command: at the timeout everything it started
//!   is killed (`cgroup.kill`), including background processes and `setsid`
//!   escapees that keep its stdout open;
//! * after the first process exits, what it left behind gets [`GRACE`] to close the
//!   output; then it is killed, so an exec never hangs on a daemon;
//! * when the exec ends, whatever is left of the command is killed and its cgroup
//!   removed: a command's processes live and die with its exec (keep a streaming
//!   exec open to run a service);
//! * a pipe still open [`DRAIN`] after the kill (an escapee in fallback mode) is
//!   abandoned, so `ExecExit` is always sent;
//! * the exit status comes from the agent's single reap loop ([`crate::reaper`]),
//!   so a command whose host went away is still killed and reaped.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kvmsandbox_proto::msg::ExecSpec;
use kvmsandbox_proto::Message;

use crate::cgroup::{self, Cgroup};
use crate::output::{self, Abandon, Pipe};
use crate::reaper;
use crate::stdin::{self, Push, StdinQueue};
use crate::wire::Writer;

/// How long processes left behind by an exited first process may keep the output open.
pub const GRACE: Duration = Duration::from_millis(500);
/// How long after the final kill a still-open pipe is waited for.
pub const DRAIN: Duration = Duration::from_millis(500);

/// What the supervisor hears about.
enum Event {
    /// The first process was reaped with this raw wait status.
    Exited(i32),
    /// One output pipe is done.
    OutputClosed,
    /// The host asked for a signal.
    Signal(i32),
    /// The connection is gone.
    Disconnect,
}

/// A handle the connection loop keeps to steer a running command.
pub struct ExecControl {
    events: Sender<Event>,
    stdin: Option<Arc<StdinQueue>>,
    done: Arc<AtomicBool>,
}

impl ExecControl {
    /// Queues bytes for the child's stdin; never blocks.
    pub fn stdin(&self, data: Vec<u8>) -> Push {
        match &self.stdin {
            Some(q) => q.push(data),
            None => Push::Closed,
        }
    }

    /// Closes the child's stdin once the queued bytes are written.
    pub fn close_stdin(&self) {
        if let Some(q) = &self.stdin {
            q.close();
        }
    }

    /// Sends `signal` to the command (SIGKILL: to everything in its cgroup).
    pub fn kill(&self, signal: i32) {
        let _ = self.events.send(Event::Signal(signal));
    }

    /// The host is gone: end the command.
    pub fn disconnect(&self) {
        let _ = self.events.send(Event::Disconnect);
    }

    /// Whether `ExecExit` has been sent.
    pub fn finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

/// Starts `spec`; sends `ExecStarted` and, later, output and `ExecExit` on `out`.
/// An error means nothing was started (or the host is gone, in which case the
/// command is killed and reaped all the same).
pub fn start(spec: ExecSpec, id: u32, out: Writer) -> io::Result<ExecControl> {
    let Some((prog, args)) = spec.argv.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "exec: empty argv",
        ));
    };
    let cg = match cgroup::subtree().map(|s| s.new_cgroup()) {
        Some(Ok(cg)) => Some(cg),
        Some(Err(e)) => {
            eprintln!("kvmsandbox-agent: exec {prog}: no cgroup ({e}); process group only");
            None
        }
        None => None,
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
    let procs_fd = cg.as_ref().map(Cgroup::procs_fd);
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (write, prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = procs_fd {
                cgroup::join_in_child(fd)?;
            }
            // The command dies with the thread serving its connection (host mode:
            // with the agent), even if the agent is SIGKILLed.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() as u32 != parent {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            Ok(())
        });
    }

    let abandon = Abandon::new()?;
    let (tx, events) = mpsc::channel();
    let on_exit = tx.clone();
    let mut child = reaper::spawn_watched(
        &mut cmd,
        Box::new(move |status| {
            let _ = on_exit.send(Event::Exited(status));
        }),
    )?;
    // From here on nothing returns before the supervisor runs: it alone ends the command.
    let pid = child.id();
    // Before any output frame can go out.
    let started = out.send(id, Message::ExecStarted { pid });
    let done = Arc::new(AtomicBool::new(false));
    let mut open_pipes = 0;
    let pipes = [
        child
            .stdout
            .take()
            .map(|p| (OwnedFd::from(p), Pipe::Stdout)),
        child
            .stderr
            .take()
            .map(|p| (OwnedFd::from(p), Pipe::Stderr)),
    ];
    for (fd, which) in pipes.into_iter().flatten() {
        let closed = tx.clone();
        let on_closed = Box::new(move || {
            let _ = closed.send(Event::OutputClosed);
        });
        match output::pump(fd, which, id, out.clone(), &abandon, on_closed) {
            Ok(()) => open_pipes += 1,
            // The pipe is dropped: the command sees EPIPE on that stream.
            Err(e) => eprintln!("kvmsandbox-agent: exec {pid}: output pump: {e}"),
        }
    }
    let queue = child.stdin.take().and_then(|s| {
        let q = Arc::new(StdinQueue::default());
        let (q2, out2) = (q.clone(), out.clone());
        let fed = thread::Builder::new()
            .name("stdin".into())
            .spawn(move || stdin::feed(s, q2, id, out2));
        match fed {
            Ok(_) => Some(q),
            Err(e) => {
                eprintln!("kvmsandbox-agent: exec {pid}: stdin feeder: {e}");
                None
            }
        }
    });
    let sup = Supervisor {
        id,
        pid: pid as i32,
        cgroup: cg,
        deadline: spec
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms)),
        abandon,
        stdin: queue.clone(),
        done: done.clone(),
    };
    if started.is_err() {
        let _ = tx.send(Event::Disconnect);
    }
    let supervised = thread::Builder::new()
        .name("exec".into())
        .spawn(move || sup.run(events, open_pipes, out));
    if let Err(e) = supervised {
        // Unsupervised, the command must not run: kill it (the reap loop reaps it).
        eprintln!("kvmsandbox-agent: exec {pid}: supervisor: {e}");
        // SAFETY: kill(2) on the command's process group; no memory involved.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        return Err(e);
    }
    started?;
    Ok(ExecControl {
        events: tx,
        stdin: queue,
        done,
    })
}

struct Supervisor {
    id: u32,
    pid: i32,
    cgroup: Option<Cgroup>,
    deadline: Option<Instant>,
    abandon: Abandon,
    stdin: Option<Arc<StdinQueue>>,
    done: Arc<AtomicBool>,
}

impl Supervisor {
    fn run(mut self, events: Receiver<Event>, mut open_pipes: usize, out: Writer) {
        let mut status = None;
        let mut timed_out = false;
        // When everything left is killed (end of grace) and, after that, abandoned.
        let mut kill_at: Option<Instant> = None;
        let mut abandon_at: Option<Instant> = None;
        while status.is_none() || open_pipes > 0 {
            let now = Instant::now();
            if self.deadline.is_some_and(|d| d <= now) {
                self.deadline = None;
                timed_out = true;
                kill_at = Some(now);
            }
            if kill_at.is_some_and(|k| k <= now) {
                kill_at = None;
                self.kill_all();
                abandon_at.get_or_insert(now + DRAIN);
            }
            if abandon_at.is_some_and(|a| a <= now) {
                self.abandon.set();
            }
            let wake = [self.deadline, kill_at, abandon_at]
                .into_iter()
                .flatten()
                .min();
            let ev = match wake {
                Some(w) => match events.recv_timeout(w.saturating_duration_since(now)) {
                    Ok(ev) => ev,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match events.recv() {
                    Ok(ev) => ev,
                    Err(_) => break,
                },
            };
            match ev {
                Event::Exited(st) => {
                    status = Some(st);
                    if open_pipes > 0 {
                        kill_at.get_or_insert(Instant::now() + GRACE);
                    }
                }
                Event::OutputClosed => open_pipes = open_pipes.saturating_sub(1),
                Event::Signal(sig) => self.signal(sig, status.is_none()),
                Event::Disconnect => {
                    kill_at = Some(Instant::now());
                }
            }
        }
        // Whatever is left of the command ends with it.
        self.kill_all();
        if let Some(q) = &self.stdin {
            q.abandon();
        }
        drop(self.cgroup.take());
        self.done.store(true, Ordering::SeqCst);
        let msg = match status {
            Some(st) => Message::ExecExit {
                code: libc::WIFEXITED(st).then(|| libc::WEXITSTATUS(st)),
                signal: libc::WIFSIGNALED(st).then(|| libc::WTERMSIG(st)),
                timed_out,
            },
            None => Message::Error {
                code: kvmsandbox_proto::ErrorCode::Internal,
                message: format!("lost track of pid {}", self.pid),
            },
        };
        let _ = out.send(self.id, msg);
    }

    /// SIGKILLs everything the command started.
    fn kill_all(&self) {
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.kill() {
                eprintln!("kvmsandbox-agent: cgroup.kill {}: {e}", cg.dir().display());
            }
        }
        // SAFETY: kill(2) on the command's process group; no memory involved. The
        // group outlives its reaped leader as long as any member is alive.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
    }

    /// The host's `Kill{signal}`: the process group while its leader lives (its id
    /// is ours until then), and for SIGKILL everything in the cgroup.
    fn signal(&self, sig: i32, leader_alive: bool) {
        if sig == libc::SIGKILL {
            self.kill_all();
        } else if leader_alive {
            // SAFETY: kill(2) on the command's process group; no memory involved.
            unsafe { libc::kill(-self.pid, sig) };
        }
    }
}
