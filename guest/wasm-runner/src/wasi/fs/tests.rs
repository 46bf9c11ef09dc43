//! The file system calls end to end over a memory slice: files in, files
//! out, read-only trees, the caps, and the errnos the conformance suite
//! checks.

use alloc::vec::Vec;

use super::calls::*;
use super::consts::*;
use super::tree::Limits;
use super::{Dirs, EntryKind, Fs, FsEntry, OutKind, Preopen, PreopenError};
use crate::wasi::abi::{self, Errno};
use crate::wasi::ctx::WasiCtx;
use crate::wasi::funcs;
use crate::Stream;

const PATH: u32 = 1024;
const OUT: u32 = 2048;
const IOV: u32 = 3072;
const BUF: u32 = 4096;

/// Runs `f` on a context whose fs holds `preopens` (fd 3, 4, ...).
fn with_fs<R>(
    preopens: &[Preopen],
    limits: Limits,
    f: impl FnOnce(&mut WasiCtx, &mut Vec<u8>) -> R,
) -> R {
    let mut sink = |_: Stream, _: &[u8]| {};
    let clock = || 1_000_000u64;
    let mut ctx = WasiCtx::new(&[], &[], b"", &clock, [0; 32], &mut sink);
    ctx.fs = Fs::load(&Dirs { preopens, limits }).unwrap();
    let mut mem = alloc::vec![0u8; 65536];
    f(&mut ctx, &mut mem)
}

fn put(mem: &mut [u8], at: u32, bytes: &[u8]) -> (u32, u32) {
    mem[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
    (at, bytes.len() as u32)
}

/// `path_open` with everything a test needs; returns the errno and the fd.
fn open(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    dir: u32,
    path: &str,
    oflags: u32,
    rights: u64,
    fdflags: u32,
) -> (Errno, u32) {
    let p = put(mem, PATH, path.as_bytes());
    let errno = path_open(
        ctx,
        mem,
        dir,
        LOOKUP_SYMLINK_FOLLOW,
        p,
        oflags,
        (rights, 0),
        fdflags,
        OUT,
    );
    (errno, abi::read_u32(mem, OUT).unwrap_or(0))
}

fn write(ctx: &mut WasiCtx, mem: &mut [u8], fd: u32, bytes: &[u8]) -> Errno {
    let (at, len) = put(mem, BUF, bytes);
    abi::write_u32(mem, IOV, at).unwrap();
    abi::write_u32(mem, IOV + 4, len).unwrap();
    funcs::fd_write(ctx, mem, fd, IOV, 1, OUT)
}

fn read(ctx: &mut WasiCtx, mem: &mut [u8], fd: u32, len: u32) -> (Errno, Vec<u8>) {
    abi::write_u32(mem, IOV, BUF).unwrap();
    abi::write_u32(mem, IOV + 4, len).unwrap();
    let errno = funcs::fd_read(ctx, mem, fd, IOV, 1, OUT);
    let n = abi::read_u32(mem, OUT).unwrap_or(0) as usize;
    (errno, mem[BUF as usize..BUF as usize + n].to_vec())
}

fn path_call(
    ctx: &mut WasiCtx,
    mem: &mut [u8],
    path: &str,
    f: fn(&mut WasiCtx, &mut [u8], u32, (u32, u32)) -> Errno,
) -> Errno {
    let p = put(mem, PATH, path.as_bytes());
    f(ctx, mem, 3, p)
}

const RW: u64 = RIGHT_FD_READ | RIGHT_FD_WRITE | RIGHT_FD_SEEK | RIGHT_FD_TELL;

fn input() -> [FsEntry<'static>; 3] {
    [
        FsEntry {
            path: b"in.txt",
            kind: EntryKind::File(b"hello"),
        },
        FsEntry {
            path: b"sub/deep.txt",
            kind: EntryKind::File(b"deep"),
        },
        FsEntry {
            path: b"link",
            kind: EntryKind::Symlink(b"sub/deep.txt"),
        },
    ]
}

#[test]
fn files_in_and_out() {
    let entries = input();
    let preopens = [Preopen {
        guest_path: b"/data",
        read_only: false,
        entries: &entries,
    }];
    let out = with_fs(&preopens, Limits::default(), |ctx, mem| {
        // The preopen is fd 3 and says its name.
        assert_eq!(fd_prestat_get(ctx, mem, 3, OUT), Errno::SUCCESS);
        assert_eq!(abi::read_u32(mem, OUT + 4), Ok(5));
        assert_eq!(fd_prestat_dir_name(ctx, mem, 3, OUT, 5), Errno::SUCCESS);
        assert_eq!(&mem[OUT as usize..OUT as usize + 5], b"/data");
        assert_eq!(fd_prestat_dir_name(ctx, mem, 3, OUT, 4), Errno::NAMETOOLONG);
        assert_eq!(fd_prestat_get(ctx, mem, 4, OUT), Errno::BADF);
        // Read a file that came in, through a symlink too.
        let (errno, fd) = open(ctx, mem, 3, "link", 0, RIGHT_FD_READ, 0);
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(read(ctx, mem, fd, 100), (Errno::SUCCESS, b"deep".to_vec()));
        assert_eq!(read(ctx, mem, fd, 100), (Errno::SUCCESS, Vec::new()));
        // Write a new file, appending.
        let (errno, fd) = open(ctx, mem, 3, "sub/new.txt", OFLAGS_CREAT, RW, FDFLAGS_APPEND);
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(write(ctx, mem, fd, b"one "), Errno::SUCCESS);
        assert_eq!(write(ctx, mem, fd, b"two"), Errno::SUCCESS);
        assert_eq!(funcs::fd_close(ctx, fd), Errno::SUCCESS);
        assert_eq!(funcs::fd_close(ctx, fd), Errno::BADF);
        core::mem::take(&mut ctx.fs).finish()
    });
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].guest_path, b"/data");
    let found: Vec<(&[u8], &OutKind)> = out[0]
        .entries
        .iter()
        .map(|e| (e.path.as_slice(), &e.kind))
        .collect();
    assert_eq!(
        found,
        [
            (&b"in.txt"[..], &OutKind::Unchanged(b"in.txt".to_vec())),
            (b"link", &OutKind::Symlink(b"sub/deep.txt".to_vec())),
            (b"sub", &OutKind::Dir),
            (
                b"sub/deep.txt",
                &OutKind::Unchanged(b"sub/deep.txt".to_vec())
            ),
            (b"sub/new.txt", &OutKind::File(b"one two".to_vec())),
        ]
    );
}

