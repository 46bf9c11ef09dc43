//! The Linux agent as a host process, driven by the host client of core/src/agent.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use common::{fnv, noise, HostAgent, TIMEOUT};
use kvmsandbox::agent::{
    AgentClient, AgentError, ErrorCode, ExecEvent, ExecRequest, Stream, WasmRequest,
};

#[test]
fn hello_ping_and_echo() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    assert_eq!(c.hello().kind, "linux");
    assert!(c.ping().unwrap() < TIMEOUT);
    assert_eq!(c.echo(b"").unwrap(), b"");
    let big = noise(2 * 1024 * 1024 + 123, 1);
    assert_eq!(c.echo(&big).unwrap(), big);
}

#[test]
fn exec_echo_hi() {
    let agent = HostAgent::start();
    let out = agent
        .client()
        .exec(&ExecRequest::new(["echo", "hi"]))
        .unwrap();
    assert_eq!(out.stdout, b"hi\n");
    assert!(out.stderr.is_empty());
    assert!(out.status.success());
    assert!(out.pid > 0);
}

#[test]
fn exec_nonzero_exit_and_stderr() {
    let agent = HostAgent::start();
    let out = agent
        .client()
        .exec(&ExecRequest::new(["sh", "-c", "echo oops >&2; exit 3"]))
        .unwrap();
    assert_eq!(out.status.code, Some(3));
    assert_eq!(out.status.signal, None);
    assert!(!out.status.timed_out);
    assert_eq!(out.stderr, b"oops\n");
}

#[test]
fn exec_killed_by_signal() {
    let agent = HostAgent::start();
    let out = agent
        .client()
        .exec(&ExecRequest::new(["sh", "-c", "kill -9 $$"]))
        .unwrap();
    assert_eq!(out.status.code, None);
    assert_eq!(out.status.signal, Some(9));
    assert!(!out.status.timed_out);
}

#[test]
fn exec_missing_program_is_not_found() {
    let agent = HostAgent::start();
    let err = agent
        .client()
        .exec(&ExecRequest::new(["/no/such/program"]))
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::NotFound), "{err}");
}

#[test]
fn exec_10mib_of_stdout_intact() {
    let agent = HostAgent::start();
    let out = agent
        .client()
        .exec(&ExecRequest::new(["seq", "1", "1500000"]))
        .unwrap();
    let mut want = String::new();
    for i in 1..=1_500_000u32 {
        want.push_str(&i.to_string());
        want.push('\n');
    }
    assert!(want.len() >= 10 * 1024 * 1024);
    assert_eq!(out.stdout.len(), want.len());
    assert_eq!(fnv(&out.stdout), fnv(want.as_bytes()));
    assert!(out.status.success());
}

#[test]
fn exec_stdin_through_cat() {
    let agent = HostAgent::start();
    let data = noise(3 * 1024 * 1024 + 7, 2);
    let out = agent
        .client()
        .exec(&ExecRequest::new(["cat"]).stdin(data.clone()))
        .unwrap();
    assert_eq!(out.stdout.len(), data.len());
    assert_eq!(fnv(&out.stdout), fnv(&data));
}

#[test]
fn exec_env_and_cwd() {
    let agent = HostAgent::start();
    let out = agent
        .client()
        .exec(
            &ExecRequest::new(["sh", "-c", "echo $FOO; pwd; echo ${HOME:-unset}"])
                .env("FOO", "bar baz")
                .cwd("/tmp"),
        )
        .unwrap();
    // The environment is exactly what was asked for: nothing inherited.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bar baz\n/tmp\nunset\n"
    );
}

#[test]
fn exec_bad_cwd_is_not_found() {
    let agent = HostAgent::start();
    let err = agent
        .client()
        .exec(&ExecRequest::new(["true"]).cwd("/no/such/dir"))
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::NotFound), "{err}");
}

