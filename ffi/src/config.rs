//! `kvmsb_config`: a VM configuration built up by setters, turned into a
//! `kvmsandbox_core::VmConfig` at start. Values are recorded as given and validated
//! by the library at `kvmsb_sandbox_start`, so a bad value is reported (by name)
//! once, in one place, and a config can be reused for several sandboxes.

use crate::args::{self, handle_mut, path_arg, str_arg};
use crate::boundary::{ffi_status, ffi_value};
use crate::status::kvmsb_status;
use kvmsandbox_core::config::SeccompPolicy;
use kvmsandbox_core::VmConfig;
use std::os::raw::c_char;
use std::path::PathBuf;
use std::time::Duration;

/// What happens when a VMM thread makes a syscall outside its allow-list
/// (values for `kvmsb_config_set_seccomp`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum kvmsb_seccomp {
    /// Kill the whole process (the default; the caller's process dies too).
    Kill = 0,
    /// Deny the syscall with EPERM and report KVMSB_STATUS_SECCOMP; the process lives.
    Trap = 1,
    /// Allow and log it (no protection; for development).
    Log = 2,
    /// Install no filter (no protection; for debugging, valgrind, hosts without seccomp).
    Disabled = 3,
}

#[derive(Clone, Debug)]
enum GuestSpec {
    Micro(Option<PathBuf>),
    Linux(PathBuf),
}

/// An opaque VM configuration. Create with `kvmsb_config_new`, free with
/// `kvmsb_config_free`.
#[derive(Clone, Debug)]
pub struct kvmsb_config {
    guest: GuestSpec,
    initrd: Option<PathBuf>,
    cmdline: Vec<String>,
    vcpus: Option<u32>,
    memory_mib: Option<u64>,
    disks: Vec<(PathBuf, bool)>,
    vsock: Option<PathBuf>,
    seccomp: Option<SeccompPolicy>,
    start_timeout: Option<Duration>,
}

impl kvmsb_config {
    /// The library configuration this describes (unvalidated: start validates).
    pub fn to_vm_config(&self) -> VmConfig {
        let mut c = match &self.guest {
            GuestSpec::Micro(None) => VmConfig::micro(),
            GuestSpec::Micro(Some(image)) => VmConfig::micro().micro_image(image),
            GuestSpec::Linux(kernel) => VmConfig::linux(kernel),
        };
        if let Some(i) = &self.initrd {
            c = c.initrd(i);
        }
        for words in &self.cmdline {
            c = c.cmdline(words);
        }
        if let Some(n) = self.vcpus {
            c = c.vcpus(n);
        }
        if let Some(m) = self.memory_mib {
            c = c.memory_mib(m);
        }
        for (path, ro) in &self.disks {
            c = c.disk(path, *ro);
        }
        if let Some(v) = &self.vsock {
            c = c.vsock(v);
        }
        if let Some(s) = self.seccomp {
            c = c.seccomp(s);
        }
        if let Some(t) = self.start_timeout {
            c = c.start_timeout(t);
        }
        c
    }
}

/// A new configuration for the embedded micro guest (1 vCPU, 64 MiB, 10 s start
/// timeout, seccomp KILL). Never returns NULL.
///
/// Ownership: the caller owns the result and frees it with `kvmsb_config_free`.
/// Thread-safety: a config may be read by several `kvmsb_sandbox_start` calls at
/// once, but setters must not run concurrently with anything else on it.
#[no_mangle]
pub extern "C" fn kvmsb_config_new() -> *mut kvmsb_config {
    ffi_value(std::ptr::null_mut(), || {
        Box::into_raw(Box::new(kvmsb_config {
            guest: GuestSpec::Micro(None),
            initrd: None,
            cmdline: Vec::new(),
            vcpus: None,
            memory_mib: None,
            disks: Vec::new(),
            vsock: None,
            seccomp: None,
            start_timeout: None,
        }))
    })
}

