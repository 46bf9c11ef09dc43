//! The micro guest's split virtqueue (guest/micro/src/virtio/queue.rs), driven
//! by a test that plays the device on the very rings the driver allocated.

use kvmsandbox_micro_host_tests::queue::{Buf, Virtqueue, MAX_CHAIN};

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;

/// The device side of one queue: reads the avail ring, writes the used ring.
struct Device {
    desc: u64,
    avail: u64,
    used: u64,
    size: u16,
    /// Next avail entry the device will take.
    next_avail: u16,
    /// Next used entry the device will write.
    used_idx: u16,
}

#[derive(Debug, PartialEq, Eq)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

impl Device {
    fn new(q: &Virtqueue) -> Self {
        let (desc, avail, used) = q.addresses();
        Device {
            desc,
            avail,
            used,
            size: q.size(),
            next_avail: 0,
            used_idx: 0,
        }
    }

    fn read_u16(addr: u64) -> u16 {
        // SAFETY: every address passed here lies inside a ring the queue allocated.
        unsafe { core::ptr::read_volatile(addr as *const u16) }
    }

    fn avail_idx(&self) -> u16 {
        Self::read_u16(self.avail + 2)
    }

    fn desc(&self, id: u16) -> Desc {
        assert!(
            id < self.size,
            "descriptor id {id} outside a queue of {}",
            self.size
        );
        let p = self.desc + 16 * u64::from(id);
        // SAFETY: id < size: inside the descriptor table.
        unsafe {
            Desc {
                addr: core::ptr::read_volatile(p as *const u64),
                len: core::ptr::read_volatile((p + 8) as *const u32),
                flags: Self::read_u16(p + 12),
                next: Self::read_u16(p + 14),
            }
        }
    }

    /// Takes the next available chain: its head and descriptors.
    fn take(&mut self) -> Option<(u16, Vec<Desc>)> {
        if self.avail_idx() == self.next_avail {
            return None;
        }
        let slot = u64::from(self.next_avail % self.size);
        let head = Self::read_u16(self.avail + 4 + 2 * slot);
        self.next_avail = self.next_avail.wrapping_add(1);
        let mut chain = vec![self.desc(head)];
        while chain.last().is_some_and(|d| d.flags & DESC_F_NEXT != 0) {
            assert!(chain.len() <= usize::from(self.size), "descriptor loop");
            let next = chain.last().map(|d| d.next).unwrap_or_default();
            chain.push(self.desc(next));
        }
        Some((head, chain))
    }

    /// Returns chain `head` with `len` bytes written.
    fn complete(&mut self, head: u16, len: u32) {
        let slot = u64::from(self.used_idx % self.size);
        let elem = self.used + 4 + 8 * slot;
        // SAFETY: slot < size: inside the used ring; idx is the u16 at offset 2.
        unsafe {
            core::ptr::write_volatile(elem as *mut u32, u32::from(head));
            core::ptr::write_volatile((elem + 4) as *mut u32, len);
            self.used_idx = self.used_idx.wrapping_add(1);
            core::ptr::write_volatile((self.used + 2) as *mut u16, self.used_idx);
        }
    }
}

#[test]
fn indices_run_across_the_16_bit_wrap() {
    let mut q = Virtqueue::new(8, 0);
    let mut dev = Device::new(&q);
    let data = [0u8; 16];
    let mut done = 0u64;
    // Batches of 1..=8 chains, completed in reverse order, until both indices
    // have wrapped past 65535 (twice over for good measure).
    let mut batch = 1usize;
    while done < 140_000 {
        let mut heads = Vec::new();
        for i in 0..batch {
            let head = q
                .push(&[Buf::readable(&data[..i + 1])])
                .expect("a free descriptor");
            heads.push(head);
        }
        assert_eq!(
            dev.avail_idx(),
            (done + batch as u64) as u16,
            "avail idx after {done} chains"
        );
        let mut taken = Vec::new();
        while let Some((head, chain)) = dev.take() {
            assert_eq!(chain.len(), 1);
            taken.push((head, chain[0].len));
        }
        assert_eq!(
            taken.iter().map(|t| t.0).collect::<Vec<_>>(),
            heads,
            "device sees the heads in push order"
        );
        for &(head, len) in taken.iter().rev() {
            dev.complete(head, len * 3);
        }
        for &(head, len) in taken.iter().rev() {
            assert_eq!(
                q.pop_used(),
                Some((head, len * 3)),
                "used element after {done} chains"
            );
        }
        assert_eq!(q.pop_used(), None, "nothing more used after {done} chains");
        assert_eq!(
            q.free_count(),
            8,
            "every descriptor back after {done} chains"
        );
        done += batch as u64;
        batch = batch % 8 + 1;
    }
    assert!(
        dev.used_idx < 65535 && done > 2 * 65536,
        "both indices wrapped ({done} chains)"
    );
}

#[test]
fn a_chain_links_its_descriptors_and_returns_them_all() {
    let mut q = Virtqueue::new(4, 1);
    let mut dev = Device::new(&q);
    let hdr = [1u8; 44];
    let body = [2u8; 100];
    let mut reply = [0u8; 64];
    let head = q
        .push(&[
            Buf::readable(&hdr),
            Buf::readable(&body),
            Buf::writable(&mut reply),
        ])
        .expect("3 of 4 free");
    assert_eq!(q.free_count(), 1);
    let (h, chain) = dev.take().expect("the chain is available");
    assert_eq!(h, head);
    assert_eq!(chain.len(), 3);
    assert_eq!(
        (chain[0].addr, chain[0].len, chain[0].flags),
        (hdr.as_ptr() as u64, 44, DESC_F_NEXT)
    );
    assert_eq!(
        (chain[1].addr, chain[1].len, chain[1].flags),
        (body.as_ptr() as u64, 100, DESC_F_NEXT)
    );
    assert_eq!((chain[2].len, chain[2].flags), (64, DESC_F_WRITE));
    // A second chain of 2 does not fit in the 1 free descriptor.
    assert_eq!(q.push(&[Buf::readable(&hdr), Buf::readable(&body)]), None);
    dev.complete(head, 7);
    assert_eq!(q.pop_used(), Some((head, 7)));
    assert_eq!(q.free_count(), 4, "the whole chain is free again");
}

#[test]
fn refuses_empty_and_overlong_chains() {
    let mut q = Virtqueue::new(16, 0);
    let b = [0u8; 4];
    assert_eq!(q.push(&[]), None);
    let too_long = vec![Buf::readable(&b); MAX_CHAIN + 1];
    assert_eq!(q.push(&too_long), None);
    assert_eq!(q.free_count(), 16, "a refused push takes no descriptor");
    let longest = vec![Buf::readable(&b); MAX_CHAIN];
    assert!(q.push(&longest).is_some());
    assert_eq!(q.free_count(), 16 - MAX_CHAIN);
}

#[test]
fn a_used_id_out_of_range_is_dropped_without_touching_the_free_list() {
    let mut q = Virtqueue::new(4, 0);
    let mut dev = Device::new(&q);
    let b = [0u8; 4];
    let head = q.push(&[Buf::readable(&b)]).expect("free descriptor");
    dev.take().expect("available");
    dev.complete(4, 1); // a broken device: no descriptor 4
    assert_eq!(q.pop_used(), None);
    assert_eq!(q.free_count(), 3);
    dev.complete(head, 1);
    assert_eq!(q.pop_used(), Some((head, 1)));
    assert_eq!(q.free_count(), 4);
}
