//! Output callbacks: how C receives a command's or module's output as it is
//! written instead of all at once in the result. The callback is a plain
//! function pointer plus the caller's `user_data`, called on the thread that
//! made the blocking call (exec, run_wasm, `kvmsb_process_wait`), never after
//! that call returned.

use kvmsandbox_core::agent::Stream;
use std::os::raw::c_void;

/// Which output stream a chunk belongs to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum kvmsb_stream {
    /// Standard output.
    Stdout = 1,
    /// Standard error.
    Stderr = 2,
}

impl From<Stream> for kvmsb_stream {
    fn from(s: Stream) -> Self {
        match s {
            Stream::Stdout => kvmsb_stream::Stdout,
            // Streams newer than this C API arrive as stderr.
            _ => kvmsb_stream::Stderr,
        }
    }
}

/// Receives `len` bytes (`data` valid only during the call) written to `stream`;
/// `user_data` is what was given with the callback.
pub type kvmsb_output_fn = Option<
    extern "C" fn(user_data: *mut c_void, stream: kvmsb_stream, data: *const u8, len: usize),
>;

/// A set callback with its user data.
#[derive(Clone, Copy, Debug)]
pub struct OutputCallback {
    f: extern "C" fn(*mut c_void, kvmsb_stream, *const u8, usize),
    user_data: *mut c_void,
}

impl OutputCallback {
    /// `None` when `f` is NULL (collect output in the result instead).
    pub fn new(f: kvmsb_output_fn, user_data: *mut c_void) -> Option<Self> {
        f.map(|f| OutputCallback { f, user_data })
    }

    /// Hands one chunk to C.
    pub fn call(&self, stream: Stream, data: &[u8]) {
        (self.f)(self.user_data, stream.into(), data.as_ptr(), data.len());
    }
}
