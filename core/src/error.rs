//! The public error type: one variant per module's error, plus the ways a
//! running guest can fail a caller. Every message names the offending value.

use crate::vmm::run_state::StopReason;
use std::time::Duration;

/// Anything that can go wrong creating or running a VM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// /dev/kvm is missing, inaccessible or lacks a capability.
    #[error(transparent)]
    Kvm(#[from] crate::vmm::kvm::KvmError),
    /// Guest memory could not be created.
    #[error(transparent)]
    Memory(#[from] crate::vmm::memory::MemoryError),
    /// Register or boot-structure setup failed.
    #[error(transparent)]
    Regs(#[from] crate::vmm::regs::RegsError),
    /// The micro guest image could not be loaded.
    #[error(transparent)]
    MicroBoot(#[from] crate::vmm::boot::micro::MicroBootError),
    /// The vCPU kick signal is unavailable.
    #[error(transparent)]
    Kick(#[from] crate::vmm::kick::KickError),
    /// A bus layout error (a bug in device placement).
    #[error(transparent)]
    Bus(#[from] crate::devices::bus::BusError),
    /// A disk could not be attached.
    #[error(transparent)]
    Disk(#[from] crate::devices::virtio::block::BlockError),
    /// The vsock device could not be created.
    #[error(transparent)]
    Vsock(#[from] crate::devices::virtio::vsock::VsockError),
    /// A virtio transport could not be created.
    #[error(transparent)]
    Mmio(#[from] crate::devices::virtio::MmioError),
    /// The device event loop could not start.
    #[error(transparent)]
    EventLoop(#[from] crate::devices::virtio::EventLoopError),
    /// The Linux kernel, initrd or command line could not be loaded.
    #[error(transparent)]
    LinuxBoot(#[from] crate::vmm::boot::linux::LinuxBootError),
    /// The MP table (CPU list for Linux) could not be written.
    #[error(transparent)]
    MpTable(#[from] crate::vmm::boot::mptable::MpTableError),
    /// More devices than IRQ lines.
    #[error("{count} devices configured, at most {max} are supported")]
    TooManyDevices {
        /// Devices asked for.
        count: usize,
        /// Most allowed.
        max: usize,
    },
    /// A VMM thread made a forbidden syscall (trap policy), or a filter failed to install.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    /// Talking to the guest agent failed (timeout, disconnect, refusal, protocol).
    #[error(transparent)]
    Agent(#[from] crate::agent::AgentError),
    /// The sandbox was stopped (killed, shut down, or its VM exited) before or
    /// during the operation.
    #[error("{op} failed: the sandbox was stopped (killed, shut down or its VM exited)")]
    Stopped {
        /// The operation.
        op: &'static str,
    },
    /// A host function's callback called back into the sandbox running it
    /// (that call would wait for the run the callback is part of).
    #[error("{op} was called from a host function of the same sandbox; call it after the run")]
    Reentrant {
        /// The operation.
        op: &'static str,
    },
    /// The sandbox's private runtime directory could not be made.
    #[error(transparent)]
    RuntimeDir(#[from] crate::sandbox::RuntimeDirError),
    /// A sandbox pool refused (bad settings, acquire timeout, closed).
    #[error(transparent)]
    Pool(#[from] crate::pool::PoolError),
    /// The guest kind does not offer this operation.
    #[error("{op} is not supported by the {guest}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The guest kind.
        guest: &'static str,
    },
    /// A host-enforced deadline passed; the VM was stopped.
    #[error("{op} did not finish within {after:?}; the sandbox was stopped")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// A host-enforced deadline passed under per-call isolation; the sandbox
    /// was restored to its snapshot and stays usable.
    #[error("{op} did not finish within {after:?}; the sandbox was restored to its snapshot")]
    CallTimeout {
        /// The operation.
        op: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The device event loop died while the VM ran (a device panicked, epoll
    /// failed); the VM was stopped rather than left running without devices.
    #[error("the virtio device event loop died: {reason}; the VM was stopped")]
    DeviceLoop {
        /// How the loop ended.
        reason: String,
    },
    /// Connecting to a guest port failed.
    #[error("cannot connect to guest port {port}: {source}")]
    Connect {
        /// The guest vsock port.
        port: u32,
        /// Why.
        source: std::io::Error,
    },
    /// A KVM ioctl on the VM failed.
    #[error("KVM {what} failed: {source}")]
    KvmIoctl {
        /// The operation.
        what: &'static str,
        /// The KVM error (its errno; no third-party error type in this API).
        source: std::io::Error,
    },
    /// A host resource (thread, eventfd) could not be created.
    /// A host file given to an upload or download could not be opened or written.
    #[error("host file {}: {source}", path.display())]
    HostFile {
        /// The host path.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    #[error("cannot create {what}: {source}")]
    Host {
        /// What.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The guest did not reach its ready marker in time.
    #[error("guest did not print its ready marker {marker:?} within {after:?}; last console lines:\n{}", last_lines.join("\n"))]
    StartTimeout {
        /// The marker waited for.
        marker: String,
        /// How long we waited.
        after: Duration,
        /// What the guest printed last.
        last_lines: Vec<String>,
    },
    /// The guest panicked (micro guest panic or Linux kernel panic).
    #[error("guest panicked: {message}")]
    GuestPanic {
        /// The panic line(s) from the console.
        message: String,
        /// What the guest printed last.
        last_lines: Vec<String>,
    },
    /// A Linux guest's init was killed by a signal on a PVM host: PVM runs the
    /// kernel but not Linux user space unless the guest kernel is PVM-enabled.
    #[error(
        "Linux user space cannot run on this PVM host (kvm_pvm) without a PVM-enabled guest kernel: \
         init was killed by signal {signal} ({panic}). Use the micro guest (VmConfig::micro(), \
         Sandbox::micro()) on PVM hosts, or run Linux sandboxes on a hardware-KVM host"
    )]
    LinuxUserSpaceOnPvm {
        /// The signal that killed init.
        signal: i32,
        /// The kernel's panic line.
        panic: String,
        /// What the guest printed last.
        last_lines: Vec<String>,
    },
    /// The guest crashed the vCPU (triple fault, emulation failure, failed entry).
    #[error("guest crashed: {reason}")]
    GuestCrashed {
        /// Description including the guest RIP.
        reason: String,
        /// What the guest printed last.
        last_lines: Vec<String>,
    },
    /// A snapshot could not be taken, restored or forked at the VM level.
    #[error(transparent)]
    Snapshot(#[from] crate::vmm::snapshot::SnapshotError),
    /// A snapshot file could not be saved or loaded (each corruption named).
    #[error(transparent)]
    SnapshotFile(#[from] crate::snapshot::SnapshotFileError),
    /// A snapshot does not fit the sandbox (or the fork's configuration).
    #[error("the snapshot does not fit: its {what} is {snapshot}, the sandbox's is {sandbox}")]
    SnapshotMismatch {
        /// What differs.
        what: &'static str,
        /// The snapshot's value.
        snapshot: String,
        /// The sandbox's value.
        sandbox: String,
    },
    /// The sandbox is in use in a way the operation cannot carry over.
    #[error("{op} refused: {what}")]
    Busy {
        /// The operation.
        op: &'static str,
        /// What is open or running.
        what: String,
    },
    /// The guest stopped before it was ready.
    #[error("guest stopped before it was ready ({reason}); last console lines:\n{}", last_lines.join("\n"))]
    EarlyExit {
        /// Why it stopped.
        reason: String,
        /// What the guest printed last.
        last_lines: Vec<String>,
    },
}

/// Describes a stop reason for error messages.
pub fn describe(reason: &StopReason) -> String {
    match reason {
        StopReason::GuestExit(s) => format!("guest exited with status {s}"),
        StopReason::Reset => "guest reset itself".into(),
        StopReason::TripleFault { rip } => format!("triple fault at rip {rip:#x}"),
        StopReason::InternalError { rip, suberror } => {
            format!("KVM internal error (suberror {suberror}, emulation failure?) at rip {rip:#x}")
        }
        StopReason::FailEntry { reason } => {
            format!("KVM could not enter the guest (hardware reason {reason:#x})")
        }
        StopReason::ConsolePanic(line) => format!("panic: {line}"),
        StopReason::VcpuError(e) => e.clone(),
        StopReason::DeviceLoop(e) => format!("device event loop died: {e}"),
        StopReason::Killed => "killed by the host".into(),
    }
}

/// Convenience alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
