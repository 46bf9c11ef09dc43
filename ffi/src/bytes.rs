//! `kvmsb_bytes`: a library-allocated byte buffer handed to C, freed by
//! `kvmsb_bytes_free`. Used for file contents, disk reads and console output.

use crate::boundary::ffi_value;

/// A byte buffer owned by the caller once returned, freed with `kvmsb_bytes_free`.
/// `data` is NULL when `len` is 0. Do not free `data` with `free()`.
#[repr(C)]
#[derive(Debug)]
pub struct kvmsb_bytes {
    /// The bytes (NULL when empty).
    pub data: *mut u8,
    /// How many.
    pub len: usize,
}

impl kvmsb_bytes {
    /// Hands `v` over to C.
    pub fn from_vec(v: Vec<u8>) -> Self {
        if v.is_empty() {
            return kvmsb_bytes {
                data: std::ptr::null_mut(),
                len: 0,
            };
        }
        let b = v.into_boxed_slice();
        let len = b.len();
        kvmsb_bytes {
            data: Box::into_raw(b).cast::<u8>(),
            len,
        }
    }
}

/// Frees the buffer in `*bytes` and resets it to `{NULL, 0}`, so freeing twice is
/// harmless. `bytes` may be NULL (nothing happens).
///
/// Ownership: `*bytes` must have been filled by this library and not modified.
/// Thread-safety: a buffer is freed once, by one thread.
#[no_mangle]
pub extern "C" fn kvmsb_bytes_free(bytes: *mut kvmsb_bytes) {
    ffi_value((), || {
        // SAFETY: NULL checked by `as_mut`; the caller promises it is a kvmsb_bytes.
        let Some(b) = (unsafe { bytes.as_mut() }) else {
            return;
        };
        if !b.data.is_null() {
            // SAFETY: `data`/`len` came from `Box<[u8]>::into_raw` in `from_vec` and
            // have not been freed (the pointer is reset below).
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(b.data, b.len)) });
        }
        b.data = std::ptr::null_mut();
        b.len = 0;
    })
}

/// A borrowed view of `data` for the `*_stdout`/`*_stderr` getters: writes the
/// length to `len` (if non-NULL) and returns the pointer (NULL when empty).
pub fn borrowed(data: &[u8], len: *mut usize) -> *const u8 {
    if !len.is_null() {
        // SAFETY: non-NULL; the caller promises it points to a size_t.
        unsafe { len.write(data.len()) };
    }
    if data.is_empty() {
        std::ptr::null()
    } else {
        data.as_ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_double_free() {
        let mut b = kvmsb_bytes::from_vec(b"hello".to_vec());
        assert_eq!(b.len, 5);
        // SAFETY: data points to 5 bytes owned by `b`.
        assert_eq!(
            unsafe { std::slice::from_raw_parts(b.data, b.len) },
            b"hello"
        );
        kvmsb_bytes_free(&mut b);
        assert!(b.data.is_null() && b.len == 0);
        kvmsb_bytes_free(&mut b);
        kvmsb_bytes_free(std::ptr::null_mut());
        let e = kvmsb_bytes::from_vec(Vec::new());
        assert!(e.data.is_null());
    }
}
