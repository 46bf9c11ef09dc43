//! Getting a vCPU thread out of KVM_RUN: a real-time signal with a do-nothing
//! handler makes the ioctl return EINTR. We install that handler once, and only if
//! nobody else owns the signal: a library must not clobber its caller's handlers.

use std::sync::OnceLock;

/// Errors claiming the kick signal.
#[derive(Debug, thiserror::Error)]
pub enum KickError {
    /// The caller already handles our signal.
    #[error("signal {0} (SIGRTMIN+{off}) already has a handler; kvmsandbox needs it to stop vCPUs", off = KICK_OFFSET)]
    InUse(i32),
    /// sigaction failed.
    #[error("cannot install the vCPU kick handler for signal {0}: {1}")]
    Install(i32, std::io::Error),
}

/// Offset from SIGRTMIN of the signal we use.
pub const KICK_OFFSET: i32 = 6;

/// The kick signal number.
pub fn signal() -> i32 {
    libc::SIGRTMIN() + KICK_OFFSET
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the kick handler (once per process).
pub fn install() -> Result<(), KickError> {
    static DONE: OnceLock<Result<(), (i32, Option<i32>)>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        let sig = signal();
        // SAFETY: sigaction with a null new action only reads the current one into
        // a zeroed struct we own.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) } != 0 {
            return Err((sig, Some(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))));
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != on_kick as *const () as usize {
            return Err((sig, None));
        }
        // SAFETY: a zeroed sigaction is valid; we set an async-signal-safe handler
        // that does nothing.
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_kick as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        // SAFETY: sa_mask is ours to initialise.
        unsafe { libc::sigemptyset(&mut act.sa_mask) };
        // SAFETY: installing a valid handler for a real-time signal.
        if unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) } != 0 {
            return Err((sig, Some(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))));
        }
        Ok(())
    });
    match r {
        Ok(()) => Ok(()),
        Err((sig, None)) => Err(KickError::InUse(*sig)),
        Err((sig, Some(e))) => Err(KickError::Install(*sig, std::io::Error::from_raw_os_error(*e))),
    }
}

/// Unblocks the kick signal on the calling thread (threads inherit the caller's mask).
pub fn unblock_on_current_thread() {
    // SAFETY: building a signal set we own and changing this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Sends the kick signal to a thread.
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: `thread` is a joinable thread of ours that has not been joined yet
    // (the VM joins only after the last kick), so the id is valid.
    unsafe { libc::pthread_kill(thread, signal()) };
}
