//! Round trips of every message and every malformed-frame case, plus a
//! property-style sweep over random and truncated bytes (decoding must never panic).

use kvmsandbox_proto::frame::{
    Frame, FrameDecoder, HEADER_LEN, MAGIC, MAX_FRAME, PROTOCOL_VERSION,
};
use kvmsandbox_proto::msg::{ExecSpec, Hello, WasmErrorKind, WasmSpec};
use kvmsandbox_proto::{ErrorCode, Message, ProtoError};

fn all_messages() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            version: 1,
            kind: "linux".into(),
            capabilities: 0b1011,
        }),
        Message::Ping { nonce: 7 },
        Message::Pong { nonce: u64::MAX },
        Message::Echo {
            data: vec![1, 2, 3],
        },
        Message::EchoReply { data: vec![] },
        Message::Ok,
        Message::Error {
            code: ErrorCode::NotFound,
            message: "no such file: /x".into(),
        },
        Message::Error {
            code: ErrorCode::Other(999),
            message: String::new(),
        },
        Message::Shutdown,
        Message::Exec(ExecSpec {
            argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec![("A".into(), "b".into())],
            cwd: Some("/tmp".into()),
            stdin: true,
            timeout_ms: Some(1500),
        }),
        Message::Exec(ExecSpec::default()),
        Message::ExecStarted { pid: 42 },
        Message::Stdout {
            data: b"out".to_vec(),
        },
        Message::Stderr {
            data: b"err".to_vec(),
        },
        Message::Stdin {
            data: b"in".to_vec(),
        },
        Message::StdinEof,
        Message::Kill { signal: 9 },
        Message::StdinAck { bytes: 1 << 20 },
        Message::Unknown {
            msg_type: 0x7777,
            payload: vec![1, 2, 3],
        },
        Message::Unknown {
            msg_type: 0xffff,
            payload: vec![],
        },
        Message::ExecExit {
            code: Some(-1),
            signal: None,
            timed_out: false,
        },
        Message::ExecExit {
            code: None,
            signal: Some(9),
            timed_out: true,
        },
        Message::WriteFile {
            path: "/tmp/é".into(),
            mode: 0o644,
        },
        Message::ReadFile {
            path: "/etc/hosts".into(),
        },
        Message::Data {
            data: vec![0xff; 100],
        },
        Message::DataEnd,
        Message::DiskRead {
            disk: 1,
            offset: 1 << 40,
            len: 4096,
        },
        Message::DiskWrite {
            disk: 0,
            offset: 512,
            data: vec![9; 512],
        },
        Message::DiskFlush { disk: 3 },
        Message::DiskData { data: vec![1; 10] },
        Message::RunWasm(WasmSpec {
            module_len: 1234,
            args: vec!["a.wasm".into()],
            env: vec![],
            stdin: b"input".to_vec(),
            fuel: Some(1_000_000),
            max_memory_bytes: None,
        }),
        Message::WasmExit { code: 3 },
        Message::WasmTrap {
            message: "unreachable".into(),
        },
        Message::OutOfFuel,
        Message::WasmError {
            kind: WasmErrorKind::InvalidModule,
            message: "bad magic".into(),
        },
        Message::WasmError {
            kind: WasmErrorKind::Other(77),
            message: "x".into(),
        },
    ]
}

#[test]
fn every_message_round_trips() {
    for (i, msg) in all_messages().into_iter().enumerate() {
        let frame = Frame::new(i as u32 + 1, msg);
        let bytes = frame.encode().unwrap();
        assert_eq!(&bytes[..2], &MAGIC);
        let (back, used) = Frame::decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(back, frame);
    }
}

