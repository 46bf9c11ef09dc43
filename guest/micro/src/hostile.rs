//! `test=hostile-<name>`: the guest turns against the VMM. Each mode attacks the
//! host from inside (garbage in the virtio-mmio registers, malformed descriptor
//! chains, a vsock flood, accesses to unmapped physical addresses), prints
//! `hostile-<name>: done ...`, then hands control back to the normal agent: every
//! device is reset and brought up again by the ordinary drivers, the ready marker
//! goes out and the agent serves the host. The host test then checks that the VMM
//! survived, that the attacked guest still answers, and that teardown is prompt
//! (core/tests/hostile_guest.rs).
//!
//! The attacks talk to the registers and rings directly (not through
//! `virtio::mmio`), because the real drivers refuse to do anything wrong. They
//! never aim the device at RAM the guest itself lives in except through their own
//! rings, so a surviving guest means a surviving VMM, not luck.
//!
//! | mode | attack |
//! |------|--------|
//! | `hostile-mmio` | random offsets/widths/values (also with live garbage rings in a scratch area), bad queue sizes, rings outside RAM, notify before DRIVER_OK, DRIVER_OK without FEATURES_OK, reset mid-request, config writes out of range |
//! | `hostile-desc` | virtio-blk chains that loop, huge lengths, 1000-entry indirect table, whole-table chains, avail idx +60000 |
//! | `hostile-vsock` | REQUEST flood without rx buffers, RW without connection, random CIDs/ops, lying lengths, data without credit |
//! | `hostile-unmapped` | reads/writes to unmapped addresses in the MMIO hole and just below 4 GiB |
//! | `hostile-pio` | every I/O port at every width (bar the ones that would end the VM or break our own interrupts), garbage in the UART's registers |
//! | `hostile-reset` | while host streams are connected: vsock and blk Status reset to 0, a tx REQUEST published before DRIVER_OK, re-activation, repeated (a vCPU thread must never do the device I/O this causes) |
//! | `hostile-spin` | ready marker, then a busy loop with interrupts off (kill must still work) |

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::vec::Vec;
use core::ptr::{read_volatile, write_volatile};

use kvmsandbox_proto::bootinfo::{device_kind, BootInfo, MAX_DEVICES, READY_MARKER};

use crate::virtio::mmio::status::{
    ACKNOWLEDGE as S_ACK, DRIVER as S_DRIVER, DRIVER_OK as S_DRIVER_OK,
    FEATURES_OK as S_FEATURES_OK,
};
use crate::virtio::mmio::{
    REG_CONFIG, REG_DEVICE_FEATURES, REG_DEVICE_FEATURES_SEL, REG_DRIVER_FEATURES,
    REG_DRIVER_FEATURES_SEL, REG_INTERRUPT_ACK, REG_INTERRUPT_STATUS, REG_QUEUE_DESC,
    REG_QUEUE_DEVICE, REG_QUEUE_DRIVER, REG_QUEUE_NOTIFY, REG_QUEUE_NUM, REG_QUEUE_NUM_MAX,
    REG_QUEUE_READY, REG_QUEUE_SEL, REG_STATUS,
};
use crate::virtio::F_VERSION_1;
use crate::{devices, io, println};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;

/// Runs hostile mode `mode` (the full `test=` value) and never returns.
pub fn run(mode: &str, info: &'static BootInfo) -> ! {
    let mut rng = Rng::new(info);
    let summary = match mode {
        "hostile-mmio" => mmio(info, &mut rng),
        "hostile-desc" => desc(info, &mut rng),
        "hostile-vsock" => vsock(info, &mut rng),
        "hostile-unmapped" => unmapped(info),
        "hostile-reset" => reset_storm(info, &mut rng),
        "hostile-pio" => pio(&mut rng),
        "hostile-spin" => {
            println!("{}", READY_MARKER);
            spin_cli()
        }
        other => {
            println!("hostile: unknown mode {}", other);
            io::exit(1)
        }
    };
    println!("{}: done {}", mode, summary);
    serve(info)
}

/// Brings every device up again with the ordinary drivers, proves the disk still
/// reads, prints the marker and runs the agent (or halts without vsock).
fn serve(info: &'static BootInfo) -> ! {
    let mut devs = devices::init(info);
    if let Some(d) = devs.disks.first_mut() {
        let mut sector = alloc::vec![0u8; 512];
        match d.read(0, &mut sector) {
            Ok(()) => println!("hostile: disk 0 reads after the attack"),
            Err(e) => println!("hostile: disk 0 broken after the attack: {}", e),
        }
    }
    let Some(vs) = devs.vsock.take() else {
        println!("{}", READY_MARKER);
        io::halt_forever()
    };
    let mut agent = crate::agent::Agent::new(vs, core::mem::take(&mut devs.disks));
    println!("{}", READY_MARKER);
    agent.run();
    io::exit(0)
}

fn spin_cli() -> ! {
    // SAFETY: disabling interrupts only affects this vCPU; the loop touches nothing.
    unsafe { core::arch::asm!("cli", "2:", "jmp 2b", options(nomem, nostack, noreturn)) }
}

/// xorshift64*, seeded from the boot info (or `seed=` for a replay).
struct Rng(u64);

impl Rng {
    fn new(info: &BootInfo) -> Self {
        let cmd = crate::cmdline::Cmdline::from_boot_info(info);
        let seed = cmd
            .get("seed")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&info.random_seed[..8]);
                u64::from_le_bytes(b)
            });
        println!("hostile: seed={}", seed);
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// A value biased towards the interesting ones.
    fn value(&mut self) -> u32 {
        const EDGES: [u32; 10] = [
            0,
            1,
            2,
            3,
            0x8000,
            0xffff,
            0x1_0000,
            0x7fff_ffff,
            0x8000_0000,
            u32::MAX,
        ];
        if self.below(3) == 0 {
            EDGES[self.below(EDGES.len() as u64) as usize]
        } else {
            self.next() as u32
        }
    }
}

/// One virtio-mmio window, accessed raw at any width.
#[derive(Clone, Copy)]
struct Regs(usize);

