//! How the `Trap` policy reports a forbidden syscall instead of killing the process.
//!
//! With `SECCOMP_RET_TRAP` the kernel skips the syscall and sends the thread `SIGSYS`
//! (`si_code == SYS_SECCOMP`, `si_syscall` = the number). Without a handler that kills
//! the whole process, like `Kill`. So when a thread installs a filter with
//! [`super::SeccompPolicy::Trap`], we install (once per process) a `SIGSYS` handler that:
//!
//! 1. decides whether the signal is ours: `si_code == SYS_SECCOMP` *and* the current
//!    thread installed a Trap filter through this module (a thread-local flag);
//! 2. if ours: records the syscall number and the thread kind in the [`TrapRecord`]
//!    the thread was armed with (one per VM, read with [`TrapRecord::take`], so one
//!    VM never reports or clears another's trap), counts it, and sets the interrupted
//!    context's `rax` to `-EPERM`, so the thread sees the syscall fail with `EPERM` and
//!    goes on: the VMM code turns that into an error and the VM reports
//!    [`TrappedSyscall`] as a typed error ([`TrappedSyscall::into_error`]);
//! 3. if not ours (another seccomp filter of the caller, or a SIGSYS sent by `kill`):
//!    chains to the handler that was installed before ours (`SA_SIGINFO` or plain); if
//!    that was `SIG_IGN` it returns; if `SIG_DFL` it restores the default disposition and
//!    re-raises, so the process dies of SIGSYS exactly as it would have without us.
//!
//! The handler only touches atomics, const-initialised thread-local `Cell`s and the
//! signal context: it is async-signal-safe. The record it writes is kept alive by a
//! strong reference the armed thread holds in another thread-local, whose destructor
//! clears the handler's pointer first (a trap during the thread's very last steps is
//! still refused with `EPERM`, just not recorded). The caller's other threads are
//! never filtered, so they never trap through us.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::{syscall_name, SeccompError, ThreadKind};

/// `si_code` of a SIGSYS raised by a seccomp filter (`SYS_SECCOMP` in `<linux/signal.h>`).
const SYS_SECCOMP: libc::c_int = 1;

/// No trap recorded (an impossible packed value: kind bits 0).
const NONE: u64 = 0;

thread_local! {
    /// The kind of the Trap filter this thread installed (0 = none, else `kind_tag`).
    static TRAP_KIND: Cell<u8> = const { Cell::new(0) };
    /// Where the handler records this thread's traps (null = nowhere).
    static RECORD: Cell<*const TrapRecord> = const { Cell::new(std::ptr::null()) };
    /// Keeps `RECORD`'s target alive for as long as the pointer is set.
    static HOLD: RefCell<Option<Holder>> = const { RefCell::new(None) };
}

/// The strong reference behind `RECORD`; dropping it clears `RECORD` first.
struct Holder(#[allow(dead_code)] Arc<TrapRecord>);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = RECORD.try_with(|r| r.set(std::ptr::null()));
    }
}

/// The traps of one VM's threads: the last syscall and how many since the last
/// [`take`](Self::take). Written by the SIGSYS handler with atomics only.
#[derive(Debug, Default)]
pub struct TrapRecord {
    /// Last trapped syscall, packed as `(kind_tag << 32) | syscall number`.
    last: AtomicU64,
    /// Trapped syscalls since the last `take`.
    count: AtomicU64,
}

impl TrapRecord {
    /// An empty record, to share between a VM and the threads it arms.
    pub fn new() -> Arc<TrapRecord> {
        Arc::new(TrapRecord::default())
    }

    /// Takes (and clears) the last syscall trapped on a thread armed with this record.
    pub fn take(&self) -> Option<TrappedSyscall> {
        let packed = self.last.swap(NONE, Ordering::AcqRel);
        let count = self.count.swap(0, Ordering::AcqRel);
        let kind = kind_from_tag((packed >> 32) as u8)?;
        let number = i64::from(packed as u32);
        Some(TrappedSyscall {
            kind,
            number,
            name: syscall_name(number).unwrap_or("unknown"),
            count,
        })
    }
}
/// The SIGSYS disposition before ours, for chaining.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
/// Serialises handler installation (never touched by the handler itself).
static INSTALL: Mutex<()> = Mutex::new(());

/// A forbidden syscall caught under the Trap policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrappedSyscall {
    /// The kind of thread that made it.
    pub kind: ThreadKind,
    /// The syscall number (x86_64).
    pub number: i64,
    /// Its name when known, else `"unknown"`.
    pub name: &'static str,
    /// How many forbidden syscalls were trapped since the previous
    /// [`TrapRecord::take`] (this one included); only the last one's number is kept.
    pub count: u64,
}

impl TrappedSyscall {
    /// The typed error the lead reports.
    pub fn into_error(self) -> SeccompError {
        SeccompError::Trapped {
            kind: self.kind,
            number: self.number,
            name: self.name,
            count: self.count,
        }
    }
}

