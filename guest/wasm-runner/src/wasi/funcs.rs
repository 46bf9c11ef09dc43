//! The WASI preview 1 functions we implement, over a plain memory slice and a
//! [`WasiCtx`], so they are testable without an interpreter. `link.rs` glues
//! them to wasmi. Each returns the errno the module sees; a bad pointer is
//! `EFAULT` and nothing is written (checks come before side effects).
//!
//! Only stdio exists: fds 0 (stdin, read from the request), 1 and 2 (stdout
//! and stderr, streamed to the output callback). There are no preopened
//! directories, so libc's startup scan of `fd_prestat_get` stops at fd 3.

use super::abi::{self, AbiError, Errno};
use super::ctx::WasiCtx;
use crate::Stream;

/// `clockid::realtime`.
const CLOCK_REALTIME: u32 = 0;
/// `clockid::monotonic`.
const CLOCK_MONOTONIC: u32 = 1;
/// `clockid::process_cputime_id`.
const CLOCK_PROCESS_CPUTIME: u32 = 2;
/// `clockid::thread_cputime_id`.
const CLOCK_THREAD_CPUTIME: u32 = 3;
/// `whence` values are 0..=2; anything else is EINVAL even on stdio.
const WHENCE_MAX: u32 = 2;
/// Resolution we claim for every clock: 1 µs.
const CLOCK_RESOLUTION_NS: u64 = 1_000;

fn errno_of(result: Result<(), AbiError>) -> Errno {
    match result {
        Ok(()) => Errno::SUCCESS,
        Err(error) => error.errno(),
    }
}

fn stream_of(fd: u32) -> Option<Stream> {
    match fd {
        1 => Some(Stream::Stdout),
        2 => Some(Stream::Stderr),
        _ => None,
    }
}

/// `args_sizes_get(argc: *u32, argv_buf_size: *u32)`.
pub fn args_sizes_get(ctx: &WasiCtx, mem: &mut [u8], argc: u32, buf_size: u32) -> Errno {
    errno_of(table_sizes(ctx.args, mem, argc, buf_size))
}

/// `args_get(argv: **u8, argv_buf: *u8)`.
pub fn args_get(ctx: &WasiCtx, mem: &mut [u8], argv: u32, argv_buf: u32) -> Errno {
    errno_of(abi::write_string_table(mem, argv, argv_buf, ctx.args))
}

/// `environ_sizes_get(count: *u32, buf_size: *u32)`.
pub fn environ_sizes_get(ctx: &WasiCtx, mem: &mut [u8], count: u32, buf_size: u32) -> Errno {
    errno_of(table_sizes(ctx.env, mem, count, buf_size))
}

/// `environ_get(environ: **u8, environ_buf: *u8)`.
pub fn environ_get(ctx: &WasiCtx, mem: &mut [u8], environ: u32, environ_buf: u32) -> Errno {
    errno_of(abi::write_string_table(mem, environ, environ_buf, ctx.env))
}

fn table_sizes(
    items: &[&[u8]],
    mem: &mut [u8],
    count_ptr: u32,
    size_ptr: u32,
) -> Result<(), AbiError> {
    let (count, size) = abi::string_table_sizes(items)?;
    abi::check_range(mem.len(), count_ptr, 4)?;
    abi::check_range(mem.len(), size_ptr, 4)?;
    abi::write_u32(mem, count_ptr, count)?;
    abi::write_u32(mem, size_ptr, size)
}

/// `fd_write(fd, iovs: *ciovec, iovs_len, nwritten: *u32)`: stdout and
/// stderr only; each buffer is handed to the output callback as it is
/// written, nothing is buffered here.
pub fn fd_write(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    nwritten: u32,
) -> Errno {
    let Some(stream) = stream_of(fd) else {
        return Errno::BADF;
    };
    let iovecs = match abi::decode_iovecs(mem, iovs, iovs_len) {
        Ok(iovecs) => iovecs,
        Err(error) => return error.errno(),
    };
    if let Err(error) = abi::check_range(mem.len(), nwritten, 4) {
        return error.errno();
    }
    let mut total: u32 = 0;
    for (buf, len) in iovecs {
        match abi::slice(mem, buf, len) {
            Ok(bytes) if !bytes.is_empty() => (ctx.output)(stream, bytes),
            Ok(_) => {}
            Err(error) => return error.errno(),
        }
        // decode_iovecs checked that the lengths add up to at most u32::MAX.
        total = total.saturating_add(len);
    }
    errno_of(abi::write_u32(mem, nwritten, total))
}