impl Regs {
    fn r32(self, off: usize) -> u32 {
        // SAFETY: the window comes from the boot info and is identity-mapped MMIO;
        // reads of device registers have no effect on guest memory.
        unsafe { read_volatile((self.0 + off) as *const u32) }
    }
    fn w32(self, off: usize, v: u32) {
        // SAFETY: as for `r32`; the device decides what a write means.
        unsafe { write_volatile((self.0 + off) as *mut u32, v) }
    }
    fn w64(self, off: usize, v: u64) {
        self.w32(off, v as u32);
        self.w32(off + 4, (v >> 32) as u32);
    }
    /// A read of 1, 2, 4 or 8 bytes at `off` (any alignment).
    fn read_width(self, off: usize, width: u64) -> u64 {
        let a = self.0 + off;
        // SAFETY: as for `r32`; `off` stays inside the 4 KiB window (callers bound it).
        unsafe {
            match width {
                1 => u64::from(read_volatile(a as *const u8)),
                2 => u64::from(read_volatile(a as *const u16)),
                4 => u64::from(read_volatile(a as *const u32)),
                _ => read_volatile(a as *const u64),
            }
        }
    }
    fn write_width(self, off: usize, width: u64, v: u64) {
        let a = self.0 + off;
        // SAFETY: as for `read_width`.
        unsafe {
            match width {
                1 => write_volatile(a as *mut u8, v as u8),
                2 => write_volatile(a as *mut u16, v as u16),
                4 => write_volatile(a as *mut u32, v as u32),
                _ => write_volatile(a as *mut u64, v),
            }
        }
    }
    fn features(self) -> u64 {
        self.w32(REG_DEVICE_FEATURES_SEL, 0);
        let lo = u64::from(self.r32(REG_DEVICE_FEATURES));
        self.w32(REG_DEVICE_FEATURES_SEL, 1);
        lo | (u64::from(self.r32(REG_DEVICE_FEATURES)) << 32)
    }
    /// Reset, ACK, DRIVER, VERSION_1 only, FEATURES_OK. True if accepted.
    fn negotiate(self) -> bool {
        self.w32(REG_STATUS, 0);
        self.w32(REG_STATUS, S_ACK);
        self.w32(REG_STATUS, S_ACK | S_DRIVER);
        let f = self.features() & F_VERSION_1;
        self.w32(REG_DRIVER_FEATURES_SEL, 0);
        self.w32(REG_DRIVER_FEATURES, f as u32);
        self.w32(REG_DRIVER_FEATURES_SEL, 1);
        self.w32(REG_DRIVER_FEATURES, (f >> 32) as u32);
        self.w32(REG_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
        self.r32(REG_STATUS) & S_FEATURES_OK != 0
    }
    fn queue_max(self, q: u32) -> u32 {
        self.w32(REG_QUEUE_SEL, q);
        self.r32(REG_QUEUE_NUM_MAX)
    }
    fn set_queue(self, q: u32, size: u32, desc: u64, avail: u64, used: u64) {
        self.w32(REG_QUEUE_SEL, q);
        self.w32(REG_QUEUE_NUM, size);
        self.w64(REG_QUEUE_DESC, desc);
        self.w64(REG_QUEUE_DRIVER, avail);
        self.w64(REG_QUEUE_DEVICE, used);
        self.w32(REG_QUEUE_READY, 1);
    }
    fn driver_ok(self) {
        self.w32(REG_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    }
    fn ack_irq(self) {
        let s = self.r32(REG_INTERRUPT_STATUS);
        self.w32(REG_INTERRUPT_ACK, s);
    }
}

fn zeroed(bytes: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(bytes.max(1), 4096) else {
        io::exit(1)
    };
    // SAFETY: non-zero size; leaked on purpose (the device may still hold it).
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        println!("hostile: out of memory ({} bytes)", bytes);
        io::exit(1)
    }
    p
}

/// A split virtqueue laid out by hand: descriptor table, avail ring and used ring
/// in one leaked zeroed allocation. Nothing here checks anything, on purpose.
struct RawQueue {
    index: u32,
    size: u16,
    base: *mut u8,
    avail_idx: u16,
    last_used: u16,
}

impl RawQueue {
    fn new(index: u32, size: u16) -> Self {
        let n = usize::from(size);
        let base = zeroed(16 * n + 4096 + 4096 + 8 * n);
        RawQueue {
            index,
            size,
            base,
            avail_idx: 0,
            last_used: 0,
        }
    }
    fn desc_addr(&self) -> u64 {
        self.base as u64
    }
    fn avail_addr(&self) -> u64 {
        self.base as u64 + 16 * u64::from(self.size)
    }
    fn used_addr(&self) -> u64 {
        (self.avail_addr() + 6 + 2 * u64::from(self.size) + 4095) & !4095
    }
    fn attach(&self, r: Regs) {
        r.set_queue(
            self.index,
            u32::from(self.size),
            self.desc_addr(),
            self.avail_addr(),
            self.used_addr(),
        );
    }
    fn set_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let p = (self.base as u64 + 16 * u64::from(i % self.size)) as *mut u8;
        // SAFETY: i % size indexes the table allocated in `new`.
        unsafe {
            write_volatile(p.cast::<u64>(), addr);
            write_volatile(p.add(8).cast::<u32>(), len);
            write_volatile(p.add(12).cast::<u16>(), flags);
            write_volatile(p.add(14).cast::<u16>(), next);
        }
    }
    /// Puts `head` in the next avail slot and advances idx by `step` (normally 1).
    fn publish(&mut self, head: u16, step: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        let a = self.avail_addr() as *mut u16;
        // SAFETY: the slot is inside the avail ring allocated in `new`.
        unsafe {
            write_volatile(a.add(2 + slot as usize), head);
            self.avail_idx = self.avail_idx.wrapping_add(step);
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            write_volatile(a.add(1), self.avail_idx);
        }
    }
    fn used_idx(&self) -> u16 {
        // SAFETY: the used ring's idx field, inside the allocation.
        unsafe { read_volatile((self.used_addr() + 2) as *const u16) }
    }
    /// The used element at ring position `n` (id, len).
    fn used_elem(&self, n: u16) -> (u32, u32) {
        let e = self.used_addr() + 4 + 8 * u64::from(n % self.size);
        // SAFETY: inside the used ring.
        unsafe {
            (
                read_volatile(e as *const u32),
                read_volatile((e + 4) as *const u32),
            )
        }
    }
    fn notify(&self, r: Regs) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        r.w32(REG_QUEUE_NOTIFY, self.index);
    }
    /// Waits (bounded) until the device used everything published; returns the
    /// used idx seen.
    fn settle(&mut self, spins: u32) -> u16 {
        for _ in 0..spins {
            if self.used_idx() == self.avail_idx {
                break;
            }
            core::hint::spin_loop();
        }
        self.last_used = self.used_idx();
        self.last_used
    }
}

