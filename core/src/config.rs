//! What a caller asks for, validated up front so that a bad value is reported by
//! name before any KVM object exists.

use crate::vmm::layout::{MAX_MEM_SIZE, MAX_VCPUS, MIN_MEM_SIZE};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::devices::virtio::block::BlockConfig;
pub use crate::devices::virtio::vsock::VsockConfig;
pub use crate::seccomp::SeccompPolicy;
pub use crate::vmm::console::LineCallback;

/// Errors in a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// vCPU count out of range.
    #[error("vcpus = {count} is out of range (1..={max})")]
    Vcpus {
        /// Requested.
        count: u32,
        /// Largest allowed.
        max: u8,
    },
    /// Memory size out of range.
    #[error("memory = {mib} MiB is out of range ({min}..={max} MiB)")]
    Memory {
        /// Requested MiB.
        mib: u64,
        /// Smallest allowed MiB.
        min: u64,
        /// Largest allowed MiB.
        max: u64,
    },
    /// More memory than the host has.
    #[error("memory = {mib} MiB is more than this host's {host_mib} MiB of RAM")]
    MemoryExceedsHost {
        /// Requested MiB.
        mib: u64,
        /// Host RAM in MiB.
        host_mib: u64,
    },
    /// A guest image (kernel, ELF, initrd) does not exist.
    #[error("{what} {path} does not exist")]
    FileNotFound {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
    },
    /// A guest image cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    FileUnreadable {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A micro guest image that is not an x86-64 ELF executable.
    #[error("micro guest image {path} is not an x86-64 ELF executable")]
    NotElf {
        /// Its path.
        path: PathBuf,
    },
    /// The start timeout is zero.
    #[error("start timeout must be greater than zero")]
    ZeroTimeout,
    /// The command line contains a NUL byte or is too long.
    #[error("command line is invalid: {0}")]
    Cmdline(String),
}

/// The micro guest built by this workspace, embedded in the library.
pub static MICRO_GUEST_ELF: &[u8] = include_bytes!(env!("KVMSANDBOX_MICRO_ELF"));

/// Which guest to boot.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Guest {
    /// The micro guest: the embedded one, or another ELF at a path.
    Micro {
        /// `None` = the embedded guest.
        image: Option<PathBuf>,
    },
    /// A Linux kernel (ELF vmlinux or bzImage) and optional initramfs.
    Linux {
        /// Kernel image.
        kernel: PathBuf,
        /// Initramfs (newc cpio, possibly compressed).
        initrd: Option<PathBuf>,
    },
}

/// Configuration of one VM. Clones share the console callback.
#[derive(Clone)]
pub struct VmConfig {
    /// The guest.
    pub guest: Guest,
    /// Number of vCPUs (1..=16).
    pub vcpus: u32,
    /// RAM in MiB.
    pub mem_mib: u64,
    /// Extra command-line words, appended to ours.
    pub cmdline: String,
    /// Console line that means "booted"; `None` = the guest kind's default.
    pub ready_marker: Option<String>,
    /// How long `start` waits for the ready marker.
    pub start_timeout: Duration,
    /// Called with each complete console line (without the newline), on a thread of
    /// its own (`kvmsb-console`): not a seccomp-filtered VMM thread and not under any
    /// VM lock, so it may open files, block briefly, or call the VM's
    /// `console_output()`. Lines wait in a bounded queue (256 lines); while the
    /// callback is behind, further lines are dropped and the callback then gets one
    /// line `[kvmsandbox: N console line(s) dropped: ...]` saying how many. The full
    /// output stays available from `console_output()`. Every line queued before the
    /// VM stopped is delivered before `wait()`/`kill()` return, unless the callback
    /// takes more than 5 s, after which the VM stops waiting for it.
    pub console_callback: Option<LineCallback>,
    /// The KVM device node (default `/dev/kvm`).
    pub kvm_device: PathBuf,
    /// virtio-blk disks, in guest order (micro: disk index; Linux: vda, vdb, ...).
    pub disks: Vec<BlockConfig>,
    /// The virtio-vsock device and its host Unix socket.
    pub vsock: Option<VsockConfig>,
    /// What happens when a VMM thread makes a syscall outside its allowlist.
    pub seccomp: SeccompPolicy,
}

impl std::fmt::Debug for VmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmConfig")
            .field("guest", &self.guest)
            .field("vcpus", &self.vcpus)
            .field("mem_mib", &self.mem_mib)
            .field("cmdline", &self.cmdline)
            .field("ready_marker", &self.ready_marker)
            .field("start_timeout", &self.start_timeout)
            .field("disks", &self.disks)
            .field("vsock", &self.vsock)
            .field("seccomp", &self.seccomp)
            .finish_non_exhaustive()
    }
}

