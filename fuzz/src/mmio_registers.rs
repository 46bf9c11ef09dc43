//! `mmio_registers`: guest MMIO accesses (any offset, width, alignment, value, in
//! any order) to the real `MmioTransport` wrapping a real device (virtio-blk over
//! an in-memory disk, or virtio-vsock), interleaved with guest-memory writes,
//! queue notifications and resets: the register state machine, feature
//! negotiation, queue setup and activation.
//!
//! Besides "never panic", it checks the transport's documented state: the fixed
//! identification registers, and "activated exactly when DRIVER_OK was accepted"
//! (DRIVER_OK set without DEVICE_NEEDS_RESET ⇔ activated).

use std::path::Path;

use kvmsandbox::devices::bus::BusDevice;
use kvmsandbox::devices::virtio::block::Block;
use kvmsandbox::devices::virtio::device::VIRTIO_F_VERSION_1;
use kvmsandbox::devices::virtio::mmio::{status, MMIO_MAGIC_VALUE, MMIO_VERSION};
use kvmsandbox::devices::virtio::vsock::{Vsock, VsockConfig};
use kvmsandbox::devices::virtio::{MmioTransport, VirtioDevice};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::input::Input;
use crate::mem;
use crate::ring::{self, Layout};
use crate::tmp;
use crate::virtio_blk::CheckedDisk;

/// Most operations per input.
const MAX_OPS: usize = 256;

fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn write32(t: &mut MmioTransport, offset: u64, v: u32) {
    t.write(offset, &v.to_le_bytes());
}

/// Plausible queue placements (all inside the low region) or anywhere.
fn layout(inp: &mut Input) -> Layout {
    let sizes = [1u16, 2, 4, 8, 16, 32, 3, 256];
    let size = sizes[usize::from(inp.u8() % 8)];
    if inp.u8() & 0xc0 == 0xc0 {
        Layout {
            desc: inp.u64(),
            avail: inp.u64(),
            used: inp.u64(),
            size,
        }
    } else {
        Layout::packed(u64::from(inp.u8() % 0x40) * 0x100, size)
    }
}

fn setup_queue(t: &mut MmioTransport, index: u32, l: &Layout) {
    write32(t, 0x30, index);
    write32(t, 0x38, u32::from(l.size));
    for (reg, v) in [(0x80, l.desc), (0x90, l.avail), (0xa0, l.used)] {
        write32(t, reg, v as u32);
        write32(t, reg + 4, (v >> 32) as u32);
    }
    write32(t, 0x44, 1);
}