fn listed(info: &BootInfo) -> impl Iterator<Item = &kvmsandbox_proto::bootinfo::DeviceInfo> {
    info.devices
        .iter()
        .take((info.num_devices as usize).min(MAX_DEVICES))
}

// ---------------------------------------------------------------- hostile-mmio

fn mmio(info: &BootInfo, rng: &mut Rng) -> alloc::string::String {
    let mut accesses = 0u64;
    let mut needs_reset = 0u32;
    let mut live = 0u64;
    for d in listed(info) {
        let r = Regs(d.mmio_base as usize);
        // 1. Random offsets, widths and values over the whole window, with queue
        //    registers writable (FEATURES_OK). Status is left alone here: random
        //    status writes could activate garbage rings over our own RAM.
        r.negotiate();
        for _ in 0..1500 {
            let width = 1u64 << rng.below(4);
            let mut off = rng.below(0x1000 - 8) as usize;
            if rng.below(4) != 0 {
                off &= !(width as usize - 1); // mostly aligned, sometimes not
            }
            if off <= REG_STATUS + 3 && off + width as usize > REG_STATUS {
                continue;
            }
            if rng.below(2) == 0 {
                let _ = r.read_width(off, width);
            } else {
                r.write_width(
                    off,
                    width,
                    u64::from(rng.value()) | (u64::from(rng.value()) << 32),
                );
            }
            accesses += 1;
        }
        // 1b. The same with Status included, so the device does get activated on
        //     garbage rings: any ring address inside RAM is redirected into a
        //     scratch area filled with words whose bit 47 is set, so every buffer
        //     address the device finds there lies far outside RAM.
        let (writes, was_live) = random_with_status(info, r, rng);
        accesses += writes;
        live += was_live;
        // 2. Wrong queue sizes and rings outside RAM, then DRIVER_OK and notify.
        for (i, size) in [0u32, 3, 65535, 0x1_0000, u32::MAX].into_iter().enumerate() {
            r.negotiate();
            let far = [
                info.mem_size,
                0xffff_ffff_ffff_f000,
                u64::MAX - 3,
                0xd000_0000,
                info.mem_size - 8,
            ];
            for q in 0..4 {
                r.set_queue(
                    q,
                    size,
                    far[i],
                    far[(i + 1) % far.len()],
                    far[(i + 2) % far.len()],
                );
            }
            r.driver_ok();
            for q in [0, 1, 2, 3, 7, 0xffff, u32::MAX] {
                r.w32(REG_QUEUE_NOTIFY, q);
            }
            if r.r32(REG_STATUS) & 0x40 != 0 {
                needs_reset += 1;
            }
            r.ack_irq();
            accesses += 40;
        }
        // Valid size, rings outside RAM.
        r.negotiate();
        let max = r.queue_max(0);
        r.set_queue(
            0,
            max,
            info.mem_size,
            u64::MAX - 0xfff,
            0xffff_ffff_0000_0000,
        );
        r.driver_ok();
        r.w32(REG_QUEUE_NOTIFY, 0);
        if r.r32(REG_STATUS) & 0x40 != 0 {
            needs_reset += 1;
        }
        // 3. Notify before DRIVER_OK; DRIVER_OK without FEATURES_OK; skipped steps.
        r.w32(REG_STATUS, 0);
        for q in 0..4 {
            r.w32(REG_QUEUE_NOTIFY, q);
        }
        for s in [
            S_DRIVER_OK,
            S_ACK | S_DRIVER_OK,
            S_ACK | S_DRIVER | S_DRIVER_OK,
            S_FEATURES_OK | S_DRIVER_OK,
            0xff,
            0x7f,
        ] {
            r.w32(REG_STATUS, 0);
            r.w32(REG_STATUS, S_ACK);
            r.w32(REG_STATUS, S_ACK | S_DRIVER);
            r.w32(REG_STATUS, s);
            r.w32(REG_QUEUE_NOTIFY, 0);
            accesses += 5;
        }
        // 4. Reset in the middle of an in-flight request: real rings in our RAM.
        accesses += reset_mid_request(d.kind, r);
        // 5. Config space writes and reads out of range, every width.
        r.negotiate();
        for off in [0usize, 4, 8, 20, 24, 60, 64, 0x100, 0xe00, 0xef8, 0xeff] {
            for width in [1u64, 2, 4, 8] {
                if REG_CONFIG + off + width as usize > 0x1000 {
                    continue;
                }
                r.write_width(REG_CONFIG + off, width, u64::MAX);
                let _ = r.read_width(REG_CONFIG + off, width);
                accesses += 2;
            }
        }
        // 6. Accesses straddling the end of the window (into the next device or
        //    nothing).
        for (off, width) in [(0xffcusize, 8u64), (0xffe, 4), (0xfff, 2), (0xff9, 8)] {
            r.write_width(off, width, u64::MAX);
            let _ = r.read_width(off, width);
            accesses += 2;
        }
        r.w32(REG_STATUS, 0);
    }
    alloc::format!(
        "accesses={} live_on_garbage={} needs_reset={}",
        accesses,
        live,
        needs_reset
    )
}

const SCRATCH: usize = 64 * 1024;

