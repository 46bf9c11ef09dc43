//! The WASI preview 1 functions we implement, over a plain memory slice and a
//! [`WasiCtx`], so they are testable without an interpreter. `link.rs` glues
//! them to wasmi. Each returns the errno the module sees; a bad pointer is
//! `EFAULT` and nothing is written (checks come before side effects).
//!
//! Only stdio exists: fds 0 (stdin, read from the request), 1 and 2 (stdout
//! and stderr, streamed to the output callback). There are no preopened
//! directories, so libc's startup scan of `fd_prestat_get` stops at fd 3, and
//! no sockets. `poll_oneoff` is in `poll.rs`.

use super::abi::{self, AbiError, Errno};
use super::ctx::{Stop, WasiCtx};
use super::fs;
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
pub fn args_get(ctx: &mut WasiCtx, mem: &mut [u8], argv: u32, argv_buf: u32) -> Errno {
    let items = ctx.args;
    write_table(ctx, mem, argv, argv_buf, items)
}

/// `environ_sizes_get(count: *u32, buf_size: *u32)`.
pub fn environ_sizes_get(ctx: &WasiCtx, mem: &mut [u8], count: u32, buf_size: u32) -> Errno {
    errno_of(table_sizes(ctx.env, mem, count, buf_size))
}

/// `environ_get(environ: **u8, environ_buf: *u8)`.
pub fn environ_get(ctx: &mut WasiCtx, mem: &mut [u8], environ: u32, environ_buf: u32) -> Errno {
    let items = ctx.env;
    write_table(ctx, mem, environ, environ_buf, items)
}

