//! Duties of init when the agent is PID 1 in a Linux guest: mount the API
//! filesystems, optionally switch to a root disk named on the kernel command line
//! (`kvmsandbox.root=/dev/vdX`, ext4), announce readiness on the console, and end
//! the VM on request.
//!
//! Ending the VM is a *restart*, not a power-off: the kernel has no ACPI, so
//! `RB_POWER_OFF` only halts the vCPUs and the host has to notice and kill the VM.
//! `RB_AUTOBOOT` with `reboot=k` pulses the i8042 reset line, which our VMM reports
//! as the guest's clean exit and QEMU (`-no-reboot`) turns into its own exit. Before
//! that nothing is unmounted by anyone, so the agent ends the commands, flushes and
//! remounts the root read-only itself: the disk is clean when the VM goes.

use std::ffi::CString;
use std::io::{self, Write};

/// How long shutdown waits, after answering, for the host to hang up before the
/// reset takes the vsock device away (the host's client closes right after `Ok`).
pub const SHUTDOWN_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Ready line printed on /dev/console (the host's Linux ready marker).
pub const READY_MARKER: &str = "kvmsandbox-agent ready";

/// What can go wrong while setting up the guest as PID 1.
#[derive(Debug, thiserror::Error)]
pub enum Pid1Error {
    /// A required mount failed.
    #[error(transparent)]
    Mount(#[from] crate::mounts::MountError),
    /// Switching to the root disk failed.
    #[error("switch_root to {device}: {source}")]
    SwitchRoot {
        /// The root device.
        device: String,
        /// The OS error.
        source: io::Error,
    },
}

/// Mounts what [`crate::mounts::TABLE`] lists, and switches root if the command line asks.
pub fn init() -> Result<(), Pid1Error> {
    crate::mounts::apply()?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if let Some(dev) = root_device(&cmdline) {
        switch_root(&dev).map_err(|source| Pid1Error::SwitchRoot {
            device: dev.clone(),
            source,
        })?;
        crate::mounts::apply()?;
    }
    Ok(())
}

/// The `kvmsandbox.root=` value of a kernel command line.
pub fn root_device(cmdline: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("kvmsandbox.root="))
        .filter(|v| !v.is_empty())
        .map(String::from)
}

/// Mounts `dev` (ext4) on /newroot, moves it over / and chroots into it (the
/// initramfs cannot be pivot_root'ed, so this is busybox switch_root's recipe).
fn switch_root(dev: &str) -> io::Result<()> {
    std::fs::create_dir_all("/newroot")?;
    crate::mounts::mount(dev, "/newroot", "ext4", 0, "")?;
    std::env::set_current_dir("/newroot")?;
    let dot = CString::new(".").map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let slash = CString::new("/").map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid NUL-terminated strings; MS_MOVE ignores fstype and data.
    let rc = unsafe {
        libc::mount(
            dot.as_ptr(),
            slash.as_ptr(),
            std::ptr::null(),
            libc::MS_MOVE,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: valid NUL-terminated string.
    if unsafe { libc::chroot(dot.as_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    std::env::set_current_dir("/")
}

/// Prints the ready marker on the console (falls back to stdout).
pub fn announce_ready() {
    let line = format!("{READY_MARKER}\n");
    match std::fs::OpenOptions::new().write(true).open("/dev/console") {
        Ok(mut c) => {
            let _ = c.write_all(line.as_bytes());
        }
        Err(_) => {
            let _ = io::stdout().write_all(line.as_bytes());
        }
    }
}

/// Before the host is told the shutdown is done: kill every command (their open
/// files would keep the root writable), flush, and remount the root read-only so
/// the file system is marked clean. Failures are logged: the flush happened anyway.
pub fn prepare_shutdown() {
    if let Some(t) = crate::cgroup::subtree() {
        t.remove();
    }
    // SAFETY: sync(2) takes no arguments.
    unsafe { libc::sync() };
    let flags = libc::MS_REMOUNT | libc::MS_RDONLY;
    if let Err(e) = crate::mounts::mount("", "/", "", flags, "") {
        eprintln!("kvmsandbox-agent: remounting / read-only: {e}");
    }
}

/// Flushes file systems and ends the VM through a reset (see the module notes).
pub fn end_vm() -> ! {
    // SAFETY: sync(2) and reboot(2) take no pointers; as PID 1 we may reboot.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_AUTOBOOT);
    }
    // reboot only returns on failure; PID 1 must not exit (kernel panic).
    eprintln!("kvmsandbox-agent: reboot: {}", io::Error::last_os_error());
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_root_device_on_cmdline() {
        assert_eq!(
            root_device("console=ttyS0 kvmsandbox.root=/dev/vda quiet"),
            Some("/dev/vda".into())
        );
        assert_eq!(root_device("console=ttyS0"), None);
        assert_eq!(root_device("kvmsandbox.root="), None);
    }
}
