//! The micro guest as a sandbox, end to end over virtio-vsock and virtio-blk:
//! agent hello, ping, echo, disks through the agent, concurrent streams, the
//! hybrid socket with a third-party client (socat). Needs /dev/kvm.

mod common;

use kvmsandbox::agent::AgentError;
use kvmsandbox::{Error, Sandbox, SandboxKind, VmConfig, ECHO_PORT, SINK_PORT};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn image(name: &str, bytes: &[u8]) -> PathBuf {
    common::temp_file(name, bytes)
}

#[test]
fn agent_says_hello_and_answers_ping() {
    let sb = Sandbox::micro().unwrap();
    assert_eq!(sb.kind(), SandboxKind::Micro);
    let t = sb.timings();
    assert!(t.ready.unwrap() <= t.agent_ready.unwrap(), "{t:?}");
    for _ in 0..3 {
        assert!(sb.ping().unwrap() > Duration::ZERO);
    }
    assert!(sb.console_output().contains("KVMSANDBOX-READY"));
    sb.shutdown().unwrap();
    assert!(!sb.vm().unwrap().is_running());
}

#[test]
fn echo_small_and_one_mib_intact() {
    let sb = Sandbox::micro().unwrap();
    assert_eq!(sb.echo(b"").unwrap(), b"");
    assert_eq!(sb.echo(b"x").unwrap(), b"x");
    let data = pattern(1 << 20, 3);
    assert_eq!(fnv(&sb.echo(&data).unwrap()), fnv(&data));
}

#[test]
fn echo_64_mib_through_the_stream_port() {
    let sb = Sandbox::micro().unwrap();
    let mut s = sb.connect(ECHO_PORT).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let data = pattern(64 << 20, 9);
    let expect = fnv(&data);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&data));
    let mut back = vec![0u8; 64 << 20];
    s.read_exact(&mut back).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(fnv(&back), expect);
}

