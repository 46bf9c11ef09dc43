//! A hostile agent against the host client: a fake agent on a Unix socket that
//! speaks the real protocol (guest/proto's frames) and then floods output,
//! dribbles data, or answers with frames for other requests. Attached with
//! `Sandbox::attach_host_agent`, so no VM is needed. The host must stay bounded:
//! output stops at the cap, every call ends by its deadline, and `kill()` wakes a
//! call blocked in another thread.
//!
//! Every call runs under [`within`], so a regression fails the test instead of
//! hanging it; the fake agent stops by itself after a bounded amount of data, so
//! even the old unbounded client could not exhaust the machine's memory.

use kvmsandbox::agent::{AgentError, AgentLimits, ExecRequest};
use kvmsandbox::{Error, Sandbox};
use kvmsandbox_proto::msg::Hello;
use kvmsandbox_proto::{Frame, FrameDecoder, Message, MAX_FRAME, PROTOCOL_VERSION};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// What the fake agent does with requests.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Exec: `ExecStarted`, then stdout frames up to [`FLOOD_TOTAL`], then the exit.
    FloodStdout,
    /// ReadFile: one byte of `Data` every [`DRIBBLE_EVERY`], up to [`DRIBBLE_TOTAL`].
    DribbleFile,
    /// Ping: `Pong`s for other request ids, as fast as possible, up to [`FLOOD_TOTAL`] bytes.
    StaleFlood,
    /// Ping: a `Pong` for another request id every [`DRIBBLE_EVERY`].
    StaleDribble,
    /// Exec: `ExecStarted`, then nothing until the host hangs up.
    Silent,
    /// Every request but Echo: no answer at all.
    Mute,
}

/// Most a flooding fake agent sends (the caps under test are far below).
const FLOOD_TOTAL: u64 = 256 << 20;
const DRIBBLE_EVERY: Duration = Duration::from_millis(100);
/// Dribbling stops after this many frames (~30 s), so an old client ends eventually.
const DRIBBLE_TOTAL: u32 = 300;
/// The generous "does not hang" bound.
const BOUND: Duration = Duration::from_secs(20);

struct FakeAgent {
    path: PathBuf,
    dir: PathBuf,
    /// Bytes of output frames written so far (all connections).
    sent: Arc<AtomicU64>,
}

impl FakeAgent {
    fn start(mode: Mode) -> FakeAgent {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kvmsb-fake-agent-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let sent2 = sent.clone();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(s) = s else { return };
                let sent = sent2.clone();
                std::thread::spawn(move || serve(s, mode, &sent));
            }
        });
        FakeAgent { path, dir, sent }
    }

    fn attach(&self, timeout: Duration, limits: AgentLimits) -> Sandbox {
        let mut sb = Sandbox::attach_host_agent(&self.path, timeout).unwrap();
        sb.set_agent_limits(limits);
        sb
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn send(s: &mut UnixStream, id: u32, msg: Message) -> std::io::Result<usize> {
    let bytes = Frame::new(id, msg).encode().unwrap();
    s.write_all(&bytes)?;
    Ok(bytes.len())
}

/// One connection: Hello, then answers requests as `mode` says until the host hangs up.
fn serve(mut s: UnixStream, mode: Mode, sent: &AtomicU64) {
    let hello = Hello {
        version: u16::from(PROTOCOL_VERSION),
        kind: "fake".into(),
        capabilities: u64::MAX,
    };
    if send(&mut s, 0, Message::Hello(hello)).is_err() {
        return;
    }
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let frame = loop {
            match dec.next_frame() {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(_) => return,
            }
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => dec.feed(&buf[..n]),
            }
        };
        let id = frame.request_id;
        let r = match (mode, frame.msg) {
            (_, Message::Echo { data }) => send(&mut s, id, Message::EchoReply { data }).map(drop),
            (Mode::FloodStdout, Message::Exec(_)) => flood_exec(&mut s, id, sent),
            (Mode::Mute, _) => Ok(()),
            (Mode::Silent, Message::Exec(_)) => {
                let _ = send(&mut s, id, Message::ExecStarted { pid: 7 });
                // Nothing more: wait for the host to hang up.
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                return;
            }
            (Mode::DribbleFile, Message::ReadFile { .. }) => {
                (0..DRIBBLE_TOTAL).try_for_each(|_| {
                    std::thread::sleep(DRIBBLE_EVERY);
                    send(&mut s, id, Message::Data { data: vec![b'x'] }).map(drop)
                })
            }
            (Mode::StaleFlood, Message::Ping { nonce }) => loop {
                match send(&mut s, id + 1, Message::Pong { nonce }) {
                    Ok(n) if sent.fetch_add(n as u64, Ordering::SeqCst) < FLOOD_TOTAL => {}
                    _ => break Ok(()),
                }
            },
            (Mode::StaleDribble, Message::Ping { nonce }) => {
                (0..DRIBBLE_TOTAL).try_for_each(|_| {
                    std::thread::sleep(DRIBBLE_EVERY);
                    send(&mut s, id + 1, Message::Pong { nonce }).map(drop)
                })
            }
            (_, Message::Ping { nonce }) => send(&mut s, id, Message::Pong { nonce }).map(drop),
            _ => send(
                &mut s,
                id,
                Message::Error {
                    code: kvmsandbox::agent::ErrorCode::Unsupported,
                    message: "fake".into(),
                },
            )
            .map(drop),
        };
        if r.is_err() {
            return;
        }
    }
}