#[test]
fn read_only_tree_refuses_changes_with_erofs() {
    let entries = input();
    let preopens = [Preopen {
        guest_path: b"/ro",
        read_only: true,
        entries: &entries,
    }];
    let out = with_fs(&preopens, Limits::default(), |ctx, mem| {
        assert_eq!(open(ctx, mem, 3, "new", OFLAGS_CREAT, RW, 0).0, Errno::ROFS);
        assert_eq!(open(ctx, mem, 3, "in.txt", 0, RW, 0).0, Errno::ROFS);
        assert_eq!(
            open(ctx, mem, 3, "in.txt", OFLAGS_TRUNC, RIGHT_FD_READ, 0).0,
            Errno::ROFS
        );
        assert_eq!(path_call(ctx, mem, "in.txt", path_unlink_file), Errno::ROFS);
        assert_eq!(path_call(ctx, mem, "d", path_create_directory), Errno::ROFS);
        // Reading works; an fd opened without rights cannot write either.
        let (errno, fd) = open(ctx, mem, 3, "in.txt", 0, 0, 0);
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(read(ctx, mem, fd, 3), (Errno::SUCCESS, b"hel".to_vec()));
        assert_eq!(write(ctx, mem, fd, b"x"), Errno::BADF);
        core::mem::take(&mut ctx.fs).finish()
    });
    assert!(out.is_empty(), "a read-only directory is not handed back");
}

