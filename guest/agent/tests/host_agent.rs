//! The Linux agent as a host process, driven by the host client of core/src/agent.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use common::{alive, children_of, eventually, fnv, noise, pids_in, stat, HostAgent, Raw, TIMEOUT};
use kvmsandbox::agent::{
    AgentClient, AgentError, ErrorCode, ExecEvent, ExecRequest, Stream, WasmRequest,
};
use kvmsandbox_proto::msg::ExecSpec;
use kvmsandbox_proto::Message;

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
fn agent_killed_mid_command_is_disconnected_and_its_command_dies() {
    let mut agent = HostAgent::start();
    let mut c = agent.client();
    let mut p = c
        .exec_streaming(&ExecRequest::new(["sleep", "30"]))
        .unwrap();
    let pid = p.pid();
    assert!(alive(pid));
    let h = std::thread::spawn(move || {
        let start = Instant::now();
        (p.wait(|_, _| {}), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    agent.child.kill().unwrap();
    let (res, took) = h.join().unwrap();
    assert!(
        matches!(res, Err(AgentError::Disconnected { .. })),
        "{res:?}"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // Guest-side cleanup: the command does not outlive its agent.
    eventually(Duration::from_secs(3), "command outlived the agent", || {
        !alive(pid)
    });
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
    // `sleep` never reads stdin: 20 MiB cannot be delivered, and must not be waited on.
    let start = Instant::now();
    let out = c
        .exec(&ExecRequest::new(["sh", "-c", "sleep 1; exit 4"]).stdin(noise(20 << 20, 5)))
        .unwrap();
    assert_eq!(out.status.code, Some(4));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );
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
    // SIGSTOP takes effect asynchronously: a thread of the agent still running
    // could answer the ping. Wait until every thread is stopped ('T').
    let stopped = |pid: &str| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks.flatten().all(|t| {
                    std::fs::read_to_string(t.path().join("stat"))
                        .ok()
                        .and_then(|st| {
                            st.rsplit(')')
                                .next()
                                .map(|r| r.trim_start().starts_with('T'))
                        })
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false)
    };
    let t0 = Instant::now();
    while !stopped(&pid) {
        assert!(t0.elapsed() < Duration::from_secs(5), "agent never stopped");
        std::thread::sleep(Duration::from_millis(5));
    }
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

fn spec(argv: &[&str]) -> ExecSpec {
    ExecSpec {
        argv: argv.iter().map(|a| a.to_string()).collect(),
        ..ExecSpec::default()
    }
}

/// Item 1: the leader exits at once, a background child keeps stdout open.
#[test]
fn exec_ends_soon_after_its_leader_even_with_a_background_child() {
    let agent = HostAgent::start();
    let start = Instant::now();
    let out = agent
        .client()
        .exec(&ExecRequest::new(["sh", "-c", "sleep 30 & echo $!"]).timeout(Duration::from_secs(1)))
        .unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The leader's own status; the leftover was killed at the end of the grace period.
    assert_eq!(out.status.code, Some(0));
    let pids = pids_in(&out.stdout);
    assert_eq!(pids.len(), 1, "{:?}", String::from_utf8_lossy(&out.stdout));
    eventually(Duration::from_secs(2), "background child survived", || {
        !alive(pids[0])
    });
}

/// Item 2: a `setsid` escapee holding stdout dies at the timeout too.
#[test]
fn timeout_kills_a_setsid_escapee() {
    let agent = HostAgent::start();
    let start = Instant::now();
    let out = agent
        .client()
        .exec(
            &ExecRequest::new(["sh", "-c", "setsid sh -c 'echo $$; exec sleep 30' & wait"])
                .timeout(Duration::from_millis(500)),
        )
        .unwrap();
    let took = start.elapsed();
    assert!(out.status.timed_out);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let pids = pids_in(&out.stdout);
    assert_eq!(pids.len(), 1, "{:?}", String::from_utf8_lossy(&out.stdout));
    eventually(Duration::from_secs(2), "setsid escapee survived", || {
        !alive(pids[0])
    });
}

/// The cgroup path is what runs here (not the process-group fallback).
#[test]
fn each_command_runs_in_a_cgroup_of_its_own() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    let cg = |c: &mut kvmsandbox::agent::AgentClient| {
        let out = c
            .exec(&ExecRequest::new(["cat", "/proc/self/cgroup"]))
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("0::").map(String::from))
            .unwrap()
    };
    let (a, b) = (cg(&mut c), cg(&mut c));
    let mine = format!("/kvmsandbox-agent-{}/cmd-", agent.child.id());
    assert!(a.contains(&mine), "{a}");
    assert!(b.contains(&mine), "{b}");
    assert_ne!(a, b);
}

/// Items 2 and 4: the host hangs up mid-command: everything the command started
/// dies, a `setsid` escapee included, and is reaped.
#[test]
fn disconnect_kills_everything_the_command_started() {
    let agent = HostAgent::start();
    let mut r = Raw::connect(&agent);
    r.send(
        1,
        Message::Exec(spec(&[
            "sh",
            "-c",
            "echo $$; setsid sh -c 'echo $$; exec sleep 30' & wait",
        ])),
    );
    let mut out = Vec::new();
    while pids_in(&out).len() < 2 {
        match r.recv_for(1) {
            Message::ExecStarted { .. } => {}
            Message::Stdout { data } => out.extend(data),
            other => panic!("unexpected {other:?}"),
        }
    }
    let pids = pids_in(&out);
    assert!(pids.iter().all(|p| alive(*p)));
    drop(r);
    eventually(
        Duration::from_secs(3),
        "a process survived the disconnect",
        || pids.iter().all(|p| !alive(*p)),
    );
    let agent_pid = agent.child.id();
    eventually(
        Duration::from_secs(3),
        "the agent left children behind",
        || children_of(agent_pid).is_empty(),
    );
}

/// Item 4: a host gone right after Exec (ExecStarted cannot be sent) leaks no
/// child, and orphans of later commands are still reaped.
#[test]
fn host_gone_right_after_exec_leaks_no_child() {
    let agent = HostAgent::start();
    let agent_pid = agent.child.id();
    {
        let mut r = Raw::connect(&agent);
        r.send(1, Message::Exec(spec(&["sleep", "30"])));
        // Gone before the agent can answer ExecStarted.
    }
    std::thread::sleep(Duration::from_millis(300));
    eventually(Duration::from_secs(3), "the command leaked", || {
        children_of(agent_pid).is_empty()
    });
    // An orphan (its parent exits first) is killed with its exec and reaped.
    let out = agent
        .client()
        .exec(&ExecRequest::new([
            "sh",
            "-c",
            "sleep 30 >/dev/null 2>&1 & echo $!; cat /proc/self/cgroup",
        ]))
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The first Exec did get as far as its own cgroup (so it was started): this is the second.
    assert!(text.contains("/cmd-2\n"), "{text}");
    let orphan = pids_in(&out.stdout)[0];
    eventually(Duration::from_secs(3), "the orphan was not reaped", || {
        stat(orphan).is_none() && children_of(agent_pid).is_empty()
    });
}

/// Item 3: a child that never reads stdin, 20 MiB of stdin sent regardless of the
/// window, and a Ping on the same connection: still answered.
#[test]
fn stdin_never_blocks_the_connection() {
    let agent = HostAgent::start();
    let mut r = Raw::connect(&agent);
    r.send(
        1,
        Message::Exec(ExecSpec {
            stdin: true,
            ..spec(&["sleep", "30"])
        }),
    );
    assert!(matches!(r.recv_for(1), Message::ExecStarted { .. }));
    let mut w = r.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let chunk = vec![7u8; 512 << 10];
        for _ in 0..40 {
            let f = kvmsandbox_proto::Frame::new(
                1,
                Message::Stdin {
                    data: chunk.clone(),
                },
            );
            w.write_all(&f.encode().unwrap()).unwrap();
        }
        let ping = kvmsandbox_proto::Frame::new(2, Message::Ping { nonce: 77 });
        w.write_all(&ping.encode().unwrap()).unwrap();
    });
    let start = Instant::now();
    assert_eq!(r.recv_for(2), Message::Pong { nonce: 77 });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    writer.join().unwrap();
    r.send(1, Message::Kill { signal: 9 });
    assert!(matches!(
        r.recv_for(1),
        Message::ExecExit {
            signal: Some(9),
            ..
        }
    ));
}

