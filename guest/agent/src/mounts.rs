//! What PID 1 mounts, as data: the table is the policy (which file systems, with
//! which hardening flags and size limits), `apply` only carries it out, so the
//! policy is unit-tested on the host where nothing can be mounted.
//!
//! Rules: nothing mounted by the agent honours set-uid bits (`nosuid`); only /dev
//! and its ptys hold device nodes (`nodev` elsewhere); kernel interfaces and /dev are not
//! executable (`noexec`); /tmp and /dev/shm stay executable (scripts and JITs use
//! them) but are size-limited, since tmpfs is RAM and two unbounded ones could
//! each take half of it.

use std::ffi::CString;
use std::io;

/// Where cgroup2 is mounted (and where the agent keeps its commands' cgroups).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mount {
    /// Source (device or pseudo-fs name).
    pub source: &'static str,
    /// Mount point.
    pub target: &'static str,
    /// File system type.
    pub fstype: &'static str,
    /// `MS_*` flags.
    pub flags: libc::c_ulong,
    /// File-system options.
    pub data: &'static str,
    /// Whether boot fails without it (else it is logged and skipped).
    pub required: bool,
}

const HARD: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// The mounts, parents before children.
pub const TABLE: &[Mount] = &[
    Mount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: HARD,
        data: "",
        required: true,
    },
    Mount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: HARD,
        data: "",
        required: true,
    },
    Mount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: "mode=0755",
        required: true,
    },
    Mount {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        data: "newinstance,ptmxmode=0666,mode=0620",
        required: false,
    },
    Mount {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777,size=10%",
        required: false,
    },
    Mount {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: libc::MS_NOSUID | libc::MS_NODEV,
        data: "mode=1777,size=25%",
        required: true,
    },
    Mount {
        source: "cgroup2",
        target: CGROUP_ROOT,
        fstype: "cgroup2",
        flags: HARD,
        data: "",
        required: false,
    },
];

/// Symlinks made after the mounts: (link, target).
pub const LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// A required mount that failed.
#[derive(Debug, thiserror::Error)]
#[error("mount {fstype} on {target}: {source}")]
pub struct MountError {
    /// File system type.
    pub fstype: &'static str,
    /// Mount point.
    pub target: &'static str,
    /// The OS error.
    pub source: io::Error,
}

/// Mounts [`TABLE`] and makes [`LINKS`]. Already-mounted targets are left alone.
pub fn apply() -> Result<(), MountError> {
    for m in TABLE {
        let _ = std::fs::create_dir_all(m.target);
        match mount(m.source, m.target, m.fstype, m.flags, m.data) {
            Ok(()) => {}
            // Already mounted (e.g. the kernel automounted devtmpfs).
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(source) if m.required => {
                return Err(MountError {
                    fstype: m.fstype,
                    target: m.target,
                    source,
                });
            }
            Err(e) => eprintln!(
                "kvmsandbox-agent: mount {} on {}: {e} (skipped)",
                m.fstype, m.target
            ),
        }
    }
    for (link, target) in LINKS {
        match std::os::unix::fs::symlink(target, link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => eprintln!("kvmsandbox-agent: symlink {link} -> {target}: {e}"),
        }
    }
    Ok(())
}

/// mount(2) with string options.
pub fn mount(
    src: &str,
    target: &str,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput));
    let (src, target, fstype, data) = (c(src)?, c(target)?, c(fstype)?, c(data)?);
    // SAFETY: all pointers are valid NUL-terminated strings living across the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(target: &str) -> &'static Mount {
        TABLE
            .iter()
            .find(|m| m.target == target)
            .unwrap_or_else(|| panic!("{target} not mounted"))
    }

    #[test]
    fn everything_is_nosuid_and_only_dev_has_devices() {
        for m in TABLE {
            assert_ne!(m.flags & libc::MS_NOSUID, 0, "{} lacks nosuid", m.target);
            let nodev = m.flags & libc::MS_NODEV != 0;
            let devices = ["/dev", "/dev/pts"].contains(&m.target);
            assert_eq!(nodev, !devices, "{}: nodev={nodev}", m.target);
        }
    }

    #[test]
    fn kernel_interfaces_are_noexec_and_scratch_space_is_not() {
        for t in ["/proc", "/sys", "/dev", "/dev/pts", CGROUP_ROOT] {
            assert_ne!(find(t).flags & libc::MS_NOEXEC, 0, "{t} lacks noexec");
        }
        for t in ["/tmp", "/dev/shm"] {
            assert_eq!(find(t).flags & libc::MS_NOEXEC, 0, "{t} is noexec");
        }
    }

    #[test]
    fn ram_backed_mounts_have_a_size_limit() {
        for m in TABLE.iter().filter(|m| m.fstype == "tmpfs") {
            assert!(
                m.data.split(',').any(|o| o.starts_with("size=")),
                "{} has no size limit",
                m.target
            );
        }
        assert_eq!(find("/tmp").data, "mode=1777,size=25%");
    }

    #[test]
    fn cgroup2_devpts_and_shm_are_mounted_after_their_parents() {
        assert_eq!(find(CGROUP_ROOT).fstype, "cgroup2");
        assert!(find("/dev/pts").data.contains("newinstance"));
        let pos = |t: &str| {
            TABLE
                .iter()
                .position(|m| m.target == t)
                .unwrap_or(usize::MAX)
        };
        for (parent, child) in [
            ("/dev", "/dev/pts"),
            ("/dev", "/dev/shm"),
            ("/sys", CGROUP_ROOT),
        ] {
            assert!(pos(parent) < pos(child), "{child} before {parent}");
        }
    }

    #[test]
    fn fd_and_std_links_point_into_proc_self() {
        let want = [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ];
        assert_eq!(LINKS, &want[..]);
    }
}
