//! Syscalls every filtered thread needs: std's synchronisation, the memory allocator,
//! signals, time, thread exit and logging. Both thread kinds start from this list.

use super::rules::{sys, Args, Syscall, NO_EXEC};

/// Allowed on every filtered thread (vCPU and VMM).
pub(super) const COMMON: &[Syscall] = &[
    // Synchronisation
    sys!(
        SYS_futex,
        "Mutex/Condvar/channel waits and wakes (std sync, the device bus lock, joins)"
    ),
    sys!(SYS_sched_yield, "spin-then-yield in std locks and channels"),
    // Memory allocator (glibc malloc) and std
    sys!(SYS_brk, "glibc malloc grows the main heap"),
    sys!(
        SYS_mmap,
        "malloc arenas and large allocations; PROT_EXEC refused",
        NO_EXEC
    ),
    sys!(
        SYS_mprotect,
        "malloc arena growth (PROT_NONE -> RW); PROT_EXEC refused",
        NO_EXEC
    ),
    sys!(
        SYS_munmap,
        "malloc frees large blocks; std frees the thread's signal stack at exit"
    ),
    sys!(SYS_mremap, "glibc realloc of large (mmap'd) blocks"),
    sys!(
        SYS_madvise,
        "malloc trims (MADV_DONTNEED); glibc releases a finished thread's stack"
    ),
    // Signals
    sys!(
        SYS_rt_sigreturn,
        "return from a signal handler (vCPU kick, Trap-policy SIGSYS handler)"
    ),
    sys!(
        SYS_rt_sigprocmask,
        "glibc/std block signals around thread exit and abort"
    ),
    sys!(
        SYS_sigaltstack,
        "std disables the thread's alternate signal stack at thread exit"
    ),
    // Thread and process end
    sys!(SYS_exit, "the thread ends"),
    sys!(SYS_exit_group, "the process ends (abort on a fatal error)"),
    // Time, identity, randomness
    sys!(
        SYS_clock_gettime,
        "Instant::now/SystemTime when the vDSO falls back to the syscall"
    ),
    sys!(SYS_nanosleep, "thread::sleep"),
    sys!(
        SYS_clock_nanosleep,
        "thread::sleep (glibc's nanosleep is clock_nanosleep)"
    ),
    sys!(SYS_gettid, "logging and thread identification"),
    sys!(SYS_getpid, "pthread_kill (kicking a vCPU out of KVM_RUN) asks for our pid"),
    sys!(
        SYS_tgkill,
        "pthread_kill: the kick signal that stops sibling vCPUs when the VM ends; no other signal, no other process",
        Args::OwnKickSignal { tgid: 0, sig: 2 }
    ),
    sys!(
        SYS_getrandom,
        "HashMap RandomState seeding on first use in the thread"
    ),
    sys!(
        SYS_rseq,
        "glibc's restartable-sequence (rseq) registration bookkeeping"
    ),
    // File descriptors
    sys!(
        SYS_write,
        "logs to stderr, serial output to a pipe, signalling eventfds (irqfd, exit)"
    ),
    sys!(SYS_writev, "vectored writes by std's stderr and log sinks"),
    sys!(
        SYS_close,
        "dropping fds the thread owns (the VcpuFd when the vCPU thread ends)"
    ),
];