/// Writes an argv/environ table after paying for its bytes.
fn write_table(ctx: &mut WasiCtx, mem: &mut [u8], ptrs: u32, buf: u32, items: &[&[u8]]) -> Errno {
    let bytes: u64 = items.iter().map(|item| item.len() as u64 + 5).sum();
    if !ctx.charge(bytes_fuel(bytes)) {
        return Errno::SUCCESS; // the run stops; the errno is never seen
    }
    errno_of(abi::write_string_table(mem, ptrs, buf, items))
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

/// Fuel charged per iovec record a host function walks.
pub const IOVEC_FUEL: u64 = 2;
/// Bytes a host function may move per unit of fuel (output, stdin, random
/// bytes, argument tables): about what a wasm copy loop would pay.
pub const BYTES_PER_FUEL: u64 = 8;

/// Fuel for moving `bytes` bytes.
pub fn bytes_fuel(bytes: u64) -> u64 {
    bytes.div_ceil(BYTES_PER_FUEL)
}

/// Whether `fd` is one of stdio and still open.
pub(crate) fn is_open(ctx: &WasiCtx, fd: u32) -> bool {
    fd <= 2 && !ctx.closed[fd as usize]
}

/// Whether `fd` is a descriptor of the file system (3 and up, and not
/// stdio renumbered there).
fn is_fs(ctx: &WasiCtx, fd: u32) -> bool {
    fd >= fs::fds::FIRST_FD && ctx.fs.fds.stdio_alias(fd).is_none()
}

/// Which stdio stream (0-2) `fd` is now, if any: fds 0-2 until closed or
/// renumbered away, or the fd stdio was renumbered to.
fn stdio(ctx: &WasiCtx, fd: u32) -> Option<u32> {
    match fd {
        0..=2 if !ctx.closed[fd as usize] => Some(fd),
        0..=2 => None,
        _ => ctx.fs.fds.stdio_alias(fd),
    }
}

/// `fd_write(fd, iovs: *ciovec, iovs_len, nwritten: *u32)`: stdout and
/// stderr only. Pays for the records and the bytes before any output; the
/// bytes are coalesced into bounded chunks by [`WasiCtx::emit`].
pub fn fd_write(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    nwritten: u32,
) -> Errno {
    if is_fs(ctx, fd) {
        return fs::calls::fd_write(ctx, mem, fd, iovs, iovs_len, None, nwritten);
    }
    let Some(stream) = stdio(ctx, fd).and_then(stream_of) else {
        return Errno::BADF;
    };
    if !ctx.charge(u64::from(iovs_len).saturating_mul(IOVEC_FUEL)) {
        return Errno::SUCCESS; // the run stops; the errno is never seen
    }
    let iovecs = match abi::check_iovecs(mem, iovs, iovs_len) {
        Ok(iovecs) => iovecs,
        Err(error) => return error.errno(),
    };
    if let Err(error) = abi::check_range(mem.len(), nwritten, 4) {
        return error.errno();
    }
    if !ctx.charge(bytes_fuel(u64::from(iovecs.total))) {
        return Errno::SUCCESS;
    }
    for (buf, len) in iovecs.iter() {
        // check_iovecs checked every buffer against this memory.
        match abi::slice(mem, buf, len) {
            Ok(bytes) => ctx.emit(stream, bytes),
            Err(error) => return error.errno(),
        }
    }
    errno_of(abi::write_u32(mem, nwritten, iovecs.total))
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
    if is_fs(ctx, fd) {
        return fs::calls::fd_read(ctx, mem, fd, iovs, iovs_len, None, nread);
    }
    if stdio(ctx, fd) != Some(0) {
        return Errno::BADF;
    }
    if !ctx.charge(u64::from(iovs_len).saturating_mul(IOVEC_FUEL)) {
        return Errno::SUCCESS;
    }
    let iovecs = match abi::check_iovecs(mem, iovs, iovs_len) {
        Ok(iovecs) => iovecs,
        Err(error) => return error.errno(),
    };
    if let Err(error) = abi::check_range(mem.len(), nread, 4) {
        return error.errno();
    }
    let remaining = ctx.stdin.len().saturating_sub(ctx.stdin_pos);
    let will_read = remaining.min(iovecs.total as usize);
    if !ctx.charge(bytes_fuel(will_read as u64)) {
        return Errno::SUCCESS;
    }
    // Only the (bounded) record slice is borrowed from memory; collect the
    // pairs lazily by re-reading each record before writing its buffer.
    let records: usize = iovecs.count();
    let mut total: u32 = 0;
    for index in 0..records {
        let remaining = ctx.stdin.get(ctx.stdin_pos..).unwrap_or(&[]);
        if remaining.is_empty() {
            break;
        }
        // The array was checked: index * 8 + 8 lies inside it. Every record and
        // buffer was checked too, but a buffer may overlap a later record, so
        // what we just copied can have rewritten it: a record that no longer
        // fits ends the read short (as a POSIX readv may), because EFAULT must
        // mean "nothing was written".
        let at = iovs + (index as u32) * abi::IOVEC_SIZE;
        let pair = match (abi::read_u32(mem, at), abi::read_u32(mem, at + 4)) {
            (Ok(buf), Ok(len)) => abi::slice_mut(mem, buf, len),
            (Err(error), _) | (_, Err(error)) => Err(error),
        };
        let dest = match pair {
            Ok(dest) => dest,
            Err(_) if total > 0 => break,
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

/// `fd_close(fd)`: stdio may be closed, as POSIX and wasmtime allow; the
/// descriptor is then gone (`EBADF` for every later use, closing included).
pub fn fd_close(ctx: &mut WasiCtx, fd: u32) -> Errno {
    let Some(stream) = stdio(ctx, fd) else {
        return fs::calls::fd_close(ctx, fd);
    };
    if stream == 1 || stream == 2 {
        ctx.flush();
    }
    if fd <= 2 {
        ctx.closed[fd as usize] = true;
        Errno::SUCCESS
    } else {
        fs::calls::fd_close(ctx, fd)
    }
}

/// `fd_fdstat_get(fd, stat: *fdstat)`: stdio are character devices.
pub fn fd_fdstat_get(ctx: &WasiCtx, mem: &mut [u8], fd: u32, stat: u32) -> Errno {
    if is_fs(ctx, fd) {
        return fs::calls::fd_fdstat_get(ctx, mem, fd, stat);
    }
    let rights = match stdio(ctx, fd) {
        None => return Errno::BADF,
        Some(0) => abi::RIGHT_FD_READ,
        Some(_) => abi::RIGHT_FD_WRITE,
    };
    errno_of(abi::write_fdstat_char_device(mem, stat, rights))
}

/// `fd_seek(fd, offset, whence, newoffset: *u64)`: stdio is not seekable.
pub fn fd_seek(ctx: &WasiCtx, fd: u32, whence: u32) -> Errno {
    if stdio(ctx, fd).is_none() {
        Errno::BADF
    } else if whence > WHENCE_MAX {
        Errno::INVAL
    } else {
        Errno::SPIPE
    }
}

/// `clock_time_get(id, precision, time: *u64)`. Without a working clock the
/// run stops ([`Stop::NoClock`]): a frozen time would make deadline loops
/// spin until the fuel runs out, or for ever.
pub fn clock_time_get(ctx: &mut WasiCtx, mem: &mut [u8], id: u32, time: u32) -> Errno {
    if id > CLOCK_THREAD_CPUTIME {
        return Errno::INVAL;
    }
    if ctx.clock_resolution_ns.is_none() {
        ctx.stop = Some(Stop::NoClock);
        return Errno::NOTSUP;
    }
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

/// `clock_res_get(id, resolution: *u64)`: the resolution the embedder gave,
/// or `ENOTSUP` when there is no working clock (never a made-up figure).
pub fn clock_res_get(ctx: &WasiCtx, mem: &mut [u8], id: u32, resolution: u32) -> Errno {
    if id > CLOCK_THREAD_CPUTIME {
        return Errno::INVAL;
    }
    match ctx.clock_resolution_ns {
        Some(ns) => errno_of(abi::write_u64(mem, resolution, ns.max(1))),
        None => Errno::NOTSUP,
    }
}

/// `sock_accept`, `sock_recv`, `sock_send`, `sock_shutdown`: there are no
/// sockets, so an open descriptor (stdio) is `ENOTSOCK` and any other is
/// `EBADF` (what POSIX `shutdown` and wasmtime answer). Checked before any
/// argument: no pointer is read or written.
pub fn sock_call(ctx: &WasiCtx, fd: u32) -> Errno {
    if is_open(ctx, fd) || ctx.fs.fds.is_open(fd) {
        Errno::NOTSOCK
    } else {
        Errno::BADF
    }
}

/// `random_get(buf, len)`: pays for the bytes before generating them.
pub fn random_get(ctx: &mut WasiCtx, mem: &mut [u8], buf: u32, len: u32) -> Errno {
    match abi::slice_mut(mem, buf, len) {
        Ok(dest) => {
            if ctx.charge(bytes_fuel(u64::from(len))) {
                ctx.rng.fill(dest);
            }
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
            let result = f(&mut ctx);
            ctx.flush();
            result
        };
        (result, out)
    }

    fn put_iovec(mem: &mut [u8], at: usize, buf: u32, len: u32) {
        mem[at..at + 4].copy_from_slice(&buf.to_le_bytes());
        mem[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    }

    #[test]
    fn fd_write_coalesces_iovecs() {
        let mut mem = alloc::vec![0u8; 128];
        mem[64..69].copy_from_slice(b"hello");
        mem[80..81].copy_from_slice(b"!");
        put_iovec(&mut mem, 0, 64, 5);
        put_iovec(&mut mem, 8, 80, 1);
        let (errno, out) = with_ctx(b"", |ctx| fd_write(ctx, &mut mem, 2, 0, 2, 100));
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(out, [(Stream::Stderr, b"hello!".to_vec())]);
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
        with_ctx(b"", |ctx| {
            assert_eq!(fd_fdstat_get(ctx, &mut mem, 1, 0), Errno::SUCCESS);
            assert_eq!(mem[0], abi::FILETYPE_CHARACTER_DEVICE);
            assert_eq!(fd_fdstat_get(ctx, &mut mem, 3, 0), Errno::BADF);
            assert_eq!(fd_fdstat_get(ctx, &mut mem, 0, 60), Errno::FAULT);
            assert_eq!(fd_seek(ctx, 1, 0), Errno::SPIPE);
            assert_eq!(fd_seek(ctx, 1, 9), Errno::INVAL);
            assert_eq!(fd_seek(ctx, 7, 0), Errno::BADF);
            assert_eq!(fd_close(ctx, 5), Errno::BADF);
        });
    }

    /// WASI's fd_close is POSIX close: closing stdio succeeds (wasmtime
    /// allows it too) and the descriptor is then gone.
    #[test]
    fn closed_stdio_is_gone() {
        let mut mem = alloc::vec![0u8; 64];
        mem[32..34].copy_from_slice(b"hi");
        put_iovec(&mut mem, 0, 32, 2);
        let (errnos, out) = with_ctx(b"input", |ctx| {
            [
                fd_write(ctx, &mut mem, 2, 0, 1, 16),
                fd_close(ctx, 2),
                fd_write(ctx, &mut mem, 2, 0, 1, 16),
                fd_fdstat_get(ctx, &mut mem, 2, 40),
                fd_seek(ctx, 2, 0),
                fd_close(ctx, 2),
                fd_close(ctx, 0),
                fd_read(ctx, &mut mem, 0, 0, 1, 16),
                fd_write(ctx, &mut mem, 1, 0, 1, 16),
            ]
        });
        use Errno as E;
        assert_eq!(
            errnos,
            [
                E::SUCCESS,
                E::SUCCESS,
                E::BADF,
                E::BADF,
                E::BADF,
                E::BADF,
                E::SUCCESS,
                E::BADF,
                E::SUCCESS
            ]
        );
        assert_eq!(
            out,
            [
                (Stream::Stderr, b"hi".to_vec()),
                (Stream::Stdout, b"hi".to_vec())
            ]
        );
    }

    /// A module may claim millions of iovecs: validation allocates nothing,
    /// the records are paid for first, and a count the fuel cannot pay for
    /// stops the call before any work.
    #[test]
    fn huge_iovec_counts_are_paid_for_not_collected() {
        // 1 Mi records of one byte each, all pointing at the same byte.
        let count: u32 = 1 << 20;
        let mut mem = alloc::vec![0u8; count as usize * 8 + 64];
        let byte_at = count * 8;
        mem[byte_at as usize] = b'z';
        for index in 0..count as usize {
            put_iovec(&mut mem, index * 8, byte_at, 1);
        }
        let nwritten = byte_at + 8;
        let (errno, out) = with_ctx(b"", |ctx| {
            let errno = fd_write(ctx, &mut mem, 1, 0, count, nwritten);
            assert_eq!(
                ctx.fuel_used,
                u64::from(count) * IOVEC_FUEL + bytes_fuel(u64::from(count))
            );
            errno
        });
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(abi::read_u32(&mem, nwritten), Ok(count));
        // Coalesced: 1 MiB of output in bounded chunks, not a million frames.
        assert_eq!(out.len(), count as usize / crate::OUTPUT_CHUNK);
        assert!(out
            .iter()
            .all(|(_, chunk)| chunk.len() == crate::OUTPUT_CHUNK));

        let (stop, out) = with_ctx(b"", |ctx| {
            ctx.fuel_available = u64::from(count); // less than the records cost
            fd_write(ctx, &mut mem, 1, 0, count, nwritten);
            ctx.stop
        });
        assert_eq!((stop, out.len()), (Some(Stop::OutOfFuel), 0));
    }

    #[test]
    fn output_and_random_bytes_cost_fuel() {
        let mut mem = alloc::vec![0u8; 4096];
        put_iovec(&mut mem, 0, 64, 1000);
        let (used, out) = with_ctx(b"", |ctx| {
            assert_eq!(fd_write(ctx, &mut mem, 1, 0, 1, 8), Errno::SUCCESS);
            let after_write = ctx.fuel_used;
            assert_eq!(random_get(ctx, &mut mem, 1024, 2048), Errno::SUCCESS);
            (after_write, ctx.fuel_used - after_write)
        });
        assert_eq!(used.0, IOVEC_FUEL + 125);
        assert_eq!(out.len(), 1);
        assert_eq!(used.1, 256);
        // Not enough fuel: no bytes are generated.
        let mut mem = alloc::vec![0u8; 4096];
        let (stop, _) = with_ctx(b"", |ctx| {
            ctx.fuel_available = 100;
            random_get(ctx, &mut mem, 0, 4096);
            ctx.stop
        });
        assert_eq!(stop, Some(Stop::OutOfFuel));
        assert!(mem.iter().all(|byte| *byte == 0));
    }

    /// With no working clock, reading one stops the run and clock_res_get
    /// admits it instead of claiming a resolution.
    #[test]
    fn frozen_clock_is_not_offered() {
        let mut mem = alloc::vec![0u8; 64];
        let (result, _) = with_ctx(b"", |ctx| {
            ctx.clock_resolution_ns = None;
            let res = clock_res_get(ctx, &mut mem, CLOCK_MONOTONIC, 0);
            let time = clock_time_get(ctx, &mut mem, CLOCK_MONOTONIC, 8);
            (res, time, ctx.stop)
        });
        assert_eq!(result, (Errno::NOTSUP, Errno::NOTSUP, Some(Stop::NoClock)));
        assert!(mem.iter().all(|byte| *byte == 0));
        let (result, _) = with_ctx(b"", |ctx| {
            ctx.clock_resolution_ns = Some(37);
            (clock_res_get(ctx, &mut mem, CLOCK_MONOTONIC, 0), ctx.stop)
        });
        assert_eq!(result, (Errno::SUCCESS, None));
        assert_eq!(abi::read_u32(&mem, 0), Ok(37));
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
        with_ctx(b"", |ctx| {
            assert_eq!(clock_res_get(ctx, &mut mem, 1, 56), Errno::SUCCESS);
            assert_eq!(clock_res_get(ctx, &mut mem, 1, 60), Errno::FAULT);
        });
    }

    /// There are no sockets: an open descriptor is ENOTSOCK, a closed or
    /// unknown one EBADF (the suite's sock_shutdown-not_sock/-invalid_fd).
    #[test]
    fn sock_calls_on_stdio_and_bad_fds() {
        with_ctx(b"", |ctx| {
            assert_eq!(sock_call(ctx, 0), Errno::NOTSOCK);
            assert_eq!(sock_call(ctx, 1), Errno::NOTSOCK);
            assert_eq!(sock_call(ctx, 3), Errno::BADF);
            assert_eq!(sock_call(ctx, u32::MAX), Errno::BADF);
            assert_eq!(fd_close(ctx, 2), Errno::SUCCESS);
            assert_eq!(sock_call(ctx, 2), Errno::BADF);
        });
    }

    /// random_get's bytes look uniform and two calls differ: a stuck or
    /// zeroed generator, or one that restarts its stream, fails this.
    #[test]
    fn random_bytes_are_spread_and_do_not_repeat() {
        let mut mem = alloc::vec![0u8; 2 * 65536];
        with_ctx(b"", |ctx| {
            assert_eq!(random_get(ctx, &mut mem, 0, 65536), Errno::SUCCESS);
            assert_eq!(random_get(ctx, &mut mem, 65536, 65536), Errno::SUCCESS);
        });
        let (first, second) = mem.split_at(65536);
        assert_ne!(first, second);
        let mut counts = [0u32; 256];
        for byte in first {
            counts[usize::from(*byte)] += 1;
        }
        // 256 per value expected; a chi-square over 255 degrees of freedom
        // beyond 400 would be a 1e-8 event for a uniform source.
        let chi2: f64 = counts
            .iter()
            .map(|&c| (f64::from(c) - 256.0).powi(2) / 256.0)
            .sum();
        assert!(chi2 < 400.0, "byte distribution skewed: chi2 = {chi2}");
        // Bits are balanced too.
        let ones: u32 = first.iter().map(|byte| byte.count_ones()).sum();
        assert!(
            (255_000..269_000).contains(&ones),
            "{ones} one bits of 524288"
        );
    }
}
