//! The micro guest's virtio-vsock driver and agent against our vsock device and
//! its hybrid Unix socket: the control protocol (Hello, Ping, Echo, disks,
//! unsupported requests, Shutdown), the raw echo and sink ports, and 8 streams
//! at once. Prints measured numbers (run with `--nocapture`). Needs /dev/kvm.

mod common;

use kvmsandbox::seccomp::SeccompPolicy;
use kvmsandbox::{Vm, VmConfig, VmExit};
use kvmsandbox_proto::{msg::caps, ErrorCode, Frame, FrameDecoder, Message};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CONTROL: u32 = kvmsandbox_proto::DEFAULT_AGENT_PORT;
const ECHO: u32 = 1025;
const SINK: u32 = 1026;

/// `KVMSB_TEST_SECCOMP=trap` reports syscalls missing from the filters instead of
/// killing the test process.
fn policy() -> SeccompPolicy {
    match std::env::var("KVMSB_TEST_SECCOMP").as_deref() {
        Ok("trap") => SeccompPolicy::Trap,
        Ok("off") => SeccompPolicy::Disabled,
        _ => SeccompPolicy::default(),
    }
}

/// Tests here run one at a time: the throughput numbers and the idle-CPU check
/// (which measures the whole process) mean nothing with other VMs running.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Guest {
    vm: Vm,
    uds: PathBuf,
    _dir: PathBuf,
}

fn boot(disk: Option<&Path>) -> Guest {
    let dir = std::env::temp_dir().join(format!(
        "kvmsb-mv-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let uds = dir.join("v.sock");
    let _ = std::fs::remove_file(&uds);
    let mut cfg = VmConfig::micro()
        .vsock(&uds)
        .start_timeout(Duration::from_secs(20))
        .seccomp(policy());
    if let Some(d) = disk {
        cfg = cfg.disk(d, false);
    }
    let t = Instant::now();
    let vm = Vm::start(cfg).unwrap();
    eprintln!("boot to ready with devices: {:?}", t.elapsed());
    Guest { vm, uds, _dir: dir }
}

fn connect(uds: &Path, port: u32) -> UnixStream {
    let mut s = UnixStream::connect(uds).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("CONNECT {port}\n").as_bytes()).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        s.read_exact(&mut b).unwrap();
        line.push(b[0]);
    }
    let line = String::from_utf8(line).unwrap();
    assert!(line.starts_with("OK "), "handshake answer {line:?}");
    s
}

struct Control {
    s: UnixStream,
    dec: FrameDecoder,
    next_id: u32,
}

impl Control {
    fn open(uds: &Path) -> (Control, kvmsandbox_proto::msg::Hello) {
        let mut c = Control {
            s: connect(uds, CONTROL),
            dec: FrameDecoder::new(),
            next_id: 1,
        };
        match c.read_frame().msg {
            Message::Hello(h) => (c, h),
            other => panic!("expected Hello, got {other:?}"),
        }
    }

    fn read_frame(&mut self) -> Frame {
        loop {
            if let Some(f) = self.dec.next_frame().unwrap() {
                return f;
            }
            let mut buf = [0u8; 65536];
            let n = self.s.read(&mut buf).unwrap();
            assert!(n > 0, "agent closed the connection");
            self.dec.feed(&buf[..n]);
        }
    }

    fn send(&mut self, msg: Message) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.s
            .write_all(&Frame::new(id, msg).encode().unwrap())
            .unwrap();
        id
    }

    fn call(&mut self, msg: Message) -> Message {
        let id = self.send(msg);
        let f = self.read_frame();
        assert_eq!(f.request_id, id);
        f.msg
    }
}

fn expect_error(m: Message, want: ErrorCode) -> String {
    match m {
        Message::Error { code, message } => {
            assert_eq!(code, want, "{message}");
            message
        }
        other => panic!("expected Error {want:?}, got {other:?}"),
    }
}