/// Returns (register writes, times the device was seen live on garbage rings).
fn random_with_status(info: &BootInfo, r: Regs, rng: &mut Rng) -> (u64, u64) {
    let scratch = zeroed(SCRATCH);
    let fill = |rng: &mut Rng| {
        for i in 0..SCRATCH / 8 {
            // SAFETY: word i of the scratch allocation.
            unsafe { write_volatile((scratch as *mut u64).add(i), rng.next() | (1 << 47)) };
        }
    };
    fill(rng);
    // Cheaper: 256 random words (the emulator runs ~3 M instructions/s).
    let stir = |rng: &mut Rng| {
        for _ in 0..256 {
            let i = rng.below(SCRATCH as u64 / 8) as usize;
            // SAFETY: word i of the scratch allocation.
            unsafe { write_volatile((scratch as *mut u64).add(i), rng.next() | (1 << 47)) };
        }
    };
    let in_scratch = |rng: &mut Rng| (scratch as u64 + rng.below(SCRATCH as u64 - 0x3000)) as u32;
    let mut n = 0;
    let mut live = 0;
    for round in 0..4 {
        r.negotiate();
        // A plausible start: every queue in the scratch area, then chaos.
        for q in 0..3 {
            let base = scratch as u64 + 0x4000 * u64::from(q);
            r.set_queue(
                q,
                r.queue_max(q).min(256),
                base,
                base + 0x1000,
                base + 0x2000,
            );
        }
        // Live on rings of pure garbage, notified while the garbage changes.
        r.driver_ok();
        if r.r32(REG_STATUS) & (S_DRIVER_OK | 0x40) == S_DRIVER_OK {
            live += 1;
        }
        for k in 0..6 {
            r.w32(REG_QUEUE_NOTIFY, k % 3);
            stir(rng);
        }
        r.negotiate();
        for q in 0..3 {
            let base = scratch as u64 + 0x4000 * u64::from(q);
            r.set_queue(
                q,
                r.queue_max(q).min(256),
                base + 0x800,
                base + 0x1802,
                base + 0x2804,
            );
        }
        for _ in 0..300 {
            let off = [
                REG_STATUS,
                REG_QUEUE_NOTIFY,
                REG_QUEUE_SEL,
                REG_QUEUE_NUM,
                REG_QUEUE_READY,
                REG_INTERRUPT_ACK,
                REG_QUEUE_DESC,
                REG_QUEUE_DESC + 4,
                REG_QUEUE_DRIVER,
                REG_QUEUE_DRIVER + 4,
                REG_QUEUE_DEVICE,
                REG_QUEUE_DEVICE + 4,
                REG_DRIVER_FEATURES,
                REG_DRIVER_FEATURES_SEL,
                REG_DEVICE_FEATURES_SEL,
            ][rng.below(15) as usize];
            let mut v = match off {
                REG_STATUS => [0, 1, 3, 0xb, 0xf, 0x4f, 0x80, rng.value()][rng.below(8) as usize],
                REG_QUEUE_NOTIFY | REG_QUEUE_SEL => rng.below(5) as u32,
                _ => rng.value(),
            };
            let ring_low = matches!(off, REG_QUEUE_DESC | REG_QUEUE_DRIVER | REG_QUEUE_DEVICE);
            if ring_low && u64::from(v) < info.mem_size {
                v = in_scratch(rng);
            }
            if off == REG_QUEUE_READY && v == 1 {
                // After a reset the ring addresses are 0, which is RAM we live in:
                // a queue only goes live with its rings (low halves) in scratch.
                for reg in [REG_QUEUE_DESC, REG_QUEUE_DRIVER, REG_QUEUE_DEVICE] {
                    r.w32(reg, in_scratch(rng));
                }
            }
            r.w32(off, v);
            n += 1;
            if off == REG_STATUS && r.r32(REG_STATUS) & (S_DRIVER_OK | 0x40) == S_DRIVER_OK {
                live += 1;
            }
            if round % 2 == 1 && n % 50 == 0 {
                stir(rng); // fresh garbage under the device's feet
            }
        }
        r.ack_irq();
    }
    r.w32(REG_STATUS, 0);
    (n, live)
}

/// Sets a device up properly, queues work, and resets it straight after the
/// notify. Returns the register accesses made.
fn reset_mid_request(kind: u32, r: Regs) -> u64 {
    if !r.negotiate() {
        return 0;
    }
    let data = zeroed(64 * 1024);
    let mut queues = Vec::new();
    for q in 0..3u32 {
        let max = r.queue_max(q);
        if max == 0 {
            break;
        }
        let rq = RawQueue::new(q, max.min(64) as u16);
        rq.attach(r);
        queues.push(rq);
    }
    r.driver_ok();
    let Some(q0) = queues.first_mut() else {
        return 0;
    };
    let hdr = zeroed(64);
    if kind == device_kind::VIRTIO_BLK {
        // A 64 KiB read of sector 0: header, data, status.
        q0.set_desc(0, hdr as u64, 16, DESC_F_NEXT, 1);
        q0.set_desc(1, data as u64, 64 * 1024, DESC_F_NEXT | DESC_F_WRITE, 2);
        q0.set_desc(2, hdr as u64 + 32, 1, DESC_F_WRITE, 0);
        q0.publish(0, 1);
        q0.notify(r);
    } else if let Some(tx) = queues.get_mut(1) {
        // vsock: a REQUEST to the host on the tx queue.
        let h = vsock_hdr(3, 2, 4000, 1, 0, op::REQUEST, 0);
        // SAFETY: `hdr` is a fresh 64-byte allocation.
        unsafe { core::ptr::copy_nonoverlapping(h.as_ptr(), hdr, h.len()) };
        tx.set_desc(0, hdr as u64, 44, 0, 0);
        tx.publish(0, 1);
        tx.notify(r);
    }
    r.w32(REG_STATUS, 0);
    // And once more with the request surely in flight on the event loop.
    r.w32(REG_STATUS, 0);
    20
}

// ---------------------------------------------------------------- hostile-desc

/// One descriptor attack: queue, header address, data buffer address, rng.
type Attack = fn(&mut RawQueue, u64, u64, &mut Rng);

/// Data buffer of the descriptor attacks; the host test's disk must be smaller.
const BUF_BYTES: usize = 1 << 20;

