//! `wasi_abi`: the WASI preview 1 host functions of the micro guest's WASM runner
//! (`kvmsandbox_wasm_runner::wasi::funcs`), called with arguments a hostile module
//! controls, over a linear memory built from the input.
//!
//! Checks the module's documented promise besides "never panic": "a bad pointer is
//! EFAULT and nothing is written (checks come before side effects)": after any call
//! returning EFAULT, memory, stdin position and emitted output are unchanged.
//!
//! Input: memory size, args/env/stdin, then a sequence of (function, 4 pointers).

use kvmsandbox_wasm_runner::wasi::abi::Errno;
use kvmsandbox_wasm_runner::wasi::ctx::WasiCtx;
use kvmsandbox_wasm_runner::wasi::fs::calls as fs_calls;
use kvmsandbox_wasm_runner::wasi::funcs;
use kvmsandbox_wasm_runner::Stream;

use crate::input::Input;

/// Most calls per input (keeps one execution short).
const MAX_CALLS: usize = 64;

/// A pointer/length argument: mostly inside or at the edge of memory.
fn arg(inp: &mut Input, mem_len: u32) -> u32 {
    let mode = inp.u8();
    match mode >> 5 {
        0..=3 => u32::from(inp.u16()) % mem_len.max(1),
        4 => mem_len.wrapping_sub(u32::from(mode & 0x1f)),
        5 => u32::from(mode & 0x1f),
        6 => u32::MAX - u32::from(mode & 0x1f),
        _ => inp.u32(),
    }
}

fn strings<'a>(inp: &mut Input<'a>) -> Vec<&'a [u8]> {
    let n = inp.u8() % 5;
    (0..n)
        .map(|_| {
            let len = usize::from(inp.u8() % 32);
            inp.bytes(len)
        })
        .collect()
}

pub fn fuzz(data: &[u8]) {
    let mut inp = Input::new(data);
    let mem_len = u32::from(inp.u16() % 0x4000);
    let args = strings(&mut inp);
    let env = strings(&mut inp);
    let stdin_len = usize::from(inp.u8());
    let stdin = inp.bytes(stdin_len);
    let init_len = usize::from(inp.u8()) * 4;
    let mut mem = vec![0u8; mem_len as usize];
    let init = inp.bytes(init_len.min(mem.len()));
    mem[..init.len()].copy_from_slice(init);

    let clock_now = std::cell::Cell::new(1_000_000_000u64);
    let clock = || {
        clock_now.set(clock_now.get() + 1_000);
        clock_now.get()
    };
    let emitted = std::cell::Cell::new(0usize);
    let mut output = |_: Stream, b: &[u8]| emitted.set(emitted.get() + b.len());
    let mut ctx = WasiCtx::new(&args, &env, stdin, &clock, [7; 32], &mut output);

    let mut calls = 0;
    let mut before = Vec::with_capacity(mem.len());
    while !inp.is_empty() && calls < MAX_CALLS {
        calls += 1;
        let f = inp.u8() % 15;
        let a = [
            arg(&mut inp, mem_len),
            arg(&mut inp, mem_len),
            arg(&mut inp, mem_len),
            arg(&mut inp, mem_len),
        ];
        before.clear();
        before.extend_from_slice(&mem);
        let stdin_pos = ctx.stdin_pos;
        let emitted_before = emitted.get();
        let m = mem.as_mut_slice();
        let errno = match f {
            0 => funcs::args_sizes_get(&ctx, m, a[0], a[1]),
            1 => funcs::args_get(&mut ctx, m, a[0], a[1]),
            2 => funcs::environ_sizes_get(&ctx, m, a[0], a[1]),
            3 => funcs::environ_get(&mut ctx, m, a[0], a[1]),
            4 => funcs::fd_write(&mut ctx, m, a[0] % 4, a[1], a[2] % 16, a[3]),
            5 => funcs::fd_write(&mut ctx, m, 1, a[1], a[2], a[3]),
            6 => funcs::fd_read(&mut ctx, m, a[0] % 4, a[1], a[2] % 16, a[3]),
            7 => funcs::fd_read(&mut ctx, m, 0, a[1], a[2], a[3]),
            8 => funcs::fd_close(&mut ctx, a[0] % 5),
            9 => funcs::fd_fdstat_get(&ctx, m, a[0] % 5, a[1]),
            10 => fs_calls::fd_prestat_get(&ctx, m, a[0] % 5, a[1]),
            11 => funcs::fd_seek(&ctx, a[0] % 5, a[1] % 5),
            12 => funcs::clock_time_get(&mut ctx, m, a[0] % 5, a[1]),
            13 => funcs::clock_res_get(&ctx, m, a[0] % 5, a[1]),
            _ => funcs::random_get(&mut ctx, m, a[0], a[1] % 0x8000),
        };
        if errno == Errno::FAULT {
            assert!(
                mem == before,
                "function {f} returned EFAULT after writing memory (args {a:x?})"
            );
            assert_eq!(
                ctx.stdin_pos, stdin_pos,
                "function {f} consumed stdin and returned EFAULT"
            );
            assert_eq!(
                emitted.get(),
                emitted_before,
                "function {f} wrote output and returned EFAULT"
            );
        }
        assert!(
            ctx.stdin_pos <= stdin.len(),
            "stdin position {} past {}",
            ctx.stdin_pos,
            stdin.len()
        );
    }
}
