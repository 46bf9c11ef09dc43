//! Getting a vCPU thread out of KVM_RUN: a real-time signal whose handler sets
//! `immediate_exit` in the kvm_run page of the vCPU running on the interrupted
//! thread. A kick that lands while the thread is in the guest makes KVM_RUN return
//! EINTR; one that lands between the loop's stop-flag check and the ioctl leaves
//! `immediate_exit` set, so KVM returns EINTR at once instead of entering the guest.
//! Either way one kick per thread suffices (the scheme of Firecracker and
//! cloud-hypervisor). We install the handler once, and only if nobody else owns the
//! signal: a library must not clobber its caller's handlers.

use kvm_bindings::kvm_run;
use std::cell::Cell;
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

thread_local! {
    /// The kvm_run page of the vCPU this thread runs (null outside a vCPU loop).
    static KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The kick signal number.
pub fn signal() -> i32 {
    libc::SIGRTMIN() + KICK_OFFSET
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // A const-initialised Cell without destructor: no lazy init, no allocation.
    let run = KVM_RUN.try_with(Cell::get).unwrap_or(std::ptr::null_mut());
    if !run.is_null() {
        // SAFETY: the pointer was registered by this very thread through a
        // `RunRegistration` that outlives every use of the vCPU fd, so the mmapped
        // kvm_run page is live; a volatile byte store is async-signal-safe.
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// While alive, kicks of the current thread set `immediate_exit` in `run`.
/// Dropping it unregisters the page (before the vCPU fd unmaps it).
pub struct RunRegistration(());

impl RunRegistration {
    /// Registers `run`, the kvm_run page of the vCPU this thread is about to run.
    ///
    /// # Safety
    /// `run` must stay mapped for as long as the returned value lives, and the
    /// value must be dropped on the thread that created it.
    pub unsafe fn new(run: *mut kvm_run) -> Self {
        KVM_RUN.with(|c| c.set(run));
        RunRegistration(())
    }
}

impl Drop for RunRegistration {
    fn drop(&mut self) {
        let _ = KVM_RUN.try_with(|c| c.set(std::ptr::null_mut()));
    }
}

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
            return Err((
                sig,
                Some(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
            ));
        }
        if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != on_kick as *const () as usize {
            return Err((sig, None));
        }
        // SAFETY: a zeroed sigaction is valid; we set an async-signal-safe handler
        // (one thread-local read and one volatile store).
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_kick as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO;
        // SAFETY: sa_mask is ours to initialise.
        unsafe { libc::sigemptyset(&mut act.sa_mask) };
        // SAFETY: installing a valid handler for a real-time signal.
        if unsafe { libc::sigaction(sig, &act, std::ptr::null_mut()) } != 0 {
            return Err((
                sig,
                Some(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
            ));
        }
        Ok(())
    });
    match r {
        Ok(()) => Ok(()),
        Err((sig, None)) => Err(KickError::InUse(*sig)),
        Err((sig, Some(e))) => Err(KickError::Install(
            *sig,
            std::io::Error::from_raw_os_error(*e),
        )),
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
///
/// The caller guarantees `thread` has not been joined (or detached) yet: the VM
/// removes its kicker before it joins its vCPU threads.
pub fn kick(thread: libc::pthread_t) {
    // SAFETY: per the contract above the id names a live or finished-but-unjoined
    // thread of ours, for which pthread_kill is defined.
    unsafe { libc::pthread_kill(thread, signal()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kick that lands before the thread enters KVM_RUN (the window between the
    /// vCPU loop's stop check and the ioctl) is not lost: KVM_RUN returns EINTR at
    /// once instead of entering the guest. Needs /dev/kvm.
    #[test]
    fn a_kick_before_kvm_run_makes_it_return_at_once() {
        install().unwrap();
        unblock_on_current_thread();
        let kvm = kvm_ioctls::Kvm::new().unwrap();
        let vm = kvm.create_vm().unwrap();
        let mut vcpu = vm.create_vcpu(0).unwrap();
        let run: *mut kvm_run = vcpu.get_kvm_run();
        // SAFETY: `vcpu` (which maps the page) outlives `reg`; same thread.
        let reg = unsafe { RunRegistration::new(run) };
        // SAFETY: pthread_self has no preconditions. A signal a thread sends
        // itself is handled before pthread_kill returns.
        kick(unsafe { libc::pthread_self() });
        match vcpu.run() {
            Err(e) => assert_eq!(e.errno(), libc::EINTR, "{e}"),
            Ok(exit) => panic!("KVM_RUN entered the guest after a kick: {exit:?}"),
        }
        // Unregistered, a kick leaves the page alone.
        drop(reg);
        vcpu.set_kvm_immediate_exit(0);
        // SAFETY: as above.
        kick(unsafe { libc::pthread_self() });
        assert_eq!(vcpu.get_kvm_run().immediate_exit, 0);
    }
}
