//! Walks one value of every error leaf through the table, and keeps
//! docs/errors.md (generated from the table) in step.
//! Regenerate the doc with `KVMSANDBOX_BLESS_ERRORS_DOC=1 cargo test -p kvmsandbox --lib error_kind`.

use super::*;
use crate::config::ConfigError;
use crate::devices::bus::BusError;
use crate::devices::virtio::block::BlockError;
use crate::devices::virtio::vsock::VsockError;
use crate::devices::virtio::{EventLoopError, MmioError};
use crate::pool::PoolError;
use crate::sandbox::RuntimeDirError;
use crate::seccomp::{SeccompError, ThreadKind};
use crate::vmm::boot::linux::LinuxBootError;
use crate::vmm::boot::micro::MicroBootError;
use crate::vmm::boot::mptable::MpTableError;
use crate::vmm::kick::KickError;
use crate::vmm::kvm::KvmError;
use crate::vmm::memory::MemoryError;
use crate::vmm::regs::RegsError;
use kvmsandbox_proto::ProtoError;
use std::collections::BTreeSet;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md");
const BEGIN: &str = "<!-- BEGIN generated error table -->\n";
const END: &str = "<!-- END generated error table -->";

fn kvm_err() -> kvm_ioctls::Error {
    kvm_ioctls::Error::new(libc::EINVAL)
}

fn os_err() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

/// One value of every agent error code.
fn codes() -> Vec<ErrorCode> {
    use ErrorCode::*;
    vec![
        NotFound,
        PermissionDenied,
        Unsupported,
        Invalid,
        Io,
        Timeout,
        Internal,
        AlreadyExists,
        Other(999),
    ]
}

/// One value of every agent error variant except `Remote` (see [`codes`]).
fn agent_errors() -> Vec<AgentError> {
    let op = "exec";
    vec![
        AgentError::Io {
            op,
            source: os_err(),
        },
        AgentError::Protocol {
            op,
            source: ProtoError::BadMagic { found: [0, 0] },
        },
        AgentError::Timeout {
            op,
            after: Duration::from_secs(1),
        },
        AgentError::Unsupported {
            op,
            message: "no".into(),
        },
        AgentError::Disconnected { op },
        AgentError::Unexpected { op, got: "Pong" },
        AgentError::Version { got: 9, want: 1 },
        AgentError::OutputLimit { op, limit: 1 },
        AgentError::StaleFrames { op, frames: 9 },
        AgentError::NoConnector { op },
        AgentError::Wasm {
            op,
            kind: kvmsandbox_proto::msg::WasmErrorKind::InvalidModule,
            message: "not a module".into(),
        },
    ]
}

