//! The one error model of the three faces. Every leaf of [`Error`] (each variant,
//! each [`AgentError`] variant, each agent [`ErrorCode`]) maps to one [`ErrorKind`],
//! and each kind names its C status and its Python exception class here, so the
//! C ABI, the Python module and `docs/errors.md` cannot disagree about what a
//! failure is. The leaf tables are `match`es without a wildcard: a new variant
//! does not compile until it is given a kind.

use crate::agent::{AgentError, ErrorCode};
use crate::error::Error;

/// What kind of failure an error is: the unit callers branch on in every face.
///
/// Deliberately exhaustive (not `#[non_exhaustive]`): the C and Python faces
/// match on it without a wildcard so that a new kind must be given a status
/// and a class there too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid or names a missing file.
    Config,
    /// The agent reports the request's arguments are invalid.
    InvalidArgument,
    /// /dev/kvm is missing, inaccessible or lacks a capability.
    KvmUnavailable,
    /// Building or booting the VM failed.
    Boot,
    /// The guest did not become ready within the start timeout.
    StartTimeout,
    /// The guest panicked.
    GuestPanic,
    /// The guest crashed or its VM stopped unexpectedly.
    GuestCrashed,
    /// An operation did not finish in time.
    Timeout,
    /// Talking to the agent failed (I/O, disconnect, protocol).
    Agent,
    /// No such file, disk or process.
    NotFound,
    /// Permission denied.
    PermissionDenied,
    /// This sandbox kind or agent does not offer the operation.
    Unsupported,
    /// An I/O error in the guest or of a host resource.
    Io,
    /// Connecting to a guest port failed.
    Connection,
    /// A seccomp filter failed to install or trapped a syscall.
    Seccomp,
    /// The target already exists.
    AlreadyExists,
    /// The sandbox was stopped before or during the operation.
    Stopped,
    /// The operation produced more output than the host accepts.
    OutputLimit,
    /// The agent failed the request for a reason without a kind of its own.
    GuestError,
    /// The sandbox is in use (a call running, a stream open) in a way the
    /// operation cannot carry over.
    Busy,
    /// A snapshot could not be taken or applied, or a snapshot file is bad.
    Snapshot,
}

/// How one kind shows in each face.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// One line for the docs.
    pub summary: &'static str,
    /// The C status constant.
    pub c_status: &'static str,
    /// The Python exception class (in module `kvmsandbox`).
    pub python_class: &'static str,
    /// Its bases: kvmsandbox classes (or another kind's class) and Python builtins.
    pub python_bases: &'static [&'static str],
}

const fn info(
    summary: &'static str,
    c_status: &'static str,
    python_class: &'static str,
    python_bases: &'static [&'static str],
) -> KindInfo {
    KindInfo {
        summary,
        c_status,
        python_class,
        python_bases,
    }
}

impl ErrorKind {
    /// Every kind, in documentation order.
    pub const ALL: [ErrorKind; 21] = [
        Self::Config,
        Self::InvalidArgument,
        Self::KvmUnavailable,
        Self::Boot,
        Self::StartTimeout,
        Self::GuestPanic,
        Self::GuestCrashed,
        Self::Timeout,
        Self::Agent,
        Self::NotFound,
        Self::PermissionDenied,
        Self::Unsupported,
        Self::Io,
        Self::Connection,
        Self::Seccomp,
        Self::AlreadyExists,
        Self::Stopped,
        Self::OutputLimit,
        Self::GuestError,
        Self::Busy,
        Self::Snapshot,
    ];

