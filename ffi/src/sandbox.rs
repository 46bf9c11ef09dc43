//! `kvmsb_sandbox`: a running sandbox (a VM whose agent answered, or a Linux
//! agent running as a host process) and its life cycle: start, attach, ping,
//! connect, timings, shutdown, kill, free. Data operations live in `exec`,
//! `wasm` and `files`.

use crate::args::{self, handle, out, path_arg, write_out};
use crate::boundary::{ffi_status, ffi_value};
use crate::bytes::kvmsb_bytes;
use crate::config::kvmsb_config;
use crate::status::kvmsb_status;
use kvmsandbox_core::{PooledSandbox, Sandbox};
use std::os::raw::{c_char, c_int};
use std::os::unix::io::IntoRawFd;
use std::time::Duration;

/// An opaque running sandbox. Create with `kvmsb_sandbox_start`,
/// `kvmsb_sandbox_attach_vsock` or `kvmsb_sandbox_attach_host_agent`, free with
/// `kvmsb_sandbox_free`.
///
/// Thread-safety: every function taking a `const kvmsb_sandbox*` may be called
/// from several threads at once on the same sandbox (operations run on
/// separate agent connections). Only `kvmsb_sandbox_free` needs exclusive use.
pub struct kvmsb_sandbox {
    pub(crate) inner: Held,
}

/// A sandbox the handle owns, or one borrowed from a pool (`kvmsb_pool_acquire`):
/// either way every sandbox function sees a `Sandbox`.
// Lives in the boxed handle already: another box would only add an indirection.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Held {
    Own(Sandbox),
    Pooled(PooledSandbox),
}

impl std::ops::Deref for Held {
    type Target = Sandbox;

    fn deref(&self) -> &Sandbox {
        match self {
            Held::Own(sb) => sb,
            Held::Pooled(sb) => sb,
        }
    }
}

impl Held {
    /// The sandbox to change, if this handle owns it (a pooled sandbox's
    /// settings are the pool's: it is reset to them when given back).
    pub(crate) fn own_mut(&mut self) -> Option<&mut Sandbox> {
        match self {
            Held::Own(sb) => Some(sb),
            Held::Pooled(_) => None,
        }
    }
}

// The thread-safety promise above rests on this.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Sandbox>();
    send_sync::<Held>();
};

/// Boot phase timestamps in nanoseconds since VM creation began; 0 means the
/// phase was not reached (or does not apply: all zero for a host agent).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kvmsb_timings {
    /// KVM VM (and irqchip) created.
    pub vm_created_ns: u64,
    /// Guest RAM mapped.
    pub memory_mapped_ns: u64,
    /// Guest image and boot structures written.
    pub image_loaded_ns: u64,
    /// The first vCPU is about to enter the guest.
    pub first_vcpu_entry_ns: u64,
    /// The guest's first serial byte.
    pub first_serial_byte_ns: u64,
    /// The guest's ready marker.
    pub ready_ns: u64,
    /// The agent answered its first hello.
    pub agent_ready_ns: u64,
}

fn ns(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

pub(crate) fn boxed(sb: Sandbox) -> *mut kvmsb_sandbox {
    Box::into_raw(Box::new(kvmsb_sandbox {
        inner: Held::Own(sb),
    }))
}

/// Boots a sandbox from `config` and waits until its agent answers (bounded by
/// the start timeout). On success `*sandbox_out` receives the new handle.
///
/// Errors: KVMSB_STATUS_CONFIG (bad value or missing file, named in the message),
/// KVMSB_STATUS_KVM_UNAVAILABLE, KVMSB_STATUS_BOOT_FAILED, KVMSB_STATUS_START_TIMEOUT,
/// KVMSB_STATUS_GUEST_PANIC, KVMSB_STATUS_GUEST_CRASHED, ...
///
/// Ownership: `config` is only read (keep or free it afterwards); the caller owns
/// `*sandbox_out` and frees it with `kvmsb_sandbox_free`.
/// Thread-safety: any thread; blocks until ready or failed.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_start(
    config: *const kvmsb_config,
    sandbox_out: *mut *mut kvmsb_sandbox,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL config comes from kvmsb_config_new.
        let c = unsafe { handle(config, "config") }?;
        out(sandbox_out, "sandbox_out")?;
        let sb = Sandbox::start(c.to_vm_config())?;
        // SAFETY: checked non-NULL above; the caller provides a writable pointer slot.
        unsafe { write_out(sandbox_out, boxed(sb)) };
        Ok(())
    })
}

