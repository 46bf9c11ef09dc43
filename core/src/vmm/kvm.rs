//! Opening /dev/kvm with errors a user can act on ("no such device", "add
//! yourself to the kvm group") and checking the capabilities we rely on, so a
//! host without them fails at creation with a name, not at first use.

use kvm_ioctls::{Cap, Kvm};
use std::io;

/// Errors opening or probing KVM.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm does not exist: KVM is not available on this host.
    #[error("{0} does not exist: this host has no KVM (load kvm_intel, kvm_amd or kvm_pvm)")]
    NotFound(std::path::PathBuf),
    /// /dev/kvm exists but we may not open it.
    #[error("no permission to open {0} (add this user to the 'kvm' group)")]
    PermissionDenied(std::path::PathBuf),
    /// Any other failure opening /dev/kvm.
    #[error("cannot open the KVM device: {0}")]
    Open(io::Error),
    /// The KVM API version is not the stable one (12), or the node is not KVM.
    #[error("unsupported KVM API version {0} (need 12; is this really a KVM device?)")]
    ApiVersion(i32),
    /// A capability we need is missing.
    #[error("KVM lacks a required capability: {0}")]
    MissingCap(&'static str),
}

/// Opens the KVM device (normally /dev/kvm) and checks what every VM needs.
pub fn open(path: &std::path::Path) -> Result<Kvm, KvmError> {
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| {
        KvmError::Open(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains NUL",
        ))
    })?;
    let kvm = Kvm::new_with_path(&cpath).map_err(|e| match e.errno() {
        libc::ENOENT => KvmError::NotFound(path.to_path_buf()),
        libc::EACCES | libc::EPERM => KvmError::PermissionDenied(path.to_path_buf()),
        _ => KvmError::Open(io::Error::from_raw_os_error(e.errno())),
    })?;
    let v = kvm.get_api_version();
    if v != 12 {
        return Err(KvmError::ApiVersion(v));
    }
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
        (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
        (Cap::Irqfd, "KVM_CAP_IRQFD"),
        (Cap::Ioeventfd, "KVM_CAP_IOEVENTFD"),
        (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(KvmError::MissingCap(name));
        }
    }
    Ok(kvm)
}
