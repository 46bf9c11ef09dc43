//! Places virtio devices in the machine: one MMIO window and one IRQ each (in
//! configuration order: disks, then vsock), queue notifications as KVM
//! ioeventfds and interrupts as irqfds, so the device event loop serves them
//! without involving a vCPU thread. The same placement is described to the micro
//! guest (boot info) and to Linux (`virtio_mmio.device=` words).

use super::layout::{IRQ_BASE, IRQ_MAX, MMIO_SIZE, MMIO_START};
use super::memory::GuestMemory;
use crate::devices::bus::{Bus, SharedDevice};
use crate::devices::virtio::block::{Block, BlockConfig};
use crate::devices::virtio::mmio::NOTIFY_REG_OFFSET;
use crate::devices::virtio::vsock::{Vsock, VsockConfig};
use crate::devices::virtio::{linux_cmdline_fragment, MmioTransport, VirtioDevice};
use crate::error::{Error, Result};
use kvm_ioctls::{IoEventAddress, VmFd};
use kvmsandbox_proto::bootinfo::{device_kind, DeviceInfo};
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::EventFd;

/// Devices placed in a VM.
#[derive(Default)]
pub struct Placed {
    /// Transports, in placement order (the event loop serves these).
    pub transports: Vec<Arc<Mutex<MmioTransport>>>,
    /// Boot-info entries for the micro guest.
    pub infos: Vec<DeviceInfo>,
    /// Command-line words for Linux.
    pub cmdline: Vec<String>,
}

/// Opens every configured device and places it on `mmio`.
pub fn place(
    vm: &VmFd,
    mem: &GuestMemory,
    mmio: &mut Bus,
    disks: &[BlockConfig],
    vsock: Option<&VsockConfig>,
) -> Result<Placed> {
    let mut devices: Vec<(u32, Box<dyn VirtioDevice>)> = Vec::new();
    for d in disks {
        devices.push((device_kind::VIRTIO_BLK, Box::new(Block::open(d)?)));
    }
    if let Some(v) = vsock {
        devices.push((device_kind::VIRTIO_VSOCK, Box::new(Vsock::new(v.clone())?)));
    }
    let max = (IRQ_MAX - IRQ_BASE + 1) as usize;
    if devices.len() > max {
        return Err(Error::TooManyDevices {
            count: devices.len(),
            max,
        });
    }
    let mut placed = Placed::default();
    for (i, (kind, dev)) in devices.into_iter().enumerate() {
        let base = MMIO_START + i as u64 * MMIO_SIZE;
        let irq = IRQ_BASE + i as u32;
        let irq_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(|source| Error::Host {
            what: "device irq eventfd",
            source,
        })?;
        vm.register_irqfd(&irq_evt, irq)
            .map_err(super::vm::ioctl("KVM_IRQFD"))?;
        let t = MmioTransport::new(mem.clone(), dev, irq_evt)?;
        for (q, evt) in t.queue_evts().iter().enumerate() {
            vm.register_ioevent(
                evt,
                &IoEventAddress::Mmio(base + NOTIFY_REG_OFFSET),
                q as u32,
            )
            .map_err(super::vm::ioctl("KVM_IOEVENTFD"))?;
        }
        let t = Arc::new(Mutex::new(t));
        let shared: SharedDevice = t.clone();
        mmio.insert(shared, base, MMIO_SIZE)?;
        placed.transports.push(t);
        placed.infos.push(DeviceInfo {
            kind,
            irq,
            mmio_base: base,
            mmio_size: MMIO_SIZE,
        });
        placed
            .cmdline
            .push(linux_cmdline_fragment(base, MMIO_SIZE, irq));
    }
    Ok(placed)
}