fn kind_tag(kind: ThreadKind) -> u8 {
    match kind {
        ThreadKind::Vcpu => 1,
        ThreadKind::Vmm => 2,
    }
}

fn kind_from_tag(tag: u8) -> Option<ThreadKind> {
    match tag {
        1 => Some(ThreadKind::Vcpu),
        2 => Some(ThreadKind::Vmm),
        _ => None,
    }
}

/// Installs the process-wide SIGSYS handler (first call only) and marks the current
/// thread as one whose traps we handle, recording them into `record`. Call before
/// applying a Trap filter.
pub(super) fn arm_current_thread(
    kind: ThreadKind,
    record: &Arc<TrapRecord>,
) -> Result<(), SeccompError> {
    install_handler()?;
    // Replacing an earlier holder clears RECORD before it is set again below.
    HOLD.with(|h| *h.borrow_mut() = Some(Holder(record.clone())));
    RECORD.with(|r| r.set(Arc::as_ptr(record)));
    TRAP_KIND.with(|k| k.set(kind_tag(kind)));
    Ok(())
}

fn install_handler() -> Result<(), SeccompError> {
    let _guard = INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if PREVIOUS.get().is_some() {
        return Ok(());
    }
    // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask, no flags).
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: querying the current disposition; `old` is a valid out pointer.
    if unsafe { libc::sigaction(libc::SIGSYS, std::ptr::null(), &mut old) } != 0 {
        return Err(SeccompError::SigsysHandler(std::io::Error::last_os_error()));
    }
    // Stored before our handler goes live, so the handler always sees it.
    let _ = PREVIOUS.set(old);

    // SAFETY: as above, zeroed is a valid starting sigaction.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: `new.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut new.sa_mask) };
    // SAFETY: installing a handler with a valid sigaction; the handler is
    // async-signal-safe (atomics, a const thread-local, the ucontext).
    if unsafe { libc::sigaction(libc::SIGSYS, &new, std::ptr::null_mut()) } != 0 {
        return Err(SeccompError::SigsysHandler(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The `_sigsys` view of `siginfo_t` on x86_64 (`<asm-generic/siginfo.h>`), which the
/// libc crate does not expose.
#[repr(C)]
#[allow(dead_code)] // the full layout is spelled out; only si_code and syscall are read
struct SigsysInfo {
    si_signo: libc::c_int,
    si_errno: libc::c_int,
    si_code: libc::c_int,
    _pad: libc::c_int,
    call_addr: *mut c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

extern "C" fn on_sigsys(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler; SigsysInfo
    // is a prefix of its SIGSYS layout (siginfo_t is 128 bytes).
    let sys = unsafe { &*(info as *const SigsysInfo) };
    let kind = TRAP_KIND.try_with(Cell::get).unwrap_or(0);
    if sys.si_code != SYS_SECCOMP || kind == 0 || ctx.is_null() {
        chain(sig, info, ctx);
        return;
    }
    let packed = (u64::from(kind) << 32) | u64::from(sys.syscall as u32);
    let record = RECORD.try_with(Cell::get).unwrap_or(std::ptr::null());
    if !record.is_null() {
        // SAFETY: RECORD is set only while this thread's HOLD keeps the record alive
        // (Holder::drop clears it before releasing the Arc); atomics are signal-safe.
        let record = unsafe { &*record };
        record.last.store(packed, Ordering::Release);
        record.count.fetch_add(1, Ordering::AcqRel);
    }
    // SAFETY: for an SA_SIGINFO handler `ctx` points to the interrupted thread's
    // ucontext_t; setting rax makes the skipped syscall "return" -EPERM on sigreturn.
    unsafe {
        let uc = &mut *(ctx as *mut libc::ucontext_t);
        uc.uc_mcontext.gregs[libc::REG_RAX as usize] = -(libc::EPERM as i64);
    }
}

/// Hands a SIGSYS that is not ours to whatever handled SIGSYS before us.
fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let Some(prev) = PREVIOUS.get() else {
        return die_by_default(sig);
    };
    match prev.sa_sigaction {
        libc::SIG_IGN => {}
        libc::SIG_DFL => die_by_default(sig),
        handler if prev.sa_flags & libc::SA_SIGINFO != 0 => {
            // SAFETY: the previous disposition was an SA_SIGINFO handler with this
            // signature; we pass the kernel's own arguments through.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                unsafe { std::mem::transmute(handler) };
            f(sig, info, ctx);
        }
        handler => {
            // SAFETY: the previous disposition was a plain `void (*)(int)` handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
            f(sig);
        }
    }
}

/// Restores the default SIGSYS action and re-raises: delivered when the handler
/// returns (SIGSYS is blocked while it runs), it ends the process as without us.
fn die_by_default(sig: libc::c_int) {
    // SAFETY: signal() and raise() are async-signal-safe; resetting to SIG_DFL is valid.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}
