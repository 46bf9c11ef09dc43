//! The WASI preview 1 file system calls over the in-memory tree, like
//! `funcs.rs` over a plain memory slice and the run's state. Each returns
//! the errno the module sees; arguments are checked before any change, so
//! an `EFAULT` or a refusal leaves the tree as it was. Host work is paid
//! for in fuel: every byte moved and every byte of path walked.

use alloc::vec::Vec;

use super::consts::*;
use super::fds::{Entry, FIRST_FD};
use super::path::{walk, Walked, MAX_PATH};
use super::tree::{Ino, Kind, Node};
use super::Fs;
use crate::wasi::abi::{self, Errno};
use crate::wasi::ctx::WasiCtx;
use crate::wasi::funcs::{bytes_fuel, IOVEC_FUEL};

type R<T = ()> = Result<T, Errno>;

/// Turns a call's result into its errno.
pub fn errno(result: R) -> Errno {
    match result {
        Ok(()) => Errno::SUCCESS,
        Err(errno) => errno,
    }
}

fn fault(error: abi::AbiError) -> Errno {
    error.errno()
}

/// Pays for `bytes` of host work; `Err(SUCCESS)` (never seen: the run
/// stops) when the fuel cannot pay.
fn pay(ctx: &mut WasiCtx, fuel: u64) -> R {
    if ctx.charge(fuel) {
        Ok(())
    } else {
        Err(Errno::SUCCESS)
    }
}

/// Stamps the tree with the time of this call (0 without a clock).
fn now<'c>(ctx: &'c mut WasiCtx) -> &'c mut Fs {
    let now = match ctx.clock_resolution_ns {
        Some(_) => (ctx.clock)(),
        None => 0,
    };
    ctx.fs.tree.now = now;
    &mut ctx.fs
}

/// Copies a path argument out of memory (paying for it).
fn path_arg(ctx: &mut WasiCtx, mem: &[u8], ptr: u32, len: u32) -> R<Vec<u8>> {
    if len as usize > MAX_PATH {
        return Err(Errno::NAMETOOLONG);
    }
    let bytes = abi::slice(mem, ptr, len).map_err(fault)?;
    pay(ctx, bytes_fuel(u64::from(len)))?;
    Ok(bytes.to_vec())
}

/// A directory descriptor with `right`.
fn dir_fd(fs: &Fs, fd: u32, right: u64) -> R<Entry> {
    let entry = fs.fds.get(fd)?;
    if !entry.is_dir {
        return Err(Errno::NOTDIR);
    }
    entry.need(right)?;
    Ok(entry.clone())
}

/// A file descriptor with `right` (a directory is `EBADF`).
fn file_fd(fs: &Fs, fd: u32, right: u64) -> R<Entry> {
    let entry = fs.fds.get(fd)?;
    if entry.is_dir {
        return Err(Errno::BADF);
    }
    entry.need(right).map_err(|_| Errno::BADF)?;
    Ok(entry.clone())
}

fn writable(entry: &Entry) -> R {
    if entry.read_only {
        Err(Errno::ROFS)
    } else {
        Ok(())
    }
}

fn filetype(node: &Node) -> u8 {
    match node.kind {
        Kind::File(_) => FILETYPE_REGULAR_FILE,
        Kind::Dir(_) => FILETYPE_DIRECTORY,
        Kind::Symlink(_) => FILETYPE_SYMBOLIC_LINK,
    }
}

fn node(fs: &Fs, ino: Ino) -> R<&Node> {
    fs.tree.get(ino).ok_or(Errno::NOENT)
}

fn write_filestat(mem: &mut [u8], ptr: u32, ino: Ino, node: &Node) -> R {
    let out = abi::slice_mut(mem, ptr, FILESTAT_SIZE).map_err(fault)?;
    out.fill(0);
    let size = match &node.kind {
        Kind::File(data) => data.len() as u64,
        Kind::Symlink(target) => target.len() as u64,
        Kind::Dir(entries) => entries.len() as u64,
    };
    out[0..8].copy_from_slice(&DEVICE.to_le_bytes());
    out[8..16].copy_from_slice(&ino.to_le_bytes());
    out[16] = filetype(node);
    out[24..32].copy_from_slice(&node.nlink.to_le_bytes());
    out[32..40].copy_from_slice(&size.to_le_bytes());
    out[40..48].copy_from_slice(&node.atim.to_le_bytes());
    out[48..56].copy_from_slice(&node.mtim.to_le_bytes());
    out[56..64].copy_from_slice(&node.ctim.to_le_bytes());
    Ok(())
}