#[test]
fn caps_are_enospc_and_edquot_inside_the_guest() {
    let preopens = [Preopen {
        guest_path: b"/",
        read_only: false,
        entries: &[],
    }];
    let limits = Limits {
        max_bytes: 1000,
        max_inodes: 3,
    };
    with_fs(&preopens, limits, |ctx, mem| {
        let rights = RW | RIGHT_FD_ALLOCATE | RIGHT_FD_FILESTAT_SET_SIZE;
        let (errno, fd) = open(ctx, mem, 3, "big", OFLAGS_CREAT, rights, 0);
        assert_eq!(errno, Errno::SUCCESS);
        assert_eq!(write(ctx, mem, fd, &[7; 900]), Errno::SUCCESS);
        assert_eq!(write(ctx, mem, fd, &[7; 200]), Errno::NOSPC);
        assert_eq!(fd_allocate(ctx, fd, 0, u64::MAX / 2), Errno::NOSPC);
        assert_eq!(fd_filestat_set_size(ctx, fd, 1 << 40), Errno::NOSPC);
        assert_eq!(
            ctx.fs
                .tree
                .file(ctx.fs.fds.get(fd).unwrap().ino)
                .unwrap()
                .len(),
            900
        );
        assert_eq!(
            path_call(ctx, mem, "d", path_create_directory),
            Errno::SUCCESS
        );
        assert_eq!(
            path_call(ctx, mem, "e", path_create_directory),
            Errno::DQUOT
        );
    });
    // Contents over the caps are a typed error before the run.
    let entries = [FsEntry {
        path: b"f",
        kind: EntryKind::File(&[0; 2000]),
    }];
    let preopens = [Preopen {
        guest_path: b"/",
        read_only: false,
        entries: &entries,
    }];
    let error = Fs::load(&Dirs {
        preopens: &preopens,
        limits,
    })
    .unwrap_err();
    assert!(
        matches!(error, PreopenError::TooBig { errno: 51, .. }),
        "{error}"
    );
    let entries = [FsEntry {
        path: b"../x",
        kind: EntryKind::Dir,
    }];
    let preopens = [Preopen {
        guest_path: b"/",
        read_only: false,
        entries: &entries,
    }];
    let error = Fs::load(&Dirs {
        preopens: &preopens,
        limits,
    })
    .unwrap_err();
    assert!(matches!(error, PreopenError::BadPath { .. }), "{error}");
}

#[test]
fn descriptor_table_is_capped() {
    let entries = [FsEntry {
        path: b"f",
        kind: EntryKind::File(b"x"),
    }];
    let preopens = [Preopen {
        guest_path: b"/",
        read_only: false,
        entries: &entries,
    }];
    with_fs(&preopens, Limits::default(), |ctx, mem| {
        for _ in 1..super::fds::MAX_FDS {
            assert_eq!(
                open(ctx, mem, 3, "f", 0, RIGHT_FD_READ, 0).0,
                Errno::SUCCESS
            );
        }
        assert_eq!(open(ctx, mem, 3, "f", 0, RIGHT_FD_READ, 0).0, Errno::MFILE);
    });
}