fn desc(info: &BootInfo, rng: &mut Rng) -> alloc::string::String {
    let Some(d) = listed(info).find(|d| d.kind == device_kind::VIRTIO_BLK) else {
        return alloc::string::String::from("no virtio-blk device");
    };
    let r = Regs(d.mmio_base as usize);
    let mut out = alloc::string::String::new();
    let attacks: [(&str, Attack); 7] = [
        ("self-loop", |q, hdr, _, _| {
            q.set_desc(0, hdr, 16, DESC_F_NEXT, 0);
            q.publish(0, 1);
        }),
        ("cycle", |q, hdr, buf, _| {
            q.set_desc(1, hdr, 16, DESC_F_NEXT, 2);
            q.set_desc(2, buf, 512, DESC_F_NEXT | DESC_F_WRITE, 3);
            q.set_desc(3, hdr + 32, 1, DESC_F_NEXT | DESC_F_WRITE, 1);
            q.publish(1, 1);
        }),
        ("huge-len", |q, hdr, buf, _| {
            q.set_desc(4, hdr, 16, DESC_F_NEXT, 5);
            q.set_desc(5, buf, u32::MAX, DESC_F_NEXT | DESC_F_WRITE, 6);
            q.set_desc(6, hdr + 32, 1, DESC_F_WRITE, 0);
            q.publish(4, 1);
            q.set_desc(7, hdr, u32::MAX, DESC_F_NEXT, 8);
            q.set_desc(8, u64::MAX - 16, u32::MAX, DESC_F_WRITE, 0);
            q.publish(7, 1);
        }),
        ("whole-table-chain", |q, hdr, buf, _| {
            // Every descriptor chained to the next, the last back to the first.
            for i in 0..q.size {
                let (addr, len, fl) = if i == 0 {
                    (hdr, 16, 0)
                } else {
                    (buf, 512, DESC_F_WRITE)
                };
                q.set_desc(i, addr, len, fl | DESC_F_NEXT, (i + 1) % q.size);
            }
            q.publish(0, 1);
        }),
        ("indirect-1000", |q, hdr, buf, _| {
            // An indirect table of 1000 descriptors, each pointing at the next.
            let table = zeroed(16 * 1000);
            for i in 0..1000u64 {
                let p = (table as u64 + 16 * i) as *mut u8;
                // SAFETY: inside the 16000-byte table just allocated.
                unsafe {
                    write_volatile(p.cast::<u64>(), if i == 0 { hdr } else { buf });
                    write_volatile(p.add(8).cast::<u32>(), 16);
                    let fl = if i == 0 {
                        DESC_F_NEXT
                    } else {
                        DESC_F_NEXT | DESC_F_WRITE
                    };
                    write_volatile(
                        p.add(12).cast::<u16>(),
                        if i == 999 { DESC_F_WRITE } else { fl },
                    );
                    write_volatile(p.add(14).cast::<u16>(), (i + 1) as u16);
                }
            }
            q.set_desc(9, table as u64, 16 * 1000, DESC_F_INDIRECT, 0);
            q.publish(9, 1);
            // And one whose table lies outside RAM and loops on itself.
            q.set_desc(
                10,
                u64::MAX - 0xfff,
                0xffff_fff0,
                DESC_F_INDIRECT | DESC_F_NEXT,
                10,
            );
            q.publish(10, 1);
        }),
        ("random", |q, hdr, buf, rng| {
            for i in 0..q.size {
                // Never at our own RAM outside `buf`: the device would write there.
                let addr = match rng.below(4) {
                    0 => hdr,
                    1 => buf + rng.below(4096),
                    2 => rng.next() | (1 << 48),
                    _ => (1 << 40) + u64::from(rng.value()),
                };
                q.set_desc(
                    i,
                    addr,
                    rng.value(),
                    rng.next() as u16 & 7,
                    rng.next() as u16,
                );
            }
            for _ in 0..32 {
                let head = rng.next() as u16;
                q.publish(head, 1);
            }
        }),
        ("avail-jump", |q, hdr, buf, _| {
            q.set_desc(11, hdr, 16, DESC_F_NEXT, 12);
            q.set_desc(12, buf, 512, DESC_F_WRITE | DESC_F_NEXT, 13);
            q.set_desc(13, hdr + 32, 1, DESC_F_WRITE, 0);
            q.publish(11, 60000);
        }),
    ];
    for (name, attack) in attacks {
        if !r.negotiate() {
            return alloc::format!("negotiation refused before {}", name);
        }
        let max = r.queue_max(0);
        let mut q = RawQueue::new(0, max.clamp(1, 256) as u16);
        q.attach(r);
        r.driver_ok();
        let hdr = zeroed(64); // a T_IN header of zeros: read sector 0
                              // Larger than the test disk, so even a read the device wrongly honours in
                              // full stays inside it.
        let buf = zeroed(BUF_BYTES);
        attack(&mut q, hdr as u64, buf as u64, rng);
        q.notify(r);
        let used = q.settle(200_000);
        let status = r.r32(REG_STATUS);
        let (id, len) = q.used_elem(used.wrapping_sub(1));
        out.push_str(&alloc::format!(
            "{}:used={},status={:#x},last=({},{}) ",
            name,
            used,
            status,
            id,
            len
        ));
        r.ack_irq();
        r.w32(REG_STATUS, 0);
    }
    out
}

// --------------------------------------------------------------- hostile-vsock

mod op {
    pub const REQUEST: u16 = 1;
    pub const RST: u16 = 3;
    pub const SHUTDOWN: u16 = 4;
    pub const RW: u16 = 5;
    pub const CREDIT_UPDATE: u16 = 6;
    pub const CREDIT_REQUEST: u16 = 7;
}

fn vsock_hdr(
    src_cid: u64,
    dst_cid: u64,
    src_port: u32,
    dst_port: u32,
    len: u32,
    op: u16,
    buf_alloc: u32,
) -> [u8; 44] {
    let h = crate::virtio::vsock::packet::Header {
        src_cid,
        dst_cid,
        src_port,
        dst_port,
        len,
        type_: 1,
        op,
        flags: 0,
        buf_alloc,
        fwd_cnt: 0,
    };
    h.to_bytes()
}

/// The tx side of a raw vsock device: a header descriptor, optionally chained to
/// a payload descriptor; slot pairs are reused once the device used them.
struct Tx {
    q: RawQueue,
    hdrs: *mut u8,
    sent: u64,
    stalled: u64,
}

/// The rx side: `size` buffers of 4 KiB, re-posted as the device uses them.
struct Rx {
    q: RawQueue,
    bufs: *mut u8,
    received: u64,
    /// (op, our port) of every packet received.
    seen: Vec<(u16, u32)>,
}