/// Item 3: 24 MiB (beyond the ~17 MiB that used to deadlock) through `cat` with the streaming API, which used to write all of
/// stdin before reading any output.
#[test]
fn twenty_four_mib_through_cat_streaming() {
    let agent = HostAgent::start();
    let mut c = agent.client();
    let data = noise(24 * 1024 * 1024 + 3, 9);
    let (tx, rx) = std::sync::mpsc::channel();
    let sent = data.clone();
    std::thread::spawn(move || {
        let p = c.exec_streaming(&ExecRequest::new(["cat"]).stdin(sent));
        let _ = tx.send(p.and_then(|p| p.wait_with_output()));
    });
    let out = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("deadlocked")
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), data.len());
    assert_eq!(fnv(&out.stdout), fnv(&data));
}

/// Item 7: a second Exec with the id of a running one is refused; the first one
/// stays supervised and finishes normally.
#[test]
fn repeated_request_id_is_refused() {
    let agent = HostAgent::start();
    let mut r = Raw::connect(&agent);
    r.send(
        5,
        Message::Exec(spec(&["sh", "-c", "sleep 0.5; echo first"])),
    );
    assert!(matches!(r.recv_for(5), Message::ExecStarted { .. }));
    r.send(5, Message::Exec(spec(&["echo", "second"])));
    assert!(
        matches!(
            r.recv_for(5),
            Message::Error {
                code: ErrorCode::AlreadyExists,
                ..
            }
        ),
        "second Exec not refused"
    );
    assert_eq!(
        r.recv_for(5),
        Message::Stdout {
            data: b"first\n".to_vec()
        }
    );
    assert!(matches!(
        r.recv_for(5),
        Message::ExecExit { code: Some(0), .. }
    ));
}

