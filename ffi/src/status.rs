//! The stable status codes of the C API and how every Rust error maps to one.
//! Numbers are explicit and never reused: C callers switch on them. The mapping
//! goes through the core's `ErrorKind` table, which also drives the Python
//! exceptions and docs/errors.md, so the faces agree on what a failure is.

use crate::boundary::Failure;
use kvmsandbox_core::{Error, ErrorKind};
use std::os::raw::c_char;

/// What a call did. `KVMSB_STATUS_OK` is 0; every other value comes with a message
/// from `kvmsb_last_error()`. Values are stable across releases; new ones may be added.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum kvmsb_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An argument is malformed: bad UTF-8, a NULL entry in an array, an
    /// environment entry without '=', an unknown enum value.
    InvalidArgument = 2,
    /// The configuration is invalid or names a missing file (the message names it).
    Config = 3,
    /// /dev/kvm is missing, inaccessible or lacks a capability.
    KvmUnavailable = 4,
    /// Building the VM failed (memory, image loading, devices, KVM ioctls).
    BootFailed = 5,
    /// The guest did not become ready within the start timeout.
    StartTimeout = 6,
    /// The guest panicked.
    GuestPanic = 7,
    /// The guest crashed or stopped unexpectedly.
    GuestCrashed = 8,
    /// An operation did not finish in time (the agent's or a host deadline).
    Timeout = 9,
    /// Talking to the guest agent failed (socket I/O, disconnect, protocol error).
    Agent = 10,
    /// The agent reports: no such file, disk or process.
    NotFound = 11,
    /// The agent reports: permission denied (e.g. writing a read-only disk).
    PermissionDenied = 12,
    /// This sandbox kind does not offer the operation (e.g. exec on the micro guest),
    /// or this host cannot run the guest (Linux user space on a PVM host).
    Unsupported = 13,
    /// An I/O error (in the guest, or of a host resource).
    Io = 14,
    /// Connecting to a guest vsock port failed.
    Connect = 15,
    /// A VMM thread's seccomp filter failed to install or trapped a syscall.
    Seccomp = 16,
    /// The agent reports: the target already exists.
    AlreadyExists = 17,
    /// A bug: a Rust panic was caught at the library boundary.
    Panic = 18,
    /// The sandbox was stopped (killed, shut down, its VM exited) before or during the call.
    Stopped = 19,
    /// The call produced more output than the host's limit.
    OutputLimit = 20,
    /// The agent failed the request for another reason (an agent bug, or an
    /// error code newer than this library).
    GuestError = 21,
    /// The sandbox is in use (a call running, a stream open) in a way a
    /// snapshot or restore cannot carry over.
    Busy = 22,
    /// A snapshot could not be taken or applied, does not fit the sandbox, or a
    /// snapshot file is truncated, corrupt, or of another version or guest kind.
    Snapshot = 23,
}

/// Every status, for `kvmsb_status_name` and tests (private: not in the header).
const ALL: [kvmsb_status; 24] = {
    use kvmsb_status::*;
    [
        Ok,
        NullArgument,
        InvalidArgument,
        Config,
        KvmUnavailable,
        BootFailed,
        StartTimeout,
        GuestPanic,
        GuestCrashed,
        Timeout,
        Agent,
        NotFound,
        PermissionDenied,
        Unsupported,
        Io,
        Connect,
        Seccomp,
        AlreadyExists,
        Panic,
        Stopped,
        OutputLimit,
        GuestError,
        Busy,
        Snapshot,
    ]
};

impl kvmsb_status {
    /// The constant's name as in the header, NUL-terminated.
    fn name(self) -> &'static str {
        match self {
            Self::Ok => "KVMSB_STATUS_OK\0",
            Self::NullArgument => "KVMSB_STATUS_NULL_ARGUMENT\0",
            Self::InvalidArgument => "KVMSB_STATUS_INVALID_ARGUMENT\0",
            Self::Config => "KVMSB_STATUS_CONFIG\0",
            Self::KvmUnavailable => "KVMSB_STATUS_KVM_UNAVAILABLE\0",
            Self::BootFailed => "KVMSB_STATUS_BOOT_FAILED\0",
            Self::StartTimeout => "KVMSB_STATUS_START_TIMEOUT\0",
            Self::GuestPanic => "KVMSB_STATUS_GUEST_PANIC\0",
            Self::GuestCrashed => "KVMSB_STATUS_GUEST_CRASHED\0",
            Self::Timeout => "KVMSB_STATUS_TIMEOUT\0",
            Self::Agent => "KVMSB_STATUS_AGENT\0",
            Self::NotFound => "KVMSB_STATUS_NOT_FOUND\0",
            Self::PermissionDenied => "KVMSB_STATUS_PERMISSION_DENIED\0",
            Self::Unsupported => "KVMSB_STATUS_UNSUPPORTED\0",
            Self::Io => "KVMSB_STATUS_IO\0",
            Self::Connect => "KVMSB_STATUS_CONNECT\0",
            Self::Seccomp => "KVMSB_STATUS_SECCOMP\0",
            Self::AlreadyExists => "KVMSB_STATUS_ALREADY_EXISTS\0",
            Self::Panic => "KVMSB_STATUS_PANIC\0",
            Self::Stopped => "KVMSB_STATUS_STOPPED\0",
            Self::OutputLimit => "KVMSB_STATUS_OUTPUT_LIMIT\0",
            Self::GuestError => "KVMSB_STATUS_GUEST_ERROR\0",
            Self::Busy => "KVMSB_STATUS_BUSY\0",
            Self::Snapshot => "KVMSB_STATUS_SNAPSHOT\0",
        }
    }
}