/// Default micro guest RAM.
pub const DEFAULT_MICRO_MEM_MIB: u64 = 64;
/// Default Linux guest RAM.
pub const DEFAULT_LINUX_MEM_MIB: u64 = 256;

impl VmConfig {
    /// The embedded micro guest, 1 vCPU, 64 MiB.
    pub fn micro() -> Self {
        VmConfig {
            guest: Guest::Micro { image: None },
            vcpus: 1,
            mem_mib: DEFAULT_MICRO_MEM_MIB,
            cmdline: String::new(),
            ready_marker: None,
            start_timeout: crate::timeouts::START_MICRO,
            console_callback: None,
            kvm_device: PathBuf::from("/dev/kvm"),
            disks: Vec::new(),
            vsock: None,
            seccomp: SeccompPolicy::default(),
        }
    }

    /// A Linux guest with `kernel`, 1 vCPU, 256 MiB.
    pub fn linux(kernel: impl Into<PathBuf>) -> Self {
        VmConfig {
            guest: Guest::Linux {
                kernel: kernel.into(),
                initrd: None,
            },
            mem_mib: DEFAULT_LINUX_MEM_MIB,
            start_timeout: crate::timeouts::START_LINUX,
            ..Self::micro()
        }
    }

    /// Boots another micro guest ELF instead of the embedded one.
    pub fn micro_image(mut self, path: impl Into<PathBuf>) -> Self {
        self.guest = Guest::Micro {
            image: Some(path.into()),
        };
        self
    }

    /// Sets the Linux initramfs (ignored for the micro guest).
    pub fn initrd(mut self, path: impl Into<PathBuf>) -> Self {
        if let Guest::Linux { initrd, .. } = &mut self.guest {
            *initrd = Some(path.into());
        }
        self
    }

    /// Sets the vCPU count.
    pub fn vcpus(mut self, n: u32) -> Self {
        self.vcpus = n;
        self
    }

    /// Sets the RAM size in MiB.
    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.mem_mib = mib;
        self
    }

    /// Appends words to the guest command line.
    pub fn cmdline(mut self, extra: &str) -> Self {
        if !self.cmdline.is_empty() {
            self.cmdline.push(' ');
        }
        self.cmdline.push_str(extra);
        self
    }

    /// Sets the console line that means "booted".
    pub fn ready_marker(mut self, marker: impl Into<String>) -> Self {
        self.ready_marker = Some(marker.into());
        self
    }

    /// Sets how long `start` waits for the ready marker.
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.start_timeout = t;
        self
    }

    /// Receives each console line as it is printed, on the VM's console thread
    /// (see [`VmConfig::console_callback`] for the threading and the bounded queue).
    pub fn on_console_line(mut self, f: impl FnMut(&str) + Send + 'static) -> Self {
        self.console_callback = Some(crate::vmm::console::line_callback(f));
        self
    }

    /// Uses another KVM device node than `/dev/kvm`.
    pub fn kvm_device(mut self, path: impl Into<PathBuf>) -> Self {
        self.kvm_device = path.into();
        self
    }

    /// Adds a raw disk image (read-write unless `read_only`).
    pub fn disk(mut self, path: impl Into<PathBuf>, read_only: bool) -> Self {
        self.disks.push(BlockConfig {
            path: path.into(),
            read_only,
            id: None,
        });
        self
    }

    /// Adds a disk with a full configuration (serial/id).
    pub fn disk_config(mut self, cfg: BlockConfig) -> Self {
        self.disks.push(cfg);
        self
    }

    /// Adds the vsock device, listening on the Unix socket `uds_path` (Firecracker's hybrid vsock).
    pub fn vsock(mut self, uds_path: impl Into<PathBuf>) -> Self {
        self.vsock = Some(VsockConfig::new(uds_path));
        self
    }

    /// Adds the vsock device with a full configuration (guest CID).
    pub fn vsock_config(mut self, cfg: VsockConfig) -> Self {
        self.vsock = Some(cfg);
        self
    }

    /// Sets the seccomp policy of the VM's own threads (default: kill the process).
    pub fn seccomp(mut self, policy: SeccompPolicy) -> Self {
        self.seccomp = policy;
        self
    }

    /// RAM in bytes.
    pub fn mem_bytes(&self) -> u64 {
        self.mem_mib << 20
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vcpus == 0 || self.vcpus > u32::from(MAX_VCPUS) {
            return Err(ConfigError::Vcpus {
                count: self.vcpus,
                max: MAX_VCPUS,
            });
        }
        let (min, max) = (MIN_MEM_SIZE >> 20, MAX_MEM_SIZE >> 20);
        if self.mem_mib < min || self.mem_mib > max {
            return Err(ConfigError::Memory {
                mib: self.mem_mib,
                min,
                max,
            });
        }
        if let Some(host_mib) = host_ram_mib() {
            if self.mem_mib > host_mib {
                return Err(ConfigError::MemoryExceedsHost {
                    mib: self.mem_mib,
                    host_mib,
                });
            }
        }
        if self.start_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        if self.cmdline.contains('\0') {
            return Err(ConfigError::Cmdline("contains a NUL byte".into()));
        }
        match &self.guest {
            Guest::Micro { image: Some(p) } => {
                let head = read_head(p, "micro guest image")?;
                if !is_x86_64_elf(&head) {
                    return Err(ConfigError::NotElf { path: p.clone() });
                }
            }
            Guest::Micro { image: None } => {}
            Guest::Linux { kernel, initrd } => {
                read_head(kernel, "kernel")?;
                if let Some(i) = initrd {
                    read_head(i, "initrd")?;
                }
            }
        }
        Ok(())
    }
}