/// One value of every `Error` variant, every agent variant and every code.
fn examples() -> Vec<Error> {
    let lines = || vec!["last".to_string()];
    let mut all = vec![
        Error::Config(ConfigError::Vcpus { count: 0, max: 8 }),
        Error::Kvm(KvmError::NotFound(PathBuf::from("/dev/kvm"))),
        Error::Memory(MemoryError::Slot {
            slot: 0,
            size: 4096,
            source: kvm_err(),
        }),
        Error::Regs(RegsError::Kvm {
            what: "set_regs",
            source: kvm_err(),
        }),
        Error::MicroBoot(MicroBootError::TooManyDevices(99)),
        Error::Kick(KickError::InUse(34)),
        Error::Bus(BusError::Empty(0x1000)),
        Error::Disk(BlockError::NotFound(PathBuf::from("/missing.raw"))),
        Error::Vsock(VsockError::InvalidCid(1)),
        Error::Mmio(MmioError::NoQueues(2)),
        Error::EventLoop(EventLoopError::Setup(os_err())),
        Error::LinuxBoot(LinuxBootError::KernelNotFound {
            path: PathBuf::from("/vmlinux"),
        }),
        Error::MpTable(MpTableError::TooLarge(255)),
        Error::TooManyDevices { count: 99, max: 8 },
        Error::Seccomp(SeccompError::Duplicate {
            kind: ThreadKind::Vcpu,
            syscall: "read",
        }),
        Error::Stopped { op: "exec" },
        Error::Reentrant { op: "ping" },
        Error::RuntimeDir(RuntimeDirError::Random(os_err())),
        Error::Pool(PoolError::InvalidConfig {
            what: "max_size",
            value: 0,
            why: "must be 1..=1024",
        }),
        Error::Pool(PoolError::SharedVsockPath {
            path: PathBuf::from("/run/v.sock"),
        }),
        Error::Pool(PoolError::AcquireTimeout {
            after: Duration::from_secs(1),
            busy: 2,
            max_size: 2,
        }),
        Error::Pool(PoolError::TemplateWithoutSnapshot { id: 1 }),
        Error::Pool(PoolError::Closed),
        Error::Unsupported {
            op: "exec",
            guest: "micro guest",
        },
        Error::LinuxUserSpaceOnPvm {
            signal: 11,
            panic: "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b".into(),
            last_lines: Vec::new(),
        },
        Error::Timeout {
            op: "run_wasm",
            after: Duration::from_secs(1),
        },
        Error::DeviceLoop {
            reason: "epoll failed".into(),
        },
        Error::Connect {
            port: 7,
            source: os_err(),
        },
        Error::KvmIoctl {
            what: "create_vm",
            source: os_err(),
        },
        Error::Host {
            what: "eventfd",
            source: os_err(),
        },
        Error::HostFile {
            path: PathBuf::from("/no/such/upload"),
            source: os_err(),
        },
        Error::StartTimeout {
            marker: "READY".into(),
            after: Duration::from_secs(5),
            last_lines: lines(),
        },
        Error::GuestPanic {
            message: "oops".into(),
            last_lines: lines(),
        },
        Error::GuestCrashed {
            reason: "triple fault".into(),
            last_lines: lines(),
        },
        Error::EarlyExit {
            reason: "guest exited with status 1".into(),
            last_lines: lines(),
        },
        Error::Snapshot(crate::vmm::snapshot::SnapshotError::Stopped),
        Error::SnapshotFile(crate::snapshot::SnapshotFileError::FormatVersion { found: 9 }),
        Error::SnapshotMismatch {
            what: "vCPU count",
            snapshot: "2".into(),
            sandbox: "1".into(),
        },
        Error::CallTimeout {
            op: "run_wasm",
            after: std::time::Duration::from_secs(1),
        },
        Error::Busy {
            op: "snapshot",
            what: "1 stream is open".into(),
        },
    ];
    all.extend(agent_errors().into_iter().map(Error::Agent));
    all.extend(codes().into_iter().map(|code| {
        Error::Agent(AgentError::Remote {
            op: "read_file",
            code,
            message: "x".into(),
        })
    }));
    all
}

/// The leaf's full path ("AgentError::Remote(ErrorCode::NotFound)") and its kind.
fn leaf(e: &Error) -> (String, ErrorKind) {
    let (name, kind) = error_leaf(e);
    let path = match e {
        Error::Agent(a) => match (agent_leaf(a).0, a) {
            (_, AgentError::Remote { code, .. }) => {
                format!("AgentError::Remote(ErrorCode::{})", code_leaf(code).0)
            }
            (n, _) => format!("AgentError::{n}"),
        },
        Error::Pool(p) => format!("PoolError::{}", p.leaf().0),
        _ => format!("Error::{name}"),
    };
    (path, kind)
}

#[test]
fn error_kind_examples_cover_every_leaf() {
    let examples = examples();
    let seen = |f: &dyn Fn(&Error) -> Option<&'static str>| -> BTreeSet<&'static str> {
        examples.iter().filter_map(f).collect()
    };
    let top = seen(&|e| Some(error_leaf(e).0));
    let agent = seen(&|e| match e {
        Error::Agent(a) => Some(agent_leaf(a).0),
        _ => None,
    });
    let code = seen(&|e| match e {
        Error::Agent(AgentError::Remote { code, .. }) => Some(code_leaf(code).0),
        _ => None,
    });
    assert_eq!(top, ERROR_VARIANTS.iter().copied().collect());
    assert_eq!(agent, AGENT_VARIANTS.iter().copied().collect());
    assert_eq!(code, CODE_VARIANTS.iter().copied().collect());
    // Every kind is reachable from some error, so no face has a dead class.
    let kinds: BTreeSet<&str> = examples.iter().map(|e| e.kind().name()).collect();
    let all: BTreeSet<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(kinds, all);
}

