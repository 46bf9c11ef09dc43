//! Hand-made seed inputs, one small set per target, written in each target's input
//! format so fuzzing starts from valid requests/packets/frames instead of noise.
//! `tests/seeds.rs` checks `corpus-seed/` matches this file (and rewrites it with
//! `FUZZ_WRITE_SEEDS=1`), so a format change cannot silently stale the seeds.

use kvmsandbox::devices::virtio::vsock::packet::{Op, VsockHeader, TYPE_STREAM};
use kvmsandbox::devices::virtio::vsock::HOST_CID;
use kvmsandbox_proto::msg::{ExecSpec, Hello, PrepareSpec, RunPreparedSpec, WasmSpec};
use kvmsandbox_proto::{ErrorCode, Frame, Message};

/// (target, file name, bytes).
pub type Seed = (&'static str, &'static str, Vec<u8>);

/// Every seed.
pub fn all() -> Vec<Seed> {
    let mut v = Vec::new();
    v.extend(blk());
    v.extend(vsock_packet());
    v.extend(vsock_muxer());
    v.extend(mmio());
    v.extend(proto());
    v.extend(wasi());
    v.extend(wasm_fs());
    v.extend(agent());
    v.extend(pio());
    v.extend(snapshot_file());
    v
}

/// `mem::address` encoding of `DATA_START + off`.
fn addr(off: u16) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(&off.to_le_bytes());
    b
}

/// `mem::length` encoding of `len`.
fn len(len: u16) -> Vec<u8> {
    if len < 256 {
        vec![0, len as u8]
    } else {
        let mut b = vec![0x80];
        b.extend_from_slice(&len.to_le_bytes());
        b
    }
}

/// `ring::fill_table` encoding of one descriptor.
fn desc(off: u16, l: u16, flags: u8, next: u8) -> Vec<u8> {
    let mut b = addr(off);
    b.extend(len(l));
    b.push(flags);
    b.push(next);
    b
}

/// A 16-entry table holding one 3-descriptor request (header, data, status).
fn blk_table(data_flags: u8, data_len: u16) -> Vec<u8> {
    let mut t = desc(0, 16, 1, 1);
    t.extend(desc(0x200, data_len, data_flags | 1, 2));
    t.extend(desc(0x1400, 1, 2, 0));
    for _ in 3..16 {
        t.extend(desc(0, 0, 0, 0));
    }
    t
}