/// Frees a configuration. NULL is allowed (nothing happens). Sandboxes started
/// from it are not affected.
///
/// Ownership: `config` must come from `kvmsb_config_new` and not be used afterwards.
#[no_mangle]
pub extern "C" fn kvmsb_config_free(config: *mut kvmsb_config) {
    ffi_value((), || {
        if !config.is_null() {
            // SAFETY: non-NULL and, by the caller's promise, from Box::into_raw in kvmsb_config_new.
            drop(unsafe { Box::from_raw(config) });
        }
    })
}

/// Boots the micro guest: the embedded one when `image` is NULL, otherwise the
/// ELF at path `image` (checked at start: a missing file gives KVMSB_STATUS_CONFIG).
///
/// Ownership: `image` is copied. Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_set_micro(
    config: *mut kvmsb_config,
    image: *const c_char,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: the caller passes a config from kvmsb_config_new (NULL is checked).
        let c = unsafe { handle_mut(config, "config") }?;
        // SAFETY: a non-NULL image is a NUL-terminated string.
        let image = if image.is_null() {
            None
        } else {
            Some(unsafe { path_arg(image, "image") }?)
        };
        c.guest = GuestSpec::Micro(image);
        Ok(())
    })
}

/// Boots a Linux kernel (ELF vmlinux or bzImage) at path `kernel`; unless set
/// otherwise the defaults become 256 MiB and a 180 s start timeout. The file is
/// checked at start (a missing kernel gives KVMSB_STATUS_CONFIG naming the path).
///
/// Ownership: `kernel` is copied. Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_set_linux(
    config: *mut kvmsb_config,
    kernel: *const c_char,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        let c = unsafe { handle_mut(config, "config") }?;
        // SAFETY: `kernel` is NULL (checked) or a NUL-terminated string.
        c.guest = GuestSpec::Linux(unsafe { path_arg(kernel, "kernel") }?);
        Ok(())
    })
}

/// Sets the Linux initramfs (ignored by the micro guest); NULL removes it.
///
/// Ownership: `initrd` is copied. Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_set_initrd(
    config: *mut kvmsb_config,
    initrd: *const c_char,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        let c = unsafe { handle_mut(config, "config") }?;
        // SAFETY: a non-NULL initrd is a NUL-terminated string.
        c.initrd = if initrd.is_null() {
            None
        } else {
            Some(unsafe { path_arg(initrd, "initrd") }?)
        };
        Ok(())
    })
}

/// Appends words (UTF-8) to the guest command line.
///
/// Ownership: `words` is copied. Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_append_cmdline(
    config: *mut kvmsb_config,
    words: *const c_char,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        let c = unsafe { handle_mut(config, "config") }?;
        // SAFETY: `words` is NULL (checked) or a NUL-terminated string.
        let w = unsafe { str_arg(words, "words") }?;
        c.cmdline.push(w.to_owned());
        Ok(())
    })
}

/// Sets the number of vCPUs (validated at start: 1..=16).
///
/// Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_set_vcpus(config: *mut kvmsb_config, vcpus: u32) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        unsafe { handle_mut(config, "config") }?.vcpus = Some(vcpus);
        Ok(())
    })
}

/// Sets guest RAM in MiB (validated at start).
///
/// Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_set_memory_mib(config: *mut kvmsb_config, mib: u64) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        unsafe { handle_mut(config, "config") }?.memory_mib = Some(mib);
        Ok(())
    })
}

/// Adds a raw disk image (size a multiple of 512; checked at start). Disks are
/// numbered in the order added, from 0 (`kvmsb_sandbox_disk_read` etc.).
///
/// Ownership: `path` is copied. Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_add_disk(
    config: *mut kvmsb_config,
    path: *const c_char,
    read_only: bool,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        let c = unsafe { handle_mut(config, "config") }?;
        // SAFETY: `path` is NULL (checked) or a NUL-terminated string.
        let p = unsafe { path_arg(path, "path") }?;
        c.disks.push((p, read_only));
        Ok(())
    })
}