/// Drives a Linux agent running as a host process (`kvmsandbox-agent --unix
/// PATH`) listening on Unix socket `path`. No VM and no isolation: for
/// developing and testing exec and file operations. `timeout_ms` bounds each
/// wait for the agent: milliseconds or KVMSB_TIMEOUT_DEFAULT (10 s; 0 is read
/// as the default too, for existing callers; KVMSB_TIMEOUT_NONE is
/// KVMSB_STATUS_INVALID_ARGUMENT: attaching always ends).
///
/// Ownership: `path` is copied; the caller owns `*sandbox_out` (free with
/// `kvmsb_sandbox_free`). Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_attach_host_agent(
    path: *const c_char,
    timeout_ms: u64,
    sandbox_out: *mut *mut kvmsb_sandbox,
) -> kvmsb_status {
    attach(path, timeout_ms, sandbox_out, Sandbox::attach_host_agent)
}

/// Drives the Linux agent of a VM run by another VMM (Firecracker,
/// cloud-hypervisor, QEMU with `kvmsandbox-vhost-vsock`) through that VMM's
/// Firecracker-style hybrid vsock socket `path` (`CONNECT 1024`). `timeout_ms`
/// bounds the wait for the agent's hello and each later wait for it, as for
/// `kvmsb_sandbox_attach_host_agent` (KVMSB_TIMEOUT_DEFAULT or 0 = 10 s).
/// The VM stays the other VMM's: `kvmsb_sandbox_kill` and `kvmsb_sandbox_free`
/// only close this library's connections.
///
/// Errors: KVMSB_STATUS_AGENT if nothing answers at `path` in time.
/// Ownership: `path` is copied; the caller owns `*sandbox_out` (free with
/// `kvmsb_sandbox_free`). Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_attach_vsock(
    path: *const c_char,
    timeout_ms: u64,
    sandbox_out: *mut *mut kvmsb_sandbox,
) -> kvmsb_status {
    attach(path, timeout_ms, sandbox_out, Sandbox::attach_vsock)
}

/// Frees a sandbox: stops its VM if still running, joins its threads, closes its
/// sockets (and removes a private vsock socket). NULL is allowed. A sandbox from
/// `kvmsb_pool_acquire` is given back to its pool instead (as
/// `kvmsb_pool_release` does), or killed if its pool was freed.
///
/// Ownership: `sandbox` must not be used afterwards, by any thread; fds returned
/// by `kvmsb_sandbox_connect` stay open (they are the caller's) but go dead.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_free(sandbox: *mut kvmsb_sandbox) {
    ffi_value((), || {
        if !sandbox.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw here.
            drop(unsafe { Box::from_raw(sandbox) });
        }
    })
}

/// Round trip to the agent; the time taken is written to `*rtt_ns` unless
/// `rtt_ns` is NULL. `timeout_ms`: milliseconds or KVMSB_TIMEOUT_DEFAULT for the
/// answer (KVMSB_TIMEOUT_NONE is the default too).
///
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_ping(
    sandbox: *const kvmsb_sandbox,
    timeout_ms: u64,
    rtt_ns: *mut u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: a non-NULL sandbox is a live handle from this library.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        let t = crate::timeout::answer_timeout(timeout_ms)?;
        let rtt = sb.inner.within(t).ping()?;
        if !rtt_ns.is_null() {
            // SAFETY: non-NULL; the caller promises a writable uint64_t.
            unsafe { write_out(rtt_ns, ns(Some(rtt))) };
        }
        Ok(())
    })
}

/// Opens a byte stream to guest vsock `port` (the micro guest echoes on 1025)
/// and writes its file descriptor to `*fd_out`. KVMSB_STATUS_UNSUPPORTED for a
/// host agent (no vsock), KVMSB_STATUS_CONNECT if nothing listens,
/// KVMSB_STATUS_TIMEOUT if the guest does not accept within `timeout_ms`
/// (milliseconds, or KVMSB_TIMEOUT_DEFAULT or KVMSB_TIMEOUT_NONE for the
/// sandbox's answer timeout).
///
/// Ownership: the caller owns the fd and closes it with `close()`.
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_connect(
    sandbox: *const kvmsb_sandbox,
    port: u32,
    timeout_ms: u64,
    fd_out: *mut c_int,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_ping.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(fd_out, "fd_out")?;
        let t = crate::timeout::answer_timeout(timeout_ms)?;
        let stream = sb.inner.within(t).connect(port)?;
        // Plain blocking I/O for C: no timeouts left over from the handshake.
        let _ = stream.set_read_timeout(None);
        let _ = stream.set_write_timeout(None);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(fd_out, stream.into_raw_fd()) };
        Ok(())
    })
}

/// Writes the boot-phase timings to `*timings_out`.
///
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_timings(
    sandbox: *const kvmsb_sandbox,
    timings_out: *mut kvmsb_timings,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_ping.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(timings_out, "timings_out")?;
        let t = sb.inner.timings();
        let v = kvmsb_timings {
            vm_created_ns: ns(t.vm_created),
            memory_mapped_ns: ns(t.memory_mapped),
            image_loaded_ns: ns(t.image_loaded),
            first_vcpu_entry_ns: ns(t.first_vcpu_entry),
            first_serial_byte_ns: ns(t.first_serial_byte),
            ready_ns: ns(t.ready),
            agent_ready_ns: ns(t.agent_ready),
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(timings_out, v) };
        Ok(())
    })
}

