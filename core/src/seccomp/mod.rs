//! Seccomp filters for the VMM's own threads: one allow-list per thread kind.
//!
//! A sandbox lives inside the caller's process, so a guest that breaks out through a
//! bug in our device code lands on a vCPU or VMM thread of that process. Each such
//! thread installs a filter on *itself* before it first touches guest data (see
//! [`install`]); the filter allows the few syscalls that thread kind really makes
//! (`vcpu.rs`, `vmm.rs`, plus `common.rs`), with `ioctl`, `socket`, `fcntl`, `mmap` and
//! `mprotect` narrowed by argument. The caller's threads are never filtered: we use
//! `seccomp(SECCOMP_SET_MODE_FILTER)` without `TSYNC`, which applies to the calling
//! thread only (and to threads it spawns later, which these threads do not do).
//!
//! The per-kind tables are the single source of truth: [`allowed_syscalls`] (the
//! documentation, `docs/seccomp.md`) and [`filter_for`] (the BPF program) are both
//! derived from them. x86_64 only (syscall and ioctl numbers are arch-specific).

mod common;
mod doc;
pub mod ioctls;
mod panic_hook;
#[cfg(any(test, feature = "test-utils"))]
mod probe;
mod rules;
mod trap;
mod vcpu;
mod vmm;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use seccompiler::{BackendError, SeccompAction, SeccompFilter, TargetArch};

pub use doc::allow_list_markdown;
#[cfg(any(test, feature = "test-utils"))]
pub use probe::{forbidden_syscall_probe, Probe};
pub use rules::{Args, Syscall, Value};
pub use seccompiler::BpfProgram;
pub use trap::{TrapRecord, TrappedSyscall};

/// What happens when a filtered thread makes a syscall outside its allow-list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SeccompPolicy {
    /// Kill the whole process (`SECCOMP_RET_KILL_PROCESS`), like Firecracker. The
    /// strongest containment, but note what it means in-process: the *caller's* process
    /// dies (of SIGSYS, with a core dump if enabled) along with the sandbox, without
    /// unwinding or running destructors. The default.
    #[default]
    Kill,
    /// Send SIGSYS (`SECCOMP_RET_TRAP`) and skip the syscall. [`install`] installs a
    /// SIGSYS handler (once per process, chaining to any previous one) that records
    /// the syscall in the VM's [`TrapRecord`] and makes it fail with `EPERM`, so the thread
    /// sees an error and the sandbox can report a typed error
    /// ([`SeccompError::Trapped`]) while the caller's process lives on. The offending
    /// thread keeps running: a compromised thread could keep trying other syscalls
    /// (all denied the same way), so prefer `Kill` where a crash is acceptable.
    Trap,
    /// Allow the syscall but have the kernel log it (`SECCOMP_RET_LOG`, visible in the
    /// kernel log / audit). For development: find missing entries without crashing.
    /// Provides **no** protection.
    Log,
    /// Install no filter at all. **No** protection; for debugging and for hosts
    /// without seccomp.
    Disabled,
}

/// The kinds of thread the VMM runs (each has its own allow-list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadKind {
    /// A vCPU thread: KVM_RUN and the exit handlers (device bus, serial).
    Vcpu,
    /// The device event-loop thread: epoll, eventfds, disk files, vsock Unix sockets.
    Vmm,
}

impl fmt::Display for ThreadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThreadKind::Vcpu => "vCPU",
            ThreadKind::Vmm => "VMM",
        })
    }
}