/// Item 16, agent side: an unknown request gets `Unsupported` and the connection
/// goes on; a request with fields appended by a newer host is served.
#[test]
fn agent_answers_unknown_messages_unsupported_and_tolerates_new_fields() {
    use std::io::Write;
    let agent = HostAgent::start();
    let mut r = Raw::connect(&agent);
    r.send(
        3,
        Message::Unknown {
            msg_type: 0x7777,
            payload: vec![1, 2, 3],
        },
    );
    assert!(
        matches!(
            r.recv_for(3),
            Message::Error {
                code: ErrorCode::Unsupported,
                ..
            }
        ),
        "unknown type not answered Unsupported"
    );
    // A Ping with a (future) field after its nonce.
    let mut bytes = kvmsandbox_proto::Frame::new(4, Message::Ping { nonce: 9 })
        .encode()
        .unwrap();
    bytes.extend_from_slice(&[0xaa; 6]);
    let len = (bytes.len() - kvmsandbox_proto::HEADER_LEN) as u32;
    bytes[10..14].copy_from_slice(&len.to_le_bytes());
    r.s.write_all(&bytes).unwrap();
    assert_eq!(r.recv_for(4), Message::Pong { nonce: 9 });
}

/// Item 16, host side: the client skips an unknown message from a newer agent and
/// accepts a Hello with an appended field.
#[test]
fn host_client_skips_unknown_messages_and_new_fields() {
    use kvmsandbox_proto::{Frame, FrameDecoder};
    let path = std::env::temp_dir().join(format!("kvms-newer-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let fake = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut hello = Frame::new(
            0,
            Message::Hello(kvmsandbox_proto::msg::Hello {
                version: 1,
                kind: "linux".into(),
                capabilities: 0,
            }),
        )
        .encode()
        .unwrap();
        hello.extend_from_slice(&[1, 2, 3, 4]);
        let len = (hello.len() - kvmsandbox_proto::HEADER_LEN) as u32;
        hello[10..14].copy_from_slice(&len.to_le_bytes());
        s.write_all(&hello).unwrap();
        let mut dec = FrameDecoder::new();
        let mut buf = [0u8; 4096];
        let ping = loop {
            if let Some(f) = dec.next_frame().unwrap() {
                break f;
            }
            let n = s.read(&mut buf).unwrap();
            dec.feed(&buf[..n]);
        };
        let Message::Ping { nonce } = ping.msg else {
            panic!("{:?}", ping.msg)
        };
        let id = ping.request_id;
        let extra = Message::Unknown {
            msg_type: 0x7001,
            payload: b"progress".to_vec(),
        };
        s.write_all(&Frame::new(id, extra).encode().unwrap())
            .unwrap();
        s.write_all(&Frame::new(id, Message::Pong { nonce }).encode().unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
    });
    let mut c = AgentClient::connect_unix(&path, TIMEOUT).unwrap();
    assert_eq!(c.hello().kind, "linux");
    c.ping().unwrap();
    fake.join().unwrap();
    let _ = std::fs::remove_file(&path);
}
