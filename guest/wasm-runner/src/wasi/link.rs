//! Glue from wasmi imports to the functions in `funcs.rs`.
//!
//! The linker is built per module from that module's own import list: each
//! `wasi_snapshot_preview1` function we implement is defined with its typed
//! signature; any other function of that module gets a stub of exactly the
//! imported type that returns `ENOSYS`, so a program that merely references
//! e.g. `path_open` still instantiates and runs. Imports from any other
//! module must be host functions the embedder declared (`host_fn.rs`), with
//! exactly the declared type; anything else is refused by name.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use wasmi::{Caller, Error, Extern, ExternType, FuncType, Linker, Module, Val, ValType};

use super::abi::Errno;
use super::ctx::WasiCtx;
use super::fs;
use super::funcs;
use super::poll;
use crate::host_fn::{self, HostImport, SignatureError};
use crate::state::StoreData;

/// The module name of WASI preview 1.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Why a module's imports cannot be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The module imports something that is neither WASI preview 1 nor a
    /// declared host function.
    #[error("unknown import {module}::{name} (neither WASI nor a declared host function)")]
    UnknownModule {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// The module imports a WASI item that is not a function.
    #[error("import {module}::{name} is not a function")]
    NotAFunction {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// A host function's declaration is unusable or the import's type differs.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// wasmi refused a definition (a duplicate, normally impossible here).
    #[error("cannot define {name}: {message}")]
    Define {
        /// Import field name.
        name: String,
        /// wasmi's message.
        message: String,
    },
}

/// Fuel every host call costs, on top of what it charges for bytes moved.
pub const HOST_CALL_FUEL: u64 = 16;

/// Runs `f` on the module's exported `memory` (or an empty one if it exports
/// none, so every pointer is then out of bounds: EFAULT) and the run's state,
/// after charging [`HOST_CALL_FUEL`]. What `f` charges is taken from the
/// store's fuel, then from the run's reserve; a call that wants more than both
/// hold, or that asks to stop, ends the run with a [`Stop`] host error.
pub(crate) fn with_mem<'a, R: Default>(
    caller: &mut Caller<'_, StoreData<'a>>,
    f: impl FnOnce(&mut WasiCtx<'a>, &mut [u8]) -> R,
) -> Result<R, Error> {
    // Metering is always on (`run.rs`), so this does not fail.
    let in_store = caller.get_fuel().unwrap_or(u64::MAX);
    let data = caller.data_mut();
    let available = data
        .reserve
        .map_or(u64::MAX, |reserve| reserve.saturating_add(in_store));
    data.wasi.fuel_available = available;
    data.wasi.fuel_used = 0;
    data.wasi.stop = None;
    let result = if data.wasi.charge(HOST_CALL_FUEL) {
        match caller.get_export("memory").and_then(Extern::into_memory) {
            Some(memory) => {
                let (mem, data) = memory.data_and_store_mut(&mut *caller);
                f(&mut data.wasi, mem)
            }
            None => f(&mut caller.data_mut().wasi, &mut []),
        }
    } else {
        R::default()
    };
    let data = caller.data_mut();
    let used = data.wasi.fuel_used;
    let stop = data.wasi.stop.take();
    let from_store = used.min(in_store);
    if let Some(reserve) = data.reserve.as_mut() {
        *reserve = reserve.saturating_sub(used - from_store);
    }
    if in_store != u64::MAX {
        caller.set_fuel(in_store - from_store)?;
    }
    match stop {
        Some(stop) => Err(Error::host(stop)),
        None => Ok(result),
    }
}

pub(crate) type Ctx<'c, 'a> = Caller<'c, StoreData<'a>>;

/// Wasm passes u32 pointers, lengths and fds as i32: reinterpret the bits.
pub(crate) fn u(value: i32) -> u32 {
    value as u32
}

pub(crate) fn ok(errno: Result<Errno, Error>) -> Result<i32, Error> {
    errno.map(Errno::to_i32)
}

/// Defines the WASI function `name` in `linker`, or an ENOSYS stub of type
/// `ty` if we do not implement it. Returns wasmi's error if it refuses.
fn define<'a>(
    linker: &mut Linker<StoreData<'a>>,
    name: &str,
    ty: FuncType,
) -> Result<(), wasmi::errors::LinkerError> {
    let m = WASI_MODULE;
    if let Some(result) = fs::link::define(linker, name) {
        return result;
    }
    match name {
        "args_get" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, argv: i32, buf: i32| {
            ok(with_mem(&mut c, |ctx, mem| {
                funcs::args_get(ctx, mem, u(argv), u(buf))
            }))
        }),
        "args_sizes_get" => {
            linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, argc: i32, size: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    funcs::args_sizes_get(ctx, mem, u(argc), u(size))
                }))
            })
        }
        "environ_get" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, env: i32, buf: i32| {
            ok(with_mem(&mut c, |ctx, mem| {
                funcs::environ_get(ctx, mem, u(env), u(buf))
            }))
        }),
        "environ_sizes_get" => {
            linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, count: i32, size: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    funcs::environ_sizes_get(ctx, mem, u(count), u(size))
                }))
            })
        }
        "fd_write" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, iovs: i32, len: i32, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    funcs::fd_write(ctx, mem, u(fd), u(iovs), u(len), u(out))
                }))
            },
        ),
        "fd_read" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, iovs: i32, len: i32, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    funcs::fd_read(ctx, mem, u(fd), u(iovs), u(len), u(out))
                }))
            },
        ),
        "fd_close" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32| {
            ok(with_mem(&mut c, |ctx, _| funcs::fd_close(ctx, u(fd))))
        }),
        "fd_fdstat_get" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, stat: i32| {
            ok(with_mem(&mut c, |ctx, mem| {
                funcs::fd_fdstat_get(ctx, mem, u(fd), u(stat))
            }))
        }),
        "fd_prestat_get" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, out: i32| {
            ok(with_mem(&mut c, |ctx, mem| {
                fs::calls::fd_prestat_get(ctx, mem, u(fd), u(out))
            }))
        }),
        "fd_prestat_dir_name" => {
            linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, p: i32, l: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    fs::calls::fd_prestat_dir_name(ctx, mem, u(fd), u(p), u(l))
                }))
            })
        }
        "fd_seek" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, off: i64, whence: i32, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| match u(fd) {
                    0..=2 => funcs::fd_seek(ctx, u(fd), u(whence)),
                    fd => fs::calls::fd_seek(ctx, mem, fd, off, u(whence), u(out)),
                }))
            },
        ),
        "clock_time_get" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, id: i32, _precision: i64, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    funcs::clock_time_get(ctx, mem, u(id), u(out))
                }))
            },
        ),
        "clock_res_get" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, id: i32, out: i32| {
            ok(with_mem(&mut c, |ctx, mem| {
                funcs::clock_res_get(ctx, mem, u(id), u(out))
            }))
        }),
        "random_get" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, buf: i32, len: i32| {
            ok(with_mem(&mut c, |ctx, mem| {
                funcs::random_get(ctx, mem, u(buf), u(len))
            }))
        }),
        "poll_oneoff" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, subs: i32, events: i32, count: i32, out: i32| {
                ok(with_mem(&mut c, |ctx, mem| {
                    poll::poll_oneoff(ctx, mem, u(subs), u(events), u(count), u(out))
                }))
            },
        ),
        "sock_accept" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, _fl: i32, _out: i32| {
                ok(with_mem(&mut c, |ctx, _| funcs::sock_call(ctx, u(fd))))
            },
        ),
        "sock_recv" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, _iovs: i32, _len: i32, _fl: i32, _n: i32, _of: i32| {
                ok(with_mem(&mut c, |ctx, _| funcs::sock_call(ctx, u(fd))))
            },
        ),
        "sock_send" => linker.func_wrap(
            m,
            name,
            |mut c: Ctx<'_, 'a>, fd: i32, _iovs: i32, _len: i32, _fl: i32, _n: i32| {
                ok(with_mem(&mut c, |ctx, _| funcs::sock_call(ctx, u(fd))))
            },
        ),
        "sock_shutdown" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>, fd: i32, _how: i32| {
            ok(with_mem(&mut c, |ctx, _| funcs::sock_call(ctx, u(fd))))
        }),
        "sched_yield" => linker.func_wrap(m, name, |mut c: Ctx<'_, 'a>| {
            ok(with_mem(&mut c, |_, _| Errno::SUCCESS))
        }),
        // A host trap carrying the exit code; `outcome.rs` turns it into Exited.
        "proc_exit" => {
            linker.func_wrap(m, name, |_: Ctx<'_, 'a>, code: i32| -> Result<(), Error> {
                Err(Error::i32_exit(code))
            })
        }
        _ => {
            let result_types: Vec<ValType> = ty.results().to_vec();
            linker.func_new(
                m,
                name,
                ty,
                move |mut c: Ctx<'_, 'a>, _params: &[Val], results: &mut [Val]| {
                    with_mem(&mut c, |_, _| enosys_results(&result_types, results))
                },
            )
        }
    }
    .map(|_| ())
}