/// `fd_fdstat_get` for a descriptor of the tree.
pub fn fd_fdstat_get(ctx: &WasiCtx, mem: &mut [u8], fd: u32, ptr: u32) -> Errno {
    errno((|| {
        let entry = ctx.fs.fds.get(fd)?;
        let out = abi::slice_mut(mem, ptr, abi::FDSTAT_SIZE).map_err(fault)?;
        out.fill(0);
        out[0] = if entry.is_dir {
            FILETYPE_DIRECTORY
        } else {
            FILETYPE_REGULAR_FILE
        };
        out[2..4].copy_from_slice(&entry.flags.to_le_bytes());
        out[8..16].copy_from_slice(&entry.base.to_le_bytes());
        out[16..24].copy_from_slice(&entry.inheriting.to_le_bytes());
        Ok(())
    })())
}

/// `fd_fdstat_set_flags(fd, flags)`.
pub fn fd_fdstat_set_flags(ctx: &mut WasiCtx, fd: u32, flags: u32) -> Errno {
    errno((|| {
        let entry = ctx.fs.fds.get_mut(fd)?;
        entry.need(RIGHT_FD_FDSTAT_SET_FLAGS)?;
        if flags & !FDFLAGS_ALL != 0 {
            return Err(Errno::INVAL);
        }
        entry.flags = flags as u16;
        Ok(())
    })())
}

/// `fd_fdstat_set_rights(fd, base, inheriting)`: rights only shrink.
pub fn fd_fdstat_set_rights(ctx: &mut WasiCtx, fd: u32, base: u64, inheriting: u64) -> Errno {
    errno((|| {
        let entry = ctx.fs.fds.get_mut(fd)?;
        if base & !entry.base != 0 || inheriting & !entry.inheriting != 0 {
            return Err(Errno::NOTCAPABLE);
        }
        entry.base = base;
        entry.inheriting = inheriting;
        Ok(())
    })())
}

