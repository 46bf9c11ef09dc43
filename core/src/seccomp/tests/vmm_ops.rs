//! The VMM (event-loop) filter under Kill: its event loop, disk and Unix socket work
//! runs; an `AF_INET` socket or opening a file dies.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};

use super::super::*;
use super::child::{apply, check, run_in_child, Outcome, OK, SIGSYS};

fn under_vmm_filter(body: impl FnOnce() -> Result<(), String> + 'static) -> Outcome {
    let program = filter_for(ThreadKind::Vmm, SeccompPolicy::Kill)
        .unwrap()
        .unwrap();
    run_in_child(move || {
        apply(&program)?;
        body()
    })
}

fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kvmsandbox-seccomp-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn seccomp_vmm_allowed_operations_work() {
    let dir = scratch_dir("vmm");
    let disk_path = dir.join("disk.img");
    let sock_path = dir.join("listener.sock");
    let _ = std::fs::remove_file(&sock_path);
    // Everything a VMM thread gets handed at build time is opened before the filter.
    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&disk_path)
        .unwrap();
    disk.set_len(8192).unwrap();
    let listener = UnixListener::bind(&sock_path).unwrap();
    let eventfd = vmm_sys_util::eventfd::EventFd::new(libc::EFD_NONBLOCK).unwrap();

    let path_for_child = sock_path.clone();
    let outcome = under_vmm_filter(move || {
        // Event loop: epoll on an eventfd.
        let epoll = vmm_sys_util::epoll::Epoll::new().map_err(|e| format!("epoll_create1: {e}"))?;
        let event = vmm_sys_util::epoll::EpollEvent::new(vmm_sys_util::epoll::EventSet::IN, 7);
        epoll
            .ctl(
                vmm_sys_util::epoll::ControlOperation::Add,
                eventfd.as_raw_fd(),
                event,
            )
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        eventfd
            .write(1)
            .map_err(|e| format!("eventfd write: {e}"))?;
        let mut ready = [vmm_sys_util::epoll::EpollEvent::default(); 4];
        let n = epoll
            .wait(1000, &mut ready)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        check(n == 1 && ready[0].data() == 7, "epoll_wait readiness")?;
        check(
            eventfd.read().map_err(|e| format!("eventfd read: {e}"))? == 1,
            "eventfd count",
        )?;

        // Disk: positional and vectored I/O, flush, size.
        disk.write_all_at(b"sector", 512)
            .map_err(|e| format!("pwrite: {e}"))?;
        let mut back = [0u8; 6];
        disk.read_exact_at(&mut back, 512)
            .map_err(|e| format!("pread: {e}"))?;
        check(&back == b"sector", "pread data")?;
        let iov = [libc::iovec {
            iov_base: back.as_mut_ptr().cast(),
            iov_len: back.len(),
        }];
        // SAFETY: one iovec over a live buffer.
        check(
            unsafe { libc::preadv(disk.as_raw_fd(), iov.as_ptr(), 1, 512) } == 6,
            "preadv",
        )?;
        // SAFETY: as above, writing from the same buffer.
        check(
            unsafe { libc::pwritev(disk.as_raw_fd(), iov.as_ptr(), 1, 1024) } == 6,
            "pwritev",
        )?;
        disk.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
        disk.sync_all().map_err(|e| format!("fsync: {e}"))?;
        let len = disk
            .metadata()
            .map_err(|e| format!("statx/fstat: {e}"))?
            .len();
        check(len == 8192, "disk size")?;
        // SAFETY: glibc's fstat (newfstatat with AT_EMPTY_PATH) into a valid buffer.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        check(
            unsafe { libc::fstat(disk.as_raw_fd(), &mut st) } == 0,
            "fstat",
        )?;
        let mut file = &disk;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))
            .map_err(|e| format!("lseek: {e}"))?;

        // vsock bridge: connect to a host listener, accept, non-blocking, send/recv, shutdown.
        let mut out =
            UnixStream::connect(&path_for_child).map_err(|e| format!("socket+connect: {e}"))?;
        let (mut inn, _) = listener.accept().map_err(|e| format!("accept4: {e}"))?;
        out.set_nonblocking(true)
            .map_err(|e| format!("FIONBIO: {e}"))?;
        out.write_all(b"ping").map_err(|e| format!("send: {e}"))?;
        let mut got = [0u8; 4];
        inn.read_exact(&mut got).map_err(|e| format!("recv: {e}"))?;
        check(&got == b"ping", "stream data")?;
        let _ = out.take_error().map_err(|e| format!("getsockopt: {e}"))?;
        out.shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))?;
        check(
            inn.read(&mut got).map_err(|e| format!("read eof: {e}"))? == 0,
            "eof after shutdown",
        )?;
        Ok(())
    });
    assert_eq!(outcome, OK);
    assert_eq!(std::fs::read(&disk_path).unwrap()[1024..1030], *b"sector");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn seccomp_vmm_inet_socket_is_killed() {
    let outcome = under_vmm_filter(|| {
        let r = forbidden_syscall_probe(Probe::Socket);
        Err(format!("socket(AF_INET) returned {r:?}"))
    });
    assert_eq!(outcome, SIGSYS);
}

#[test]
fn seccomp_vmm_open_fails_with_eacces_and_the_thread_goes_on() {
    let outcome = under_vmm_filter(|| match std::fs::File::open("/etc/hostname") {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => Ok(()),
        other => Err(format!("open returned {other:?}, wanted EACCES")),
    });
    assert_eq!(outcome, OK);
}

#[test]
fn seccomp_vmm_execve_is_killed() {
    let outcome = under_vmm_filter(|| {
        let r = forbidden_syscall_probe(Probe::Execve);
        Err(format!("execve returned {r:?}"))
    });
    assert_eq!(outcome, SIGSYS);
}
