//! `agent_client`: the host side of the agent protocol (`kvmsandbox::agent::
//! AgentClient`) talking to a hostile agent. The guest agent (micro guest or
//! Linux /init) is guest code, so everything it sends is guest-controlled: the
//! Hello handshake, answers with wrong ids or types, endless output, truncated
//! frames. The client must turn all of it into `AgentError`s.
//!
//! The agent's whole byte stream is written up front into one end of a socket
//! pair and its write side closed, so the client never waits: when the bytes run
//! out it sees EOF. The client's own requests pile up unread in the socket buffer
//! (they are small).
//!
//! The host's limits are part of the input: a small output cap and stale-frame
//! limit make the bounds reachable with short streams, and every collected
//! result is checked against the cap (a hostile agent must never get more than
//! `max_output` bytes into one result).
//!
//! Input: one byte whose value mod 9 is the number of client calls (≤ 8) and
//! whose quotient picks the limits, one byte per call choosing it, then the
//! agent's byte stream.

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use kvmsandbox::agent::{AgentClient, AgentError, AgentLimits, ExecRequest, WasmRequest};

use crate::input::Input;

/// Inactivity timeout given to the client (EOF arrives long before it).
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest agent stream we write (well under the socket buffer).
const MAX_STREAM: usize = 64 * 1024;

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let first = inp.u8();
    let n = first % 9;
    let limits = AgentLimits::default()
        .with_max_output([16, 4096, 1 << 20][usize::from(first / 9) % 3])
        .with_default_deadline(TIMEOUT)
        .with_max_stale_frames([0, 3, 1024][usize::from(first / 27) % 3]);
    let calls: Vec<u8> = (0..n).map(|_| inp.u8()).collect();
    let stream = inp.rest();
    let stream = &stream[..stream.len().min(MAX_STREAM)];

    let (host, mut agent) = UnixStream::pair().expect("fuzz harness: socketpair");
    agent
        .write_all(stream)
        .expect("fuzz harness: agent bytes fit the socket buffer");
    agent
        .shutdown(Shutdown::Write)
        .expect("fuzz harness: half-close");

    let Ok(mut client) = AgentClient::from_stream(host, TIMEOUT) else {
        return;
    };
    let _ = client.hello();
    client.set_limits(limits);
    let cap = limits.max_output as usize;
    let capped = |len: usize| assert!(len <= cap, "{len} bytes collected past the {cap}-byte cap");
    for c in calls {
        let result = match c % 9 {
            0 => client.ping().map(drop),
            1 => client.echo(b"echo").map(|d| capped(d.len())),
            2 => client.echo(&[]).map(|d| capped(d.len())),
            3 => client.exec(&ExecRequest::new(["/bin/true"])).map(|o| {
                capped(o.stdout.len());
                capped(o.stderr.len());
            }),
            4 => {
                let mut out = Vec::new();
                let r = client.read_file("/f", &mut out).map(drop);
                capped(out.len());
                r
            }
            5 => client.write_file("/f", &b"data"[..], 0o644).map(drop),
            6 => client
                .run_wasm(
                    &WasmRequest {
                        module: b"\0asm\x01\0\0\0".to_vec(),
                        args: vec!["m".into()],
                        env: Vec::new(),
                        stdin: Vec::new(),
                        fuel: None,
                        max_memory_bytes: None,
                        timeout: None,
                        ..WasmRequest::default()
                    },
                    |_, _| {},
                )
                .map(drop),
            7 => client.disk_read(0, 512, 16).map(|d| {
                assert!(d.len() <= 16, "disk_read of 16 bytes returned {}", d.len());
                capped(d.len());
            }),
            _ => client
                .disk_write(0, 0, b"block")
                .and_then(|()| client.disk_flush(0)),
        };
        if crate::trace_enabled() {
            eprintln!("agent_client: call {} -> {result:?}", c % 9);
        }
        if let Err(AgentError::StaleFrames { frames, .. }) = result {
            assert_eq!(frames, limits.max_stale_frames + 1);
        }
    }
    drop(agent);
}