#[test]
fn control_port_serves_ping_echo_and_errors_then_shuts_down() {
    let _serial = serial();
    let g = boot(None);
    let (mut c, hello) = Control::open(&g.uds);
    assert_eq!(hello.kind, "micro");
    assert_ne!(hello.capabilities & caps::ECHO, 0);
    assert_eq!(
        c.call(Message::Ping { nonce: 0xfeed }),
        Message::Pong { nonce: 0xfeed }
    );
    let t = Instant::now();
    let n = 50;
    for i in 0..n {
        assert_eq!(
            c.call(Message::Ping { nonce: i }),
            Message::Pong { nonce: i }
        );
    }
    eprintln!("ping round trip: {:?}", t.elapsed() / n as u32);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        c.call(Message::Echo { data: data.clone() }),
        Message::EchoReply { data }
    );
    let m = c.call(Message::ReadFile {
        path: "/etc/hostname".into(),
    });
    assert!(expect_error(m, ErrorCode::Unsupported).contains("ReadFile"));
    let m = c.call(Message::DiskRead {
        disk: 0,
        offset: 0,
        len: 512,
    });
    expect_error(m, ErrorCode::NotFound);
    // RunWasm gets no reply until its module arrived.
    let id = c.send(Message::RunWasm(kvmsandbox_proto::msg::WasmSpec {
        module_len: 4,
        ..Default::default()
    }));
    c.s.write_all(
        &Frame::new(
            id,
            Message::Data {
                data: b"\0asm".to_vec(),
            },
        )
        .encode()
        .unwrap(),
    )
    .unwrap();
    c.s.write_all(&Frame::new(id, Message::DataEnd).encode().unwrap())
        .unwrap();
    let f = c.read_frame();
    assert_eq!(f.request_id, id);
    // A 4-byte module is truncated: a typed WASM error, not a dead agent.
    assert!(
        matches!(
            f.msg,
            Message::WasmError {
                kind: kvmsandbox_proto::msg::WasmErrorKind::InvalidModule,
                ..
            }
        ),
        "{:?}",
        f.msg
    );
    // A second connection works while the first is open.
    let (mut c2, _) = Control::open(&g.uds);
    assert_eq!(
        c2.call(Message::Ping { nonce: 7 }),
        Message::Pong { nonce: 7 }
    );
    assert_eq!(c.call(Message::Shutdown), Message::Ok);
    assert_eq!(g.vm.wait().unwrap(), VmExit::Exited(0));
    let out = g.vm.console_output();
    assert!(out.contains("agent: shutdown requested"), "{out}");
    eprintln!(
        "{}",
        out.lines()
            .find(|l| l.starts_with("vsock stats"))
            .unwrap_or("no stats line")
    );
}

#[test]
fn disk_requests_read_write_and_flush() {
    let _serial = serial();
    let disk = common::temp_file("vsock-disk.img", &vec![0u8; 1 << 20]);
    let g = boot(Some(&disk));
    let (mut c, hello) = Control::open(&g.uds);
    assert_ne!(hello.capabilities & caps::DISK, 0);
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    // Unaligned on both ends: the agent does read-modify-write.
    assert_eq!(
        c.call(Message::DiskWrite {
            disk: 0,
            offset: 1000,
            data: data.clone()
        }),
        Message::Ok
    );
    assert_eq!(c.call(Message::DiskFlush { disk: 0 }), Message::Ok);
    assert_eq!(
        c.call(Message::DiskRead {
            disk: 0,
            offset: 1000,
            len: 3000
        }),
        Message::DiskData { data: data.clone() }
    );
    let file = std::fs::read(&disk).unwrap();
    assert_eq!(&file[1000..4000], &data[..]);
    assert!(file[..1000].iter().chain(&file[4000..]).all(|&b| b == 0));
    // A big aligned write and read back (timed).
    let big: Vec<u8> = (0..512 * 1024u32).map(|i| (i ^ (i >> 11)) as u8).collect();
    let t = Instant::now();
    assert_eq!(
        c.call(Message::DiskWrite {
            disk: 0,
            offset: 512 * 1024,
            data: big.clone()
        }),
        Message::Ok
    );
    let tw = t.elapsed();
    let t = Instant::now();
    assert_eq!(
        c.call(Message::DiskRead {
            disk: 0,
            offset: 512 * 1024,
            len: 512 * 1024
        }),
        Message::DiskData { data: big }
    );
    eprintln!(
        "disk over the agent: 512 KiB write {tw:?}, read {:?}",
        t.elapsed()
    );
    let m = c.call(Message::DiskRead {
        disk: 0,
        offset: (1 << 20) - 10,
        len: 100,
    });
    expect_error(m, ErrorCode::Invalid);
    let m = c.call(Message::DiskFlush { disk: 3 });
    expect_error(m, ErrorCode::NotFound);
    assert_eq!(c.call(Message::Shutdown), Message::Ok);
    assert_eq!(g.vm.wait().unwrap(), VmExit::Exited(0));
}

fn echo_roundtrip(uds: &Path, len: usize, seed: u8) -> Duration {
    let s = connect(uds, ECHO);
    let data: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect();
    let mut w = s.try_clone().unwrap();
    let t = Instant::now();
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        w.write_all(&d2).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(len);
    let mut r = BufReader::new(s);
    r.read_to_end(&mut back).unwrap();
    let el = t.elapsed();
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
    el
}