#[test]
fn every_prefix_needs_more_bytes() {
    for msg in all_messages() {
        let bytes = Frame::new(5, msg).encode().unwrap();
        for cut in 0..bytes.len() {
            assert_eq!(Frame::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
    }
}

#[test]
fn bad_magic_is_rejected_from_the_first_byte() {
    assert_eq!(
        Frame::decode(b"X"),
        Err(ProtoError::BadMagic { found: [b'X', 0] })
    );
    assert_eq!(
        Frame::decode(b"KX"),
        Err(ProtoError::BadMagic {
            found: [b'K', b'X']
        })
    );
}

#[test]
fn unsupported_version_is_rejected() {
    let mut bytes = Frame::new(1, Message::Ok).encode().unwrap();
    bytes[2] = PROTOCOL_VERSION + 1;
    assert_eq!(
        Frame::decode(&bytes),
        Err(ProtoError::UnsupportedVersion {
            found: PROTOCOL_VERSION + 1
        })
    );
    // Rejected even before the rest of the header arrives.
    assert!(matches!(
        Frame::decode(&bytes[..3]),
        Err(ProtoError::UnsupportedVersion { .. })
    ));
}

/// Rule 1 of protocol growth: a type this version does not know is not an error;
/// it decodes to `Unknown` with its payload, and the next frame is still found.
#[test]
fn unknown_type_decodes_to_unknown_and_keeps_the_stream_in_sync() {
    let mut bytes = raw(0x7777, &[1, 2, 3, 4]);
    bytes.extend(Frame::new(2, Message::Ping { nonce: 5 }).encode().unwrap());
    let (f, used) = Frame::decode(&bytes).unwrap().unwrap();
    assert_eq!(f.request_id, 9);
    assert_eq!(
        f.msg,
        Message::Unknown {
            msg_type: 0x7777,
            payload: vec![1, 2, 3, 4]
        }
    );
    assert_eq!(f.msg.msg_type(), 0x7777);
    let mut dec = FrameDecoder::new();
    dec.feed(&bytes);
    assert!(matches!(
        dec.next_frame().unwrap().unwrap().msg,
        Message::Unknown { .. }
    ));
    assert_eq!(
        dec.next_frame().unwrap().unwrap().msg,
        Message::Ping { nonce: 5 }
    );
    assert_eq!(dec.pending(), 0);
    // Re-encoding keeps the type and the payload, byte for byte.
    assert_eq!(Frame::new(9, f.msg).encode().unwrap(), bytes[..used]);
}

#[test]
fn length_over_max_is_rejected_without_waiting_for_payload() {
    let mut bytes = Frame::new(1, Message::Ok).encode().unwrap();
    let len = MAX_FRAME as u32 + 1;
    bytes[10..14].copy_from_slice(&len.to_le_bytes());
    assert_eq!(Frame::decode(&bytes), Err(ProtoError::TooLong { len }));
}

#[test]
fn encoder_refuses_oversized_payload() {
    let frame = Frame::new(
        1,
        Message::Data {
            data: vec![0; MAX_FRAME],
        },
    );
    assert!(matches!(
        frame.encode(),
        Err(ProtoError::PayloadTooLarge { .. })
    ));
    let ok = Frame::new(
        1,
        Message::Data {
            data: vec![0; kvmsandbox_proto::frame::MAX_CHUNK],
        },
    );
    assert!(ok.encode().is_ok());
}

/// Builds a frame with an arbitrary payload for a given type.
fn raw(msg_type: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&MAGIC);
    b.push(PROTOCOL_VERSION);
    b.push(0);
    b.extend_from_slice(&msg_type.to_le_bytes());
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    b.extend_from_slice(payload);
    b
}

#[test]
fn truncated_field_is_rejected() {
    // Ping needs 8 bytes of nonce.
    let err = Frame::decode(&raw(0x02, &[1, 2, 3])).unwrap_err();
    assert_eq!(
        err,
        ProtoError::Truncated {
            field: "ping.nonce",
            needed: 8,
            left: 3
        }
    );
    // Echo announces 100 bytes but carries 2.
    let mut p = 100u32.to_le_bytes().to_vec();
    p.extend_from_slice(&[1, 2]);
    assert_eq!(
        Frame::decode(&raw(0x04, &p)).unwrap_err(),
        ProtoError::Truncated {
            field: "echo.data",
            needed: 100,
            left: 2
        }
    );
}

#[test]
fn huge_list_count_is_rejected_before_allocating() {
    // Exec with argv count u32::MAX and nothing else.
    let p = u32::MAX.to_le_bytes();
    assert!(matches!(
        Frame::decode(&raw(0x10, &p)).unwrap_err(),
        ProtoError::Truncated {
            field: "exec.argv",
            ..
        }
    ));
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut p = 2u32.to_le_bytes().to_vec();
    p.extend_from_slice(&[0xff, 0xfe]);
    assert_eq!(
        Frame::decode(&raw(0x21, &p)).unwrap_err(),
        ProtoError::InvalidUtf8 {
            field: "read_file.path"
        }
    );
}

#[test]
fn invalid_bool_and_option_tags_are_rejected() {
    // ExecExit: code tag 2.
    assert_eq!(
        Frame::decode(&raw(0x17, &[2])).unwrap_err(),
        ProtoError::InvalidValue {
            field: "exec_exit.code",
            value: 2
        }
    );
    // ExecExit: None, None, timed_out = 5.
    assert_eq!(
        Frame::decode(&raw(0x17, &[0, 0, 5])).unwrap_err(),
        ProtoError::InvalidValue {
            field: "exec_exit.timed_out",
            value: 5
        }
    );
}

/// Rule 2 of protocol growth: a newer peer may append fields; an older decoder
/// reads the fields it knows and ignores the rest.
#[test]
fn trailing_fields_are_ignored() {
    assert_eq!(
        Frame::decode(&raw(0x06, &[0])).unwrap().unwrap().0.msg,
        Message::Ok
    );
    for msg in all_messages() {
        if matches!(msg, Message::Unknown { .. }) {
            continue;
        }
        let mut payload = Vec::new();
        msg.encode_payload(&mut payload);
        // A made-up later field: a u64 and a string.
        payload.extend_from_slice(&42u64.to_le_bytes());
        payload.extend_from_slice(&3u32.to_le_bytes());
        payload.extend_from_slice(b"new");
        let (f, _) = Frame::decode(&raw(msg.msg_type(), &payload))
            .unwrap()
            .unwrap();
        assert_eq!(f.msg, msg);
    }
}

#[test]
fn decoder_splits_a_stream_fed_byte_by_byte() {
    let msgs = all_messages();
    let mut stream = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        stream.extend(Frame::new(i as u32, m.clone()).encode().unwrap());
    }
    let mut dec = FrameDecoder::new();
    let mut got = Vec::new();
    for b in &stream {
        dec.feed(std::slice::from_ref(b));
        while let Some(f) = dec.next_frame().unwrap() {
            got.push(f.msg);
        }
    }
    assert_eq!(got, msgs);
    assert_eq!(dec.pending(), 0);
}

