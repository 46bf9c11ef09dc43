//! Serving one frontend connection: the daemon from `vhost-user-backend`, the
//! device's host sockets added to its worker, and cleanup once the frontend leaves.

use std::path::Path;
use std::sync::Arc;

use kvmsandbox::devices::virtio::vsock::VsockConfig;
use vhost_user_backend::VhostUserDaemon;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

use crate::backend::{BackendError, VsockBackend, DEVICE_FDS_EVENT};

/// Why serving stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The device or its helpers could not be created.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The vhost-user daemon failed (socket, protocol).
    #[error("vhost-user daemon on {path}: {message}")]
    Daemon {
        /// The vhost-user socket.
        path: String,
        /// What the framework reported.
        message: String,
    },
    /// The device's socket set could not be added to the daemon's worker.
    #[error("watching the device's sockets: {0}")]
    Register(std::io::Error),
}

/// Listens on `socket`, serves the first frontend until it disconnects, then
/// removes the device's hybrid socket.
pub fn serve(socket: &Path, cfg: VsockConfig) -> Result<(), ServeError> {
    let backend = Arc::new(VsockBackend::new(cfg)?);
    let daemon_err = |e: vhost_user_backend::Error| ServeError::Daemon {
        path: socket.display().to_string(),
        message: e.to_string(),
    };
    let mut daemon = VhostUserDaemon::new(
        "kvmsandbox-vhost-vsock".to_string(),
        backend.clone(),
        GuestMemoryAtomic::new(GuestMemoryMmap::new()),
    )
    .map_err(daemon_err)?;
    for h in daemon.get_epoll_handlers() {
        h.register_listener(
            backend.device_fds(),
            EventSet::IN,
            u64::from(DEVICE_FDS_EVENT),
        )
        .map_err(ServeError::Register)?;
    }
    let r = daemon.serve(socket).map_err(daemon_err);
    backend.close();
    r
}
