//! The interrupt descriptor table: one entry stub per vector 0-47 in `global_asm!`
//! (stable Rust has no `x86-interrupt` ABI). Each stub pushes a uniform frame (a
//! zero error code where the CPU pushes none, then the vector), saves the
//! caller-saved registers and calls [`crate::interrupts::dispatch`]. The target has
//! no red zone and no SSE, so nothing else needs saving.

use core::mem::size_of;

/// Vectors with a stub: the 32 CPU exceptions and the 16 legacy PIC lines.
pub const VECTORS: usize = 48;

core::arch::global_asm!(
    ".section .text.isr, \"ax\"",
    ".macro ISR_NOERR n",
    "isr_\\n:",
    "    push 0",
    "    push \\n",
    "    jmp isr_common_entry",
    ".endm",
    ".macro ISR_ERR n",
    "isr_\\n:",
    "    push \\n",
    "    jmp isr_common_entry",
    ".endm",
    ".irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31",
    "    ISR_NOERR \\n",
    ".endr",
    ".irp n, 8,10,11,12,13,14,17,21,29,30",
    "    ISR_ERR \\n",
    ".endr",
    ".irp n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47",
    "    ISR_NOERR \\n",
    ".endr",
    // 5 CPU words + error + vector + 9 registers = 16 words: rsp stays 16-aligned
    // (the CPU aligns it before pushing the frame).
    "isr_common_entry:",
    "    push rax",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    mov rdi, rsp",
    "    cld",
    "    call {dispatch}",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rax",
    "    add rsp, 16",
    "    iretq",
    ".section .rodata.isr_table, \"a\"",
    ".balign 8",
    ".global isr_table",
    "isr_table:",
    ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47",
    "    .quad isr_\\n",
    ".endr",
    ".text",
    dispatch = sym crate::interrupts::dispatch,
);

extern "C" {
    static isr_table: [u64; VECTORS];
}

/// What the stubs leave on the stack, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    reserved: u32,
}

const EMPTY: Gate = Gate {
    offset_lo: 0,
    selector: 0,
    ist: 0,
    attr: 0,
    offset_mid: 0,
    offset_hi: 0,
    reserved: 0,
};
/// #DF and #PF run on IST 1 (`tss.rs`): they must work on an exhausted stack.
const IST_VECTORS: [usize; 2] = [8, 14];
/// Present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
const INTERRUPT_GATE: u8 = 0x8e;

#[repr(C, align(16))]
struct Table([Gate; 256]);

static mut IDT: Table = Table([EMPTY; 256]);

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Fills the IDT with the stubs and loads it on this CPU. Call once, on the BSP,
/// with interrupts off, after `tss::init` (the gates of [`IST_VECTORS`] use IST 1).
pub fn init() {
    let cs: u16;
    // SAFETY: reading CS has no side effects.
    unsafe {
        core::arch::asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    // SAFETY: single-threaded early boot with interrupts off: nothing else reads or
    // writes IDT; isr_table is a read-only table of stub addresses from the asm above.
    unsafe {
        let idt = &mut *core::ptr::addr_of_mut!(IDT);
        let table = &*core::ptr::addr_of!(isr_table);
        for (vector, (gate, &addr)) in idt.0.iter_mut().zip(table.iter()).enumerate() {
            *gate = Gate {
                offset_lo: addr as u16,
                selector: cs,
                ist: if IST_VECTORS.contains(&vector) { 1 } else { 0 },
                attr: INTERRUPT_GATE,
                offset_mid: (addr >> 16) as u16,
                offset_hi: (addr >> 32) as u32,
                reserved: 0,
            };
        }
        let ptr = Pointer {
            limit: (size_of::<Table>() - 1) as u16,
            base: idt as *const Table as u64,
        };
        core::arch::asm!("lidt [{0}]", in(reg) &ptr, options(readonly, nostack, preserves_flags));
    }
}