impl Rx {
    fn post_all(&mut self, r: Regs) {
        for i in 0..self.q.size {
            self.q.set_desc(
                i,
                self.bufs as u64 + 4096 * u64::from(i),
                4096,
                DESC_F_WRITE,
                0,
            );
            self.q.publish(i, 1);
        }
        self.q.notify(r);
    }
    /// Recycles used buffers, recording what arrived.
    fn drain(&mut self, r: Regs) {
        let mut any = false;
        while self.q.last_used != self.q.used_idx() {
            let (id, _) = self.q.used_elem(self.q.last_used);
            self.q.last_used = self.q.last_used.wrapping_add(1);
            let id = (id % u32::from(self.q.size)) as u16;
            let p = self.bufs as u64 + 4096 * u64::from(id);
            // SAFETY: buffer `id` of the rx area, 4096 bytes.
            let b = unsafe { core::slice::from_raw_parts(p as *const u8, 44) };
            if let Some(h) = crate::virtio::vsock::packet::Header::decode(b) {
                if self.seen.len() < 4096 {
                    self.seen.push((h.op, h.dst_port));
                }
            }
            self.received += 1;
            self.q.set_desc(id, p, 4096, DESC_F_WRITE, 0);
            self.q.publish(id, 1);
            any = true;
        }
        if any {
            self.q.notify(r);
        }
    }
}

/// Sends one packet; false (and `stalled` counted) when the device stopped
/// taking tx buffers for a while.
fn send(tx: &mut Tx, rx: &mut Rx, r: Regs, hdr: [u8; 44], data: Option<(u64, u32)>) -> bool {
    let pairs = tx.q.size / 2;
    let mut rounds = 0;
    while tx.q.avail_idx.wrapping_sub(tx.q.used_idx()) >= pairs {
        if rounds == 20 {
            tx.stalled += 1;
            return false;
        }
        tx.q.notify(r);
        tx.q.settle(5_000);
        rx.drain(r);
        rounds += 1;
    }
    let k = tx.q.avail_idx % pairs;
    let h = (tx.hdrs as u64 + 64 * u64::from(k)) as *mut u8;
    // SAFETY: slot k of the header area (pairs * 64 bytes) allocated in `vsock`.
    unsafe { core::ptr::copy_nonoverlapping(hdr.as_ptr(), h, 44) };
    match data {
        Some((addr, len)) => {
            tx.q.set_desc(2 * k, h as u64, 44, DESC_F_NEXT, 2 * k + 1);
            tx.q.set_desc(2 * k + 1, addr, len, 0, 0);
        }
        None => tx.q.set_desc(2 * k, h as u64, 44, 0, 0),
    }
    tx.q.publish(2 * k, 1);
    tx.sent += 1;
    if tx.sent.is_multiple_of(16) {
        tx.q.notify(r);
    }
    true
}

/// Lets the device work through what was sent, draining rx, for a bounded time.
fn pump(tx: &mut Tx, rx: &mut Rx, r: Regs, rounds: u32) {
    tx.q.notify(r);
    for _ in 0..rounds {
        let before = rx.received;
        tx.q.settle(5_000);
        rx.drain(r);
        if tx.q.used_idx() == tx.q.avail_idx && rx.received == before {
            break;
        }
    }
}

fn vsock(info: &BootInfo, rng: &mut Rng) -> alloc::string::String {
    let Some(d) = listed(info).find(|d| d.kind == device_kind::VIRTIO_VSOCK) else {
        return alloc::string::String::from("no virtio-vsock device");
    };
    let r = Regs(d.mmio_base as usize);
    if !r.negotiate() {
        return alloc::string::String::from("negotiation refused");
    }
    let cid = u64::from(r.r32(REG_CONFIG)) | (u64::from(r.r32(REG_CONFIG + 4)) << 32);
    let size = |q: u32| r.queue_max(q).clamp(2, 128) as u16;
    let mut rx = Rx {
        q: RawQueue::new(0, size(0)),
        bufs: zeroed(4096 * 128),
        received: 0,
        seen: Vec::new(),
    };
    let mut tx = Tx {
        q: RawQueue::new(1, size(1)),
        hdrs: zeroed(64 * 128),
        sent: 0,
        stalled: 0,
    };
    let ev = RawQueue::new(2, size(2));
    rx.q.attach(r);
    tx.q.attach(r);
    ev.attach(r);
    r.driver_ok();
    let payload = zeroed(64 * 1024);

    // 1. REQUEST flood to ports without listeners, no rx buffers posted yet: the
    //    RSTs pile up on the host until it stops taking tx.
    let mut flood = 0u32;
    while flood < 400
        && send(
            &mut tx,
            &mut rx,
            r,
            vsock_hdr(cid, 2, 20000 + flood, 30000 + flood, 0, op::REQUEST, 65536),
            None,
        )
    {
        flood += 1;
    }
    let stalled_before_rx = tx.stalled;
    rx.post_all(r);
    pump(&mut tx, &mut rx, r, 100);
    let rsts = rx.seen.iter().filter(|s| s.0 == op::RST).count();
    // 2. Nonsense without a connection: RW, SHUTDOWN, CREDIT_*, RST, unknown ops
    //    and types, lying lengths, wrong source CIDs, random destination CIDs.
    for i in 0..600u32 {
        let dst = if i % 3 == 0 { 2 } else { rng.next() };
        let src = if i % 7 == 0 { rng.next() } else { cid };
        let opc = [
            op::RW,
            op::SHUTDOWN,
            op::CREDIT_UPDATE,
            op::CREDIT_REQUEST,
            op::RST,
            0,
            99,
        ][(i % 7) as usize];
        let len = [0u32, 10, 4096, 65536, 65537, u32::MAX][rng.below(6) as usize];
        let data_len = [0u32, 10, 44, 4096, 65536][rng.below(5) as usize];
        let mut h = vsock_hdr(
            src,
            dst,
            rng.next() as u32,
            rng.next() as u32 & 0xffff,
            len,
            opc,
            rng.value(),
        );
        if i % 11 == 0 {
            h[28] = 7; // type: not STREAM
        }
        let data = (data_len > 0).then_some((payload as u64, data_len));
        if !send(&mut tx, &mut rx, r, h, data) {
            break;
        }
    }
    pump(&mut tx, &mut rx, r, 100);
    // 3. A real connection (the host test listens on port 5555) claiming
    //    buf_alloc 0, then 1 MiB regardless of credit, then lengths that lie.
    let port = 40000;
    send(
        &mut tx,
        &mut rx,
        r,
        vsock_hdr(cid, 2, port, 5555, 0, op::REQUEST, 0),
        None,
    );
    tx.q.notify(r);
    for _ in 0..400 {
        tx.q.settle(2_000);
        rx.drain(r);
        if rx
            .seen
            .iter()
            .any(|&(o, p)| p == port && (o == 2 || o == op::RST))
        {
            break;
        }
    }
    let connected = rx.seen.contains(&(2, port));
    for _ in 0..32 {
        let h = vsock_hdr(cid, 2, port, 5555, 32 * 1024, op::RW, 0);
        if !send(&mut tx, &mut rx, r, h, Some((payload as u64, 32 * 1024))) {
            break;
        }
    }
    send(
        &mut tx,
        &mut rx,
        r,
        vsock_hdr(cid, 2, port, 5555, 65536, op::RW, 0),
        Some((payload as u64, 16)),
    );
    send(
        &mut tx,
        &mut rx,
        r,
        vsock_hdr(cid, 2, port, 5555, u32::MAX, op::RW, 0),
        Some((payload as u64, 64 * 1024)),
    );
    send(
        &mut tx,
        &mut rx,
        r,
        vsock_hdr(cid, 2, port, 5555, 0, op::REQUEST, 0),
        None,
    ); // duplicate
    pump(&mut tx, &mut rx, r, 100);
    let reset_by_host = rx.seen.contains(&(op::RST, port));
    let summary = alloc::format!(
        "cid={} sent={} received={} flood={} rsts={} stalled_before_rx={} stalled={} connected={} reset_by_host={}",
        cid, tx.sent, rx.received, flood, rsts, stalled_before_rx, tx.stalled, connected, reset_by_host
    );
    // The connection may still be open on the host: the reset must clean it up.
    r.ack_irq();
    r.w32(REG_STATUS, 0);
    summary
}

