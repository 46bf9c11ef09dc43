//! What a module or a request cannot do to the micro guest, end to end:
//! announce a module bigger than the guest's heap (a typed error, and the
//! sandbox keeps working), keep the agent's only event loop to itself with an
//! endless loop (Shutdown still completes promptly; a host disconnect aborts
//! the run and the agent answers again). Needs /dev/kvm.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use kvmsandbox::{Sandbox, VmConfig, WasmRequest};
use kvmsandbox_proto::msg::WasmSpec;
use kvmsandbox_proto::{ErrorCode, Frame, FrameDecoder, Message, DEFAULT_AGENT_PORT};

/// A module that never ends and never calls out.
fn endless_loop() -> Vec<u8> {
    wat::parse_str(r#"(module (func (export "_start") (loop $l (br $l))))"#).unwrap()
}

/// A raw control connection (the client library would refuse what we send).
struct Raw {
    stream: UnixStream,
    decoder: FrameDecoder,
}

impl Raw {
    fn open(sb: &Sandbox) -> Raw {
        let stream = sb.connect(DEFAULT_AGENT_PORT).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut raw = Raw {
            stream,
            decoder: FrameDecoder::new(),
        };
        assert!(matches!(raw.recv().msg, Message::Hello(_)));
        raw
    }

    fn send(&mut self, id: u32, msg: Message) {
        let bytes = Frame::new(id, msg).encode().unwrap();
        self.stream.write_all(&bytes).unwrap();
    }

    fn recv(&mut self) -> Frame {
        loop {
            if let Some(frame) = self.decoder.next_frame().unwrap() {
                return frame;
            }
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf).unwrap();
            assert!(n > 0, "the guest closed the connection");
            self.decoder.feed(&buf[..n]);
        }
    }

    /// Sends `module` as a RunWasm request (without waiting for the end).
    fn start_run(&mut self, id: u32, module: &[u8]) {
        let spec = WasmSpec {
            module_len: module.len() as u64,
            ..Default::default()
        };
        self.send(id, Message::RunWasm(spec));
        self.send(
            id,
            Message::Data {
                data: module.to_vec(),
            },
        );
        self.send(id, Message::DataEnd);
    }
}

#[test]
fn module_larger_than_the_heap_is_a_typed_error_and_the_sandbox_works_on() {
    let sb = Sandbox::start(VmConfig::micro().memory_mib(32)).unwrap();
    let mut raw = Raw::open(&sb);
    // Under the protocol's 64 MiB bound, over a 32 MiB guest's whole heap.
    let spec = WasmSpec {
        module_len: 48 << 20,
        ..Default::default()
    };
    raw.send(7, Message::RunWasm(spec));
    let reply = raw.recv();
    assert_eq!(reply.request_id, 7);
    match reply.msg {
        Message::Error {
            code: ErrorCode::Invalid,
            message,
        } => {
            assert!(message.contains("does not fit"), "{message}")
        }
        other => panic!("expected an Invalid error, got {other:?}"),
    }
    // The same connection and the sandbox serve on.
    raw.send(8, Message::Ping { nonce: 5 });
    assert!(matches!(raw.recv().msg, Message::Pong { nonce: 5 }));
    sb.ping().unwrap();
    let hello =
        wat::parse_file(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/hello.wat")).unwrap();
    let out = sb
        .run_wasm(
            &WasmRequest {
                module: hello,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(out.stdout, b"hello, world\n");
}

#[test]
fn shutdown_interrupts_an_endless_unmetered_run() {
    let sb = Sandbox::micro().unwrap();
    let mut raw = Raw::open(&sb);
    raw.start_run(1, &endless_loop());
    // Let the run get going, then show the agent still serves others.
    std::thread::sleep(Duration::from_secs(1));
    let pinged = Instant::now();
    sb.ping().unwrap();
    assert!(
        pinged.elapsed() < Duration::from_secs(10),
        "ping took {:?}",
        pinged.elapsed()
    );
    let asked = Instant::now();
    sb.shutdown().unwrap();
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}");
    // The guest stopped by itself (not killed after the 5 s grace period).
    assert!(
        sb.console_output().contains("agent: shutdown requested"),
        "{}",
        sb.console_output()
    );
}

#[test]
fn disconnect_aborts_the_run_and_the_agent_answers_again() {
    let sb = Sandbox::micro().unwrap();
    let mut raw = Raw::open(&sb);
    raw.start_run(1, &endless_loop());
    std::thread::sleep(Duration::from_secs(1));
    drop(raw);
    // A second endless run on a fresh connection: only possible once the
    // first one was aborted (the agent runs one module at a time).
    let mut again = Raw::open(&sb);
    again.start_run(2, &endless_loop());
    std::thread::sleep(Duration::from_secs(1));
    drop(again);
    let started = Instant::now();
    for _ in 0..3 {
        sb.ping().unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "pings took {:?}",
        started.elapsed()
    );
    let hello =
        wat::parse_file(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wasm/hello.wat")).unwrap();
    let out = sb
        .run_wasm(
            &WasmRequest {
                module: hello,
                ..Default::default()
            },
            None,
        )
        .unwrap();
    assert_eq!(out.stdout, b"hello, world\n");
}