/// Errors building or installing a filter, or a syscall trapped under [`SeccompPolicy::Trap`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// An argument condition of an allow-list entry is invalid (a bug in the table).
    #[error("seccomp rule for syscall `{syscall}` of the {kind} thread is invalid: {source}")]
    Rule {
        /// The thread kind whose table holds the entry.
        kind: ThreadKind,
        /// The syscall's name.
        syscall: &'static str,
        /// seccompiler's reason.
        source: BackendError,
    },
    /// A syscall appears twice in one thread kind's table (a bug in the table).
    #[error("syscall `{syscall}` is listed twice in the {kind} thread's allow-list")]
    Duplicate {
        /// The thread kind.
        kind: ThreadKind,
        /// The syscall's name.
        syscall: &'static str,
    },
    /// seccompiler refused to compile the filter (e.g. too many instructions).
    #[error("the {kind} thread's seccomp filter for policy {policy:?} does not compile: {source}")]
    Compile {
        /// The thread kind.
        kind: ThreadKind,
        /// The policy asked for.
        policy: SeccompPolicy,
        /// seccompiler's reason.
        source: BackendError,
    },
    /// The kernel refused the filter (`prctl(PR_SET_NO_NEW_PRIVS)` or `seccomp()` failed).
    #[error("installing the {policy:?} seccomp filter on the {kind} thread failed: {source}")]
    Apply {
        /// The thread kind.
        kind: ThreadKind,
        /// The policy asked for.
        policy: SeccompPolicy,
        /// seccompiler's reason (carries the OS error).
        source: seccompiler::Error,
    },
    /// Installing the SIGSYS handler for the Trap policy failed.
    #[error("installing the SIGSYS handler for the Trap seccomp policy failed: {0}")]
    SigsysHandler(std::io::Error),
    /// A filtered thread made a forbidden syscall under the Trap policy.
    #[error("the {kind} thread made forbidden syscall `{name}` (number {number}; {count} trapped in all)")]
    Trapped {
        /// The thread kind that made it.
        kind: ThreadKind,
        /// The syscall number (x86_64).
        number: i64,
        /// Its name, or `"unknown"`.
        name: &'static str,
        /// How many forbidden syscalls were trapped since the last report.
        count: u64,
    },
}

/// The full allow-list of a thread kind: the common entries, then the kind's own.
pub fn syscall_table(kind: ThreadKind) -> &'static [Syscall] {
    static VCPU: OnceLock<Vec<Syscall>> = OnceLock::new();
    static VMM: OnceLock<Vec<Syscall>> = OnceLock::new();
    let (cell, own) = match kind {
        ThreadKind::Vcpu => (&VCPU, vcpu::VCPU),
        ThreadKind::Vmm => (&VMM, vmm::VMM),
    };
    cell.get_or_init(|| common::COMMON.iter().chain(own).copied().collect())
}

/// `(name, reason)` of every syscall a thread kind may make, in table order. Entries with
/// argument conditions (`ioctl`, `socket`, `fcntl`, `mmap`, ...) are narrowed further:
/// see [`syscall_table`] and [`allowed_ioctls`].
pub fn allowed_syscalls(kind: ThreadKind) -> &'static [(&'static str, &'static str)] {
    static VCPU: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
    static VMM: OnceLock<Vec<(&str, &str)>> = OnceLock::new();
    let cell = match kind {
        ThreadKind::Vcpu => &VCPU,
        ThreadKind::Vmm => &VMM,
    };
    cell.get_or_init(|| {
        syscall_table(kind)
            .iter()
            .map(|s| (s.name(), s.reason))
            .collect()
    })
}

/// The ioctl requests a thread kind may make (name, number, reason).
pub fn allowed_ioctls(kind: ThreadKind) -> &'static [Value] {
    match kind {
        ThreadKind::Vcpu => vcpu::VCPU_IOCTLS,
        ThreadKind::Vmm => vmm::VMM_IOCTLS,
    }
}

/// The seccomp filters of a thread kind under a policy, applied together by
/// [`Filters::apply`] (and [`install`]).
///
/// Opening files is refused with `EACCES` rather than by the policy: glibc
/// opens files by itself on whatever thread happens to need them first (the
/// first shrink of a thread arena's heap reads /proc/sys/vm/overcommit_memory),
/// and copes with the failure. Under Kill a vCPU thread freeing memory could
/// otherwise take the whole process down (seen in CI). seccompiler gives one
/// action per filter, so this is a second filter: `deny_opens` answers
/// `open`/`openat` with `EACCES` and allows the rest, and `main` lets them
/// through to it (the kernel takes the stricter answer of the two).
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    /// The allow-list, with the policy's action for everything else.
    pub main: BpfProgram,
    /// `open`/`openat` → `EACCES` (Kill and Trap; `None` under Log, which
    /// lets them through and logs them like any other syscall).
    pub deny_opens: Option<BpfProgram>,
}

impl Filters {
    /// Applies the filters to the calling thread, `deny_opens` first (installing
    /// a filter is not in the allow-lists).
    pub fn apply(&self) -> Result<(), seccompiler::Error> {
        if let Some(deny) = &self.deny_opens {
            seccompiler::apply_filter(deny)?;
        }
        seccompiler::apply_filter(&self.main)
    }
}

/// The syscalls [`Filters::deny_opens`] answers with `EACCES`.
const OPENS: [i64; 2] = [libc::SYS_open, libc::SYS_openat];