    /// How this kind shows in C and Python.
    pub fn info(self) -> KindInfo {
        const BASE: &str = "KvmSandboxError";
        match self {
            Self::Config => info(
                "The configuration is invalid or names a missing file (kernel, initrd, disk image).",
                "KVMSB_STATUS_CONFIG",
                "ConfigError",
                &[BASE],
            ),
            Self::InvalidArgument => info(
                "The agent reports the request's arguments are invalid.",
                "KVMSB_STATUS_INVALID_ARGUMENT",
                "InvalidArgument",
                &["GuestError", "ValueError"],
            ),
            Self::KvmUnavailable => info(
                "/dev/kvm is missing, inaccessible or lacks a capability.",
                "KVMSB_STATUS_KVM_UNAVAILABLE",
                "KvmUnavailable",
                &["BootError"],
            ),
            Self::Boot => info(
                "Building or booting the VM failed (memory, image loading, devices, KVM ioctls).",
                "KVMSB_STATUS_BOOT_FAILED",
                "BootError",
                &[BASE],
            ),
            Self::StartTimeout => info(
                "The guest did not become ready within the start timeout.",
                "KVMSB_STATUS_START_TIMEOUT",
                "StartTimeout",
                &["BootError", "Timeout"],
            ),
            Self::GuestPanic => info(
                "The guest panicked (micro guest panic, Linux kernel panic).",
                "KVMSB_STATUS_GUEST_PANIC",
                "GuestPanic",
                &["GuestCrashed"],
            ),
            Self::GuestCrashed => info(
                "The guest crashed or its VM stopped unexpectedly (triple fault, early exit, device loop died).",
                "KVMSB_STATUS_GUEST_CRASHED",
                "GuestCrashed",
                &[BASE],
            ),
            Self::Timeout => info(
                "An operation did not finish in time (the agent went silent, a host deadline passed).",
                "KVMSB_STATUS_TIMEOUT",
                "Timeout",
                &[BASE, "TimeoutError"],
            ),
            Self::Agent => info(
                "Talking to the agent failed (socket I/O, disconnect, malformed or unexpected frames, version).",
                "KVMSB_STATUS_AGENT",
                "AgentError",
                &[BASE],
            ),
            Self::NotFound => info(
                "The agent reports: no such file, disk or process.",
                "KVMSB_STATUS_NOT_FOUND",
                "NotFound",
                &["GuestError", "FileNotFoundError"],
            ),
            Self::PermissionDenied => info(
                "The agent reports: permission denied.",
                "KVMSB_STATUS_PERMISSION_DENIED",
                "PermissionDenied",
                &["GuestError", "PermissionError"],
            ),
            Self::Unsupported => info(
                "This sandbox kind or agent does not offer the operation.",
                "KVMSB_STATUS_UNSUPPORTED",
                "Unsupported",
                &[BASE, "NotImplementedError"],
            ),
            Self::Io => info(
                "An I/O error in the guest (reported by the agent) or of a host resource (thread, eventfd, runtime directory).",
                "KVMSB_STATUS_IO",
                "IoError",
                &[BASE, "OSError"],
            ),
            Self::Connection => info(
                "Connecting to a guest vsock port failed.",
                "KVMSB_STATUS_CONNECT",
                "ConnectError",
                &[BASE, "ConnectionError"],
            ),
            Self::Seccomp => info(
                "A VMM thread's seccomp filter failed to install or trapped a syscall.",
                "KVMSB_STATUS_SECCOMP",
                "SeccompError",
                &[BASE],
            ),
            Self::AlreadyExists => info(
                "The agent reports: the target already exists.",
                "KVMSB_STATUS_ALREADY_EXISTS",
                "AlreadyExists",
                &["GuestError", "FileExistsError"],
            ),
            Self::Stopped => info(
                "The sandbox was stopped (killed, shut down, its VM exited) before or during the operation.",
                "KVMSB_STATUS_STOPPED",
                "SandboxClosed",
                &[BASE],
            ),
            Self::OutputLimit => info(
                "The operation produced more output than the host's limit.",
                "KVMSB_STATUS_OUTPUT_LIMIT",
                "OutputLimit",
                &["AgentError"],
            ),
            Self::GuestError => info(
                "The agent failed the request for another reason (an agent bug, a code newer than this library).",
                "KVMSB_STATUS_GUEST_ERROR",
                "GuestError",
                &[BASE],
            ),
            Self::Busy => info(
                "The sandbox is in use (a call running, a stream open) in a way the operation (a snapshot, a restore) cannot carry over.",
                "KVMSB_STATUS_BUSY",
                "Busy",
                &[BASE],
            ),
            Self::Snapshot => info(
                "A snapshot could not be taken or applied, does not fit the sandbox, or a snapshot file is truncated, corrupt or of another version or guest kind.",
                "KVMSB_STATUS_SNAPSHOT",
                "SnapshotError",
                &[BASE],
            ),
        }
    }

    /// The kind's name as written in this enum ("NotFound").
    pub fn name(self) -> &'static str {
        ERROR_KIND_NAMES[self as usize]
    }

    /// The kind of an error code the agent sent.
    pub fn of_code(code: ErrorCode) -> ErrorKind {
        code_leaf(&code).1
    }
}

const ERROR_KIND_NAMES: [&str; 21] = [
    "Config",
    "InvalidArgument",
    "KvmUnavailable",
    "Boot",
    "StartTimeout",
    "GuestPanic",
    "GuestCrashed",
    "Timeout",
    "Agent",
    "NotFound",
    "PermissionDenied",
    "Unsupported",
    "Io",
    "Connection",
    "Seccomp",
    "AlreadyExists",
    "Stopped",
    "OutputLimit",
    "GuestError",
    "Busy",
    "Snapshot",
];

