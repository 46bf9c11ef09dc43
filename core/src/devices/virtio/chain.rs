//! Descriptor-chain checks shared by the devices.
//!
//! We never offer `VIRTIO_RING_F_INDIRECT_DESC`, but virtio-queue's chain iterator
//! follows an indirect table whenever a descriptor carries the flag. A driver that
//! uses a feature it was not offered is broken or hostile, so the devices refuse
//! such chains instead of serving them (virtio 1.x §2.7.5.3.1: the driver MUST
//! NOT set INDIRECT unless the feature was negotiated).
//!
//! The check reads the descriptor flags on its own walk. A guest that sets the flag
//! between this walk and the device's gains nothing: virtio-queue bounds and
//! validates an indirect table like any chain.

use virtio_bindings::virtio_ring::VRING_DESC_F_INDIRECT;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory};

/// Whether the chain starting at `head` in `queue`'s descriptor table has a
/// descriptor with the INDIRECT flag (within the queue size's worth of
/// descriptors virtio-queue would follow; a walk that leaves the table or guest
/// memory stops there, as virtio-queue's does).
pub fn uses_indirect<M: GuestMemory>(mem: &M, queue: &Queue, head: u16) -> bool {
    let table = queue.desc_table();
    let size = queue.size();
    let mut index = head;
    for _ in 0..size {
        if index >= size {
            return false;
        }
        let Some(addr) = table.checked_add(u64::from(index) * 16) else {
            return false;
        };
        let Ok(d) = mem.read_obj::<Descriptor>(GuestAddress(addr)) else {
            return false;
        };
        if d.flags() & VRING_DESC_F_INDIRECT as u16 != 0 {
            return true;
        }
        if !d.has_next() {
            return false;
        }
        index = d.next();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::virtio_ring::VRING_DESC_F_NEXT;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::GuestMemoryMmap;

    #[test]
    fn finds_indirect_anywhere_in_a_chain_and_nothing_in_direct_ones() {
        let mem: GuestMemoryMmap<()> =
            GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let vq = MockSplitQueue::new(&mem, 16);
        let next = VRING_DESC_F_NEXT as u16;
        let ind = VRING_DESC_F_INDIRECT as u16;
        let descs = [
            Descriptor::new(0x8000, 16, next, 1),
            Descriptor::new(0x9000, 16, 0, 0),
            Descriptor::new(0xa000, 16, next, 3),
            Descriptor::new(0xb000, 32, ind, 0),
            Descriptor::new(0xc000, 32, ind, 0),
        ]
        .map(virtio_queue::desc::RawDescriptor::from);
        vq.build_multiple_desc_chains(&descs).unwrap();
        let q: Queue = vq.create_queue().unwrap();
        assert!(!uses_indirect(&mem, &q, 0));
        assert!(
            uses_indirect(&mem, &q, 2),
            "indirect as the second descriptor"
        );
        assert!(uses_indirect(&mem, &q, 4), "indirect as the head");
        assert!(!uses_indirect(&mem, &q, 16), "head out of range");
    }
}
