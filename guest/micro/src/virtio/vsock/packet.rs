//! The 44-byte `virtio_vsock_hdr`: the wire format is shared with the host device
//! (`kvmsandbox_proto::vsock`); this module names it for the driver.

pub use kvmsandbox_proto::vsock::{
    op, VsockHeader as Header, HDR_SIZE, SHUTDOWN_RCV, SHUTDOWN_SEND, TYPE_STREAM,
};