#[test]
fn exec_timeout_kills_sleep_quickly() {
    let agent = HostAgent::start();
    let start = Instant::now();
    let out = agent
        .client()
        .exec(&ExecRequest::new(["sleep", "100"]).timeout(Duration::from_millis(300)))
        .unwrap();
    assert!(out.status.timed_out);
    assert_eq!(out.status.signal, Some(SIGKILL));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn exec_timeout_kills_the_whole_process_group() {
    let agent = HostAgent::start();
    let start = Instant::now();
    // The grandchild holds stdout open; only a group kill ends the exec quickly.
    let out = agent
        .client()
        .exec(
            &ExecRequest::new(["sh", "-c", "sleep 100 & sleep 100"])
                .timeout(Duration::from_millis(300)),
        )
        .unwrap();
    assert!(out.status.timed_out);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

const SIGKILL: i32 = 9;

#[test]
fn eight_concurrent_execs() {
    let agent = HostAgent::start();
    let start = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let mut c = agent.client();
            std::thread::spawn(move || {
                let req =
                    ExecRequest::new(["sh", "-c", "sleep 1; echo $N"]).env("N", i.to_string());
                c.exec(&req).unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.join().unwrap();
        assert_eq!(out.stdout, format!("{i}\n").into_bytes());
    }
    // Serially this would take 8 s.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn streaming_exec_with_interactive_stdin_and_kill() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    let mut p = c.exec_streaming(&ExecRequest::new(["cat"])).unwrap();
    let mut stdin = p.take_stdin().unwrap();
    stdin.write_all(b"line one\n").unwrap();
    match p.next_event().unwrap() {
        ExecEvent::Output(Stream::Stdout, d) => assert_eq!(d, b"line one\n"),
        other => panic!("unexpected {other:?}"),
    }
    drop(stdin);
    let st = p.wait(|_, _| {}).unwrap();
    assert!(st.success());

    let mut p = c
        .exec_streaming(&ExecRequest::new(["sleep", "100"]))
        .unwrap();
    p.kill(15).unwrap();
    let st = p.wait(|_, _| {}).unwrap();
    assert_eq!(st.signal, Some(15));
    // The control connection is still usable.
    c.ping().unwrap();
}

#[test]
fn file_round_trip_64mib() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    let data = noise(64 * 1024 * 1024, 3);
    let path = std::env::temp_dir().join(format!("kvms-agent-file-{}", std::process::id()));
    let p = path.to_str().unwrap();
    assert_eq!(
        c.write_file(p, &data[..], 0o600).unwrap(),
        data.len() as u64
    );
    let mut back = Vec::new();
    assert_eq!(c.read_file(p, &mut back).unwrap(), data.len() as u64);
    assert_eq!(back.len(), data.len());
    assert_eq!(fnv(&back), fnv(&data));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::remove_file(&path).unwrap();
    // The connection stays in sync after big transfers.
    c.ping().unwrap();
}

#[test]
fn missing_files_give_typed_not_found() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    let err = c.read_file("/no/such/file", Vec::new()).unwrap_err();
    assert!(
        matches!(
            err,
            AgentError::Remote {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{err}"
    );
    let err = c
        .write_file("/no/such/dir/file", &b"abc"[..], 0o644)
        .unwrap_err();
    assert!(
        matches!(
            err,
            AgentError::Remote {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{err}"
    );
    let err = c.read_file("/tmp", Vec::new()).unwrap_err();
    assert!(
        matches!(
            err,
            AgentError::Remote {
                code: ErrorCode::Invalid,
                ..
            }
        ),
        "{err}"
    );
    c.ping().unwrap();
}

#[test]
fn wasm_and_disk_are_unsupported_on_linux() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    let req = WasmRequest {
        module: noise(3 * 1024 * 1024, 4),
        ..WasmRequest::default()
    };
    let err = c.run_wasm(&req, |_, _| {}).unwrap_err();
    assert!(matches!(err, AgentError::Unsupported { .. }), "{err}");
    let err = c.disk_read(0, 0, 512).unwrap_err();
    assert!(matches!(err, AgentError::Unsupported { .. }), "{err}");
    c.ping().unwrap();
}

#[test]
fn agent_killed_mid_command_is_disconnected() {
    let mut agent = HostAgent::start();
    let mut c = agent.client();
    let h = std::thread::spawn(move || {
        let start = Instant::now();
        (c.exec(&ExecRequest::new(["sleep", "5"])), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    agent.child.kill().unwrap();
    let (res, took) = h.join().unwrap();
    assert!(
        matches!(res, Err(AgentError::Disconnected { .. })),
        "{res:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn silent_peer_gives_typed_timeout() {
    let path = std::env::temp_dir().join(format!("kvms-silent-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let keep = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(2));
        drop(s);
    });
    let start = Instant::now();
    let err = AgentClient::connect_unix(&path, Duration::from_millis(300))
        .err()
        .unwrap();
    assert!(
        matches!(err, AgentError::Timeout { op: "hello", .. }),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    keep.join().unwrap();
    let _ = std::fs::remove_file(&path);
}

#[test]
fn garbage_peer_gives_protocol_error() {
    let path = std::env::temp_dir().join(format!("kvms-garbage-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(500));
    });
    let err = AgentClient::connect_unix(&path, TIMEOUT).err().unwrap();
    assert!(matches!(err, AgentError::Protocol { .. }), "{err}");
    t.join().unwrap();
    let _ = std::fs::remove_file(&path);
}

/// A stand-in for the VMM's hybrid vsock socket: answers the CONNECT handshake,
/// then relays bytes to the agent's own socket.
#[test]
fn hybrid_vsock_handshake_then_protocol() {
    let agent = HostAgent::start();
    let path = std::env::temp_dir().join(format!("kvms-hybrid-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let target = agent.sock.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let mut host = s.unwrap();
            let mut line = Vec::new();
            let mut b = [0u8; 1];
            while host.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
                line.push(b[0]);
            }
            if line != b"CONNECT 1024" {
                host.write_all(b"NO\n").unwrap();
                continue;
            }
            host.write_all(b"OK 4242\n").unwrap();
            let guest = UnixStream::connect(&target).unwrap();
            let (mut h2, mut g2) = (host.try_clone().unwrap(), guest.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut h2, &mut g2));
            std::thread::spawn(move || {
                let (mut g, mut h) = (guest, host);
                std::io::copy(&mut g, &mut h)
            });
        }
    });
    let mut c = AgentClient::connect_hybrid(&path, 1024, TIMEOUT).unwrap();
    c.ping().unwrap();
    let out = c.exec(&ExecRequest::new(["echo", "via vsock"])).unwrap();
    assert_eq!(out.stdout, b"via vsock\n");
    let err = kvmsandbox::agent::connect_hybrid(&path, 7, TIMEOUT).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn shutdown_stops_the_host_agent() {
    let mut agent = HostAgent::start();
    let mut c = agent.client();
    c.shutdown().unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = agent.child.try_wait().unwrap() {
            assert!(st.success());
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "agent did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!agent.sock.exists(), "socket file left behind");
}

#[test]
fn command_ignoring_its_stdin_still_completes() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    let out = c
        .exec(&ExecRequest::new(["true"]).stdin(noise(5 * 1024 * 1024, 5)))
        .unwrap();
    assert!(out.status.success());
    c.ping().unwrap();
}

#[test]
fn stopped_agent_gives_typed_timeout() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    c.set_timeout(Duration::from_millis(300));
    c.ping().unwrap();
    let pid = agent.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let err = c.ping().unwrap_err();
    assert!(
        matches!(err, AgentError::Timeout { op: "ping", .. }),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    // The late Pong of the timed-out request is skipped; the next ping matches.
    c.set_timeout(TIMEOUT);
    c.ping().unwrap();
}

#[test]
fn agent_answers_garbage_with_an_error_frame_and_hangs_up() {
    use kvmsandbox_proto::{Frame, FrameDecoder, Message};
    let agent = HostAgent::start();
    let mut s = UnixStream::connect(&agent.sock).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let mut dec = FrameDecoder::new();
    dec.feed(&all);
    assert!(matches!(
        dec.next_frame().unwrap().unwrap().msg,
        Message::Hello(_)
    ));
    let err: Frame = dec.next_frame().unwrap().unwrap();
    assert_eq!(err.request_id, 0);
    assert!(
        matches!(
            err.msg,
            Message::Error {
                code: ErrorCode::Invalid,
                ..
            }
        ),
        "{:?}",
        err.msg
    );
    // The agent itself is fine.
    agent.client().ping().unwrap();
}