#[test]
fn eight_concurrent_streams() {
    let sb = Sandbox::micro().unwrap();
    std::thread::scope(|scope| {
        let hs: Vec<_> = (0..8u8)
            .map(|i| {
                let sb = &sb;
                scope.spawn(move || {
                    let mut s = sb.connect(ECHO_PORT).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let data = pattern(64 << 10, i);
                    let mut w = s.try_clone().unwrap();
                    let d2 = data.clone();
                    let t = std::thread::spawn(move || w.write_all(&d2));
                    let mut back = vec![0u8; data.len()];
                    s.read_exact(&mut back).unwrap();
                    t.join().unwrap().unwrap();
                    assert_eq!(back, data, "stream {i}");
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    // The control connection still works alongside.
    sb.ping().unwrap();
}

#[test]
fn sink_port_swallows_bytes() {
    let sb = Sandbox::micro().unwrap();
    let mut s = sb.connect(SINK_PORT).unwrap();
    s.write_all(&pattern(256 << 10, 1)).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    sb.ping().unwrap();
}

#[test]
fn socat_reaches_the_echo_port_through_the_hybrid_socket() {
    let sb = Sandbox::micro().unwrap();
    let path = sb.vsock_path().unwrap().to_path_buf();
    let mut child = std::process::Command::new("socat")
        .arg("-t5")
        .arg("-")
        .arg(format!("UNIX-CONNECT:{}", path.display()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("socat (apt: socat) is needed");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("CONNECT {ECHO_PORT}\nhello through socat\n").as_bytes())
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("hello through socat\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "socat closed early: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("OK "), "{text}");
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn disk_read_write_flush_through_the_agent() {
    let host = pattern(1 << 20, 7);
    let path = image("disk-rw.img", &host);
    let sb = Sandbox::start(VmConfig::micro().disk(&path, false)).unwrap();
    // The guest reads what the host prepared.
    let got = sb.disk_read(0, 4096, 64 << 10).unwrap();
    assert_eq!(fnv(&got), fnv(&host[4096..4096 + (64 << 10)]));
    // The guest writes a pattern; after flush the host sees it in the file.
    let data = pattern(128 << 10, 0x55);
    sb.disk_write(0, 512 * 100, &data).unwrap();
    sb.disk_flush(0).unwrap();
    let file = std::fs::read(&path).unwrap();
    assert_eq!(&file[512 * 100..512 * 100 + data.len()], &data[..]);
    assert_eq!(
        &file[..512 * 100],
        &host[..512 * 100],
        "bytes before the write are untouched"
    );
    // Past the end: a typed error, and the sandbox keeps working.
    let e = sb.disk_read(0, 1 << 20, 512).unwrap_err();
    assert!(matches!(e, Error::Agent(AgentError::Remote { .. })), "{e}");
    let e = sb.disk_read(3, 0, 512).unwrap_err();
    assert!(matches!(e, Error::Agent(AgentError::Remote { .. })), "{e}");
    sb.ping().unwrap();
}

#[test]
fn read_only_disk_refuses_writes_and_file_is_unchanged() {
    let host = pattern(256 << 10, 1);
    let path = image("disk-ro.img", &host);
    let sb = Sandbox::start(VmConfig::micro().disk(&path, true)).unwrap();
    assert_eq!(sb.disk_read(0, 0, 4096).unwrap(), &host[..4096]);
    let e = sb.disk_write(0, 0, &[0xaa; 4096]).unwrap_err();
    assert!(matches!(e, Error::Agent(AgentError::Remote { .. })), "{e}");
    drop(sb);
    assert_eq!(std::fs::read(&path).unwrap(), host);
}

#[test]
fn two_disks_at_once() {
    let a = image("disk-a.img", &pattern(64 << 10, 0xa));
    let b = image("disk-b.img", &pattern(128 << 10, 0xb));
    let sb = Sandbox::start(VmConfig::micro().disk(&a, false).disk(&b, false)).unwrap();
    assert_eq!(
        sb.disk_read(0, 0, 512).unwrap(),
        &pattern(64 << 10, 0xa)[..512]
    );
    assert_eq!(
        sb.disk_read(1, 0, 512).unwrap(),
        &pattern(128 << 10, 0xb)[..512]
    );
    sb.disk_write(1, 0, &[7u8; 512]).unwrap();
    sb.disk_flush(1).unwrap();
    assert_eq!(&std::fs::read(&b).unwrap()[..512], &[7u8; 512][..]);
    assert_eq!(std::fs::read(&a).unwrap(), pattern(64 << 10, 0xa));
}

#[test]
fn bad_disks_are_typed_errors() {
    let e = Sandbox::start(VmConfig::micro().disk("/nonexistent/disk.img", false))
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Disk(_)) && e.to_string().contains("/nonexistent/disk.img"),
        "{e}"
    );
    let e = Sandbox::start(VmConfig::micro().disk("/tmp", false))
        .err()
        .unwrap();
    assert!(matches!(e, Error::Disk(_)), "{e}");
    let odd = image("odd.img", &[0u8; 1000]);
    let e = Sandbox::start(VmConfig::micro().disk(&odd, false))
        .err()
        .unwrap();
    assert!(
        matches!(e, Error::Disk(_)) && e.to_string().contains("1000"),
        "{e}"
    );
    let locked = image("locked.img", &[0u8; 512]);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root ignores file modes; elsewhere this is PermissionDenied.
    if unsafe { libc::geteuid() } != 0 {
        let e = Sandbox::start(VmConfig::micro().disk(&locked, false))
            .err()
            .unwrap();
        assert!(matches!(e, Error::Disk(_)), "{e}");
    }
}

#[test]
fn operations_the_micro_guest_lacks_are_unsupported() {
    let sb = Sandbox::micro().unwrap();
    let e = sb
        .exec(&kvmsandbox::ExecRequest::new(["true"]))
        .unwrap_err();
    assert!(matches!(e, Error::Unsupported { op: "exec", .. }), "{e}");
    let e = sb.read_file("/etc/hostname", Vec::new()).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
}

#[test]
fn killed_sandbox_gives_typed_errors_not_hangs() {
    let sb = Sandbox::micro().unwrap();
    let mut stream = sb.connect(ECHO_PORT).unwrap();
    sb.kill();
    let t0 = Instant::now();
    let e = sb.ping().unwrap_err();
    assert!(matches!(e, Error::Stopped { op: "ping" }), "{e}");
    let e = sb.connect(ECHO_PORT).unwrap_err();
    assert!(matches!(e, Error::Stopped { op: "connect" }), "{e}");
    let e = sb.disk_read(0, 0, 512).unwrap_err();
    assert!(matches!(e, Error::Stopped { .. }), "{e}");
    // A stream handed out before the kill is shut down: EOF, not a hang.
    assert_eq!(stream.read(&mut [0u8; 16]).unwrap(), 0);
    // Nothing new reaches the dead VM's socket either.
    assert!(std::os::unix::net::UnixStream::connect(sb.vsock_path().unwrap()).is_err());
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "calls on a killed sandbox took {took:?}"
    );
}

#[test]
fn connect_waits_the_per_call_timeout_for_a_guest_that_does_not_accept() {
    let sb = Sandbox::micro().unwrap();
    // Parked vCPUs: the VMM takes the CONNECT but the guest never answers it.
    let paused = sb.vm().unwrap().pause().unwrap();
    let t0 = Instant::now();
    let e = sb
        .with_timeout(Duration::from_millis(300))
        .connect(ECHO_PORT)
        .unwrap_err();
    let took = t0.elapsed();
    assert!(
        matches!(
            e,
            Error::Agent(AgentError::Timeout {
                op: "connect",
                after
            }) if after == Duration::from_millis(300)
        ),
        "{e}"
    );
    assert_eq!(e.kind(), kvmsandbox::ErrorKind::Timeout);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(paused);
    // Running again, the guest accepts within the same kind of bound.
    let mut s = sb
        .with_timeout(Duration::from_secs(10))
        .connect(ECHO_PORT)
        .unwrap();
    s.write_all(b"back").unwrap();
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"back");
}

#[test]
fn runtime_directory_is_private_fresh_and_removed_on_drop() {
    use std::os::unix::fs::MetadataExt;
    // What the old code would have reused: directories planted at the names it
    // predicted (`kvmsandbox-<pid>-<n>`), open to everyone.
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let planted: Vec<PathBuf> = (0..16)
        .map(|n| base.join(format!("kvmsandbox-{}-{n}", std::process::id())))
        .collect();
    for p in &planted {
        let _ = std::fs::create_dir(p);
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let sb = Sandbox::micro().unwrap();
    let dir = sb.vsock_path().unwrap().parent().unwrap().to_path_buf();
    assert!(
        !planted.contains(&dir),
        "a planted directory was reused: {dir:?}"
    );
    let m = std::fs::symlink_metadata(&dir).unwrap();
    assert!(m.is_dir() && !m.file_type().is_symlink());
    assert_eq!(m.mode() & 0o7777, 0o700, "{dir:?}");
    // SAFETY: geteuid cannot fail.
    assert_eq!(m.uid(), unsafe { libc::geteuid() });
    sb.ping().unwrap();
    drop(sb);
    assert!(!dir.exists(), "{dir:?} left behind");
    for p in &planted {
        assert!(p.is_dir(), "planted {p:?} was touched");
        std::fs::remove_dir(p).unwrap();
    }
}

#[test]
fn a_symlink_or_file_at_a_chosen_vsock_path_is_refused() {
    let dir = common::temp_file("vsock-target", b"secret")
        .parent()
        .unwrap()
        .to_path_buf();
    let target = dir.join("vsock-target");
    let link = dir.join("vsock-link.sock");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for p in [&link, &target] {
        let e = Sandbox::start(VmConfig::micro().vsock(p))
            .err()
            .expect("started on a planted path");
        assert!(matches!(e, Error::Vsock(_)), "{e}");
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"secret");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn disk_file_removed_while_running_keeps_serving_the_open_image() {
    let host = pattern(64 << 10, 4);
    let path = image("disk-removed.img", &host);
    let sb = Sandbox::start(VmConfig::micro().disk(&path, false)).unwrap();
    std::fs::remove_file(&path).unwrap();
    // The VMM holds the image open: the guest's disk keeps working (on the unlinked
    // inode), nothing panics, and the sandbox shuts down cleanly.
    assert_eq!(sb.disk_read(0, 0, 4096).unwrap(), &host[..4096]);
    sb.disk_write(0, 0, &[9u8; 512]).unwrap();
    sb.disk_flush(0).unwrap();
    assert_eq!(sb.disk_read(0, 0, 512).unwrap(), vec![9u8; 512]);
    sb.shutdown().unwrap();
}

#[test]
fn streams_opened_by_others_see_eof_when_the_vm_stops() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    let sb = Sandbox::micro().unwrap();
    let path = sb.vsock_path().unwrap().to_path_buf();
    // What socat would do: the hybrid handshake by hand, unknown to the sandbox.
    let mut connected = UnixStream::connect(&path).unwrap();
    connected
        .write_all(format!("CONNECT {ECHO_PORT}\n").as_bytes())
        .unwrap();
    let mut reader = BufReader::new(connected.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("OK "), "{line:?}");
    // And one that connected but never said which port.
    let mut pending = UnixStream::connect(&path).unwrap();
    for s in [&connected, &pending] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    // The VM stops underneath the sandbox (as a crashed guest's would).
    let t0 = Instant::now();
    sb.vm().unwrap().kill();
    assert_eq!(
        reader
            .read(&mut [0u8; 16])
            .expect("EOF, not a read timeout"),
        0
    );
    assert_eq!(
        pending
            .read(&mut [0u8; 16])
            .expect("EOF, not a read timeout"),
        0
    );
    let refused = UnixStream::connect(&path);
    assert!(
        refused.is_err(),
        "the dead VM's socket still accepts connections"
    );
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "outside streams ended after {took:?}"
    );
}

#[test]
fn connect_close_cycles_never_stall() {
    use std::io::Write;
    // A closed connection's fd number is reused by the next connect at once; the
    // device once lost track of such a host ~2-5% of the time (a 10 s stall, then
    // a reset). Each cycle must be quick: to the echo port with a round trip, and
    // to the agent's port, reading its hello and hanging up at once.
    let sb = Sandbox::micro().unwrap();
    for i in 0..300u32 {
        let t0 = Instant::now();
        if i % 2 == 0 {
            let mut s = sb
                .connect(ECHO_PORT)
                .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(&i.to_le_bytes()).unwrap();
            let mut back = [0u8; 4];
            s.read_exact(&mut back)
                .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
            assert_eq!(back, i.to_le_bytes());
        } else {
            let mut s = sb
                .connect(kvmsandbox::sandbox::DEFAULT_AGENT_PORT)
                .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut hello = [0u8; 8];
            s.read_exact(&mut hello)
                .unwrap_or_else(|e| panic!("cycle {i}: no hello: {e}"));
        }
        let took = t0.elapsed();
        assert!(took < Duration::from_secs(3), "cycle {i} took {took:?}");
    }
}