/// Puts the vsock device's host Unix socket at `uds_path` (Firecracker's hybrid
/// vsock: connect, send "CONNECT <port>\n"). Without this, each sandbox gets a
/// private path that is removed when it is freed. NULL restores that default.
///
/// Ownership: `uds_path` is copied. Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_set_vsock(
    config: *mut kvmsb_config,
    uds_path: *const c_char,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        let c = unsafe { handle_mut(config, "config") }?;
        // SAFETY: a non-NULL path is a NUL-terminated string.
        c.vsock = if uds_path.is_null() {
            None
        } else {
            Some(unsafe { path_arg(uds_path, "uds_path") }?)
        };
        Ok(())
    })
}

/// Sets the seccomp policy of the VM's own threads: one of the `kvmsb_seccomp`
/// values (passed as an integer; anything else gives KVMSB_STATUS_INVALID_ARGUMENT).
///
/// Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_set_seccomp(config: *mut kvmsb_config, policy: u32) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        let c = unsafe { handle_mut(config, "config") }?;
        let p = match policy {
            x if x == kvmsb_seccomp::Kill as u32 => SeccompPolicy::Kill,
            x if x == kvmsb_seccomp::Trap as u32 => SeccompPolicy::Trap,
            x if x == kvmsb_seccomp::Log as u32 => SeccompPolicy::Log,
            x if x == kvmsb_seccomp::Disabled as u32 => SeccompPolicy::Disabled,
            other => {
                return Err(args::invalid(format!(
                    "seccomp policy {other} is not a kvmsb_seccomp value (0..=3)"
                )))
            }
        };
        c.seccomp = Some(p);
        Ok(())
    })
}

/// Sets how long `kvmsb_sandbox_start` waits for the guest to be ready
/// (0 is rejected at start with KVMSB_STATUS_CONFIG).
///
/// Thread-safety: see `kvmsb_config_new`.
#[no_mangle]
pub extern "C" fn kvmsb_config_set_start_timeout_ms(
    config: *mut kvmsb_config,
    timeout_ms: u64,
) -> kvmsb_status {
    ffi_status(|| {
        // SAFETY: as in kvmsb_config_set_micro.
        unsafe { handle_mut(config, "config") }?.start_timeout =
            Some(Duration::from_millis(timeout_ms));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvmsandbox_core::Guest;

    #[test]
    fn setters_reach_the_vm_config() {
        let c = kvmsb_config_new();
        assert_eq!(
            kvmsb_config_set_linux(c, c"/boot/vmlinux".as_ptr()),
            kvmsb_status::Ok
        );
        assert_eq!(kvmsb_config_set_vcpus(c, 2), kvmsb_status::Ok);
        assert_eq!(kvmsb_config_set_memory_mib(c, 128), kvmsb_status::Ok);
        assert_eq!(
            kvmsb_config_append_cmdline(c, c"quiet".as_ptr()),
            kvmsb_status::Ok
        );
        assert_eq!(
            kvmsb_config_add_disk(c, c"/tmp/d.img".as_ptr(), true),
            kvmsb_status::Ok
        );
        assert_eq!(kvmsb_config_set_seccomp(c, 3), kvmsb_status::Ok);
        assert_eq!(
            kvmsb_config_set_seccomp(c, 9),
            kvmsb_status::InvalidArgument
        );
        assert_eq!(
            kvmsb_config_add_disk(c, std::ptr::null(), false),
            kvmsb_status::NullArgument
        );
        assert_eq!(
            kvmsb_config_set_vcpus(std::ptr::null_mut(), 1),
            kvmsb_status::NullArgument
        );
        // SAFETY: `c` is a live config from kvmsb_config_new.
        let v = unsafe { &*c }.to_vm_config();
        assert!(
            matches!(&v.guest, Guest::Linux { kernel, .. } if kernel.to_str() == Some("/boot/vmlinux"))
        );
        assert_eq!((v.vcpus, v.mem_mib, v.cmdline.as_str()), (2, 128, "quiet"));
        assert_eq!(v.disks.len(), 1);
        assert!(v.disks[0].read_only);
        assert_eq!(v.seccomp, SeccompPolicy::Disabled);
        kvmsb_config_free(c);
        kvmsb_config_free(std::ptr::null_mut());
    }
}