fn blk_request(flags: u8, data_flags: u8, data_len: u16, ty: u32, sector: u64) -> Vec<u8> {
    let mut b = vec![flags];
    b.extend(blk_table(data_flags, data_len));
    b.extend([1, 0]); // one chain, head 0
    b.extend(ty.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(sector.to_le_bytes());
    b
}

fn blk() -> Vec<Seed> {
    vec![
        ("virtio_blk", "read", blk_request(0, 2, 1024, 0, 3)),
        ("virtio_blk", "write", blk_request(0, 0, 512, 1, 15)),
        (
            "virtio_blk",
            "write-read-only",
            blk_request(1, 0, 512, 1, 0),
        ),
        ("virtio_blk", "flush-eio", blk_request(2, 0, 0, 4, 0)),
        ("virtio_blk", "get-id", blk_request(0, 2, 20, 8, 0)),
        ("virtio_blk", "past-end", blk_request(0, 2, 512, 0, 16)),
    ]
}

fn vsock_hdr(op: Op, dst_port: u32, len: u32) -> VsockHeader {
    VsockHeader {
        src_cid: 3,
        dst_cid: HOST_CID,
        src_port: 1000,
        dst_port,
        len,
        type_: TYPE_STREAM,
        op: op as u16,
        flags: 0,
        buf_alloc: 0x1_0000,
        fwd_cnt: 0,
    }
}

fn vsock_packet() -> Vec<Seed> {
    let payload = b"0123456789";
    let h = vsock_hdr(Op::Rw, 5, payload.len() as u32).to_bytes();
    let mut mem = h.to_vec();
    mem.extend_from_slice(payload);
    // Header + payload in two descriptors.
    let mut two = vec![2];
    two.extend(addr(0));
    two.extend(len(44));
    two.push(0);
    two.extend(addr(44));
    two.extend(len(10));
    two.push(0);
    two.extend(10u16.to_le_bytes());
    two.extend(&mem);
    // Header split 20/24, payload in the second piece.
    let mut split = vec![2];
    split.extend(addr(0));
    split.extend(len(20));
    split.push(0);
    split.extend(addr(20));
    split.extend(len(34));
    split.push(0);
    split.extend(0u16.to_le_bytes());
    split.extend(&mem);
    // One writable rx buffer.
    let mut rx = vec![1];
    rx.extend(addr(0x100));
    rx.extend(len(200));
    rx.push(1);
    rx.extend(100u16.to_le_bytes());
    vec![
        ("vsock_packet", "rw-two-descs", two),
        ("vsock_packet", "header-split", split),
        ("vsock_packet", "rx", rx),
    ]
}

/// A `vsock_muxer` "guest sends" op: a valid header from the guest CID to the
/// host, `src` = 1000 + `src`, `dst` = index into 5, 6, 7, 1024, 1025,
/// `op` = wire op - 1.
fn guest_pkt(b: &mut Vec<u8>, payload: &[u8], src: u8, dst: u8, op: u8, flags: u8) {
    b.extend([0, payload.len() as u8, 0, src, dst, op, flags]);
    b.extend(payload);
}

fn vsock_muxer() -> Vec<Seed> {
    let (req, resp, rst, shut, rw, credit_req) = (0, 1, 2, 3, 4, 6);
    let mut b = Vec::new();
    b.extend([2 | 0x30, 0, 0, 0, 0]); // post 4 rx buffers of 4096
    guest_pkt(&mut b, &[], 0, 0, req, 0); // 1000 -> 5: listener there, RESPONSE
    b.extend([3, 0, 5]); // host accepts, writes 5 bytes on stream 0
    b.extend(b"hello");
    guest_pkt(&mut b, b"ping", 0, 0, rw, 0);
    b.push(4); // hosts read
    guest_pkt(&mut b, &[], 1, 1, req, 0); // 1001 -> 6
    guest_pkt(&mut b, &[], 2, 2, req, 0); // 1002 -> 7: nobody, RST
    b.extend([3 | 0x20, 0]); // host half-closes stream 0
    guest_pkt(&mut b, &[], 0, 0, shut, 3); // SHUTDOWN both ways
    b.extend([3 | 0x30, 0]); // host hangs up stream 0
    guest_pkt(&mut b, &[], 1, 1, rst, 0); // RST 1001 -> 6
    b.extend([5, 0]); // a host connects: CONNECT 1000
    guest_pkt(&mut b, &[], 0, 3, resp, 0); // guest accepts: 1000 -> 1024
    b.extend([3, 0xff, 3]); // a host stream writes 3 bytes
    b.extend(b"abc");
    guest_pkt(&mut b, b"xyz", 0, 3, rw, 0);
    guest_pkt(&mut b, &[], 0, 3, credit_req, 0);
    b.push(4);
    vec![("vsock_muxer", "session", b)]
}

fn mmio() -> Vec<Seed> {
    let mut blk = vec![0];
    blk.extend([4, 4, 0, 0]); // init + DRIVER_OK, queue size 16 at 0
    blk.extend([6, 0]); // fill queue 0
    blk.extend(blk_table(2, 512));
    blk.extend([1, 0]); // one chain, head 0
    blk.extend([5, 0, 0, 0, 16]); // header at DATA_START: IN sector 0
    blk.extend([0u8; 16]);
    blk.extend([7, 0]); // notify queue 0
    blk.extend([0x36, 0x70, 0]); // 8-byte read of status (op 0, width index 3)
    blk.extend([3, 0]); // reset through status 0
    let mut vsock = vec![1];
    vsock.extend([4, 4, 0, 0x10, 4, 0, 0x20, 2, 0, 0x30]); // init, three queues
    vsock.extend([7, 1]);
    vsock.extend([0x20, 0x00, 0x01]); // 4-byte read of config (guest_cid)
    vec![
        ("mmio_registers", "blk-init-read", blk),
        ("mmio_registers", "vsock-init", vsock),
    ]
}

fn frames(msgs: Vec<Message>) -> Vec<u8> {
    let mut out = vec![0];
    for (i, m) in msgs.into_iter().enumerate() {
        out.extend(
            Frame::new(i as u32, m)
                .encode()
                .expect("small frames encode"),
        );
    }
    out
}

fn proto() -> Vec<Seed> {
    let agent = frames(vec![
        Message::Hello(Hello {
            version: 1,
            kind: "micro".into(),
            capabilities: 0x1f,
        }),
        Message::Pong { nonce: 7 },
        Message::ExecStarted { pid: 42 },
        Message::Stdout {
            data: b"out".to_vec(),
        },
        Message::ExecExit {
            code: Some(0),
            signal: None,
            timed_out: false,
        },
        Message::WasmExit { code: 3 },
        Message::WasmPrepared { template: 1 },
        Message::Error {
            code: ErrorCode::from_u16(2),
            message: "nope".into(),
        },
    ]);
    let host = frames(vec![
        Message::Ping { nonce: 7 },
        Message::Exec(ExecSpec {
            argv: vec!["/bin/echo".into(), "hi".into()],
            env: vec![("A".into(), "B".into())],
            cwd: Some("/".into()),
            stdin: true,
            timeout_ms: Some(1000),
        }),
        Message::RunWasm(WasmSpec {
            module_len: 8,
            args: vec!["m".into()],
            env: vec![],
            stdin: b"in".to_vec(),
            fuel: Some(100),
            max_memory_bytes: None,
            entropy: None,
            fs: Some(kvmsandbox_proto::wasmfs::WasmFs {
                dirs: vec![kvmsandbox_proto::wasmfs::WasmDirSpec {
                    guest_path: "/d".into(),
                    read_only: true,
                }],
                image_len: 30,
                max_bytes: None,
                max_inodes: Some(5),
            }),
        }),
        Message::PrepareWasm(PrepareSpec {
            module_len: 8,
            max_memory_bytes: Some(1 << 20),
        }),
        Message::RunPrepared(RunPreparedSpec {
            template: 1,
            args: vec!["m".into()],
            env: vec![("K".into(), "v".into())],
            stdin: b"in".to_vec(),
            fuel: Some(100),
            seed: [7; 32],
        }),
        Message::WriteFile {
            path: "/tmp/x".into(),
            mode: 0o644,
        },
        Message::Data {
            data: vec![1, 2, 3],
        },
        Message::DataEnd,
        Message::DiskWrite {
            disk: 0,
            offset: 512,
            data: vec![0; 4],
        },
        Message::Shutdown,
    ]);
    let mut streamed = host.clone();
    streamed[0] = 1;
    streamed.splice(1..1, [3, 5, 14, 1]);
    // Mode 2, type index 8 (EXEC, the 9th known type), then an Exec payload.
    let mut payload = vec![2, 8, 0];
    Message::Exec(ExecSpec {
        argv: vec!["sh".into()],
        env: vec![],
        cwd: None,
        stdin: false,
        timeout_ms: None,
    })
    .encode_payload(&mut payload);
    vec![
        ("proto_frames", "agent-frames", agent),
        ("proto_frames", "host-frames", host),
        ("proto_frames", "host-frames-streamed", streamed),
        ("proto_frames", "exec-payload", payload),
    ]
}

fn wasi() -> Vec<Seed> {
    let mut b = Vec::new();
    b.extend(1024u16.to_le_bytes());
    b.extend([2, 4]);
    b.extend(b"prog");
    b.extend([1]);
    b.extend(b"x");
    b.extend([1, 3]);
    b.extend(b"A=B");
    b.extend([5]);
    b.extend(b"hello");
    b.push(4); // 16 bytes of memory init: two iovecs
    b.extend(64u32.to_le_bytes());
    b.extend(5u32.to_le_bytes());
    b.extend(80u32.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    let p = |v: u16| [0u8, v as u8, (v >> 8) as u8];
    let call = |b: &mut Vec<u8>, f: u8, a: [u16; 4]| {
        b.push(f);
        for x in a {
            b.extend(p(x));
        }
    };
    call(&mut b, 0, [100, 104, 0, 0]); // args_sizes_get
    call(&mut b, 1, [200, 300, 0, 0]); // args_get
    call(&mut b, 3, [400, 500, 0, 0]); // environ_get
    call(&mut b, 6, [0, 0, 2, 108]); // fd_read(0, iovs, 2, nread)
    call(&mut b, 4, [1, 0, 2, 112]); // fd_write(1, iovs, 2, nwritten)
    call(&mut b, 12, [1, 120, 0, 0]); // clock_time_get(monotonic)
    call(&mut b, 14, [600, 32, 0, 0]); // random_get
    call(&mut b, 9, [1, 700, 0, 0]); // fd_fdstat_get
    call(&mut b, 4, [1, 1020, 2, 112]); // iovecs past the end: EFAULT
    vec![("wasi_abi", "stdio-session", b)]
}

fn wasm_fs() -> Vec<Seed> {
    use kvmsandbox_proto::wasmfs::{EntryKind, ImageEntry, WasmDirSpec, WasmFs};
    let fs = WasmFs {
        dirs: vec![WasmDirSpec {
            guest_path: "/data".into(),
            read_only: false,
        }],
        image_len: 40,
        max_bytes: Some(1 << 20),
        max_inodes: None,
    };
    let mut spec = vec![0, 1];
    spec.extend(fs.to_bytes());
    let mut image = vec![1, 2];
    for (dir, kind, path, data) in [
        (0, EntryKind::Dir, &b"sub"[..], &b""[..]),
        (1, EntryKind::File, b"sub/f", b"hello"),
        (0, EntryKind::Symlink, b"l", b"sub/f"),
    ] {
        ImageEntry {
            dir,
            kind,
            path,
            data,
        }
        .encode(&mut image);
    }
    vec![("wasm_fs", "spec", spec), ("wasm_fs", "image", image)]
}

fn agent() -> Vec<Seed> {
    // Calls: echo, exec, read_file, run_wasm, disk_read (request ids 1..=5).
    let mut b = vec![5, 1, 3, 4, 6, 7];
    let frames = [
        (
            0,
            Message::Hello(Hello {
                version: 1,
                kind: "micro".into(),
                capabilities: 0x1f,
            }),
        ),
        (
            1,
            Message::EchoReply {
                data: b"echo".to_vec(),
            },
        ),
        (2, Message::ExecStarted { pid: 1 }),
        (
            2,
            Message::Stdout {
                data: b"out".to_vec(),
            },
        ),
        (
            2,
            Message::Stderr {
                data: b"err".to_vec(),
            },
        ),
        (
            2,
            Message::ExecExit {
                code: Some(0),
                signal: None,
                timed_out: false,
            },
        ),
        (
            3,
            Message::Data {
                data: b"file".to_vec(),
            },
        ),
        (3, Message::DataEnd),
        (
            4,
            Message::Stdout {
                data: b"wasm".to_vec(),
            },
        ),
        (4, Message::WasmExit { code: 0 }),
        (5, Message::DiskData { data: vec![0; 16] }),
    ];
    for (id, m) in frames {
        b.extend(Frame::new(id, m).encode().expect("small frames encode"));
    }
    vec![
        ("agent_client", "session", b),
        ("agent_client", "output-past-cap", agent_flood()),
        ("agent_client", "stale-frames", agent_stale()),
    ]
}

fn agent_hello() -> Vec<u8> {
    let hello = Message::Hello(Hello {
        version: 1,
        kind: "linux".into(),
        capabilities: 0x1f,
    });
    Frame::new(0, hello).encode().expect("small frames encode")
}

/// One exec (cap 16 bytes) whose stdout goes past the cap.
fn agent_flood() -> Vec<u8> {
    let mut b = vec![1, 3];
    b.extend(agent_hello());
    b.extend(
        Frame::new(1, Message::ExecStarted { pid: 1 })
            .encode()
            .expect("encodes"),
    );
    for _ in 0..3 {
        let out = Message::Stdout {
            data: vec![b'o'; 10],
        };
        b.extend(Frame::new(1, out).encode().expect("encodes"));
    }
    b
}

/// One ping (at most 3 stale frames) answered only with other ids.
fn agent_stale() -> Vec<u8> {
    let mut b = vec![1 + 27, 0];
    b.extend(agent_hello());
    for _ in 0..5 {
        b.extend(
            Frame::new(7, Message::Pong { nonce: 0 })
                .encode()
                .expect("encodes"),
        );
    }
    b
}

fn pio() -> Vec<Seed> {
    let mut b = Vec::new();
    for &c in b"hello\r\nKVMSANDBOX-READY\nPANIC: x\n" {
        b.extend([0, 0, c, 0, 0, 0]); // 1-byte write to 0x3f8 (THR)
    }
    b.extend([1, 5]); // read LSR
    b.extend([0, 3, 0x80, 0, 0, 0]); // LCR: DLAB on
    b.extend([0, 0, 1, 0, 0, 0]); // divisor low
    b.extend([0, 3, 0x03, 0, 0, 0]); // LCR: 8N1
    b.extend([0x80, 1, 0xfe, 0, 0, 0]); // i8042 reset command
    b.extend([0x88, 2, 7, 0, 0, 0]); // 4-byte write to the exit port
    b.extend([0xc1, 0x34, 0x12]); // read an unmapped port
    vec![("pio_bus", "console", b)]
}

/// A valid snapshot file of an 8 KiB guest (written and read back).
fn snapshot_file() -> Vec<Seed> {
    let dir = crate::tmp::SocketDir::new();
    let path = dir.path().join("seed.snap");
    kvmsandbox::snapshot::sample::sample(8192)
        .save(&path)
        .expect("fuzz harness: save the seed snapshot");
    let b = std::fs::read(&path).expect("fuzz harness: read the seed snapshot");
    vec![("snapshot_file", "valid", b)]
}