/// Fills a stub's results: ENOSYS in a leading i32 result, zero elsewhere.
fn enosys_results(types: &[ValType], results: &mut [Val]) {
    for (index, (slot, ty)) in results.iter_mut().zip(types).enumerate() {
        *slot = match (index, ty) {
            (0, ValType::I32) => Val::I32(Errno::NOSYS.to_i32()),
            (_, ty) => Val::default_for_ty(*ty),
        };
    }
}

/// Defines host function `index` (`decl`) after checking the import's type.
fn define_host<'a>(
    linker: &mut Linker<StoreData<'a>>,
    index: usize,
    decl: &HostImport,
    ty: &FuncType,
) -> Result<(), LinkError> {
    host_fn::check_import(decl, ty)?;
    let owned = decl.clone();
    let func = index as u32;
    linker
        .func_new(
            &decl.module,
            &decl.name,
            ty.clone(),
            move |mut c: Ctx<'_, 'a>, params: &[Val], results: &mut [Val]| {
                let r = with_mem(&mut c, |ctx, mem| {
                    host_fn::call(ctx, mem, func, &owned, params, results).err()
                })?;
                match r {
                    Some(fault) => Err(Error::host(fault)),
                    None => Ok(()),
                }
            },
        )
        .map(|_| ())
        .map_err(|error| LinkError::Define {
            name: decl.name.clone(),
            message: format!("{error}"),
        })
}

/// A linker that satisfies every import of `module` from WASI and the
/// embedder's host functions `hosts`, or the first import we cannot satisfy.
pub fn linker_for<'a>(
    module: &Module,
    hosts: &[HostImport],
) -> Result<Linker<StoreData<'a>>, LinkError> {
    let mut linker = Linker::new(module.engine());
    let mut defined = BTreeSet::new();
    for import in module.imports() {
        let (module_name, name) = (import.module(), import.name());
        let ExternType::Func(ty) = import.ty().clone() else {
            return Err(LinkError::NotAFunction {
                module: module_name.into(),
                name: name.into(),
            });
        };
        if !defined.insert((String::from(module_name), String::from(name))) {
            continue;
        }
        if module_name != WASI_MODULE {
            let found = hosts
                .iter()
                .position(|h| h.module == module_name && h.name == name);
            let Some(index) = found else {
                return Err(LinkError::UnknownModule {
                    module: module_name.into(),
                    name: name.into(),
                });
            };
            define_host(&mut linker, index, &hosts[index], &ty)?;
            continue;
        }
        define(&mut linker, name, ty).map_err(|error| LinkError::Define {
            name: name.into(),
            message: format!("{error}"),
        })?;
    }
    Ok(linker)
}