/// True if `head` starts an ELF64 little-endian x86-64 executable header.
pub fn is_x86_64_elf(head: &[u8]) -> bool {
    head.len() >= 20
        && &head[..4] == b"\x7fELF"
        && head[4] == 2
        && head[5] == 1
        && u16::from_le_bytes([head[18], head[19]]) == 62
}

fn read_head(path: &Path, what: &'static str) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let unreadable = |source| ConfigError::FileUnreadable {
        what,
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ConfigError::FileNotFound {
                what,
                path: path.to_path_buf(),
            }
        } else {
            unreadable(e)
        }
    })?;
    if meta.is_dir() {
        return Err(unreadable(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is a directory",
        )));
    }
    let mut f = std::fs::File::open(path).map_err(unreadable)?;
    let mut head = vec![0u8; 64];
    let n = f.read(&mut head).map_err(unreadable)?;
    head.truncate(n);
    Ok(head)
}

fn host_ram_mib() -> Option<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| (pages as u64 * size as u64) >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_clones_with_its_shared_callback() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let s2 = seen.clone();
        let a = VmConfig::micro()
            .vcpus(2)
            .disk("/tmp/x.img", true)
            .on_console_line(move |l| s2.lock().unwrap().push(l.to_owned()));
        let b = a.clone();
        assert_eq!((b.vcpus, b.disks.len()), (2, 1));
        let cb = b.console_callback.expect("the clone keeps the callback");
        (*cb.lock().unwrap())("line");
        assert_eq!(*seen.lock().unwrap(), ["line"]);
    }

    #[test]
    fn rejects_bad_values_by_name() {
        let e = VmConfig::micro().vcpus(0).validate().unwrap_err();
        assert!(matches!(e, ConfigError::Vcpus { count: 0, .. }), "{e}");
        assert!(e.to_string().contains("vcpus = 0"));
        assert!(matches!(
            VmConfig::micro().vcpus(17).validate(),
            Err(ConfigError::Vcpus { count: 17, .. })
        ));
        assert!(matches!(
            VmConfig::micro().memory_mib(0).validate(),
            Err(ConfigError::Memory { mib: 0, .. })
        ));
        assert!(matches!(
            VmConfig::micro().memory_mib(1 << 20).validate(),
            Err(ConfigError::Memory { .. })
        ));
        assert!(matches!(
            VmConfig::micro().start_timeout(Duration::ZERO).validate(),
            Err(ConfigError::ZeroTimeout)
        ));
        let e = VmConfig::micro()
            .micro_image("/nonexistent/guest.elf")
            .validate()
            .unwrap_err();
        assert!(
            matches!(e, ConfigError::FileNotFound { .. })
                && e.to_string().contains("/nonexistent/guest.elf")
        );
        assert!(matches!(
            VmConfig::micro().micro_image("/etc/hostname").validate(),
            Err(ConfigError::NotElf { .. })
        ));
        assert!(matches!(
            VmConfig::micro().micro_image("/etc").validate(),
            Err(ConfigError::FileUnreadable { .. })
        ));
        assert!(matches!(
            VmConfig::linux("/nonexistent/vmlinux").validate(),
            Err(ConfigError::FileNotFound { what: "kernel", .. })
        ));
        assert!(VmConfig::micro()
            .vcpus(2)
            .memory_mib(128)
            .validate()
            .is_ok());
    }

    #[test]
    fn embedded_guest_is_an_elf() {
        assert!(is_x86_64_elf(MICRO_GUEST_ELF));
    }
}
