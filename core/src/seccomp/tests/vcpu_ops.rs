//! The vCPU filter under Kill: what a vCPU thread does works, the narrowed variants die.

use std::sync::atomic::AtomicU32;

use super::super::*;
use super::child::{apply, check, run_in_child, Outcome, OK, SIGSYS};

fn vcpu_kill() -> Filters {
    filter_for(ThreadKind::Vcpu, SeccompPolicy::Kill)
        .unwrap()
        .unwrap()
}

/// Runs `body` in a child after installing the vCPU Kill filter.
fn under_vcpu_filter(body: impl FnOnce() -> Result<(), String> + 'static) -> Outcome {
    let program = vcpu_kill();
    run_in_child(move || {
        apply(&program)?;
        body()
    })
}

#[test]
fn seccomp_vcpu_allowed_operations_work() {
    let mut fds = [0; 2];
    // SAFETY: pipe with a valid 2-int array, made before the filter (pipe2 is forbidden).
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let [read_end, write_end] = fds;
    let outcome = under_vcpu_filter(move || {
        // futex: wake nobody, and a wait whose value does not match returns EAGAIN.
        let word = AtomicU32::new(7);
        // SAFETY: futex on a valid, aligned u32 that outlives the calls.
        let woken = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1,
            )
        };
        check(woken == 0, "futex wake")?;
        // SAFETY: as above; expected value 8 != 7, so the call returns at once.
        let wait = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                8,
                std::ptr::null::<libc::timespec>(),
            )
        };
        check(
            wait == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN),
            "futex wait",
        )?;

        // mmap without PROT_EXEC, touch, mprotect read-only, munmap.
        // SAFETY: anonymous private mapping; only this code uses it, unmapped below.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        check(page != libc::MAP_FAILED, "mmap RW")?;
        // SAFETY: the page was just mapped writable.
        unsafe { page.cast::<u8>().write(0x5a) };
        // SAFETY: changing protection of our own mapping.
        check(
            unsafe { libc::mprotect(page, 4096, libc::PROT_READ) } == 0,
            "mprotect R",
        )?;
        // SAFETY: unmapping our own mapping, no references remain.
        check(unsafe { libc::munmap(page, 4096) } == 0, "munmap")?;

        // The allocator: grow a Vec past the mmap threshold and back (brk/mmap/munmap).
        let mut big = vec![1u8; 4 << 20];
        big.truncate(10);
        big.shrink_to_fit();
        drop(big);
        let lock = std::sync::Mutex::new(0);
        *lock.lock().map_err(|_| "poisoned")? += 1;

        // write to a pipe (serial output to a host fd).
        let msg = b"serial";
        // SAFETY: writing a valid buffer to our pipe's write end.
        check(
            unsafe { libc::write(write_end, msg.as_ptr().cast(), msg.len()) } == 6,
            "write pipe",
        )?;

        // clock_gettime as a real syscall (not the vDSO), gettid, sched_yield, getrandom.
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid out pointer.
        check(
            unsafe { libc::syscall(libc::SYS_clock_gettime, libc::CLOCK_MONOTONIC, &mut ts) } == 0,
            "clock_gettime",
        )?;
        let _ = std::time::Instant::now();
        // SAFETY: no arguments.
        check(unsafe { libc::syscall(libc::SYS_gettid) } > 0, "gettid")?;
        // SAFETY: no arguments.
        check(unsafe { libc::sched_yield() } == 0, "sched_yield")?;
        let mut seed = [0u8; 8];
        // SAFETY: valid buffer of the given length.
        check(
            unsafe { libc::getrandom(seed.as_mut_ptr().cast(), 8, 0) } == 8,
            "getrandom",
        )?;
        std::thread::sleep(std::time::Duration::from_millis(1));

        // ioctl narrowed by request: KVM_RUN reaches the kernel (EBADF on fd -1).
        // SAFETY: ioctl on an invalid fd only returns an error.
        let r = unsafe { libc::ioctl(-1, ioctls::KVM_RUN as _, 0) };
        check(
            r == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF),
            "ioctl KVM_RUN",
        )?;

        // close an fd the thread owns.
        // SAFETY: closing our pipe's write end, not used afterwards.
        check(unsafe { libc::close(write_end) } == 0, "close")?;
        Ok(())
    });
    assert_eq!(outcome, OK);
    let mut buf = [0u8; 16];
    // SAFETY: reading into a valid buffer from the pipe's read end (parent side).
    let n = unsafe { libc::read(read_end, buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(&buf[..n as usize], b"serial");
    // SAFETY: closing the parent's copies.
    unsafe {
        libc::close(read_end);
        libc::close(write_end);
    }
}

/// Each of these is one forbidden call; the child must die of SIGSYS on it.
fn dies(body: impl FnOnce() -> Result<(), String> + 'static) {
    assert_eq!(under_vcpu_filter(body), SIGSYS);
}

#[test]
fn seccomp_vcpu_mmap_exec_is_killed() {
    dies(|| {
        // SAFETY: an anonymous mapping request; the filter kills before it happens.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        Err(format!("mmap PROT_EXEC returned {p:?}"))
    });
}

#[test]
fn seccomp_vcpu_mprotect_exec_is_killed() {
    dies(|| {
        let data = vec![0u8; 8192];
        let page = ((data.as_ptr() as usize + 4095) & !4095) as *mut libc::c_void;
        // SAFETY: the filter kills before the protection change happens.
        let r = unsafe { libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_EXEC) };
        Err(format!("mprotect PROT_EXEC returned {r}"))
    });
}