/// `fd_prestat_get(fd, prestat)`: tag 0 (a directory) and the name length.
pub fn fd_prestat_get(ctx: &WasiCtx, mem: &mut [u8], fd: u32, ptr: u32) -> Errno {
    errno((|| {
        let name = ctx.fs.fds.get(fd)?.preopen.as_ref().ok_or(Errno::BADF)?;
        let out = abi::slice_mut(mem, ptr, 8).map_err(fault)?;
        out.fill(0);
        out[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
        Ok(())
    })())
}

/// `fd_prestat_dir_name(fd, path, path_len)`.
pub fn fd_prestat_dir_name(ctx: &WasiCtx, mem: &mut [u8], fd: u32, ptr: u32, len: u32) -> Errno {
    errno((|| {
        let name = ctx.fs.fds.get(fd)?.preopen.as_ref().ok_or(Errno::BADF)?;
        if (len as usize) < name.len() {
            return Err(Errno::NAMETOOLONG);
        }
        let out = abi::slice_mut(mem, ptr, name.len() as u32).map_err(fault)?;
        out.copy_from_slice(name);
        Ok(())
    })())
}

/// `fd_close` for a descriptor of the tree (preopens included).
pub fn fd_close(ctx: &mut WasiCtx, fd: u32) -> Errno {
    let fs = &mut ctx.fs;
    errno(fs.fds.remove(&mut fs.tree, fd))
}

/// `fd_renumber(from, to)`.
/// Stdio may be renumbered onto a descriptor of the tree (the stdio number
/// is then closed); renumbering onto stdio is `ENOTSUP`.
pub fn fd_renumber(ctx: &mut WasiCtx, from: u32, to: u32) -> Errno {
    let fs = &mut ctx.fs;
    if from < FIRST_FD {
        if ctx.closed.get(from as usize) != Some(&false) || !fs.fds.is_open(to) {
            return Errno::BADF;
        }
        let result = fs.fds.take_stdio(&mut fs.tree, from, to);
        if result.is_ok() {
            ctx.closed[from as usize] = true;
        }
        return errno(result);
    }
    if to < FIRST_FD {
        return if fs.fds.is_open(from) && ctx.closed.get(to as usize) == Some(&false) {
            Errno::NOTSUP
        } else {
            Errno::BADF
        };
    }
    errno(fs.fds.renumber(&mut fs.tree, from, to))
}

/// `fd_read` (`offset` None) and `fd_pread`.
pub fn fd_read(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    offset: Option<u64>,
    nread: u32,
) -> Errno {
    errno((|| {
        let entry = file_fd(&ctx.fs, fd, RIGHT_FD_READ)?;
        if offset.is_some() {
            entry.need(RIGHT_FD_SEEK).map_err(|_| Errno::BADF)?;
        }
        pay(ctx, u64::from(iovs_len).saturating_mul(IOVEC_FUEL))?;
        let iovecs = abi::check_iovecs(mem, iovs, iovs_len).map_err(fault)?;
        abi::check_range(mem.len(), nread, 4).map_err(fault)?;
        let start = offset.unwrap_or(entry.pos);
        let data = ctx.fs.tree.file(entry.ino)?;
        let left = (data.len() as u64).saturating_sub(start);
        let will_read = left.min(u64::from(iovecs.total));
        pay(ctx, bytes_fuel(will_read))?;
        let data = ctx.fs.tree.file(entry.ino)?;
        let mut at = start.min(data.len() as u64) as usize;
        let mut total: u32 = 0;
        for index in 0..iovecs.count() as u32 {
            if at >= data.len() {
                break;
            }
            // Re-read each record: a buffer filled before may overlap it.
            let rec = iovs + index * abi::IOVEC_SIZE;
            let (buf, len) = match (abi::read_u32(mem, rec), abi::read_u32(mem, rec + 4)) {
                (Ok(buf), Ok(len)) => (buf, len),
                _ => break,
            };
            let Ok(dest) = abi::slice_mut(mem, buf, len) else {
                break;
            };
            let count = dest.len().min(data.len() - at);
            dest[..count].copy_from_slice(&data[at..at + count]);
            at += count;
            total = total.saturating_add(count as u32);
        }
        if offset.is_none() {
            ctx.fs.fds.get_mut(fd)?.pos = start + u64::from(total);
        }
        let fs = now(ctx);
        let stamp = fs.tree.now;
        if let Some(node) = fs.tree.get_mut(entry.ino) {
            node.atim = node.atim.max(stamp);
        }
        abi::write_u32(mem, nread, total).map_err(fault)
    })())
}

/// `fd_write` (`offset` None) and `fd_pwrite`. With `fdflags::append`,
/// `fd_write` writes at the end (and `fd_pwrite` at its offset, as POSIX).
pub fn fd_write(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    iovs: u32,
    iovs_len: u32,
    offset: Option<u64>,
    nwritten: u32,
) -> Errno {
    errno((|| {
        let entry = file_fd(&ctx.fs, fd, RIGHT_FD_WRITE)?;
        if offset.is_some() {
            entry.need(RIGHT_FD_SEEK).map_err(|_| Errno::BADF)?;
        }
        writable(&entry)?;
        pay(ctx, u64::from(iovs_len).saturating_mul(IOVEC_FUEL))?;
        let iovecs = abi::check_iovecs(mem, iovs, iovs_len).map_err(fault)?;
        abi::check_range(mem.len(), nwritten, 4).map_err(fault)?;
        pay(ctx, bytes_fuel(u64::from(iovecs.total)))?;
        let fs = now(ctx);
        let start = match offset {
            Some(offset) => offset,
            None if u32::from(entry.flags) & FDFLAGS_APPEND != 0 => {
                fs.tree.file(entry.ino)?.len() as u64
            }
            None => entry.pos,
        };
        let end = start
            .checked_add(u64::from(iovecs.total))
            .ok_or(Errno::FBIG)?;
        if end > fs.tree.file(entry.ino)?.len() as u64 {
            fs.tree.set_len(entry.ino, end)?;
        }
        let mut at = start;
        for (buf, len) in iovecs.iter() {
            let bytes = abi::slice(mem, buf, len).map_err(fault)?;
            fs.tree.write(entry.ino, at, bytes)?;
            at += u64::from(len);
        }
        if offset.is_none() {
            fs.fds.get_mut(fd)?.pos = end;
        }
        abi::write_u32(mem, nwritten, iovecs.total).map_err(fault)
    })())
}

/// `fd_seek(fd, offset, whence, newoffset)` and, with `(0, CUR)`, `fd_tell`.
pub fn fd_seek(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    delta: i64,
    whence: u32,
    out: u32,
) -> Errno {
    errno((|| {
        let right = if delta == 0 && whence == WHENCE_CUR {
            RIGHT_FD_TELL
        } else {
            RIGHT_FD_SEEK
        };
        let entry = ctx.fs.fds.get(fd)?;
        if entry.is_dir {
            return Err(Errno::BADF);
        }
        if entry.base & (right | RIGHT_FD_SEEK) == 0 {
            return Err(Errno::BADF);
        }
        let base = match whence {
            WHENCE_SET => 0,
            WHENCE_CUR => entry.pos,
            WHENCE_END => ctx.fs.tree.file(entry.ino)?.len() as u64,
            _ => return Err(Errno::INVAL),
        };
        let pos = i128::from(base) + i128::from(delta);
        if pos < 0 || pos > i128::from(i64::MAX) {
            return Err(Errno::INVAL);
        }
        abi::check_range(mem.len(), out, 8).map_err(fault)?;
        ctx.fs.fds.get_mut(fd)?.pos = pos as u64;
        abi::write_u64(mem, out, pos as u64).map_err(fault)
    })())
}

/// `fd_tell(fd, offset)`.
pub fn fd_tell(ctx: &mut WasiCtx, mem: &mut [u8], fd: u32, out: u32) -> Errno {
    fd_seek(ctx, mem, fd, 0, WHENCE_CUR, out)
}

/// `fd_advise(fd, offset, len, advice)`: checked, then ignored.
pub fn fd_advise(ctx: &WasiCtx, fd: u32, offset: u64, len: u64, advice: u32) -> Errno {
    errno((|| {
        let entry = file_fd(&ctx.fs, fd, RIGHT_FD_ADVISE)?;
        let _ = entry;
        if advice > 5 || offset.checked_add(len).is_none() {
            return Err(Errno::INVAL);
        }
        Ok(())
    })())
}

/// `fd_allocate(fd, offset, len)`: the file grows to `offset + len`.
pub fn fd_allocate(ctx: &mut WasiCtx, fd: u32, offset: u64, len: u64) -> Errno {
    errno((|| {
        let entry = file_fd(&ctx.fs, fd, RIGHT_FD_ALLOCATE)?;
        writable(&entry)?;
        let end = offset.checked_add(len).ok_or(Errno::INVAL)?;
        let fs = now(ctx);
        if end > fs.tree.file(entry.ino)?.len() as u64 {
            fs.tree.set_len(entry.ino, end)?;
        }
        Ok(())
    })())
}

/// `fd_datasync`, `fd_sync`: nothing to flush.
pub fn fd_sync(ctx: &WasiCtx, fd: u32) -> Errno {
    errno(ctx.fs.fds.get(fd).map(|_| ()))
}

/// `fd_filestat_get(fd, buf)`.
pub fn fd_filestat_get(ctx: &WasiCtx, mem: &mut [u8], fd: u32, out: u32) -> Errno {
    errno((|| {
        let entry = ctx.fs.fds.get(fd)?;
        entry.need(RIGHT_FD_FILESTAT_GET)?;
        write_filestat(mem, out, entry.ino, node(&ctx.fs, entry.ino)?)
    })())
}

/// `fd_filestat_set_size(fd, size)`.
pub fn fd_filestat_set_size(ctx: &mut WasiCtx, fd: u32, size: u64) -> Errno {
    errno((|| {
        let entry = file_fd(&ctx.fs, fd, RIGHT_FD_FILESTAT_SET_SIZE)?;
        writable(&entry)?;
        now(ctx).tree.set_len(entry.ino, size)
    })())
}

/// Applies `fstflags` to `ino`'s times.
fn set_times(ctx: &mut WasiCtx, ino: Ino, atim: u64, mtim: u64, flags: u32) -> R {
    let both_a = FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW;
    let both_m = FSTFLAGS_MTIM | FSTFLAGS_MTIM_NOW;
    if flags & both_a == both_a || flags & both_m == both_m || flags & !0xf != 0 {
        return Err(Errno::INVAL);
    }
    let fs = now(ctx);
    let now = fs.tree.now;
    let node = fs.tree.get_mut(ino).ok_or(Errno::NOENT)?;
    if flags & FSTFLAGS_ATIM != 0 {
        node.atim = atim;
    } else if flags & FSTFLAGS_ATIM_NOW != 0 {
        node.atim = now;
    }
    if flags & FSTFLAGS_MTIM != 0 {
        node.mtim = mtim;
    } else if flags & FSTFLAGS_MTIM_NOW != 0 {
        node.mtim = now;
    }
    node.ctim = now;
    Ok(())
}

/// `fd_filestat_set_times(fd, atim, mtim, fstflags)`.
pub fn fd_filestat_set_times(
    ctx: &mut WasiCtx,
    fd: u32,
    atim: u64,
    mtim: u64,
    flags: u32,
) -> Errno {
    errno((|| {
        let entry = ctx.fs.fds.get(fd)?.clone();
        entry.need(RIGHT_FD_FILESTAT_SET_TIMES)?;
        writable(&entry)?;
        set_times(ctx, entry.ino, atim, mtim, flags)
    })())
}

/// `fd_readdir(fd, buf, buf_len, cookie, bufused)`: `.`, `..`, then the
/// entries in name order; the cookie is an entry's index. The last entry
/// is cut short when the buffer is full, as the ABI says.
pub fn fd_readdir(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    buf: u32,
    buf_len: u32,
    cookie: u64,
    bufused: u32,
) -> Errno {
    errno((|| {
        let entry = ctx.fs.fds.get(fd)?.clone();
        if !entry.is_dir {
            return Err(Errno::NOTDIR);
        }
        entry.need(RIGHT_FD_READDIR)?;
        abi::check_range(mem.len(), buf, u64::from(buf_len)).map_err(fault)?;
        abi::check_range(mem.len(), bufused, 4).map_err(fault)?;
        pay(ctx, bytes_fuel(u64::from(buf_len)))?;
        let fs = &ctx.fs;
        let dir = node(fs, entry.ino)?;
        let Kind::Dir(children) = &dir.kind else {
            return Err(Errno::NOTDIR);
        };
        let dots = [(&b"."[..], entry.ino), (&b".."[..], dir.parent)];
        let skip = usize::try_from(cookie).unwrap_or(usize::MAX);
        let all = dots
            .into_iter()
            .chain(children.iter().map(|(name, ino)| (name.as_slice(), *ino)));
        let mut used: usize = 0;
        let room = buf_len as usize;
        for (index, (name, ino)) in all.enumerate().skip(skip) {
            if used >= room {
                break;
            }
            let kind = fs.tree.get(ino).map_or(0, filetype);
            let mut record = [0u8; DIRENT_SIZE];
            record[0..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
            record[8..16].copy_from_slice(&ino.to_le_bytes());
            record[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
            record[20] = kind;
            for part in [&record[..], name] {
                let count = part.len().min(room - used);
                let dest = abi::slice_mut(mem, buf + used as u32, count as u32).map_err(fault)?;
                dest.copy_from_slice(&part[..count]);
                used += count;
            }
        }
        abi::write_u32(mem, bufused, used as u32).map_err(fault)
    })())
}

/// `path_open(fd, dirflags, path, path_len, oflags, base, inheriting, fdflags, opened)`.
#[allow(clippy::too_many_arguments)]
pub fn path_open(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    dirflags: u32,
    path: (u32, u32),
    oflags: u32,
    rights: (u64, u64),
    fdflags: u32,
    opened: u32,
) -> Errno {
    errno((|| {
        let dir = dir_fd(&ctx.fs, fd, RIGHT_PATH_OPEN)?;
        let path = path_arg(ctx, mem, path.0, path.1)?;
        abi::check_range(mem.len(), opened, 4).map_err(fault)?;
        if oflags & !0xf != 0 || fdflags & !FDFLAGS_ALL != 0 {
            return Err(Errno::INVAL);
        }
        if oflags & OFLAGS_CREAT != 0 {
            dir.need(RIGHT_PATH_CREATE_FILE)?;
        }
        if oflags & OFLAGS_TRUNC != 0 {
            dir.need(RIGHT_PATH_FILESTAT_SET_SIZE)?;
        }
        let follow = dirflags & LOOKUP_SYMLINK_FOLLOW != 0;
        let fs = now(ctx);
        let walked = walk(&fs.tree, dir.ino, &path, follow)?;
        let ino = match walked.target {
            Some(_) if oflags & (OFLAGS_CREAT | OFLAGS_EXCL) == OFLAGS_CREAT | OFLAGS_EXCL => {
                return Err(Errno::EXIST)
            }
            Some(ino) => ino,
            None if oflags & OFLAGS_CREAT == 0 => return Err(Errno::NOENT),
            None => {
                if walked.trailing_slash || oflags & OFLAGS_DIRECTORY != 0 {
                    return Err(Errno::ISDIR);
                }
                writable(&dir)?;
                let name = walked.name.as_deref().ok_or(Errno::EXIST)?;
                fs.tree
                    .create(walked.parent, name, Kind::File(Vec::new()))?
            }
        };
        let is_dir = match &node(fs, ino)?.kind {
            Kind::Symlink(_) => return Err(Errno::LOOP),
            Kind::Dir(_) => true,
            Kind::File(_) if oflags & OFLAGS_DIRECTORY != 0 || walked.trailing_slash => {
                return Err(Errno::NOTDIR)
            }
            Kind::File(_) => false,
        };
        let mask = if is_dir {
            DIR_RIGHTS | RIGHT_FD_READ
        } else {
            FILE_RIGHTS
        };
        let mut base = rights.0 & dir.inheriting & mask;
        let inheriting = rights.1 & dir.inheriting;
        if is_dir && (rights.0 & RIGHT_FD_WRITE != 0 || oflags & OFLAGS_TRUNC != 0) {
            return Err(Errno::ISDIR);
        }
        if rights.0 == 0 {
            // No rights asked for: what the directory may pass on (read-only
            // in a read-only tree).
            base = dir.inheriting & mask;
            if dir.read_only {
                base &= !WRITE_RIGHTS;
            }
        } else if dir.read_only && base & WRITE_RIGHTS != 0 {
            return Err(Errno::ROFS);
        }
        if oflags & OFLAGS_TRUNC != 0 {
            writable(&dir)?;
            fs.tree.set_len(ino, 0)?;
        }
        let entry = Entry {
            ino,
            is_dir,
            preopen: None,
            read_only: dir.read_only,
            base,
            inheriting,
            flags: fdflags as u16,
            pos: 0,
            stdio: None,
        };
        let new_fd = fs.fds.insert(&mut fs.tree, entry)?;
        abi::write_u32(mem, opened, new_fd).map_err(fault)
    })())
}

/// Walks `path` beneath directory descriptor `fd` after checking `right`.
fn walk_at(
    ctx: &mut WasiCtx,
    mem: &[u8],
    fd: u32,
    right: u64,
    path: (u32, u32),
    follow: bool,
) -> R<(Entry, Walked)> {
    let dir = dir_fd(&ctx.fs, fd, right)?;
    let path = path_arg(ctx, mem, path.0, path.1)?;
    let walked = walk(&now(ctx).tree, dir.ino, &path, follow)?;
    Ok((dir, walked))
}

/// `path_filestat_get(fd, flags, path, path_len, buf)`.
pub fn path_filestat_get(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    flags: u32,
    path: (u32, u32),
    out: u32,
) -> Errno {
    errno((|| {
        let follow = flags & LOOKUP_SYMLINK_FOLLOW != 0;
        let (_, walked) = walk_at(ctx, mem, fd, RIGHT_PATH_FILESTAT_GET, path, follow)?;
        let ino = walked.target.ok_or(Errno::NOENT)?;
        let node = node(&ctx.fs, ino)?;
        if walked.trailing_slash && !matches!(node.kind, Kind::Dir(_)) {
            return Err(Errno::NOTDIR);
        }
        write_filestat(mem, out, ino, node)
    })())
}

/// `path_filestat_set_times(fd, flags, path, path_len, atim, mtim, fstflags)`.
pub fn path_filestat_set_times(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    flags: u32,
    path: (u32, u32),
    times: (u64, u64),
    fstflags: u32,
) -> Errno {
    errno((|| {
        let follow = flags & LOOKUP_SYMLINK_FOLLOW != 0;
        let (dir, walked) = walk_at(ctx, mem, fd, RIGHT_PATH_FILESTAT_SET_TIMES, path, follow)?;
        let ino = walked.target.ok_or(Errno::NOENT)?;
        writable(&dir)?;
        set_times(ctx, ino, times.0, times.1, fstflags)
    })())
}

/// `path_create_directory(fd, path, path_len)`.
pub fn path_create_directory(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    path: (u32, u32),
) -> Errno {
    errno((|| {
        let (dir, walked) = walk_at(ctx, mem, fd, RIGHT_PATH_CREATE_DIRECTORY, path, false)?;
        if walked.target.is_some() {
            return Err(Errno::EXIST);
        }
        writable(&dir)?;
        let name = walked.name.as_deref().ok_or(Errno::EXIST)?;
        let kind = Kind::Dir(alloc::collections::BTreeMap::new());
        ctx.fs.tree.create(walked.parent, name, kind).map(|_| ())
    })())
}

/// `path_remove_directory(fd, path, path_len)`.
pub fn path_remove_directory(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    path: (u32, u32),
) -> Errno {
    errno((|| {
        let (dir, walked) = walk_at(ctx, mem, fd, RIGHT_PATH_REMOVE_DIRECTORY, path, false)?;
        let ino = walked.target.ok_or(Errno::NOENT)?;
        let name = walked.name.as_deref().ok_or(Errno::INVAL)?;
        match &node(&ctx.fs, ino)?.kind {
            Kind::Dir(entries) if !entries.is_empty() => return Err(Errno::NOTEMPTY),
            Kind::Dir(_) => {}
            _ => return Err(Errno::NOTDIR),
        }
        // The walk followed a final symlink only if the path ended in '/'.
        if ctx.fs.tree.lookup(walked.parent, name)? != Some(ino) {
            return Err(Errno::NOTDIR);
        }
        writable(&dir)?;
        ctx.fs.tree.unlink(walked.parent, name).map(|_| ())
    })())
}

/// `path_unlink_file(fd, path, path_len)`.
pub fn path_unlink_file(ctx: &mut WasiCtx, mem: &mut [u8], fd: u32, path: (u32, u32)) -> Errno {
    errno((|| {
        let (dir, walked) = walk_at(ctx, mem, fd, RIGHT_PATH_UNLINK_FILE, path, false)?;
        let ino = walked.target.ok_or(Errno::NOENT)?;
        let name = walked.name.as_deref().ok_or(Errno::ISDIR)?;
        match &node(&ctx.fs, ino)?.kind {
            Kind::Dir(_) => return Err(Errno::ISDIR),
            _ if walked.trailing_slash => return Err(Errno::NOTDIR),
            _ => {}
        }
        writable(&dir)?;
        ctx.fs.tree.unlink(walked.parent, name).map(|_| ())
    })())
}

/// Whether `dir` is `ancestor` or lies beneath it.
fn is_within(fs: &Fs, mut dir: Ino, ancestor: Ino) -> bool {
    for _ in 0..=fs.tree.inodes_used() {
        if dir == ancestor {
            return true;
        }
        match fs.tree.get(dir) {
            Some(node) if node.parent != dir => dir = node.parent,
            _ => return false,
        }
    }
    false
}

/// `path_rename(fd, old_path, old_len, new_fd, new_path, new_len)`.
pub fn path_rename(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    old: (u32, u32),
    new_fd: u32,
    new: (u32, u32),
) -> Errno {
    errno((|| {
        let (from_dir, src) = walk_at(ctx, mem, fd, RIGHT_PATH_RENAME_SOURCE, old, false)?;
        let (to_dir, dst) = walk_at(ctx, mem, new_fd, RIGHT_PATH_RENAME_TARGET, new, false)?;
        let ino = src.target.ok_or(Errno::NOENT)?;
        let (Some(from), Some(to)) = (src.name.as_deref(), dst.name.as_deref()) else {
            return Err(Errno::INVAL);
        };
        // A trailing slash may have followed a symlink: rename the entry.
        let ino_entry = ctx.fs.tree.lookup(src.parent, from)?.ok_or(Errno::NOENT)?;
        let src_is_dir = matches!(node(&ctx.fs, ino_entry)?.kind, Kind::Dir(_));
        if !src_is_dir && (src.trailing_slash || dst.trailing_slash) {
            return Err(Errno::NOTDIR);
        }
        let _ = ino;
        if let Some(existing) = ctx.fs.tree.lookup(dst.parent, to)? {
            if existing == ino_entry {
                return Ok(());
            }
            match (&node(&ctx.fs, existing)?.kind, src_is_dir) {
                (Kind::Dir(entries), true) if !entries.is_empty() => return Err(Errno::NOTEMPTY),
                (Kind::Dir(_), true) => {}
                (_, true) => return Err(Errno::NOTDIR),
                (Kind::Dir(_), false) => return Err(Errno::ISDIR),
                _ => {}
            }
        }
        if src_is_dir && is_within(&ctx.fs, dst.parent, ino_entry) {
            return Err(Errno::INVAL);
        }
        writable(&from_dir)?;
        writable(&to_dir)?;
        ctx.fs.tree.rename(src.parent, from, dst.parent, to)
    })())
}

/// `path_link(old_fd, old_flags, old_path, old_len, new_fd, new_path, new_len)`.
#[allow(clippy::too_many_arguments)]
pub fn path_link(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    flags: u32,
    old: (u32, u32),
    new_fd: u32,
    new: (u32, u32),
) -> Errno {
    errno((|| {
        let follow = flags & LOOKUP_SYMLINK_FOLLOW != 0;
        let (from_dir, src) = walk_at(ctx, mem, fd, RIGHT_PATH_LINK_SOURCE, old, follow)?;
        let (to_dir, dst) = walk_at(ctx, mem, new_fd, RIGHT_PATH_LINK_TARGET, new, false)?;
        let ino = src.target.ok_or(Errno::NOENT)?;
        if matches!(node(&ctx.fs, ino)?.kind, Kind::Dir(_)) {
            return Err(Errno::PERM);
        }
        if src.trailing_slash {
            return Err(Errno::NOTDIR);
        }
        if dst.target.is_some() {
            return Err(Errno::EXIST);
        }
        if dst.trailing_slash {
            return Err(Errno::NOENT);
        }
        let name = dst.name.as_deref().ok_or(Errno::EXIST)?;
        writable(&from_dir)?;
        writable(&to_dir)?;
        ctx.fs.tree.hard_link(dst.parent, name, ino)
    })())
}

/// `path_symlink(old_path, old_len, fd, new_path, new_len)`.
pub fn path_symlink(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    old: (u32, u32),
    fd: u32,
    new: (u32, u32),
) -> Errno {
    errno((|| {
        let target = path_arg(ctx, mem, old.0, old.1)?;
        let (dir, dst) = walk_at(ctx, mem, fd, RIGHT_PATH_SYMLINK, new, false)?;
        if dst.target.is_some() {
            return Err(Errno::EXIST);
        }
        if dst.trailing_slash {
            return Err(Errno::NOENT);
        }
        if target.is_empty() {
            return Err(Errno::NOENT);
        }
        if target[0] == b'/' {
            // It could never resolve beneath a preopen.
            return Err(Errno::PERM);
        }
        let name = dst.name.as_deref().ok_or(Errno::EXIST)?;
        writable(&dir)?;
        ctx.fs
            .tree
            .create(dst.parent, name, Kind::Symlink(target))
            .map(|_| ())
    })())
}

/// `path_readlink(fd, path, path_len, buf, buf_len, bufused)`: the target,
/// cut to the buffer.
pub fn path_readlink(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    fd: u32,
    path: (u32, u32),
    buf: u32,
    buf_len: u32,
    bufused: u32,
) -> Errno {
    errno((|| {
        let (_, walked) = walk_at(ctx, mem, fd, RIGHT_PATH_READLINK, path, false)?;
        let ino = walked.target.ok_or(Errno::NOENT)?;
        let Kind::Symlink(target) = &node(&ctx.fs, ino)?.kind else {
            return Err(Errno::INVAL);
        };
        if walked.trailing_slash {
            return Err(Errno::NOTDIR);
        }
        let count = target.len().min(buf_len as usize) as u32;
        abi::check_range(mem.len(), bufused, 4).map_err(fault)?;
        let dest = abi::slice_mut(mem, buf, count).map_err(fault)?;
        dest.copy_from_slice(&target[..count as usize]);
        abi::write_u32(mem, bufused, count).map_err(fault)
    })())
}
