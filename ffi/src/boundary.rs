//! The panic boundary every exported function runs behind, and the thread-local
//! "last error" message that goes with a non-OK status.
//!
//! [`ffi_status`] is the one helper for functions returning a status;
//! [`ffi_value`] is for getters and destructors, which return a plain value
//! and fall back to a default if the body panics.

use crate::status::kvmsb_status;
use std::cell::RefCell;
use std::ffi::CString;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A failed call: its status and the message `kvmsb_last_error` will return.
#[derive(Debug)]
pub struct Failure {
    /// The status returned to C.
    pub status: kvmsb_status,
    /// The message stored for this thread.
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: kvmsb_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

/// The result type of exported function bodies.
pub type FfiResult<T = ()> = Result<T, Failure>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into());
    format!("bug: kvmsandbox panicked: {what}")
}

/// Runs `f` behind the panic boundary; records the message of a failure.
pub fn ffi_status(f: impl FnOnce() -> FfiResult) -> kvmsb_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => kvmsb_status::Ok,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(payload) => {
            set_last_error(&panic_message(payload.as_ref()));
            kvmsb_status::Panic
        }
    }
}

/// Runs `f` behind the panic boundary; a panic yields `default` (and a message).
pub fn ffi_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            set_last_error(&panic_message(payload.as_ref()));
            default
        }
    }
}

/// The message of the last failing call on this thread ("" if none failed yet).
///
/// Ownership: the string belongs to the library; it stays valid until the next
/// failing call on this thread. Copy it to keep it.
/// Thread-safety: each thread has its own last error.
#[no_mangle]
pub extern "C" fn kvmsb_last_error() -> *const c_char {
    // The CString's heap buffer does not move when the RefCell is only read.
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

/// Copies the last error message of this thread into `buf` (at most `len` bytes
/// including the terminating NUL; always NUL-terminated when `len > 0`) and
/// returns the message's full length without the NUL, like `snprintf`.
/// `buf` may be NULL when `len` is 0, to ask for the length.
///
/// Ownership: `buf` belongs to the caller. Thread-safety: per-thread, like
/// `kvmsb_last_error`.
#[no_mangle]
pub extern "C" fn kvmsb_last_error_message(buf: *mut c_char, len: usize) -> usize {
    ffi_value(0, || {
        LAST_ERROR.with(|l| {
            let msg = l.borrow();
            let bytes = msg.as_bytes();
            if !buf.is_null() && len > 0 {
                let n = bytes.len().min(len - 1);
                // SAFETY: the caller promises `buf` holds `len` bytes; we write n + 1 <= len.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, n);
                    *buf.add(n) = 0;
                }
            }
            bytes.len()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn failure_sets_message_and_panic_is_caught() {
        let s = ffi_status(|| {
            Err(Failure::new(
                kvmsb_status::Config,
                "vcpus = 0 is out of range",
            ))
        });
        assert_eq!(s, kvmsb_status::Config);
        // SAFETY: kvmsb_last_error returns a valid NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(kvmsb_last_error()) };
        assert_eq!(msg.to_str().unwrap(), "vcpus = 0 is out of range");

        let mut buf = [0 as c_char; 6];
        assert_eq!(kvmsb_last_error_message(buf.as_mut_ptr(), buf.len()), 25);
        // SAFETY: buf was NUL-terminated by kvmsb_last_error_message.
        assert_eq!(
            unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(),
            "vcpus"
        );
        assert_eq!(kvmsb_last_error_message(std::ptr::null_mut(), 0), 25);

        let s = ffi_status(|| panic!("boom"));
        assert_eq!(s, kvmsb_status::Panic);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(kvmsb_last_error()) };
        assert!(msg.to_str().unwrap().contains("boom"));
        assert_eq!(ffi_value(7, || panic!("again")), 7);
    }
}
