//! A test-only hook that performs a syscall every filter forbids, so a test (ours or the
//! lead's, after wiring the filters into the real threads) can check the filter is live.

/// Which forbidden syscall [`forbidden_syscall_probe`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `socket(AF_INET, SOCK_STREAM, 0)`: forbidden on both thread kinds (the VMM thread
    /// may only create `AF_UNIX` sockets). On success the socket is closed again.
    Socket,
    /// `execve("/bin/true", ["true"], [])`. **On success it does not return**: the
    /// process becomes `/bin/true` and exits 0. Only call it in a forked child.
    Execve,
}

/// Performs the `which` syscall and returns its result: `Ok(())` if the kernel let it
/// through, the OS error otherwise (`EPERM` under the Trap policy). Under the Kill
/// policy on a filtered thread it does not return: the process dies of SIGSYS.
pub fn forbidden_syscall_probe(which: Probe) -> std::io::Result<()> {
    match which {
        Probe::Socket => {
            // SAFETY: plain syscall with constant arguments.
            let fd =
                unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by socket() and is owned here.
            unsafe { libc::close(fd) };
            Ok(())
        }
        Probe::Execve => {
            let path = c"/bin/true";
            let arg0 = c"true";
            let argv = [arg0.as_ptr(), std::ptr::null()];
            let envp: [*const libc::c_char; 1] = [std::ptr::null()];
            // SAFETY: NUL-terminated path, NULL-terminated argv/envp arrays that outlive
            // the call. On success the process image is replaced (documented above).
            unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            Err(std::io::Error::last_os_error())
        }
    }
}