/// Copies the guest's console output so far into `*out_bytes` (empty for a host agent).
///
/// Ownership: the caller frees `*out_bytes` with `kvmsb_bytes_free`.
/// Thread-safety: concurrent calls on one sandbox are fine.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_console_output(
    sandbox: *const kvmsb_sandbox,
    out_bytes: *mut kvmsb_bytes,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_ping.
        let sb = unsafe { handle(sandbox, "sandbox") }?;
        out(out_bytes, "out_bytes")?;
        let text = sb.inner.console_output().into_bytes();
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_bytes, kvmsb_bytes::from_vec(text)) };
        Ok(())
    })
}

/// Asks the agent to shut down and waits (up to 5 s) for the VM to stop,
/// killing it otherwise. The handle must still be freed.
///
/// Thread-safety: any thread; operations running concurrently fail.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_shutdown(sandbox: *const kvmsb_sandbox) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_ping.
        unsafe { handle(sandbox, "sandbox") }?.inner.shutdown()?;
        Ok(())
    })
}

/// Stops the VM now (idempotent; nothing for a host agent). Operations running
/// on other threads fail promptly. The handle must still be freed.
///
/// Thread-safety: any thread, e.g. a watchdog.
#[no_mangle]
pub extern "C" fn kvmsb_sandbox_kill(sandbox: *const kvmsb_sandbox) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_sandbox_ping.
        unsafe { handle(sandbox, "sandbox") }?.inner.kill();
        Ok(())
    })
}

/// The two attach entry points: a sandbox without a VM of its own, reached
/// through `connect` at `path`, each wait bounded by `timeout_ms`.
fn attach(
    path: *const c_char,
    timeout_ms: u64,
    sandbox_out: *mut *mut kvmsb_sandbox,
    connect: fn(std::path::PathBuf, Duration) -> kvmsandbox_core::Result<Sandbox>,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: `path` is NULL (checked) or a NUL-terminated string.
        let p = unsafe { path_arg(path, "path") }?;
        out(sandbox_out, "sandbox_out")?;
        let t = match timeout_ms {
            0 => kvmsandbox_core::timeouts::ATTACH,
            ms => crate::timeout::timeout_arg(ms, "timeout_ms")?
                .or(Some(kvmsandbox_core::timeouts::ATTACH))
                .ok_or_else(|| {
                    args::invalid(
                        "argument `timeout_ms` is KVMSB_TIMEOUT_NONE: attaching needs a finite timeout",
                    )
                })?,
        };
        let sb = connect(p, t)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(sandbox_out, boxed(sb)) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: kvmsb_last_error returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(crate::kvmsb_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn null_and_config_errors() {
        assert_eq!(
            kvmsb_sandbox_ping(
                std::ptr::null(),
                crate::timeout::KVMSB_TIMEOUT_DEFAULT,
                std::ptr::null_mut()
            ),
            kvmsb_status::NullArgument
        );
        assert!(last_error().contains("`sandbox`"));
        let c = crate::config::kvmsb_config_new();
        assert_eq!(
            kvmsb_sandbox_start(c, std::ptr::null_mut()),
            kvmsb_status::NullArgument
        );
        assert_eq!(
            crate::config::kvmsb_config_set_linux(c, c"/nonexistent/vmlinux".as_ptr()),
            kvmsb_status::Ok
        );
        let mut sb = std::ptr::null_mut();
        assert_eq!(kvmsb_sandbox_start(c, &mut sb), kvmsb_status::Config);
        assert!(sb.is_null());
        assert!(
            last_error().contains("/nonexistent/vmlinux"),
            "{}",
            last_error()
        );
        crate::config::kvmsb_config_free(c);
        let mut sb = std::ptr::null_mut();
        let st = kvmsb_sandbox_attach_host_agent(c"/nonexistent/agent.sock".as_ptr(), 100, &mut sb);
        assert_eq!(st, kvmsb_status::Agent, "{}", last_error());
        assert!(sb.is_null());
        let st = kvmsb_sandbox_attach_vsock(c"/nonexistent/vsock.sock".as_ptr(), 100, &mut sb);
        assert_eq!(st, kvmsb_status::Agent, "{}", last_error());
        assert!(sb.is_null());
        let st = kvmsb_sandbox_attach_vsock(std::ptr::null(), 100, &mut sb);
        assert_eq!(st, kvmsb_status::NullArgument);
        assert!(last_error().contains("`path`"), "{}", last_error());
        kvmsb_sandbox_free(std::ptr::null_mut());
    }
}
