//! What the VMM (device event-loop) thread may do beyond [`super::common`]: wait on
//! epoll, drain eventfds, do disk I/O on already-open files, and talk to host Unix
//! sockets for vsock. It opens no files, creates only `AF_UNIX` sockets, and never
//! execs or spawns.
//!
//! The loop body this list is written from: `loop { epoll_wait; read the ready
//! eventfds (ioeventfd queue notifications, exit, control); virtio-blk: pread/pwrite/
//! preadv/pwritev/fdatasync on the disk file; virtio-vsock: accept/connect/recv/send on
//! host Unix sockets; signal the guest by writing irqfds (or KVM_IRQ_LINE) }`.

use super::ioctls::{FIONBIO, KVM_IRQ_LINE};
use super::rules::{sys, val, Args, Syscall, Value};

/// ioctl requests the VMM thread makes.
pub(super) const VMM_IOCTLS: &[Value] = &[
    val!(
        KVM_IRQ_LINE,
        KVM_IRQ_LINE,
        "raise/lower a device interrupt line when irqfd is not used"
    ),
    val!(
        FIONBIO,
        FIONBIO,
        "std's set_nonblocking on vsock host sockets"
    ),
];

/// `socket(domain, ...)`: only Unix sockets.
const SOCKET_DOMAINS: &[Value] = &[val!(
    AF_UNIX,
    libc::AF_UNIX,
    "vsock streams are bridged to host Unix sockets"
)];

/// `fcntl(fd, cmd, ...)`: only reading fd flags and reading/setting the status flags.
const FCNTL_CMDS: &[Value] = &[
    val!(
        F_GETFD,
        libc::F_GETFD,
        "std's debug-build fd check in OwnedFd::drop, before close"
    ),
    val!(F_GETFL, libc::F_GETFL, "read O_NONBLOCK before changing it"),
    val!(
        F_SETFL,
        libc::F_SETFL,
        "set O_NONBLOCK on accepted/connected sockets"
    ),
];

/// `newfstatat(fd, path, buf, flags)` / `statx(fd, path, flags, ...)`: only with
/// `AT_EMPTY_PATH`, i.e. stat of an open fd (glibc's `fstat` and std's `File::metadata`).
const fn empty_path(index: u8) -> Args {
    Args::BitsSet {
        index,
        mask: libc::AT_EMPTY_PATH as u64,
        what: "AT_EMPTY_PATH",
    }
}

/// Allowed on the VMM thread in addition to [`super::common::COMMON`].
pub(super) const VMM: &[Syscall] = &[
    // Event loop
    sys!(
        SYS_epoll_create1,
        "the event manager may be created on the thread itself"
    ),
    sys!(SYS_epoll_ctl, "register/unregister device and socket fds"),
    sys!(
        SYS_epoll_wait,
        "wait for eventfds and sockets (vmm-sys-util Epoll::wait)"
    ),
    sys!(
        SYS_epoll_pwait,
        "wait for eventfds and sockets (glibc may route epoll_wait here)"
    ),
    // Eventfds, disk files, sockets
    sys!(
        SYS_read,
        "drain eventfds (ioeventfd, exit, control); read vsock host sockets"
    ),
    sys!(SYS_readv, "vectored reads into guest buffers"),
    sys!(SYS_pread64, "virtio-blk reads at an offset"),
    sys!(SYS_pwrite64, "virtio-blk writes at an offset"),
    sys!(
        SYS_preadv,
        "virtio-blk vectored reads (one request, many descriptors)"
    ),
    sys!(SYS_pwritev, "virtio-blk vectored writes"),
    sys!(SYS_fdatasync, "virtio-blk FLUSH"),
    sys!(
        SYS_timerfd_settime,
        "vsock connect/grace timeouts (one timerfd, armed and disarmed)"
    ),
    sys!(
        SYS_timerfd_gettime,
        "vsock: read the remaining time of the timeout timer"
    ),
    sys!(
        SYS_fsync,
        "virtio-blk FLUSH when the backend asks for full sync"
    ),
    sys!(SYS_lseek, "disk size / File seek"),
    sys!(SYS_fstat, "disk size (File::metadata fallback)"),
    sys!(
        SYS_newfstatat,
        "glibc's fstat (fd + AT_EMPTY_PATH only)",
        empty_path(3)
    ),
    sys!(
        SYS_statx,
        "std's File::metadata (fd + AT_EMPTY_PATH only)",
        empty_path(2)
    ),
    sys!(
        SYS_fcntl,
        "O_NONBLOCK on sockets; std debug fd checks (F_GETFD/F_GETFL/F_SETFL only)",
        Args::OneOf {
            index: 1,
            values: FCNTL_CMDS
        }
    ),
    sys!(
        SYS_ioctl,
        "FIONBIO and KVM_IRQ_LINE only (see the request list)",
        Args::OneOf {
            index: 1,
            values: VMM_IOCTLS
        }
    ),
    // vsock <-> host Unix sockets
    sys!(
        SYS_socket,
        "guest-initiated vsock connections to host listeners (AF_UNIX only)",
        Args::OneOf {
            index: 0,
            values: SOCKET_DOMAINS
        }
    ),
    sys!(
        SYS_connect,
        "connect to a host Unix listener for a guest-initiated stream"
    ),
    sys!(
        SYS_accept4,
        "accept host-initiated streams on the vsock listener"
    ),
    sys!(
        SYS_recvfrom,
        "read a vsock stream (std's UnixStream::read is recv)"
    ),
    sys!(SYS_sendto, "write a vsock stream (send)"),
    sys!(SYS_recvmsg, "vectored/ancillary reads of a vsock stream"),
    sys!(SYS_sendmsg, "vectored writes of a vsock stream"),
    sys!(
        SYS_shutdown,
        "half-close a stream when the guest sends SHUTDOWN"
    ),
    sys!(SYS_getsockopt, "SO_ERROR after a non-blocking connect"),
];