#[test]
fn error_kind_fixes_the_issue_disagreements() {
    let kind = |e: Error| e.kind();
    // A missing disk image is a configuration error, like a missing kernel.
    assert_eq!(
        kind(Error::Disk(BlockError::NotFound("/x.raw".into()))),
        ErrorKind::Config
    );
    // A start timeout and an agent timeout have their own kinds, not "boot" or "guest".
    let start = Error::StartTimeout {
        marker: "READY".into(),
        after: Duration::from_secs(1),
        last_lines: vec![],
    };
    assert_eq!(kind(start), ErrorKind::StartTimeout);
    let silent = AgentError::Timeout {
        op: "exec",
        after: Duration::from_secs(1),
    };
    assert_eq!(kind(Error::Agent(silent)), ErrorKind::Timeout);
    // A kernel panic and a missing file are different kinds and classes.
    let panic = kind(Error::GuestPanic {
        message: "Kernel panic".into(),
        last_lines: vec![],
    });
    let enoent = kind(Error::Agent(AgentError::Remote {
        op: "read_file",
        code: ErrorCode::NotFound,
        message: "nope".into(),
    }));
    assert_eq!(
        (panic, enoent),
        (ErrorKind::GuestPanic, ErrorKind::NotFound)
    );
    assert_ne!(panic.info().python_class, enoent.info().python_class);
    assert_eq!(
        ErrorKind::of_code(ErrorCode::Invalid),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn error_kind_rows_are_distinct_and_named() {
    for (i, k) in ErrorKind::ALL.iter().enumerate() {
        assert_eq!(*k as usize, i, "ALL is in declaration order");
        assert_eq!(format!("{k:?}"), k.name());
        let info = k.info();
        assert!(info.c_status.starts_with("KVMSB_STATUS_"), "{k:?}");
        assert!(!info.python_bases.is_empty(), "{k:?}");
    }
    let distinct = |f: fn(KindInfo) -> &'static str| {
        ErrorKind::ALL
            .iter()
            .map(|k| f(k.info()))
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert_eq!(distinct(|i| i.c_status), ErrorKind::ALL.len());
    assert_eq!(distinct(|i| i.python_class), ErrorKind::ALL.len());
}

/// The generated part of docs/errors.md.
fn render() -> String {
    let leaves: Vec<(String, ErrorKind)> = examples().iter().map(leaf).collect();
    let mut out = String::from(
        "| Kind | C status | Python exception (bases) | Rust errors | Meaning |\n|---|---|---|---|---|\n",
    );
    for k in ErrorKind::ALL {
        let info = k.info();
        let rust: Vec<String> = leaves
            .iter()
            .filter(|(_, kind)| *kind == k)
            .map(|(path, _)| format!("`{path}`"))
            .collect();
        out.push_str(&format!(
            "| `{}` | `{}` | `{}` ({}) | {} | {} |\n",
            k.name(),
            info.c_status,
            info.python_class,
            info.python_bases.join(", "),
            rust.join("<br>"),
            info.summary
        ));
    }
    out
}

#[test]
fn error_kind_doc_is_current() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let start = doc
        .find(BEGIN)
        .expect("docs/errors.md lost its BEGIN marker")
        + BEGIN.len();
    let stop = start
        + doc[start..]
            .find(END)
            .expect("docs/errors.md lost its END marker");
    let fresh = format!("{}{}{}", &doc[..start], render(), &doc[stop..]);
    if fresh != doc && std::env::var_os("KVMSANDBOX_BLESS_ERRORS_DOC").is_some() {
        std::fs::write(DOC, &fresh).unwrap();
        return;
    }
    assert!(
        fresh == doc,
        "{DOC} is stale: rerun with KVMSANDBOX_BLESS_ERRORS_DOC=1 to regenerate its table"
    );
}