/// `fd_read(fd, iovs: *iovec, iovs_len, nread: *u32)`: stdin only, filled
/// from the request's bytes; 0 bytes read means end of file.
pub fn fd_read(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    nread: u32,
) -> Errno {
    if fd != 0 {
        return Errno::BADF;
    }
    let iovecs = match abi::decode_iovecs(mem, iovs, iovs_len) {
        Ok(iovecs) => iovecs,
        Err(error) => return error.errno(),
    };
    if let Err(error) = abi::check_range(mem.len(), nread, 4) {
        return error.errno();
    }
    let mut total: u32 = 0;
    for (buf, len) in iovecs {
        let remaining = ctx.stdin.get(ctx.stdin_pos..).unwrap_or(&[]);
        if remaining.is_empty() {
            break;
        }
        let dest = match abi::slice_mut(mem, buf, len) {
            Ok(dest) => dest,
            Err(error) => return error.errno(),
        };
        let count = dest.len().min(remaining.len());
        dest[..count].copy_from_slice(&remaining[..count]);
        ctx.stdin_pos += count;
        // count <= len, and the lengths add up to at most u32::MAX.
        total = total.saturating_add(count as u32);
    }
    errno_of(abi::write_u32(mem, nread, total))
}

/// `fd_close(fd)`: closing stdio is accepted and changes nothing.
pub fn fd_close(fd: u32) -> Errno {
    if fd <= 2 {
        Errno::SUCCESS
    } else {
        Errno::BADF
    }
}

/// `fd_fdstat_get(fd, stat: *fdstat)`: stdio are character devices.
pub fn fd_fdstat_get(mem: &mut [u8], fd: u32, stat: u32) -> Errno {
    let rights = match fd {
        0 => abi::RIGHT_FD_READ,
        1 | 2 => abi::RIGHT_FD_WRITE,
        _ => return Errno::BADF,
    };
    errno_of(abi::write_fdstat_char_device(mem, stat, rights))
}

/// `fd_prestat_get(fd, prestat)` and `fd_prestat_dir_name`: no preopens.
pub fn fd_prestat_get(_fd: u32) -> Errno {
    Errno::BADF
}

/// `fd_seek(fd, offset, whence, newoffset: *u64)`: stdio is not seekable.
pub fn fd_seek(fd: u32, whence: u32) -> Errno {
    if fd > 2 {
        Errno::BADF
    } else if whence > WHENCE_MAX {
        Errno::INVAL
    } else {
        Errno::SPIPE
    }
}

/// `clock_time_get(id, precision, time: *u64)`.
pub fn clock_time_get(ctx: &mut WasiCtx, mem: &mut [u8], id: u32, time: u32) -> Errno {
    let now = (ctx.clock)();
    let value = match id {
        CLOCK_REALTIME => now,
        CLOCK_MONOTONIC => {
            ctx.last_monotonic = ctx.last_monotonic.max(now);
            ctx.last_monotonic
        }
        CLOCK_PROCESS_CPUTIME | CLOCK_THREAD_CPUTIME => now.saturating_sub(ctx.clock_start),
        _ => return Errno::INVAL,
    };
    errno_of(abi::write_u64(mem, time, value))
}

/// `clock_res_get(id, resolution: *u64)`.
pub fn clock_res_get(mem: &mut [u8], id: u32, resolution: u32) -> Errno {
    if id > CLOCK_THREAD_CPUTIME {
        return Errno::INVAL;
    }
    errno_of(abi::write_u64(mem, resolution, CLOCK_RESOLUTION_NS))
}

