//! wasmi glue for the file system calls in `calls.rs`, called from the
//! main `link.rs` for every import it does not define itself. WASI passes
//! u64s (offsets, rights, times) as i64: reinterpreted bit for bit.

use wasmi::errors::LinkerError;
use wasmi::Linker;

use super::calls;
use crate::state::StoreData;
use crate::wasi::link::{ok, u, with_mem, Ctx, WASI_MODULE};

fn w(value: i64) -> u64 {
    value as u64
}

/// Defines the file system function `name`; `None` if it is not one.
pub fn define<'a>(
    linker: &mut Linker<StoreData<'a>>,
    name: &str,
) -> Option<Result<(), LinkerError>> {
    let m = WASI_MODULE;
    let result = match name {
        "fd_advise" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, off: i64, len: i64, advice: i32| {
                ok(with_mem(&mut c, |ctx, _| {
                    calls::fd_advise(ctx, u(fd), w(off), w(len), u(advice))
                }))
            },
        ),
        "fd_allocate" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, off: i64, len: i64| {
                ok(with_mem(&mut c, |ctx, _| {
                    calls::fd_allocate(ctx, u(fd), w(off), w(len))
                }))
            },
        ),
        "fd_datasync" | "fd_sync" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32| {
            ok(with_mem(&mut c, |ctx, _| match u(fd) {
                0..=2 => crate::wasi::abi::Errno::INVAL,
                fd => calls::fd_sync(ctx, fd),
            }))
        }),
        "fd_fdstat_set_flags" => {
            linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, flags: i32| {
                ok(with_mem(&mut c, |ctx, _| {
                    calls::fd_fdstat_set_flags(ctx, u(fd), u(flags))
                }))
            })
        }
        "fd_fdstat_set_rights" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, base: i64, inh: i64| {
                ok(with_mem(&mut c, |ctx, _| {
                    calls::fd_fdstat_set_rights(ctx, u(fd), w(base), w(inh))
                }))
            },
        ),
        "fd_filestat_get" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, out: i32| {
            ok(with_mem(&mut c, |ctx, mem| {
                calls::fd_filestat_get(ctx, mem, u(fd), u(out))
            }))
        }),
        "fd_filestat_set_size" => {
            linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, size: i64| {
                ok(with_mem(&mut c, |ctx, _| {
                    calls::fd_filestat_set_size(ctx, u(fd), w(size))
                }))
            })
        }
        "fd_filestat_set_times" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, a: i64, mt: i64, fl: i32| {
                ok(with_mem(&mut c, |ctx, _| {
                    calls::fd_filestat_set_times(ctx, u(fd), w(a), w(mt), u(fl))
                }))
            },
        ),
        "fd_pread" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, iovs: i32, len: i32, off: i64, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::fd_read(ctx, mem, u(fd), u(iovs), u(len), Some(w(off)), u(out))
                }))
            },
        ),
        "fd_pwrite" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, iovs: i32, len: i32, off: i64, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::fd_write(ctx, mem, u(fd), u(iovs), u(len), Some(w(off)), u(out))
                }))
            },
        ),
        "fd_readdir" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, buf: i32, len: i32, cookie: i64, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::fd_readdir(ctx, mem, u(fd), u(buf), u(len), w(cookie), u(out))
                }))
            },
        ),
        "fd_renumber" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, to: i32| {
            ok(with_mem(&mut c, |ctx, _| {
                calls::fd_renumber(ctx, u(fd), u(to))
            }))
        }),
        "fd_tell" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, out: i32| {
            ok(with_mem(&mut c, |ctx, mem| match u(fd) {
                0..=2 => crate::wasi::funcs::fd_seek(ctx, u(fd), 1),
                fd => calls::fd_tell(ctx, mem, fd, u(out)),
            }))
        }),
        "path_create_directory" => {
            linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, p: i32, l: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_create_directory(ctx, mem, u(fd), (u(p), u(l)))
                }))
            })
        }
        "path_filestat_get" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, fl: i32, p: i32, l: i32, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_filestat_get(ctx, mem, u(fd), u(fl), (u(p), u(l)), u(out))
                }))
            },
        ),
        "path_filestat_set_times" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, fl: i32, p: i32, l: i32, a: i64, mt: i64, fst: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_filestat_set_times(
                        ctx,
                        mem,
                        u(fd),
                        u(fl),
                        (u(p), u(l)),
                        (w(a), w(mt)),
                        u(fst),
                    )
                }))
            },
        ),
        "path_link" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, fl: i32, op: i32, ol: i32, nfd: i32, np: i32, nl: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_link(
                        ctx,
                        mem,
                        u(fd),
                        u(fl),
                        (u(op), u(ol)),
                        u(nfd),
                        (u(np), u(nl)),
                    )
                }))
            },
        ),
        "path_open" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>,
             fd: i32,
             dfl: i32,
             p: i32,
             l: i32,
             of: i32,
             base: i64,
             inh: i64,
             ff: i32,
             out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_open(
                        ctx,
                        mem,
                        u(fd),
                        u(dfl),
                        (u(p), u(l)),
                        u(of),
                        (w(base), w(inh)),
                        u(ff),
                        u(out),
                    )
                }))
            },
        ),
        "path_readlink" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, p: i32, l: i32, buf: i32, bl: i32, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_readlink(ctx, mem, u(fd), (u(p), u(l)), u(buf), u(bl), u(out))
                }))
            },
        ),
        "path_remove_directory" => {
            linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, p: i32, l: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_remove_directory(ctx, mem, u(fd), (u(p), u(l)))
                }))
            })
        }
        "path_rename" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, op: i32, ol: i32, nfd: i32, np: i32, nl: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_rename(ctx, mem, u(fd), (u(op), u(ol)), u(nfd), (u(np), u(nl)))
                }))
            },
        ),
        "path_symlink" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, op: i32, ol: i32, fd: i32, np: i32, nl: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_symlink(ctx, mem, (u(op), u(ol)), u(fd), (u(np), u(nl)))
                }))
            },
        ),
        "path_unlink_file" => {
            linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, p: i32, l: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    calls::path_unlink_file(ctx, mem, u(fd), (u(p), u(l)))
                }))
            })
        }
        _ => return None,
    };
    Some(result.map(|_| ()))
}