#[test]
fn echo_and_sink_ports_move_bytes() {
    let _serial = serial();
    let g = boot(None);
    let len = 4 << 20;
    let el = echo_roundtrip(&g.uds, len, 1);
    eprintln!(
        "echo: {} KiB each way in {:?} = {:.2} MiB/s",
        len >> 10,
        el,
        len as f64 / el.as_secs_f64() / 1048576.0
    );

    let mut s = connect(&g.uds, SINK);
    let chunk = vec![0x5au8; 1 << 20];
    let t = Instant::now();
    let total = 8usize << 20;
    for _ in 0..total / chunk.len() {
        s.write_all(&chunk).unwrap();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    s.read_exact(&mut count).unwrap();
    let el = t.elapsed();
    assert_eq!(u64::from_le_bytes(count), total as u64);
    eprintln!(
        "sink: {} MiB in {:?} = {:.2} MiB/s",
        total >> 20,
        el,
        total as f64 / el.as_secs_f64() / 1048576.0
    );
    g.vm.kill();
}

#[test]
fn eight_streams_at_once() {
    let _serial = serial();
    let g = boot(None);
    let uds = g.uds.clone();
    let mut hs: Vec<_> = (0..8u8)
        .map(|i| {
            let uds = uds.clone();
            std::thread::spawn(move || echo_roundtrip(&uds, 256 * 1024 + usize::from(i) * 1000, i))
        })
        .collect();
    // And a control connection in the middle of it.
    let (mut c, _) = Control::open(&g.uds);
    assert_eq!(
        c.call(Message::Ping { nonce: 1 }),
        Message::Pong { nonce: 1 }
    );
    for h in hs.drain(..) {
        h.join().unwrap();
    }
    // Connections were closed cleanly: new ones still work.
    echo_roundtrip(&g.uds, 1000, 99);
    assert_eq!(c.call(Message::Shutdown), Message::Ok);
    assert_eq!(g.vm.wait().unwrap(), VmExit::Exited(0));
}

#[test]
fn unknown_port_is_refused() {
    let _serial = serial();
    let g = boot(None);
    let mut s = UnixStream::connect(&g.uds).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"CONNECT 4242\n").unwrap();
    let mut line = String::new();
    let n = BufReader::new(&mut s).read_line(&mut line).unwrap_or(0);
    assert!(
        n == 0 || !line.starts_with("OK"),
        "port 4242 was accepted: {line:?}"
    );
    g.vm.kill();
}

#[test]
fn guest_connects_out_to_a_host_listener() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("kvmsb-mv-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let uds = dir.join("v.sock");
    let _ = std::fs::remove_file(&uds);
    let listen_path = PathBuf::from(format!("{}_5000", uds.display()));
    let _ = std::fs::remove_file(&listen_path);
    let listener = std::os::unix::net::UnixListener::bind(&listen_path).unwrap();
    let host = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut line = String::new();
        BufReader::new(&mut s).read_line(&mut line).unwrap();
        s.write_all(b"pong from the host\n").unwrap();
        s.shutdown(std::net::Shutdown::Both).unwrap();
        line
    });
    let cfg = VmConfig::micro()
        .vsock(&uds)
        .cmdline("test=vsock-connect port=5000")
        .seccomp(policy())
        .start_timeout(Duration::from_secs(20));
    let vm = Vm::start(cfg).unwrap();
    let exit = vm.wait_timeout(Some(Duration::from_secs(20))).unwrap();
    let out = vm.console_output();
    assert_eq!(exit, Some(VmExit::Exited(0)), "{out}");
    assert_eq!(host.join().unwrap(), "hello from the micro guest\n");
    assert!(
        out.contains("vsock-connect: reply pong from the host"),
        "{out}"
    );
    std::fs::remove_file(&listen_path).ok();
}

/// CPU time (user + system) this process has used so far.
fn process_cpu_time() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[test]
fn idle_agent_sleeps_in_hlt() {
    let _serial = serial();
    let g = boot(None);
    // An open, quiet connection must not make the guest poll either.
    let (mut c, _) = Control::open(&g.uds);
    std::thread::sleep(Duration::from_millis(200));
    let before = process_cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let used = process_cpu_time() - before;
    eprintln!("idle guest with an open connection: {used:?} CPU per second");
    assert!(
        used < Duration::from_millis(100),
        "the idle guest burns CPU: {used:?} per second"
    );
    assert_eq!(
        c.call(Message::Ping { nonce: 3 }),
        Message::Pong { nonce: 3 }
    );
    g.vm.kill();
}