fn flood_exec(s: &mut UnixStream, id: u32, sent: &AtomicU64) -> std::io::Result<()> {
    send(s, id, Message::ExecStarted { pid: 7 })?;
    let chunk = vec![b'o'; MAX_FRAME - 64];
    while sent.load(Ordering::SeqCst) < FLOOD_TOTAL {
        let n = send(
            s,
            id,
            Message::Stdout {
                data: chunk.clone(),
            },
        )?;
        sent.fetch_add(n as u64, Ordering::SeqCst);
    }
    send(
        s,
        id,
        Message::ExecExit {
            code: Some(0),
            signal: None,
            timed_out: false,
        },
    )
    .map(drop)
}

/// Runs `f` on its own thread; fails the test if it takes longer than `bound`.
fn within<T: Send + 'static>(
    bound: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(bound) {
        Ok(v) => (v, t0.elapsed()),
        Err(_) => panic!("the call did not end within {bound:?}"),
    }
}

fn limits(max_output: u64, deadline: Duration) -> AgentLimits {
    AgentLimits::default()
        .with_max_output(max_output)
        .with_default_deadline(deadline)
}

#[test]
fn flooding_exec_output_stops_at_the_cap() {
    let agent = FakeAgent::start(Mode::FloodStdout);
    let cap = 4 << 20;
    let sb = agent.attach(Duration::from_secs(5), limits(cap, Duration::from_secs(60)));
    let (r, took) = within(BOUND, move || sb.exec(&ExecRequest::new(["yes"])));
    let e = r.unwrap_err();
    assert!(
        matches!(e, Error::Agent(AgentError::OutputLimit { op: "exec", limit }) if limit == cap),
        "{e} after {took:?}"
    );
    // The host stopped reading at the cap and hung up: the agent could not push
    // much more than the cap plus what the socket buffers hold.
    std::thread::sleep(Duration::from_millis(200));
    let sent = agent.sent.load(Ordering::SeqCst);
    assert!(
        sent < cap + (16 << 20),
        "agent got {sent} bytes out against a cap of {cap}"
    );
}

