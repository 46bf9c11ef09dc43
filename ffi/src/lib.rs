//! C ABI for kvmsandbox: `libkvmsandbox.so` / `libkvmsandbox.a` and the
//! cbindgen-generated `include/kvmsandbox.h`.
//!
//! Shaped like rustls-ffi: opaque handles (`kvmsb_config`, `kvmsb_sandbox`,
//! result handles) created and freed by the library; every function returns a
//! stable numbered [`kvmsb_status`] and leaves a thread-local message for
//! [`kvmsb_last_error`]; every body runs behind one panic boundary
//! ([`boundary`]) and checks every pointer it is given. Input conversion lives in
//! [`args`], so the files exporting functions only say what each call does.

#![allow(non_camel_case_types)]
// Every exported function checks its pointers before dereferencing them and says
// so in its doc comment; marking them `unsafe` would not change what C sees.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod agent_calls;
mod args;
pub mod boundary;
pub mod bytes;
pub mod config;
pub mod exec;
pub mod exec_options;
pub mod files;
pub mod fs;
pub mod host_fn;
mod options_handle;
pub mod output;
pub mod pool;
pub mod process;
pub mod sandbox;
pub mod snapshot;
pub mod status;
pub mod template;
pub mod timeout;
pub mod wasm;
pub mod wasm_dirs;
pub mod wasm_options;

pub use boundary::{kvmsb_last_error, kvmsb_last_error_message};
pub use bytes::{kvmsb_bytes, kvmsb_bytes_free};
pub use status::{kvmsb_status, kvmsb_status_name};
pub use timeout::{KVMSB_TIMEOUT_DEFAULT, KVMSB_TIMEOUT_NONE};

use std::os::raw::c_char;

static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version as a NUL-terminated string ("MAJOR.MINOR.PATCH").
///
/// Ownership: static storage, never free it. Thread-safety: any thread.
#[no_mangle]
pub extern "C" fn kvmsb_version() -> *const c_char {
    VERSION.as_ptr().cast()
}