/// `random_get(buf, len)`.
pub fn random_get(ctx: &mut WasiCtx, mem: &mut [u8], buf: u32, len: u32) -> Errno {
    match abi::slice_mut(mem, buf, len) {
        Ok(dest) => {
            ctx.rng.fill(dest);
            Errno::SUCCESS
        }
        Err(error) => error.errno(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn with_ctx<R>(stdin: &[u8], f: impl FnOnce(&mut WasiCtx) -> R) -> (R, Vec<(Stream, Vec<u8>)>) {
        let mut out = Vec::new();
        let result = {
            let mut sink = |stream: Stream, bytes: &[u8]| out.push((stream, bytes.to_vec()));
            let clock = || 5_000u64;
            let args: [&[u8]; 2] = [b"prog", b"x"];
            let env: [&[u8]; 1] = [b"A=B"];
            let mut ctx = WasiCtx::new(&args, &env, stdin, &clock, [1; 32], &mut sink);
            f(&mut ctx)
        };
        (result, out)
    }

    fn put_iovec(mem: &mut [u8], at: usize, buf: u32, len: u32) {
        mem[at..at + 4].copy_from_slice(&buf.to_le_bytes());
        mem[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    }

    #[test]
    fn fd_write_streams_each_iovec() {
        let mut mem = alloc::vec![0u8; 128];
        mem[64..69].copy_from_slice(b"hello");
        mem[80..81].copy_from_slice(b"!");
        put_iovec(&mut mem, 0, 64, 5);
        put_iovec(&mut mem, 8, 80, 1);
        let (errno, out) = with_ctx(b"", |ctx| fd_write(ctx, &mut mem, 2, 0, 2, 100));
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(
            out,
            [
                (Stream::Stderr, b"hello".to_vec()),
                (Stream::Stderr, b"!".to_vec())
            ]
        );
        assert_eq!(abi::read_u32(&mem, 100), Ok(6));
    }

    #[test]
    fn fd_write_bad_pointers_fault_without_output() {
        let mut mem = alloc::vec![0u8; 64];
        put_iovec(&mut mem, 0, 60, 8);
        let (errno, out) = with_ctx(b"", |ctx| fd_write(ctx, &mut mem, 1, 0, 1, 16));
        assert_eq!((errno, out.len()), (Errno::FAULT, 0));
        let (errno, _) = with_ctx(b"", |ctx| fd_write(ctx, &mut mem, 1, 0xffff_fff0, 4, 16));
        assert_eq!(errno, Errno::FAULT);
        put_iovec(&mut mem, 0, 8, 1);
        let (errno, out) = with_ctx(b"", |ctx| fd_write(ctx, &mut mem, 1, 0, 1, 62));
        assert_eq!((errno, out.len()), (Errno::FAULT, 0));
        let (errno, _) = with_ctx(b"", |ctx| fd_write(ctx, &mut mem, 0, 0, 1, 16));
        assert_eq!(errno, Errno::BADF);
    }

    #[test]
    fn fd_read_drains_stdin_then_eof() {
        let mut mem = alloc::vec![0u8; 64];
        put_iovec(&mut mem, 0, 32, 3);
        put_iovec(&mut mem, 8, 40, 3);
        let ((first, second), _) = with_ctx(b"abcd", |ctx| {
            let first = fd_read(ctx, &mut mem, 0, 0, 2, 16);
            let n1 = abi::read_u32(&mem, 16);
            let second = fd_read(ctx, &mut mem, 0, 0, 2, 16);
            ((first, n1), second)
        });
        assert_eq!(first, (Errno::SUCCESS, Ok(4)));
        assert_eq!(&mem[32..35], b"abc");
        assert_eq!(mem[40], b'd');
        assert_eq!(second, Errno::SUCCESS);
        assert_eq!(abi::read_u32(&mem, 16), Ok(0));
    }

    #[test]
    fn args_and_env_tables() {
        let mut mem = alloc::vec![0u8; 64];
        let (errnos, _) = with_ctx(b"", |ctx| {
            (
                args_sizes_get(ctx, &mut mem, 0, 4),
                args_get(ctx, &mut mem, 8, 16),
                environ_get(ctx, &mut mem, 32, 40),
                args_get(ctx, &mut mem, 8, 62),
            )
        });
        assert_eq!(
            errnos,
            (Errno::SUCCESS, Errno::SUCCESS, Errno::SUCCESS, Errno::FAULT)
        );
        assert_eq!(abi::read_u32(&mem, 0), Ok(2));
        assert_eq!(abi::read_u32(&mem, 4), Ok(7));
        assert_eq!(&mem[16..23], b"prog\0x\0");
        assert_eq!(&mem[40..44], b"A=B\0");
    }

    #[test]
    fn stdio_metadata() {
        let mut mem = alloc::vec![0u8; 64];
        assert_eq!(fd_fdstat_get(&mut mem, 1, 0), Errno::SUCCESS);
        assert_eq!(mem[0], abi::FILETYPE_CHARACTER_DEVICE);
        assert_eq!(fd_fdstat_get(&mut mem, 3, 0), Errno::BADF);
        assert_eq!(fd_fdstat_get(&mut mem, 0, 60), Errno::FAULT);
        assert_eq!(fd_prestat_get(3), Errno::BADF);
        assert_eq!(fd_seek(1, 0), Errno::SPIPE);
        assert_eq!(fd_seek(1, 9), Errno::INVAL);
        assert_eq!(fd_seek(7, 0), Errno::BADF);
        assert_eq!(fd_close(2), Errno::SUCCESS);
        assert_eq!(fd_close(5), Errno::BADF);
    }

    #[test]
    fn clocks_and_random() {
        let mut mem = alloc::vec![0u8; 64];
        let (errnos, _) = with_ctx(b"", |ctx| {
            (
                clock_time_get(ctx, &mut mem, CLOCK_REALTIME, 0),
                clock_time_get(ctx, &mut mem, 9, 0),
                random_get(ctx, &mut mem, 16, 32),
                random_get(ctx, &mut mem, 40, 32),
            )
        });
        assert_eq!(
            errnos,
            (Errno::SUCCESS, Errno::INVAL, Errno::SUCCESS, Errno::FAULT)
        );
        assert_eq!(&mem[0..8], &5_000u64.to_le_bytes());
        assert!(mem[16..48].iter().any(|byte| *byte != 0));
        assert_eq!(clock_res_get(&mut mem, 1, 56), Errno::SUCCESS);
        assert_eq!(clock_res_get(&mut mem, 1, 60), Errno::FAULT);
    }
}