/// Builds a leaf table: a wildcard-free `match` from each variant to
/// `(variant name, kind)` (each row's pattern is required: `{}` for a unit
/// variant), plus the list of every variant name (which the
/// tests use to check that an example of each variant was walked).
macro_rules! leaf_table {
    ($(#[$doc:meta])* fn $fname:ident($ty:ident) -> $names:ident {
        $( $variant:ident $pat:tt => $kind:expr ),* $(,)?
    }) => {
        $(#[$doc])*
        pub(crate) fn $fname(value: &$ty) -> (&'static str, ErrorKind) {
            match value {
                $( $ty::$variant $pat => (stringify!($variant), $kind), )*
            }
        }

        /// Every variant the table covers.
        #[cfg(test)]
        pub(crate) const $names: &[&str] = &[$( stringify!($variant) ),*];
    };
}

leaf_table! {
    /// Each [`Error`] variant's kind (an agent failure defers to [`agent_leaf`]).
    fn error_leaf(Error) -> ERROR_VARIANTS {
        Config(_) => ErrorKind::Config,
        Kvm(_) => ErrorKind::KvmUnavailable,
        Memory(_) => ErrorKind::Boot,
        Regs(_) => ErrorKind::Boot,
        MicroBoot(_) => ErrorKind::Boot,
        Kick(_) => ErrorKind::Boot,
        Bus(_) => ErrorKind::Boot,
        Disk(_) => ErrorKind::Config,
        Vsock(_) => ErrorKind::Boot,
        Mmio(_) => ErrorKind::Boot,
        EventLoop(_) => ErrorKind::Boot,
        LinuxBoot(_) => ErrorKind::Boot,
        MpTable(_) => ErrorKind::Boot,
        TooManyDevices { .. } => ErrorKind::Config,
        Seccomp(_) => ErrorKind::Seccomp,
        Agent(a) => agent_leaf(a).1,
        Stopped { .. } => ErrorKind::Stopped,
        Reentrant { .. } => ErrorKind::InvalidArgument,
        RuntimeDir(_) => ErrorKind::Io,
        Pool(p) => p.kind(),
        Unsupported { .. } => ErrorKind::Unsupported,
        LinuxUserSpaceOnPvm { .. } => ErrorKind::Unsupported,
        Timeout { .. } => ErrorKind::Timeout,
        CallTimeout { .. } => ErrorKind::Timeout,
        DeviceLoop { .. } => ErrorKind::GuestCrashed,
        Connect { .. } => ErrorKind::Connection,
        KvmIoctl { .. } => ErrorKind::Boot,
        Host { .. } => ErrorKind::Io,
        HostFile { .. } => ErrorKind::Io,
        StartTimeout { .. } => ErrorKind::StartTimeout,
        GuestPanic { .. } => ErrorKind::GuestPanic,
        GuestCrashed { .. } => ErrorKind::GuestCrashed,
        EarlyExit { .. } => ErrorKind::GuestCrashed,
        Snapshot(_) => ErrorKind::Snapshot,
        SnapshotFile(e) => match e {
            crate::snapshot::SnapshotFileError::Io { .. } => ErrorKind::Io,
            _ => ErrorKind::Snapshot,
        },
        SnapshotMismatch { .. } => ErrorKind::Snapshot,
        Busy { .. } => ErrorKind::Busy,
    }
}

leaf_table! {
    /// Each [`AgentError`] variant's kind (a remote failure defers to its code).
    fn agent_leaf(AgentError) -> AGENT_VARIANTS {
        Io { .. } => ErrorKind::Agent,
        Protocol { .. } => ErrorKind::Agent,
        Timeout { .. } => ErrorKind::Timeout,
        Remote { code, .. } => code_leaf(code).1,
        Unsupported { .. } => ErrorKind::Unsupported,
        Disconnected { .. } => ErrorKind::Agent,
        Unexpected { .. } => ErrorKind::Agent,
        Version { .. } => ErrorKind::Agent,
        OutputLimit { .. } => ErrorKind::OutputLimit,
        StaleFrames { .. } => ErrorKind::Agent,
        NoConnector { .. } => ErrorKind::Agent,
        Wasm { .. } => ErrorKind::InvalidArgument,
    }
}

leaf_table! {
    /// Each agent [`ErrorCode`]'s kind.
    fn code_leaf(ErrorCode) -> CODE_VARIANTS {
        NotFound {} => ErrorKind::NotFound,
        PermissionDenied {} => ErrorKind::PermissionDenied,
        Unsupported {} => ErrorKind::Unsupported,
        Invalid {} => ErrorKind::InvalidArgument,
        Io {} => ErrorKind::Io,
        Timeout {} => ErrorKind::Timeout,
        Internal {} => ErrorKind::GuestError,
        AlreadyExists {} => ErrorKind::AlreadyExists,
        Other(_) => ErrorKind::GuestError,
    }
}

impl Error {
    /// What kind of failure this is (the same in the C and Python faces).
    pub fn kind(&self) -> ErrorKind {
        error_leaf(self).1
    }
}

impl AgentError {
    /// What kind of failure this is (the same in the C and Python faces).
    pub fn kind(&self) -> ErrorKind {
        agent_leaf(self).1
    }
}

#[cfg(test)]
mod tests;