// --------------------------------------------------------------- hostile-reset

/// Rounds of the reset storm.
const RESET_ROUNDS: u32 = 6;

/// A raw vsock device up with rx buffers posted, tx and event queues ready.
fn vsock_up(r: Regs) -> Option<(Rx, Tx)> {
    if !r.negotiate() {
        return None;
    }
    let size = |q: u32| r.queue_max(q).clamp(2, 32) as u16;
    let rx = Rx {
        q: RawQueue::new(0, size(0)),
        bufs: zeroed(4096 * 32),
        received: 0,
        seen: Vec::new(),
    };
    let tx = Tx {
        q: RawQueue::new(1, size(1)),
        hdrs: zeroed(64 * 32),
        sent: 0,
        stalled: 0,
    };
    let ev = RawQueue::new(2, size(2));
    rx.q.attach(r);
    tx.q.attach(r);
    ev.attach(r);
    Some((rx, tx))
}

/// Resets vsock and blk over and over while the host holds connections: each
/// round waits (bounded) until a host stream reached the guest as a REQUEST, then
/// writes 0 to the vsock Status with that connection live, resets blk in the
/// middle of a read, and re-activates vsock with a REQUEST to the host already
/// published on tx before DRIVER_OK. Returns the summary line.
fn reset_storm(info: &BootInfo, rng: &mut Rng) -> alloc::string::String {
    let Some(vd) = listed(info).find(|d| d.kind == device_kind::VIRTIO_VSOCK) else {
        return alloc::string::String::from("no virtio-vsock device");
    };
    let v = Regs(vd.mmio_base as usize);
    let blk = listed(info)
        .find(|d| d.kind == device_kind::VIRTIO_BLK)
        .map(|d| Regs(d.mmio_base as usize));
    let cid = u64::from(v.r32(REG_CONFIG)) | (u64::from(v.r32(REG_CONFIG + 4)) << 32);
    println!("hostile-reset: waiting for host streams");
    let (mut live, mut early_requests, mut blk_resets) = (0u32, 0u32, 0u32);
    for round in 0..RESET_ROUNDS {
        // 1. Up, with rx buffers, until a host stream shows up as a REQUEST.
        let Some((mut rx, mut tx)) = vsock_up(v) else {
            return alloc::string::String::from("negotiation refused");
        };
        v.driver_ok();
        rx.post_all(v);
        let mut seen = false;
        for _ in 0..5_000 {
            rx.drain(v);
            if rx.seen.iter().any(|&(o, _)| o == op::REQUEST) {
                seen = true;
                break;
            }
            rx.q.settle(100);
        }
        live += u32::from(seen);
        // 2. Reset with the host's connection registered in the device.
        v.ack_irq();
        v.w32(REG_STATUS, 0);
        // 3. blk: reset in the middle of a queued read.
        if let Some(b) = blk {
            accesses_blk_reset(b);
            blk_resets += 1;
        }
        // 4. A REQUEST to the host published before DRIVER_OK, then DRIVER_OK.
        let Some((mut rx2, mut tx2)) = vsock_up(v) else {
            return alloc::string::String::from("negotiation refused");
        };
        let port = 7000 + round;
        let _ = send(
            &mut tx2,
            &mut rx2,
            v,
            vsock_hdr(cid, 2, 50000 + round, port, 0, op::REQUEST, 65536),
            None,
        );
        early_requests += 1;
        v.driver_ok();
        rx2.post_all(v);
        pump(&mut tx2, &mut rx2, v, 20);
        // 5. And straight back to 0, a few times, with some garbage in between.
        for _ in 0..3 {
            v.w32(REG_STATUS, 0);
            v.w32(REG_STATUS, S_ACK);
            v.w32(
                REG_STATUS,
                [S_ACK | S_DRIVER, 0, 0xff][rng.below(3) as usize],
            );
        }
        v.w32(REG_STATUS, 0);
        let _ = (&mut tx, &mut rx);
    }
    alloc::format!(
        "rounds={} live={} early_requests={} blk_resets={}",
        RESET_ROUNDS,
        live,
        early_requests,
        blk_resets
    )
}