/// Compiles the BPF programs for `kind` under `policy`; `None` when `policy` is
/// [`SeccompPolicy::Disabled`]. Pure: installs nothing.
pub fn filter_for(
    kind: ThreadKind,
    policy: SeccompPolicy,
) -> Result<Option<Filters>, SeccompError> {
    let mismatch = match policy {
        SeccompPolicy::Kill => SeccompAction::KillProcess,
        SeccompPolicy::Trap => SeccompAction::Trap,
        SeccompPolicy::Log => SeccompAction::Log,
        SeccompPolicy::Disabled => return Ok(None),
    };
    let deny_opens = policy != SeccompPolicy::Log;
    let mut rules = BTreeMap::new();
    for entry in syscall_table(kind) {
        let chain = entry.args.to_rules().map_err(|source| SeccompError::Rule {
            kind,
            syscall: entry.name(),
            source,
        })?;
        if rules.insert(entry.nr, chain).is_some() {
            return Err(SeccompError::Duplicate {
                kind,
                syscall: entry.name(),
            });
        }
    }
    let compile = |source| SeccompError::Compile {
        kind,
        policy,
        source,
    };
    if deny_opens {
        for nr in OPENS {
            rules.insert(nr, Vec::new());
        }
    }
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(compile)?;
    let main = BpfProgram::try_from(filter).map_err(compile)?;
    let deny_opens = match deny_opens {
        true => {
            let rules = OPENS.iter().map(|&nr| (nr, Vec::new())).collect();
            let filter = SeccompFilter::new(
                rules,
                SeccompAction::Allow,
                SeccompAction::Errno(libc::EACCES as u32),
                TargetArch::x86_64,
            )
            .map_err(compile)?;
            Some(BpfProgram::try_from(filter).map_err(compile)?)
        }
        false => None,
    };
    Ok(Some(Filters { main, deny_opens }))
}

/// Installs `kind`'s filter under `policy` on the **calling thread only** (no TSYNC),
/// so the caller's other threads are never filtered. Call it first thing in the
/// thread's body, before it touches guest data. Irreversible for this thread.
/// [`SeccompPolicy::Disabled`] installs nothing; [`SeccompPolicy::Trap`] also
/// installs the process-wide SIGSYS handler (once) and makes this thread's traps
/// land in `record` (its VM's; see [`TrapRecord::take`]).
pub fn install(
    kind: ThreadKind,
    policy: SeccompPolicy,
    record: &std::sync::Arc<TrapRecord>,
) -> Result<(), SeccompError> {
    let Some(filters) = filter_for(kind, policy)? else {
        return Ok(());
    };
    if policy == SeccompPolicy::Trap {
        trap::arm_current_thread(kind, record)?;
    }
    // Before the filter goes on: the hook itself must be in place while we still
    // may allocate and install it freely.
    panic_hook::mark_current_thread_filtered();
    filters.apply().map_err(|source| SeccompError::Apply {
        kind,
        policy,
        source,
    })
}

/// The name of an x86_64 syscall number, for the ones in our tables and a few notable
/// forbidden ones; `None` otherwise.
pub fn syscall_name(number: i64) -> Option<&'static str> {
    const FORBIDDEN: &[(i64, &str)] = &[
        (libc::SYS_socket, "socket"),
        (libc::SYS_execve, "execve"),
        (libc::SYS_execveat, "execveat"),
        (libc::SYS_fork, "fork"),
        (libc::SYS_vfork, "vfork"),
        (libc::SYS_clone, "clone"),
        (libc::SYS_clone3, "clone3"),
        (libc::SYS_open, "open"),
        (libc::SYS_openat, "openat"),
        (libc::SYS_ioctl, "ioctl"),
        (libc::SYS_ptrace, "ptrace"),
        (libc::SYS_kill, "kill"),
        (libc::SYS_tgkill, "tgkill"),
        (libc::SYS_mmap, "mmap"),
        (libc::SYS_mprotect, "mprotect"),
        (libc::SYS_prctl, "prctl"),
        (libc::SYS_bind, "bind"),
        (libc::SYS_listen, "listen"),
        (libc::SYS_pipe2, "pipe2"),
    ];
    [ThreadKind::Vcpu, ThreadKind::Vmm]
        .iter()
        .flat_map(|kind| syscall_table(*kind))
        .map(|s| (s.nr, s.name()))
        .chain(FORBIDDEN.iter().copied())
        .find(|(nr, _)| *nr == number)
        .map(|(_, name)| name)
}
