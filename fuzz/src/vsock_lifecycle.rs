//! `vsock_lifecycle`: guest Status write sequences (resets, re-activations, a tx
//! REQUEST published before DRIVER_OK) on a vsock transport while host Unix
//! streams are connected, interleaved with the event loop's steps run by hand:
//! applying the recorded Status work and delivering host fd readiness.
//!
//! Checks: Status writes never leave the transport inconsistent once the loop's
//! apply step ran (DRIVER_OK without DEVICE_NEEDS_RESET ⇔ activated, nothing
//! pending), and nothing panics with live connections in any order.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use kvmsandbox::devices::bus::BusDevice;
use kvmsandbox::devices::virtio::device::VIRTIO_F_VERSION_1;
use kvmsandbox::devices::virtio::mmio::status;
use kvmsandbox::devices::virtio::vsock::{Vsock, VsockConfig};
use kvmsandbox::devices::virtio::{FdRegistrar, MmioTransport};
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::epoll::{Epoll, EpollEvent};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::input::Input;
use crate::mem;
use crate::ring::{self, Layout};
use crate::tmp;

const MAX_OPS: usize = 128;
const MAX_STREAMS: usize = 4;

fn write32(t: &mut MmioTransport, offset: u64, v: u32) {
    t.write(offset, &v.to_le_bytes());
}

fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.read(offset, &mut b);
    u32::from_le_bytes(b)
}

/// What the event loop does: apply Status work, then deliver ready host fds.
fn loop_step(t: &mut MmioTransport, epoll: &Epoll) {
    let _ = t.ctl_evt().read();
    t.apply_pending();
    let mut events = [EpollEvent::default(); 16];
    let n = epoll.wait(0, &mut events).unwrap_or(0);
    for ev in &events[..n] {
        t.fd_event(ev.data() as u32 as i32, ev.events());
    }
    assert!(!t.has_pending(), "the apply step left work pending");
    let st = read32(t, 0x70);
    let ok = st & status::DRIVER_OK != 0 && st & status::DEVICE_NEEDS_RESET == 0;
    assert_eq!(
        ok,
        t.is_activated(),
        "status {st:#x} vs activated {}",
        t.is_activated()
    );
}

fn setup(t: &mut MmioTransport, layouts: &[Layout]) {
    write32(t, 0x70, 0);
    write32(t, 0x70, status::ACKNOWLEDGE);
    write32(t, 0x70, status::ACKNOWLEDGE | status::DRIVER);
    for sel in 0..2u32 {
        write32(t, 0x24, sel);
        write32(t, 0x20, (VIRTIO_F_VERSION_1 >> (32 * sel)) as u32);
    }
    write32(
        t,
        0x70,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
    );
    for (i, l) in layouts.iter().enumerate() {
        write32(t, 0x30, i as u32);
        write32(t, 0x38, u32::from(l.size));
        for (reg, v) in [(0x80, l.desc), (0x90, l.avail), (0xa0, l.used)] {
            write32(t, reg, v as u32);
            write32(t, reg + 4, (v >> 32) as u32);
        }
        write32(t, 0x44, 1);
    }
}

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let sockets = tmp::SocketDir::new();
    let m = mem::guest_memory();
    let vsock = Vsock::new(VsockConfig::new(sockets.socket())).expect("fuzz harness: vsock");
    let irq = EventFd::new(EFD_NONBLOCK).expect("fuzz harness: eventfd");
    let mut t =
        MmioTransport::new(m.clone(), Box::new(vsock), irq).expect("fuzz harness: transport");
    let epoll = Arc::new(Epoll::new().expect("fuzz harness: epoll"));
    t.device_mut()
        .attach_event_loop(FdRegistrar::for_harness(epoll.clone()));
    let layouts: Vec<Layout> = (0..3u64).map(|i| Layout::packed(0x1000 * i, 16)).collect();
    let mut streams: Vec<UnixStream> = Vec::new();
    let all_ok = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

    let mut ops = 0;
    while !inp.is_empty() && ops < MAX_OPS {
        ops += 1;
        match inp.u8() % 8 {
            // A host connects and asks for a guest port (a live connection).
            0 if streams.len() < MAX_STREAMS => {
                if let Ok(mut s) = UnixStream::connect(sockets.socket()) {
                    let port = [1024u32, 1025, u32::from(inp.u16())][usize::from(inp.u8() % 3)];
                    let _ = s.write_all(format!("CONNECT {port}\n").as_bytes());
                    let _ = s.set_nonblocking(true);
                    streams.push(s);
                }
            }
            // A host writes stream bytes or hangs up.
            1 if !streams.is_empty() => {
                let i = usize::from(inp.u8()) % streams.len();
                if inp.bool() {
                    let n = usize::from(inp.u8());
                    let _ = streams[i].write_all(inp.bytes(n));
                } else {
                    streams.remove(i);
                }
            }
            // A guest Status write (vCPU side: recorded only).
            2 => {
                let steps = [
                    0,
                    status::ACKNOWLEDGE,
                    status::ACKNOWLEDGE | status::DRIVER,
                    all_ok,
                    status::FAILED,
                ];
                write32(&mut t, 0x70, steps[usize::from(inp.u8()) % steps.len()]);
            }
            // Reset, negotiate, set up queues, maybe DRIVER_OK.
            3 => {
                setup(&mut t, &layouts);
                if inp.bool() {
                    write32(&mut t, 0x70, all_ok);
                }
            }
            // The guest publishes tx chains (e.g. a REQUEST before DRIVER_OK).
            4 => {
                let l = layouts[1];
                ring::fill_table(&m, &l, &mut inp);
                let start: u16 = m.read_obj(GuestAddress(l.avail + 2)).unwrap_or(0);
                ring::set_avail_slot(&m, &l, start, u16::from(inp.u8()) % l.size);
                ring::set_avail_idx(&m, &l, start.wrapping_add(1));
            }
            // The guest writes its memory (packet headers, buffers).
            5 => {
                let addr = mem::address(&mut inp);
                let len = usize::from(inp.u8());
                let _ = m.write_slice(inp.bytes(len), GuestAddress(addr));
            }
            // QueueNotify, then the loop's queue step.
            6 => {
                let q = u32::from(inp.u8() % 3);
                write32(&mut t, 0x50, q);
                if t.queue_evts()[q as usize].read().is_ok() {
                    t.queue_event(q as usize);
                }
            }
            // The event loop gets a turn.
            _ => loop_step(&mut t, &epoll),
        }
    }
    loop_step(&mut t, &epoll);
}
