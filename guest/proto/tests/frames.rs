//! Round trips of every message and every malformed-frame case, plus a
//! property-style sweep over random and truncated bytes (decoding must never panic).

use kvmsandbox_proto::frame::{
    Frame, FrameDecoder, HEADER_LEN, MAGIC, MAX_FRAME, PROTOCOL_VERSION,
};
use kvmsandbox_proto::msg::{
    ExecSpec, FileKind, FileStat, Hello, HostCall, HostFnDecl, HostReturn, HostType, HostValue,
    PrepareSpec, RunPreparedSpec, WasmErrorKind, WasmSpec,
};
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
        Message::Stat {
            path: "/etc/hosts".into(),
            follow: true,
        },
        Message::FileInfo(FileStat {
            name: "hosts".into(),
            kind: FileKind::File,
            size: 123,
            mode: 0o644,
            mtime_sec: -5,
            mtime_nsec: 999_999_999,
            link_target: None,
        }),
        Message::ListDir { path: "/".into() },
        Message::DirEntries {
            entries: vec![
                FileStat {
                    name: "l".into(),
                    kind: FileKind::Symlink,
                    size: 4,
                    mode: 0o777,
                    mtime_sec: 1_700_000_000,
                    mtime_nsec: 0,
                    link_target: Some("/tmp".into()),
                },
                FileStat {
                    name: "d".into(),
                    kind: FileKind::Dir,
                    size: 0,
                    mode: 0o755,
                    mtime_sec: 0,
                    mtime_nsec: 1,
                    link_target: None,
                },
            ],
        },
        Message::DirEntries { entries: vec![] },
        Message::MakeDir {
            path: "/a/b".into(),
            mode: 0o700,
            parents: true,
        },
        Message::Remove {
            path: "/a".into(),
            recursive: true,
        },
        Message::Rename {
            from: "/a".into(),
            to: "/b".into(),
        },
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
            entropy: Some([9; 32]),
            fs: None,
        }),
        Message::RunWasm(WasmSpec {
            module_len: 10,
            fs: Some(kvmsandbox_proto::wasmfs::WasmFs {
                dirs: vec![kvmsandbox_proto::wasmfs::WasmDirSpec {
                    guest_path: "/data".into(),
                    read_only: false,
                }],
                image_len: 99,
                max_bytes: Some(4096),
                max_inodes: Some(10),
            }),
            ..WasmSpec::default()
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
        Message::WasmError {
            kind: WasmErrorKind::NotPrepared,
            message: "template 3 is not prepared".into(),
        },
        Message::PrepareWasm(PrepareSpec {
            module_len: 4096,
            max_memory_bytes: Some(1 << 20),
        }),
        Message::PrepareWasm(PrepareSpec::default()),
        Message::WasmPrepared { template: 7 },
        Message::RunPrepared(RunPreparedSpec {
            template: 7,
            args: vec!["t.wasm".into(), "x".into()],
            env: vec![("K".into(), "v".into())],
            stdin: b"in".to_vec(),
            fuel: Some(5),
            seed: [0xa5; 32],
        }),
        Message::RunPrepared(RunPreparedSpec::default()),
        Message::HostFunctions(vec![
            HostFnDecl {
                module: "host".into(),
                name: "lookup".into(),
                params: vec![HostType::Bytes, HostType::I64],
                results: vec![HostType::Bytes, HostType::F64],
            },
            HostFnDecl::default(),
        ]),
        Message::HostCall(HostCall {
            func: 3,
            args: vec![
                HostValue::I32(-1),
                HostValue::I64(i64::MIN),
                HostValue::F32(f32::NAN.to_bits() | 1),
                HostValue::F64((-0.5f64).to_bits()),
            ],
            buffers: vec![b"key".to_vec(), Vec::new()],
            out_cap: 4096,
        }),
        Message::HostReturn(HostReturn {
            values: vec![HostValue::F64(2.5f64.to_bits())],
            bytes: b"value".to_vec(),
        }),
        Message::HostError {
            message: "no such record".into(),
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
fn run_prepared_without_its_whole_seed_is_rejected() {
    let spec = RunPreparedSpec {
        template: 1,
        ..RunPreparedSpec::default()
    };
    let mut p = Vec::new();
    Message::RunPrepared(spec).encode_payload(&mut p);
    p.truncate(p.len() - 1);
    assert_eq!(
        Frame::decode(&raw(0x47, &p)).unwrap_err(),
        ProtoError::Truncated {
            field: "run_prepared.seed",
            needed: 32,
            left: 31
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

/// A run_wasm from a host older than the `entropy` field decodes with none.
#[test]
fn run_wasm_without_entropy_from_an_older_host_decodes() {
    let spec = WasmSpec {
        module_len: 5,
        entropy: Some([1; 32]),
        ..Default::default()
    };
    let mut payload = Vec::new();
    Message::RunWasm(spec.clone()).encode_payload(&mut payload);
    // An older host sends neither `entropy` (tag + 32 bytes) nor the later
    // `fs` (its tag: none).
    payload.truncate(payload.len() - 33 - 1);
    let (f, _) = Frame::decode(&raw(Message::RunWasm(spec.clone()).msg_type(), &payload))
        .unwrap()
        .unwrap();
    assert_eq!(
        f.msg,
        Message::RunWasm(WasmSpec {
            entropy: None,
            ..spec
        })
    );
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

#[test]
fn host_values_refuse_unknown_and_bytes_types() {
    // HostReturn with one value of type Bytes (5), then of an unknown type (9).
    for bad_type in [5u8, 9] {
        let mut payload = 1u32.to_le_bytes().to_vec();
        payload.push(bad_type);
        payload.extend_from_slice(&[0; 8]);
        payload.extend_from_slice(&0u32.to_le_bytes());
        let err = Message::decode_payload(0x62, &payload).unwrap_err();
        assert!(
            matches!(err, ProtoError::InvalidValue { value, .. } if value == u64::from(bad_type)),
            "{err:?}"
        );
    }
}