/// The name of a status value ("KVMSB_STATUS_NOT_FOUND"), or "KVMSB_STATUS_UNKNOWN"
/// for a value this version does not know.
///
/// Ownership: static storage, never free it. Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_status_name(status: i32) -> *const c_char {
    let name = ALL
        .iter()
        .find(|s| **s as i32 == status)
        .map_or("KVMSB_STATUS_UNKNOWN\0", |s| s.name());
    name.as_ptr().cast()
}

/// The status of each error kind. `ErrorKind` is `#[non_exhaustive]`, so a new
/// kind falls to KVMSB_STATUS_AGENT until it is given its code here; the test
/// comparing every kind with the table's `c_status` fails until then.
fn status_for(kind: ErrorKind) -> kvmsb_status {
    match kind {
        ErrorKind::Config => kvmsb_status::Config,
        ErrorKind::InvalidArgument => kvmsb_status::InvalidArgument,
        ErrorKind::KvmUnavailable => kvmsb_status::KvmUnavailable,
        ErrorKind::Boot => kvmsb_status::BootFailed,
        ErrorKind::StartTimeout => kvmsb_status::StartTimeout,
        ErrorKind::GuestPanic => kvmsb_status::GuestPanic,
        ErrorKind::GuestCrashed => kvmsb_status::GuestCrashed,
        ErrorKind::Timeout => kvmsb_status::Timeout,
        ErrorKind::Agent => kvmsb_status::Agent,
        ErrorKind::NotFound => kvmsb_status::NotFound,
        ErrorKind::PermissionDenied => kvmsb_status::PermissionDenied,
        ErrorKind::Unsupported => kvmsb_status::Unsupported,
        ErrorKind::Io => kvmsb_status::Io,
        ErrorKind::Connection => kvmsb_status::Connect,
        ErrorKind::Seccomp => kvmsb_status::Seccomp,
        ErrorKind::AlreadyExists => kvmsb_status::AlreadyExists,
        ErrorKind::Stopped => kvmsb_status::Stopped,
        ErrorKind::OutputLimit => kvmsb_status::OutputLimit,
        ErrorKind::GuestError => kvmsb_status::GuestError,
        ErrorKind::Busy => kvmsb_status::Busy,
        ErrorKind::Snapshot => kvmsb_status::Snapshot,
        _ => kvmsb_status::Agent,
    }
}

/// The status for a library error: its kind's.
pub fn status_of(e: &Error) -> kvmsb_status {
    status_for(e.kind())
}

/// The full message of `e`: its text plus any cause it does not already quote.
fn message_of(e: &Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let s_text = s.to_string();
        if !msg.contains(&s_text) {
            msg.push_str(": ");
            msg.push_str(&s_text);
        }
        src = s.source();
    }
    msg
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::new(status_of(&e), message_of(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::time::Duration;

    #[test]
    fn names_match_numbers() {
        for (i, s) in ALL.iter().enumerate() {
            assert_eq!(*s as i32, i as i32, "statuses are numbered densely from 0");
            // SAFETY: kvmsb_status_name returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(kvmsb_status_name(*s as i32)) };
            assert!(name.to_str().unwrap().starts_with("KVMSB_STATUS_"));
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(kvmsb_status_name(999)) };
        assert_eq!(unknown.to_str().unwrap(), "KVMSB_STATUS_UNKNOWN");
    }

    #[test]
    fn every_kind_has_the_status_the_table_names() {
        for kind in ErrorKind::ALL {
            let status = status_for(kind);
            assert_eq!(
                status.name().trim_end_matches('\0'),
                kind.info().c_status,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn maps_errors_to_codes() {
        use kvmsandbox_core::agent::{AgentError, ErrorCode};
        use kvmsandbox_core::devices::virtio::block::BlockError;
        let remote = |code| {
            Error::Agent(AgentError::Remote {
                op: "read_file",
                code,
                message: "x".into(),
            })
        };
        assert_eq!(
            status_of(&remote(ErrorCode::NotFound)),
            kvmsb_status::NotFound
        );
        assert_eq!(
            status_of(&remote(ErrorCode::PermissionDenied)),
            kvmsb_status::PermissionDenied
        );
        assert_eq!(
            status_of(&remote(ErrorCode::Internal)),
            kvmsb_status::GuestError
        );
        // The disagreements: a missing disk image is CONFIG (Python:
        // ConfigError), a stopped sandbox is STOPPED, not AGENT.
        assert_eq!(
            status_of(&Error::Disk(BlockError::NotFound("/x.raw".into()))),
            kvmsb_status::Config
        );
        assert_eq!(
            status_of(&Error::Stopped { op: "exec" }),
            kvmsb_status::Stopped
        );
        let limit = AgentError::OutputLimit {
            op: "exec",
            limit: 1,
        };
        assert_eq!(status_of(&Error::Agent(limit)), kvmsb_status::OutputLimit);
        assert_eq!(
            status_of(&Error::Unsupported {
                op: "exec",
                guest: "micro guest"
            }),
            kvmsb_status::Unsupported
        );
        let pvm = Failure::from(Error::LinuxUserSpaceOnPvm {
            signal: 11,
            panic: "Attempted to kill init! exitcode=0x0000000b".into(),
            last_lines: Vec::new(),
        });
        assert_eq!(pvm.status, kvmsb_status::Unsupported);
        assert!(pvm.message.contains("micro guest"), "{}", pvm.message);
        assert_eq!(
            status_of(&Error::Timeout {
                op: "run_wasm",
                after: Duration::from_secs(1)
            }),
            kvmsb_status::Timeout
        );
        let f = Failure::from(Error::Connect {
            port: 7,
            source: std::io::Error::other("refused"),
        });
        assert_eq!(f.status, kvmsb_status::Connect);
        assert!(
            f.message.contains("port 7") && f.message.contains("refused"),
            "{}",
            f.message
        );
    }
}
