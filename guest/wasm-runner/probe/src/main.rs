//! A static x86_64-unknown-none program that links the wasm runner the way
//! the micro guest does, and runs as a plain Linux process (raw syscalls, no
//! libc) so we can execute the guest-target build on the host:
//! - `objdump -d` of this binary must show no SSE/popcnt/cmpxchg16b (the PVM
//!   emulator dies on them) — see check.sh;
//! - the float workload must give exact results through soft-float calls;
//! - traps, fuel and output must behave as in the host tests;
//! - its size is the runner's size when linked into a guest binary.
//! Exit status 0 means every check passed.

#![no_std]
#![no_main]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use kvmsandbox_wasm_runner::{run_with_stats, Outcome, RunRequest, Stream};

const HELLO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hello.wasm"));
const FLOATS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/floats.wasm"));
const OOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oob_load.wasm"));
const LOOP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/infinite_loop.wasm"));
const STACK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stack_overflow.wasm"));
const COUNT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/count_loop.wasm"));

mod sys {
    use core::arch::asm;

    /// write(2) to `fd`.
    pub fn write(fd: usize, bytes: &[u8]) {
        let mut done = 0;
        while done < bytes.len() {
            let ret: isize;
            // SAFETY: write(2) only reads `len` bytes from a valid slice.
            unsafe {
                asm!("syscall", inlateout("rax") 1isize => ret, in("rdi") fd,
                     in("rsi") bytes[done..].as_ptr(), in("rdx") bytes.len() - done,
                     lateout("rcx") _, lateout("r11") _, options(nostack));
            }
            if ret <= 0 {
                return;
            }
            done += ret as usize;
        }
    }

    /// exit_group(2).
    pub fn exit(code: i32) -> ! {
        // SAFETY: exit_group never returns and touches no memory of ours.
        unsafe {
            asm!("syscall", in("rax") 231, in("rdi") code as isize, options(noreturn, nostack));
        }
    }

    /// clock_gettime(CLOCK_MONOTONIC) in ns.
    pub fn now_ns() -> u64 {
        let mut ts = [0i64; 2];
        // SAFETY: the kernel writes a 16-byte timespec into `ts`.
        unsafe {
            asm!("syscall", inlateout("rax") 228isize => _, in("rdi") 1, in("rsi") ts.as_mut_ptr(),
                 lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        (ts[0] as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ts[1] as u64)
    }
}

/// A bump allocator over a static arena: the probe makes a handful of runs
/// and exits, so never reusing memory is fine.
struct Bump {
    arena: UnsafeCell<[u8; ARENA_SIZE]>,
    next: AtomicUsize,
}

const ARENA_SIZE: usize = 256 << 20;

// SAFETY: allocation hands out disjoint ranges via an atomic cursor.
unsafe impl Sync for Bump {}

// SAFETY: every returned block is in the arena, aligned, and never handed out twice.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.arena.get() as usize;
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let start = (base + current).next_multiple_of(layout.align()) - base;
            let Some(end) = start.checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end > ARENA_SIZE {
                return core::ptr::null_mut();
            }
            match self
                .next
                .compare_exchange(current, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(seen) => current = seen,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    arena: UnsafeCell::new([0; ARENA_SIZE]),
    next: AtomicUsize::new(0),
};

struct Stdout;

impl Write for Stdout {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::write(1, s.as_bytes());
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let _ = writeln!(Stdout, "probe panicked: {info}");
    sys::exit(101)
}

// Linux enters `_start` with rsp 16-byte aligned and no return address.
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym probe_main,
);

fn run(module: &[u8], fuel: Option<u64>) -> (Outcome, alloc::vec::Vec<u8>, u64) {
    let clock = || 0u64;
    let req = RunRequest {
        module,
        args: &[b"probe"],
        env: &[],
        stdin: b"",
        fuel,
        max_memory_bytes: Some(16 << 20),
        random_seed: [0; 32],
        clock: &clock,
        clock_resolution_ns: Some(1_000),
    };
    let mut out = alloc::vec::Vec::new();
    let mut output = |_: Stream, bytes: &[u8]| out.extend_from_slice(bytes);
    match run_with_stats(&req, &mut output) {
        Ok((outcome, stats)) => (outcome, out, stats.fuel_consumed.unwrap_or(0)),
        Err(error) => {
            let _ = writeln!(Stdout, "run error: {error}");
            sys::exit(2)
        }
    }
}

extern crate alloc;

extern "C" fn probe_main() -> ! {
    let mut failures = 0;
    let mut check = |name: &str, ok: bool, detail: &dyn core::fmt::Debug| {
        let _ = writeln!(
            Stdout,
            "{} {name}: {detail:?}",
            if ok { "ok  " } else { "FAIL" }
        );
        if !ok {
            failures += 1;
        }
    };

    let (outcome, out, _) = run(HELLO, None);
    check(
        "hello",
        outcome == Outcome::Exited(0) && out == b"hello, world\n",
        &outcome,
    );
    let (outcome, out, _) = run(FLOATS, None);
    check(
        "floats (soft-float)",
        outcome == Outcome::Exited(0) && out == b"floats ok\n",
        &outcome,
    );
    let (outcome, _, _) = run(OOB, None);
    check(
        "oob trap",
        matches!(&outcome, Outcome::Trap(m) if m.contains("out of bounds")),
        &outcome,
    );
    let (outcome, _, _) = run(STACK, None);
    check(
        "stack overflow trap",
        matches!(&outcome, Outcome::Trap(m) if m.contains("stack")),
        &outcome,
    );
    let (outcome, _, fuel) = run(LOOP, Some(1_000_000));
    check(
        "fuel",
        outcome == Outcome::OutOfFuel && fuel == 1_000_000,
        &outcome,
    );
    let started = sys::now_ns();
    let (outcome, _, fuel) = run(COUNT, Some(u64::MAX / 2));
    let elapsed = sys::now_ns().saturating_sub(started).max(1);
    check("count loop", outcome == Outcome::Exited(0), &outcome);
    let _ = writeln!(
        Stdout,
        "speed: {fuel} fuel in {} us = {} M fuel/s (this guest-target build, natively on the host)",
        elapsed / 1000,
        fuel.saturating_mul(1000) / elapsed
    );
    sys::exit(if failures == 0 { 0 } else { 1 })
}