/// blk up, one read queued and notified, reset at once.
fn accesses_blk_reset(r: Regs) {
    if !r.negotiate() {
        return;
    }
    let mut q = RawQueue::new(0, r.queue_max(0).clamp(1, 16) as u16);
    q.attach(r);
    r.driver_ok();
    let hdr = zeroed(64);
    let buf = zeroed(4096);
    q.set_desc(0, hdr as u64, 16, DESC_F_NEXT, 1);
    q.set_desc(1, buf as u64, 4096, DESC_F_WRITE | DESC_F_NEXT, 2);
    q.set_desc(2, hdr as u64 + 32, 1, DESC_F_WRITE, 0);
    q.publish(0, 1);
    q.notify(r);
    r.w32(REG_STATUS, 0);
}

// ------------------------------------------------------------ hostile-unmapped

fn unmapped(info: &BootInfo) -> alloc::string::String {
    // RAM ends at mem_size; devices sit at 0xd000_0000 + 4 KiB * n.
    let mut addrs: Vec<u64> = Vec::new();
    let devs_end = 0xd000_0000u64 + 0x1000 * MAX_DEVICES as u64;
    addrs.extend_from_slice(&[
        info.mem_size,
        info.mem_size + 0x1000,
        0xc000_0000,
        0xcfff_fff0,
        devs_end,
        devs_end + 0x800,
        0xd010_0000,
        0xdfff_fff8,
        0xe000_0000,
        0xf000_0000,
        0xfebf_f000,
        0xfffb_c000,
        0xfffb_d000,
        0xffff_f000,
        0xffff_fff8,
    ]);
    let mut reads = 0u64;
    let mut sticky = alloc::string::String::new();
    for &a in addrs
        .iter()
        .filter(|&&a| a < 0x1_0000_0000 && a >= info.mem_size)
    {
        let mut kept = false;
        for width in [1u64, 2, 4, 8] {
            if a + width > 0x1_0000_0000 {
                continue;
            }
            let r = Regs(a as usize);
            let v = 0xdead_beef_cafe_f00d_u64 & (u64::MAX >> (64 - 8 * width));
            r.write_width(0, width, v);
            kept |= r.read_width(0, width) == v;
            reads += 1;
        }
        if kept {
            sticky.push_str(&alloc::format!("{:#x},", a));
        }
    }
    // `sticky` lists addresses where a write could be read back (something is
    // there after all, e.g. KVM's private pages): worth knowing, not a failure.
    alloc::format!(
        "addresses={} accesses={} sticky=[{}]",
        addrs.len(),
        reads * 2,
        sticky.trim_end_matches(',')
    )
}

// ----------------------------------------------------------------- hostile-pio

fn out_w(port: u16, width: u32, v: u32) {
    // SAFETY: port I/O has no memory effects; the VMM owns every port.
    unsafe {
        match width {
            1 => {
                core::arch::asm!("out dx, al", in("dx") port, in("al") v as u8, options(nomem, nostack, preserves_flags))
            }
            2 => {
                core::arch::asm!("out dx, ax", in("dx") port, in("ax") v as u16, options(nomem, nostack, preserves_flags))
            }
            _ => {
                core::arch::asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
            }
        }
    }
}

fn in_w(port: u16, width: u32) -> u32 {
    let v: u32;
    // SAFETY: as for `out_w`.
    unsafe {
        match width {
            1 => {
                let b: u8;
                core::arch::asm!("in al, dx", in("dx") port, out("al") b, options(nomem, nostack, preserves_flags));
                v = u32::from(b);
            }
            2 => {
                let w: u16;
                core::arch::asm!("in ax, dx", in("dx") port, out("ax") w, options(nomem, nostack, preserves_flags));
                v = u32::from(w);
            }
            _ => {
                core::arch::asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags))
            }
        }
    }
    v
}

/// Ports left alone: the exit port (any write ends the VM, by design), the
/// keyboard controller (0x64 can reset the machine), our own PIC and ELCR
/// (in-kernel; garbage there only breaks this guest's interrupts) and COM1
/// (handled separately, then restored). An access of `width` at `port` is
/// skipped if it touches any of them.
fn spared(port: u32, width: u32) -> bool {
    const SPARED: [(u32, u32); 6] = [
        (0x20, 0x21),
        (0xa0, 0xa1),
        (0x4d0, 0x4d1),
        (0x60, 0x64),
        (0x3f8, 0x3ff),
        (0x501, 0x504),
    ];
    SPARED
        .iter()
        .any(|&(lo, hi)| port <= hi && port + width > lo)
}

fn pio(rng: &mut Rng) -> alloc::string::String {
    let mut n = 0u64;
    let mut ones = 0u64;
    // Every port below 0x1000 (where PC devices live) and every 7th above, byte
    // wide; every 61st at word and dword width, some misaligned. (All 64 Ki
    // ports take ~13 s under PVM.)
    for port in (0..=0xffffu32).filter(|p| *p < 0x1000 || p % 7 == 0 || *p >= 0xfff0) {
        for width in [1u32, 2, 4] {
            if (width > 1 && port % 61 != 0) || port + width > 0x1_0000 || spared(port, width) {
                continue;
            }
            out_w(port as u16, width, rng.value());
            if in_w(port as u16, width) == u32::MAX >> (32 - 8 * width) {
                ones += 1;
            }
            n += 2;
        }
    }
    // Garbage in the UART: divisor latch, loopback, FIFO control, scratch, and
    // bytes that are not UTF-8 on the console.
    for i in 0..300u32 {
        let reg = 1 + rng.below(7) as u16;
        out_w(0x3f8 + reg, 1, rng.value());
        let _ = in_w(0x3f8 + rng.below(8) as u16, 1);
        if i % 10 == 0 {
            out_w(0x3f8, 1, 0x80 | rng.below(128) as u32);
        }
        n += 2;
    }
    // Back to 8N1, no divisor latch, no loopback, no interrupts: the console
    // must work again for the lines that follow.
    out_w(0x3fb, 1, 0x03);
    out_w(0x3f9, 1, 0x00);
    out_w(0x3fc, 1, 0x00);
    out_w(0x3fa, 1, 0x00);
    println!();
    alloc::format!("accesses={} all_ones_reads={}", n, ones)
}
