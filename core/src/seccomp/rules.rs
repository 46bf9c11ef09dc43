//! The shape of an allow-list entry and how it becomes seccompiler rules.
//!
//! Every thread kind's list is a `&'static [Syscall]`: the documentation
//! ([`super::allowed_syscalls`]) and the BPF filter ([`super::filter_for`]) are both
//! derived from it, so they cannot drift apart.

use seccompiler::{BackendError, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// One allowed syscall: its number, why the thread needs it, and which arguments pass.
#[derive(Debug, Clone, Copy)]
pub struct Syscall {
    /// The libc constant's name, e.g. `"SYS_futex"` (see [`Syscall::name`]).
    pub ident: &'static str,
    /// The x86_64 syscall number.
    pub nr: i64,
    /// One line: why this thread kind makes this call.
    pub reason: &'static str,
    /// Which argument values are allowed.
    pub args: Args,
}

impl Syscall {
    /// The syscall's name without libc's `SYS_` prefix, e.g. `"futex"`.
    pub fn name(&self) -> &'static str {
        self.ident.trim_start_matches("SYS_")
    }
}

/// A named argument value (an ioctl request, a socket domain, an fcntl command).
#[derive(Debug, Clone, Copy)]
pub struct Value {
    /// The constant's name, e.g. `"KVM_RUN"`.
    pub name: &'static str,
    /// Its numeric value, compared as a 32-bit `int` / `unsigned int` argument.
    pub value: u64,
    /// One line: why it is needed.
    pub reason: &'static str,
}

/// Argument conditions of an allowed syscall.
#[derive(Debug, Clone, Copy)]
pub enum Args {
    /// Any arguments.
    Any,
    /// Argument `index` (a 32-bit int) must equal one of `values`.
    OneOf {
        /// Zero-based argument index.
        index: u8,
        /// The allowed values.
        values: &'static [Value],
    },
    /// Argument `index` (a 32-bit int) must have none of the bits in `mask` set
    /// (used to refuse `PROT_EXEC` in `mmap`/`mprotect`).
    BitsClear {
        /// Zero-based argument index.
        index: u8,
        /// The forbidden bits.
        mask: u64,
        /// Their name, for the documentation (e.g. `"PROT_EXEC"`).
        what: &'static str,
    },
    /// Argument `index` (a 32-bit int) must have all the bits in `mask` set
    /// (used to require `AT_EMPTY_PATH`, i.e. "stat this fd", in `newfstatat`/`statx`).
    BitsSet {
        /// Zero-based argument index.
        index: u8,
        /// The required bits.
        mask: u64,
        /// Their name, for the documentation (e.g. `"AT_EMPTY_PATH"`).
        what: &'static str,
    },
    /// `tgkill(tgid, tid, sig)` within this process and with the vCPU kick signal
    /// only: argument `tgid` must be our pid and argument `sig` the kick signal, both
    /// read when the filter is compiled (on the thread that installs it).
    OwnKickSignal {
        /// Index of the thread-group (process) id argument.
        tgid: u8,
        /// Index of the signal number argument.
        sig: u8,
    },
}

/// Macro building a [`Syscall`] from a libc `SYS_*` constant, so name and number agree.
macro_rules! sys {
    ($ident:ident, $reason:literal) => {
        $crate::seccomp::rules::Syscall {
            ident: stringify!($ident),
            nr: libc::$ident,
            reason: $reason,
            args: $crate::seccomp::rules::Args::Any,
        }
    };
    ($ident:ident, $reason:literal, $args:expr) => {
        $crate::seccomp::rules::Syscall {
            ident: stringify!($ident),
            nr: libc::$ident,
            reason: $reason,
            args: $args,
        }
    };
}
pub(crate) use sys;

/// Macro building a named [`Value`] from a constant expression.
macro_rules! val {
    ($name:ident, $value:expr, $reason:literal) => {
        $crate::seccomp::rules::Value {
            name: stringify!($name),
            value: $value as u64,
            reason: $reason,
        }
    };
}
pub(crate) use val;

/// `mmap(addr, len, prot, ...)`/`mprotect(addr, len, prot)`: `prot` must not contain `PROT_EXEC`.
pub const NO_EXEC: Args = Args::BitsClear {
    index: 2,
    mask: libc::PROT_EXEC as u64,
    what: "PROT_EXEC",
};

impl Args {
    /// The seccompiler rule chain: empty means "any arguments"; otherwise the rules are ORed.
    pub fn to_rules(self) -> Result<Vec<SeccompRule>, BackendError> {
        let dword = |index: u8, op: SeccompCmpOp, value: u64| {
            SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
        };
        match self {
            Args::Any => Ok(Vec::new()),
            Args::OneOf { index, values } => values
                .iter()
                .map(|v| SeccompRule::new(vec![dword(index, SeccompCmpOp::Eq, v.value)?]))
                .collect(),
            Args::BitsClear { index, mask, .. } => Ok(vec![SeccompRule::new(vec![dword(
                index,
                SeccompCmpOp::MaskedEq(mask),
                0,
            )?])?]),
            Args::BitsSet { index, mask, .. } => Ok(vec![SeccompRule::new(vec![dword(
                index,
                SeccompCmpOp::MaskedEq(mask),
                mask,
            )?])?]),
            Args::OwnKickSignal { tgid, sig } => {
                // SAFETY: getpid has no preconditions.
                let pid = unsafe { libc::getpid() };
                let kick = crate::vmm::kick::signal();
                Ok(vec![SeccompRule::new(vec![
                    dword(tgid, SeccompCmpOp::Eq, pid as u32 as u64)?,
                    dword(sig, SeccompCmpOp::Eq, kick as u32 as u64)?,
                ])?])
            }
        }
    }

    /// A one-line description of the condition, for the documentation.
    pub fn describe(self) -> String {
        match self {
            Args::Any => "any".to_string(),
            Args::OneOf { index, values } => {
                let names: Vec<&str> = values.iter().map(|v| v.name).collect();
                format!("arg{index} one of {}", names.join(", "))
            }
            Args::BitsClear { index, what, .. } => format!("arg{index} without {what}"),
            Args::BitsSet { index, what, .. } => format!("arg{index} with {what}"),
            Args::OwnKickSignal { tgid, sig } => format!(
                "arg{tgid} = our own pid and arg{sig} = the vCPU kick signal (SIGRTMIN+{})",
                crate::vmm::kick::KICK_OFFSET
            ),
        }
    }

    /// The named values this entry allows (empty unless [`Args::OneOf`]).
    pub fn values(self) -> &'static [Value] {
        match self {
            Args::OneOf { values, .. } => values,
            _ => &[],
        }
    }
}