#[test]
fn seccomp_vcpu_other_ioctl_is_killed() {
    dies(|| {
        // SAFETY: TCGETS on fd -1 would only fail; the filter kills first.
        let r = unsafe { libc::ioctl(-1, libc::TCGETS, 0) };
        Err(format!("ioctl TCGETS returned {r}"))
    });
}

#[test]
fn seccomp_vcpu_open_fails_with_eacces_and_the_thread_goes_on() {
    let outcome = under_vcpu_filter(|| match std::fs::File::open("/etc/hostname") {
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => Ok(()),
        other => Err(format!("open returned {other:?}, wanted EACCES")),
    });
    assert_eq!(outcome, OK);
}

/// Set in the re-executed test binary of the test below: play the child.
const HEAP_SHRINK_CHILD: &str = "KVMSB_SECCOMP_HEAP_SHRINK_CHILD";

#[test]
fn seccomp_vcpu_heap_shrink_in_a_fresh_process_does_not_kill() {
    // The first shrink of a thread arena's heap in a process makes glibc open
    // /proc/sys/vm/overcommit_memory on the freeing thread (a vCPU thread died
    // of it in CI). Only a fresh process has not done that yet, so the test
    // binary runs this very test again, alone, as the child.
    if std::env::var_os(HEAP_SHRINK_CHILD).is_some() {
        let filtered = std::thread::spawn(|| {
            let record = TrapRecord::new();
            install(ThreadKind::Vcpu, SeccompPolicy::Kill, &record).map_err(|e| e.to_string())?;
            let blocks: Vec<Vec<u8>> = (0..4000).map(|i| vec![i as u8; 1000]).collect();
            drop(std::hint::black_box(blocks));
            Ok::<(), String>(())
        });
        let code = match filtered.join() {
            Ok(Ok(())) => 0,
            _ => 1,
        };
        // SAFETY: ends the child right here, as its parent expects.
        unsafe { libc::_exit(code) }
    }
    let name = concat!(
        module_path!(),
        "::seccomp_vcpu_heap_shrink_in_a_fresh_process_does_not_kill"
    );
    let name = name.split_once("::").map_or(name, |(_, rest)| rest);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(HEAP_SHRINK_CHILD, "1")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the filtered thread's heap shrink: {status:?}"
    );
}

#[test]
fn seccomp_vcpu_unix_socket_is_killed() {
    dies(|| {
        let s = std::os::unix::net::UnixDatagram::unbound();
        Err(format!("socket(AF_UNIX) returned {s:?}"))
    });
}

#[test]
fn seccomp_vcpu_thread_spawn_is_killed() {
    dies(|| {
        let t = std::thread::Builder::new().spawn(|| ());
        Err(format!("spawn returned {t:?}"))
    });
}