/// xorshift64*: deterministic randomness without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let len = (rng.next() % 64) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Half the time give it a valid header prefix so payload decoding is exercised.
        if rng.next() & 1 == 0 && buf.len() >= HEADER_LEN {
            buf[..2].copy_from_slice(&MAGIC);
            buf[2] = PROTOCOL_VERSION;
            let types = [0x01u16, 0x02, 0x07, 0x10, 0x17, 0x20, 0x31, 0x40, 0x44];
            let t = types[(rng.next() % types.len() as u64) as usize];
            buf[4..6].copy_from_slice(&t.to_le_bytes());
            let plen = (buf.len() - HEADER_LEN) as u32;
            buf[10..14].copy_from_slice(&plen.to_le_bytes());
        }
        let _ = Frame::decode(&buf);
    }
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng(42);
    let frames: Vec<Vec<u8>> = all_messages()
        .into_iter()
        .map(|m| Frame::new(3, m).encode().unwrap())
        .collect();
    for _ in 0..20_000 {
        let mut b = frames[(rng.next() % frames.len() as u64) as usize].clone();
        let flips = 1 + rng.next() % 4;
        for _ in 0..flips {
            let i = (rng.next() % b.len() as u64) as usize;
            // Keep the header's magic/version intact most of the time.
            if i >= 3 || rng.next() & 7 == 0 {
                b[i] = rng.next() as u8;
            }
        }
        let cut = (rng.next() % (b.len() as u64 + 1)) as usize;
        if let Ok(Some((_, used))) = Frame::decode(&b[..cut]) {
            assert!(used <= cut);
        }
    }
}