#[test]
fn dribbling_file_read_ends_by_its_deadline() {
    let agent = FakeAgent::start(Mode::DribbleFile);
    // Each byte comes well within the 2 s silence timeout; only the absolute deadline ends it.
    let sb = agent.attach(
        Duration::from_secs(2),
        limits(1 << 20, Duration::from_secs(1)),
    );
    let (r, took) = within(BOUND, move || sb.read_file("/dribble", Vec::new()));
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Agent(AgentError::Timeout {
                op: "read_file",
                ..
            })
        ),
        "{e} after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn frames_for_other_requests_do_not_extend_an_answer_wait() {
    let agent = FakeAgent::start(Mode::StaleDribble);
    let sb = agent.attach(Duration::from_secs(1), AgentLimits::default());
    let (r, took) = within(BOUND, move || sb.ping());
    let e = r.unwrap_err();
    assert!(
        matches!(e, Error::Agent(AgentError::Timeout { op: "ping", .. })),
        "{e} after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_per_call_timeout_overrides_the_sandbox_default() {
    let agent = FakeAgent::start(Mode::StaleDribble);
    // Default answer wait of 30 s: only the per-call timeout can end this in time.
    let sb = agent.attach(Duration::from_secs(30), AgentLimits::default());
    let (r, took) = within(BOUND, move || {
        sb.with_timeout(Duration::from_millis(300)).ping()
    });
    let e = r.unwrap_err();
    assert_eq!(
        e.kind(),
        kvmsandbox::ErrorKind::Timeout,
        "{e} after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_per_call_timeout_covers_the_files_api() {
    let agent = FakeAgent::start(Mode::Mute);
    let local = agent.dir.join("local.bin");
    std::fs::write(&local, b"data").unwrap();
    // Default answer wait of 30 s: only the per-call timeout can end these in time.
    let sb = Arc::new(agent.attach(Duration::from_secs(30), AgentLimits::default()));
    type Call = fn(&Sandbox, &std::path::Path) -> kvmsandbox::Result<()>;
    let calls: [(&str, Call); 7] = [
        ("stat", |sb, _| sb.with_timeout(T).stat("/", true).map(drop)),
        ("list_dir", |sb, _| {
            sb.with_timeout(T).list_dir("/").map(drop)
        }),
        ("make_dir", |sb, _| {
            sb.with_timeout(T).make_dir("/d", 0o755, false)
        }),
        ("remove", |sb, _| sb.with_timeout(T).remove("/d", false)),
        ("rename", |sb, _| sb.with_timeout(T).rename("/d", "/e")),
        ("upload", |sb, l| {
            sb.with_timeout(T).upload(l, "/up", 0o644).map(drop)
        }),
        ("download", |sb, l| {
            sb.with_timeout(T)
                .download("/down", &l.with_extension("down"))
                .map(drop)
        }),
    ];
    const T: Duration = Duration::from_millis(300);
    for (name, call) in calls {
        let (sb, local) = (sb.clone(), local.clone());
        let (r, took) = within(BOUND, move || call(&sb, &local));
        let e = r.expect_err(name);
        assert_eq!(
            e.kind(),
            kvmsandbox::ErrorKind::Timeout,
            "{name}: {e} after {took:?}"
        );
        assert!(took < Duration::from_secs(5), "{name} took {took:?}");
    }
}

#[test]
fn endless_frames_for_other_requests_are_a_typed_error() {
    let agent = FakeAgent::start(Mode::StaleFlood);
    let sb = agent.attach(
        Duration::from_secs(5),
        AgentLimits::default().with_max_stale_frames(100),
    );
    let (r, took) = within(BOUND, move || sb.ping());
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Agent(AgentError::StaleFrames {
                op: "ping",
                frames: 101
            })
        ),
        "{e} after {took:?}"
    );
}

#[test]
fn kill_wakes_an_exec_blocked_in_another_thread() {
    let agent = FakeAgent::start(Mode::Silent);
    let sb = Arc::new(agent.attach(Duration::from_secs(5), AgentLimits::default()));
    let sb2 = sb.clone();
    let (tx, rx) = mpsc::channel();
    // No command timeout: only kill() can end this call.
    std::thread::spawn(move || {
        let _ = tx.send(sb2.exec(&ExecRequest::new(["sleep", "100"])));
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    sb.kill();
    let r = rx
        .recv_timeout(BOUND)
        .expect("the blocked exec did not return after kill()");
    let took = t0.elapsed();
    let e = r.unwrap_err();
    assert!(matches!(e, Error::Stopped { op: "exec" }), "{e}");
    assert!(
        took < Duration::from_secs(2),
        "exec returned {took:?} after kill()"
    );
}

#[test]
fn calls_after_kill_fail_at_once_with_stopped() {
    let agent = FakeAgent::start(Mode::Silent);
    let sb = agent.attach(Duration::from_secs(5), AgentLimits::default());
    sb.ping().unwrap();
    sb.kill();
    let (r, took) = within(BOUND, move || {
        (
            sb.ping(),
            sb.echo(b"x"),
            sb.spawn(&ExecRequest::new(["true"])).map(drop),
        )
    });
    for e in [r.0.map(drop), r.1.map(drop), r.2]
        .into_iter()
        .map(|r| r.unwrap_err())
    {
        assert!(matches!(e, Error::Stopped { .. }), "{e}");
    }
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

#[test]
fn limits_below_the_output_pass_unchanged() {
    // The cap is per stream and per call: output under it arrives whole.
    let agent = FakeAgent::start(Mode::Silent);
    let sb = agent.attach(Duration::from_secs(5), limits(8, Duration::from_secs(5)));
    assert_eq!(sb.echo(b"12345678").unwrap(), b"12345678");
    let e = sb.echo(b"123456789").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Agent(AgentError::OutputLimit {
                op: "echo",
                limit: 8
            })
        ),
        "{e}"
    );
}
