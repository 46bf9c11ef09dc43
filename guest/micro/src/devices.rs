//! Brings up the virtio devices the boot info lists: disks in boot-info order
//! (the agent's disk index), at most one vsock device. A device that fails to
//! come up is reported on serial and left out, never fatal.

use alloc::vec::Vec;

use kvmsandbox_proto::bootinfo::{device_kind, BootInfo, MAX_DEVICES};

use crate::virtio::blk::Blk;
use crate::virtio::vsock::Vsock;

/// The devices found.
pub struct Devices {
    pub disks: Vec<Blk>,
    pub vsock: Option<Vsock>,
}

/// Bitmask of the IRQ lines of the listed devices (for the PIC).
pub fn irq_mask(info: &BootInfo) -> u16 {
    listed(info)
        .filter(|d| d.irq < 16 && d.irq != 4)
        .fold(0, |m, d| m | (1 << d.irq))
}

fn listed(info: &BootInfo) -> impl Iterator<Item = &kvmsandbox_proto::bootinfo::DeviceInfo> {
    info.devices
        .iter()
        .take((info.num_devices as usize).min(MAX_DEVICES))
}

/// Probes and initialises every listed device.
pub fn init(info: &BootInfo) -> Devices {
    let mut devs = Devices {
        disks: Vec::new(),
        vsock: None,
    };
    for d in listed(info) {
        match d.kind {
            device_kind::VIRTIO_BLK => match Blk::init(d.mmio_base, d.irq) {
                Ok(b) => {
                    crate::println!(
                        "virtio-blk {}: {} sectors{} (irq {})",
                        devs.disks.len(),
                        b.capacity(),
                        if b.read_only() { ", read-only" } else { "" },
                        d.irq
                    );
                    devs.disks.push(b);
                }
                Err(e) => crate::println!("virtio-blk at {:#x} unusable: {}", d.mmio_base, e),
            },
            device_kind::VIRTIO_VSOCK if devs.vsock.is_none() => {
                match Vsock::init(d.mmio_base, d.irq) {
                    Ok(v) => {
                        crate::println!("virtio-vsock: cid {} (irq {})", v.cid(), d.irq);
                        devs.vsock = Some(v);
                    }
                    Err(e) => crate::println!("virtio-vsock at {:#x} unusable: {}", d.mmio_base, e),
                }
            }
            kind => crate::println!("ignoring device kind {} at {:#x}", kind, d.mmio_base),
        }
    }
    devs
}
