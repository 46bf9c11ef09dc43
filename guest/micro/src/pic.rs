//! The legacy 8259 PIC pair, remapped to vectors 0x20-0x2f. The VMM sets the
//! LAPIC's LINT0 to ExtINT, so PIC interrupts reach vCPU 0; each device's IRQ line
//! is driven by a KVM irqfd (edge: one pulse per signal).

use crate::io::{inb, outb};

const MASTER_CMD: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_CMD: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;
/// Vector of IRQ 0.
pub const VECTOR_BASE: u8 = 0x20;
const EOI: u8 = 0x20;
/// The cascade line on the master.
const CASCADE_IRQ: u8 = 2;

/// Programs both PICs (ICW1-4) and masks every line but those in `unmasked`
/// (a bitmask of IRQ lines; the cascade is opened when a slave line is used).
pub fn init(unmasked: u16) {
    outb(MASTER_CMD, 0x11); // ICW1: edge, cascade, ICW4 follows
    outb(SLAVE_CMD, 0x11);
    outb(MASTER_DATA, VECTOR_BASE); // ICW2: vector offsets
    outb(SLAVE_DATA, VECTOR_BASE + 8);
    outb(MASTER_DATA, 1 << CASCADE_IRQ); // ICW3: slave on IRQ 2
    outb(SLAVE_DATA, CASCADE_IRQ);
    outb(MASTER_DATA, 0x01); // ICW4: 8086 mode
    outb(SLAVE_DATA, 0x01);
    set_mask(unmasked);
}

/// Unmasks exactly the lines in `unmasked`.
pub fn set_mask(unmasked: u16) {
    let mut open = unmasked;
    if open & 0xff00 != 0 {
        open |= 1 << CASCADE_IRQ;
    }
    outb(MASTER_DATA, !(open as u8));
    outb(SLAVE_DATA, !((open >> 8) as u8));
}

/// In-service register bit of `irq` (OCW3 read ISR), to tell spurious IRQ 7/15.
fn in_service(irq: u8) -> bool {
    let (cmd, bit) = if irq < 8 {
        (MASTER_CMD, irq)
    } else {
        (SLAVE_CMD, irq - 8)
    };
    outb(cmd, 0x0b);
    inb(cmd) & (1 << bit) != 0
}

/// Ends the interrupt of `irq`. Returns false for a spurious IRQ 7/15, which must
/// not be counted as a device interrupt.
pub fn eoi(irq: u8) -> bool {
    if (irq == 7 || irq == 15) && !in_service(irq) {
        if irq == 15 {
            outb(MASTER_CMD, EOI); // the master did see the cascade line
        }
        return false;
    }
    if irq >= 8 {
        outb(SLAVE_CMD, EOI);
    }
    outb(MASTER_CMD, EOI);
    true
}
