//! Lets a device model run outside our VMM — e.g. served to another VMM through a
//! vhost-user backend process — by standing in for the two things the device
//! event loop normally provides: the [`FdRegistrar`] the device watches its backend
//! fds with, and the dispatch of their readiness to [`VirtioDevice::fd_ready`].
//!
//! The fds live in a private epoll whose own fd is readable whenever one of them
//! is ready, so the foreign event loop only needs to watch [`DeviceFds::as_raw_fd`]
//! and call [`DeviceFds::dispatch`] when it fires.
//!
//! [`VirtioDevice::fd_ready`]: super::VirtioDevice::fd_ready

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use vmm_sys_util::epoll::{Epoll, EpollEvent, EventSet};

use super::device::{decode, FdRegistrar, TAG_DEVICE_FD};
use super::VirtioDevice;

/// Events handled per `epoll_wait` in [`DeviceFds::dispatch`].
const BATCH: usize = 64;

/// The backend fds of one device, outside our device event loop.
pub struct DeviceFds {
    epoll: Arc<Epoll>,
}

impl DeviceFds {
    /// A new, empty set.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            epoll: Arc::new(Epoll::new()?),
        })
    }

    /// The registrar to give the device through
    /// [`VirtioDevice::attach_event_loop`].
    pub fn registrar(&self) -> FdRegistrar {
        FdRegistrar::new(self.epoll.clone(), 0)
    }

    /// Hands every ready fd to `device.fd_ready` without blocking; returns how
    /// many events were dispatched.
    pub fn dispatch(&self, device: &mut dyn VirtioDevice) -> io::Result<usize> {
        let mut events = [EpollEvent::new(EventSet::empty(), 0); BATCH];
        let n = loop {
            match self.epoll.wait(0, &mut events) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        for ev in &events[..n] {
            let (tag, _, fd) = decode(ev.data());
            if tag == TAG_DEVICE_FD {
                device.fd_ready(fd as RawFd, ev.events());
            }
        }
        Ok(n)
    }
}

impl AsRawFd for DeviceFds {
    fn as_raw_fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::device::{ActivateContext, ActivateError, Served, EPOLLIN};
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Records the fds it was told about.
    #[derive(Default)]
    struct Recorder {
        ready: Vec<(RawFd, u32)>,
    }

    impl VirtioDevice for Recorder {
        fn device_type(&self) -> u32 {
            0
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[]
        }
        fn avail_features(&self) -> u64 {
            0
        }
        fn ack_features(&mut self, _features: u64) {}
        fn read_config(&self, _offset: u64, _data: &mut [u8]) {}
        fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
        fn activate(&mut self, _ctx: ActivateContext) -> Result<(), ActivateError> {
            Ok(())
        }
        fn reset(&mut self) {}
        fn queue_notified(&mut self, _queue_index: usize) -> Served {
            Served::Done
        }
        fn fd_ready(&mut self, fd: RawFd, events: u32) {
            self.ready.push((fd, events));
        }
    }

    #[test]
    fn ready_fd_reaches_the_device_and_idle_set_does_not_block() {
        let fds = DeviceFds::new().unwrap();
        let mut dev = Recorder::default();
        let (mut a, b) = UnixStream::pair().unwrap();
        fds.registrar().add(b.as_raw_fd(), EPOLLIN).unwrap();
        assert_eq!(fds.dispatch(&mut dev).unwrap(), 0);
        assert!(dev.ready.is_empty());
        a.write_all(b"x").unwrap();
        assert_eq!(fds.dispatch(&mut dev).unwrap(), 1);
        assert_eq!(dev.ready.len(), 1);
        assert_eq!(dev.ready[0].0, b.as_raw_fd());
        assert_ne!(dev.ready[0].1 & EPOLLIN, 0);
    }
}