/// The errnos the conformance suite checks (trailing slashes, symlinks,
/// directories vs files, escaping the preopen, rights).
#[test]
fn errnos_the_suite_checks() {
    let entries = [
        FsEntry {
            path: b"file",
            kind: EntryKind::File(b"data"),
        },
        FsEntry {
            path: b"dir/nested",
            kind: EntryKind::Dir,
        },
        FsEntry {
            path: b"dangling",
            kind: EntryKind::Symlink(b"nowhere"),
        },
        FsEntry {
            path: b"loop",
            kind: EntryKind::Symlink(b"loop"),
        },
        FsEntry {
            path: b"escape",
            kind: EntryKind::Symlink(b"../x"),
        },
    ];
    let preopens = [Preopen {
        guest_path: b"/",
        read_only: false,
        entries: &entries,
    }];
    with_fs(&preopens, Limits::default(), |ctx, mem| {
        use Errno as E;
        let nofollow = |ctx: &mut WasiCtx, mem: &mut Vec<u8>, path: &str, oflags: u32| {
            let p = put(mem, PATH, path.as_bytes());
            path_open(ctx, mem, 3, 0, p, oflags, (0, 0), 0, OUT)
        };
        assert_eq!(open(ctx, mem, 3, "file/", 0, 0, 0).0, E::NOTDIR);
        assert_eq!(open(ctx, mem, 3, "/file", 0, 0, 0).0, E::PERM);
        assert_eq!(
            open(ctx, mem, 3, "dir/../../file", 0, 0, 0).0,
            E::NOTCAPABLE
        );
        assert_eq!(open(ctx, mem, 3, "escape", 0, 0, 0).0, E::NOTCAPABLE);
        assert_eq!(open(ctx, mem, 3, "loop", 0, 0, 0).0, E::LOOP);
        assert_eq!(open(ctx, mem, 3, "dangling", 0, 0, 0).0, E::NOENT);
        assert_eq!(nofollow(ctx, mem, "dangling", 0), E::LOOP);
        assert_eq!(nofollow(ctx, mem, "dangling", OFLAGS_DIRECTORY), E::LOOP);
        assert_eq!(
            open(ctx, mem, 3, "file", OFLAGS_DIRECTORY, 0, 0).0,
            E::NOTDIR
        );
        assert_eq!(
            open(ctx, mem, 3, "file", OFLAGS_CREAT | OFLAGS_EXCL, 0, 0).0,
            E::EXIST
        );
        assert_eq!(open(ctx, mem, 3, "dir", 0, RIGHT_FD_WRITE, 0).0, E::ISDIR);
        assert_eq!(path_call(ctx, mem, "dir", path_unlink_file), E::ISDIR);
        assert_eq!(path_call(ctx, mem, "file/", path_unlink_file), E::NOTDIR);
        assert_eq!(
            path_call(ctx, mem, "file", path_remove_directory),
            E::NOTDIR
        );
        assert_eq!(
            path_call(ctx, mem, "dir", path_remove_directory),
            E::NOTEMPTY
        );
        assert_eq!(
            path_call(ctx, mem, "dir/nested/", path_remove_directory),
            E::SUCCESS
        );
        assert_eq!(path_call(ctx, mem, "dir", path_create_directory), E::EXIST);
        // A directory fd refuses file operations, and rights only shrink.
        let (errno, dir) = open(ctx, mem, 3, "dir", OFLAGS_DIRECTORY, 0, 0);
        assert_eq!(errno, E::SUCCESS);
        assert_eq!(read(ctx, mem, dir, 4).0, E::BADF);
        assert_eq!(fd_seek(ctx, mem, dir, 0, WHENCE_CUR, OUT), E::BADF);
        assert_eq!(fd_fdstat_set_rights(ctx, dir, u64::MAX, 0), E::NOTCAPABLE);
        let (errno, fd) = open(ctx, mem, 3, "file", 0, RW, 0);
        assert_eq!(errno, E::SUCCESS);
        assert_eq!(fd_seek(ctx, mem, fd, -1, WHENCE_SET, OUT), E::INVAL);
        assert_eq!(fd_seek(ctx, mem, fd, 2, WHENCE_END, OUT), E::SUCCESS);
        assert_eq!(abi::read_u64(mem, OUT), Ok(6));
        assert_eq!(fd_fdstat_set_rights(ctx, fd, RIGHT_FD_WRITE, 0), E::SUCCESS);
        assert_eq!(read(ctx, mem, fd, 4).0, E::BADF);
        assert_eq!(
            fd_filestat_set_times(ctx, fd, 0, 0, FSTFLAGS_ATIM | FSTFLAGS_ATIM_NOW),
            E::NOTCAPABLE
        );
        // Stdio renumbered onto a file descriptor takes it over.
        assert_eq!(fd_renumber(ctx, 1, fd), E::SUCCESS);
        assert_eq!(funcs::fd_fdstat_get(ctx, mem, 1, OUT), E::BADF);
        assert_eq!(funcs::fd_fdstat_get(ctx, mem, fd, OUT), E::SUCCESS);
        assert_eq!(mem[OUT as usize], abi::FILETYPE_CHARACTER_DEVICE);
    });
}

#[test]
fn readdir_lists_dots_then_names_and_cuts_the_last_entry() {
    let entries = [
        FsEntry {
            path: b"b",
            kind: EntryKind::File(b""),
        },
        FsEntry {
            path: b"a",
            kind: EntryKind::Dir,
        },
    ];
    let preopens = [Preopen {
        guest_path: b"/",
        read_only: false,
        entries: &entries,
    }];
    with_fs(&preopens, Limits::default(), |ctx, mem| {
        assert_eq!(fd_readdir(ctx, mem, 3, BUF, 1000, 0, OUT), Errno::SUCCESS);
        let used = abi::read_u32(mem, OUT).unwrap() as usize;
        assert_eq!(used, 4 * DIRENT_SIZE + 1 + 2 + 1 + 1);
        let mut names = Vec::new();
        let mut at = BUF as usize;
        while at < BUF as usize + used {
            let len = abi::read_u32(mem, at as u32 + 16).unwrap() as usize;
            names.push((
                mem[at + DIRENT_SIZE..at + DIRENT_SIZE + len].to_vec(),
                mem[at + 20],
            ));
            at += DIRENT_SIZE + len;
        }
        assert_eq!(
            names,
            [
                (b".".to_vec(), FILETYPE_DIRECTORY),
                (b"..".to_vec(), FILETYPE_DIRECTORY),
                (b"a".to_vec(), FILETYPE_DIRECTORY),
                (b"b".to_vec(), FILETYPE_REGULAR_FILE)
            ]
        );
        // From cookie 3 (after "a"), into a buffer too small for the record.
        assert_eq!(fd_readdir(ctx, mem, 3, BUF, 10, 3, OUT), Errno::SUCCESS);
        assert_eq!(abi::read_u32(mem, OUT), Ok(10));
        assert_eq!(abi::read_u64(mem, BUF), Ok(4));
    });
}