fn check_state(t: &mut MmioTransport) {
    assert_eq!(read32(t, 0x00), MMIO_MAGIC_VALUE);
    assert_eq!(read32(t, 0x04), MMIO_VERSION);
    let st = read32(t, 0x70);
    assert_eq!(st, t.status(), "Status register differs from status()");
    let ok = st & status::DRIVER_OK != 0 && st & status::DEVICE_NEEDS_RESET == 0;
    assert_eq!(
        ok,
        t.is_activated(),
        "status {st:#x} but activated = {}",
        t.is_activated()
    );
}

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let use_vsock = inp.u8() & 1 != 0;
    // Declared before the transport so it is removed after the device is dropped.
    let sockets = use_vsock.then(tmp::SocketDir::new);
    let m = mem::guest_memory();
    let device: Box<dyn VirtioDevice> = if let Some(sockets) = &sockets {
        match Vsock::new(VsockConfig::new(sockets.socket())) {
            Ok(v) => Box::new(v),
            Err(e) => panic!("fuzz harness: cannot create vsock: {e}"),
        }
    } else {
        let disk = CheckedDisk::new(false, false);
        Box::new(
            Block::with_backend(Box::new(disk), Path::new("fuzz-disk"), false, None)
                .expect("fuzz harness: valid disk"),
        )
    };
    let nqueues = device.queue_max_sizes().len();
    let irq = EventFd::new(EFD_NONBLOCK).expect("fuzz harness: eventfd");
    let mut t = MmioTransport::new(m.clone(), device, irq).expect("fuzz harness: valid device");
    let mut layouts: Vec<Layout> = (0..nqueues as u64)
        .map(|i| Layout::packed(0x1000 * i, 16))
        .collect();

    let mut ops = 0;
    while !inp.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = inp.u8();
        match op % 9 {
            // Raw register read of any width and alignment (config space included).
            0 => {
                let width = [1usize, 2, 4, 8][usize::from(op >> 4 & 3)];
                let offset = u64::from(inp.u16() & 0x3ff);
                let mut buf = [0u8; 8];
                t.read(offset, &mut buf[..width]);
            }
            // Raw register write.
            1 => {
                let width = [1usize, 2, 4, 8][usize::from(op >> 4 & 3)];
                let offset = u64::from(inp.u16() & 0x3ff);
                let v = inp.u64().to_le_bytes();
                t.write(offset, &v[..width]);
            }
            // Aligned 32-bit write to a real register (most useful values).
            2 => {
                let offset = u64::from(inp.u8() & 0x3f) * 4;
                let v = if op & 0x80 != 0 {
                    inp.u32()
                } else {
                    u32::from(inp.u8())
                };
                write32(&mut t, offset, v);
            }
            // A status step (the init sequence in pieces, out of order too).
            3 => {
                let steps = [
                    0,
                    status::ACKNOWLEDGE,
                    status::ACKNOWLEDGE | status::DRIVER,
                    status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
                    status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
                    status::FAILED,
                    status::DRIVER_OK,
                ];
                write32(&mut t, 0x70, steps[usize::from(inp.u8()) % steps.len()]);
            }
            // Whole negotiation + queue setup, then maybe DRIVER_OK.
            4 => {
                let features = if op & 0x80 != 0 {
                    inp.u64()
                } else {
                    VIRTIO_F_VERSION_1
                };
                write32(&mut t, 0x70, status::ACKNOWLEDGE);
                write32(&mut t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
                for sel in 0..2u32 {
                    write32(&mut t, 0x24, sel);
                    write32(&mut t, 0x20, (features >> (32 * sel)) as u32);
                }
                let st = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
                write32(&mut t, 0x70, st);
                for (i, l) in layouts.iter_mut().enumerate() {
                    *l = layout(&mut inp);
                    setup_queue(&mut t, i as u32, l);
                }
                if op & 0x40 == 0 {
                    write32(&mut t, 0x70, st | status::DRIVER_OK);
                }
            }
            // The guest writes its memory (buffers, headers).
            5 => {
                let addr = mem::address(&mut inp);
                let len = usize::from(inp.u8());
                let bytes = inp.bytes(len);
                let _ = m.write_slice(bytes, GuestAddress(addr));
            }
            // The guest fills a queue's descriptors and publishes chains.
            6 => {
                let Some(l) = layouts.get(usize::from(inp.u8()) % nqueues).copied() else {
                    continue;
                };
                if !l.below(mem::LOW_END) {
                    continue;
                }
                ring::fill_table(&m, &l, &mut inp);
                let n = inp.u8() % 4;
                let start: u16 = m.read_obj(GuestAddress(l.avail + 2)).unwrap_or(0);
                for k in 0..u16::from(n) {
                    ring::set_avail_slot(
                        &m,
                        &l,
                        start.wrapping_add(k),
                        u16::from(inp.u8()) % l.size.max(1),
                    );
                }
                ring::set_avail_idx(&m, &l, start.wrapping_add(u16::from(n)));
            }
            // QueueNotify through the register, then what the event loop does:
            // drain each signalled eventfd and tell the transport.
            7 => {
                write32(&mut t, 0x50, u32::from(inp.u8() % 4));
                let fired: Vec<usize> = t
                    .queue_evts()
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.read().is_ok())
                    .map(|(i, _)| i)
                    .collect();
                for i in fired {
                    t.queue_event(i);
                }
            }
            // The VMM resets the device.
            _ => t.reset(),
        }
        // What the device event loop does when a Status write signalled it.
        let _ = t.ctl_evt().read();
        t.apply_pending();
        check_state(&mut t);
        if crate::trace_enabled() {
            eprintln!(
                "mmio_registers: op {op:#x} -> status {:#x} activated {} irq {:#x}",
                t.status(),
                t.is_activated(),
                t.interrupt().status()
            );
        }
    }
}
