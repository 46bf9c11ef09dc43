//! Turning C arguments into Rust values: NULL checks, UTF-8 checks, arrays of
//! strings. Every function here is `unsafe` only for the promise C makes about
//! a non-NULL pointer (that it points to what its type says); everything that
//! can be checked is checked and reported as a [`Failure`] naming the argument.

use crate::boundary::{Failure, FfiResult};
use crate::status::kvmsb_status;
use std::ffi::{CStr, OsStr};
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// The failure for a NULL `name`.
pub fn null(name: &str) -> Failure {
    Failure::new(
        kvmsb_status::NullArgument,
        format!("argument `{name}` is NULL"),
    )
}

/// The failure for a malformed argument.
pub fn invalid(message: impl Into<String>) -> Failure {
    Failure::new(kvmsb_status::InvalidArgument, message)
}

/// A shared reference to a handle.
///
/// # Safety
/// A non-NULL `p` must point to a live `T` for `'a`.
pub unsafe fn handle<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    // SAFETY: non-NULL checked by `as_ref`; validity is the caller's promise.
    unsafe { p.as_ref() }.ok_or_else(|| null(name))
}

/// An exclusive reference to a handle.
///
/// # Safety
/// A non-NULL `p` must point to a live `T` not used elsewhere for `'a`.
pub unsafe fn handle_mut<'a, T>(p: *mut T, name: &str) -> FfiResult<&'a mut T> {
    // SAFETY: non-NULL checked by `as_mut`; exclusivity is the caller's promise.
    unsafe { p.as_mut() }.ok_or_else(|| null(name))
}

/// Checks an out-parameter before any work is done.
pub fn out<T>(p: *mut T, name: &str) -> FfiResult<()> {
    if p.is_null() {
        Err(null(name))
    } else {
        Ok(())
    }
}

/// Writes `v` through a checked, non-NULL out-parameter.
///
/// # Safety
/// `p` must be non-NULL (see [`out`]) and valid for a write of `T`.
pub unsafe fn write_out<T>(p: *mut T, v: T) {
    // SAFETY: the caller checked `p` with `out` and promises it is writable; `write`
    // does not read or drop the (possibly uninitialised) old value.
    unsafe { p.write(v) }
}

/// The bytes of a NUL-terminated string, or `None` for NULL.
///
/// # Safety
/// A non-NULL `p` must point to a NUL-terminated string live for `'a`.
unsafe fn c_bytes<'a>(p: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: the caller's promise about `p`.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// A UTF-8 string argument, or `None` for NULL.
///
/// # Safety
/// As [`c_bytes`].
pub unsafe fn opt_str<'a>(p: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    // SAFETY: forwarded promise.
    match unsafe { c_bytes(p) } {
        None => Ok(None),
        Some(b) => std::str::from_utf8(b)
            .map(Some)
            .map_err(|e| invalid(format!("argument `{name}` is not valid UTF-8 ({e})"))),
    }
}

/// A required UTF-8 string argument.
///
/// # Safety
/// As [`c_bytes`].
pub unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    // SAFETY: forwarded promise.
    unsafe { opt_str(p, name) }?.ok_or_else(|| null(name))
}

/// A required path argument (any bytes but NUL; no UTF-8 needed).
///
/// # Safety
/// As [`c_bytes`].
pub unsafe fn path_arg(p: *const c_char, name: &str) -> FfiResult<PathBuf> {
    // SAFETY: forwarded promise.
    let b = unsafe { c_bytes(p) }.ok_or_else(|| null(name))?;
    if b.is_empty() {
        return Err(invalid(format!("argument `{name}` is an empty path")));
    }
    Ok(PathBuf::from(OsStr::from_bytes(b)))
}

/// A byte buffer: NULL is allowed only when `len` is 0.
///
/// # Safety
/// A non-NULL `p` must point to `len` readable bytes live for `'a`.
pub unsafe fn bytes_arg<'a>(p: *const u8, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An array of `n` UTF-8 strings: the array may be NULL only when `n` is 0, and
/// no entry may be NULL.
///
/// # Safety
/// A non-NULL `p` must point to `n` pointers, each NULL or a NUL-terminated string.
pub unsafe fn str_array(p: *const *const c_char, n: usize, name: &str) -> FfiResult<Vec<String>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if p.is_null() {
        return Err(null(name));
    }
    // SAFETY: non-NULL, and the caller promises `n` entries.
    let entries = unsafe { std::slice::from_raw_parts(p, n) };
    entries
        .iter()
        .enumerate()
        .map(|(i, &e)| {
            let entry = format!("{name}[{i}]");
            if e.is_null() {
                return Err(invalid(format!(
                    "argument `{entry}` is NULL (array of {n} entries)"
                )));
            }
            // SAFETY: non-NULL entry, NUL-terminated by the caller's promise.
            unsafe { str_arg(e, &entry) }.map(str::to_owned)
        })
        .collect()
}

/// `KEY=VALUE` entries as pairs (split at the first '=').
///
/// # Safety
/// As [`str_array`].
pub unsafe fn env_array(
    p: *const *const c_char,
    n: usize,
    name: &str,
) -> FfiResult<Vec<(String, String)>> {
    // SAFETY: forwarded promise.
    let entries = unsafe { str_array(p, n, name) }?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(invalid(format!(
                "argument `{name}[{i}]` = {e:?} is not KEY=VALUE"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr;

    #[test]
    fn arrays_reject_null_entries_and_bad_env() {
        let a = c"echo".as_ptr();
        let argv = [a, ptr::null()];
        // SAFETY: argv holds 2 entries, each NULL or a C string literal.
        let e = unsafe { str_array(argv.as_ptr(), 2, "argv") }.unwrap_err();
        assert_eq!(e.status, kvmsb_status::InvalidArgument);
        assert!(e.message.contains("argv[1]"), "{}", e.message);
        // SAFETY: NULL array with n > 0 is checked.
        assert_eq!(
            unsafe { str_array(ptr::null(), 1, "argv") }
                .unwrap_err()
                .status,
            kvmsb_status::NullArgument
        );
        // SAFETY: NULL array with n == 0 is allowed.
        assert!(unsafe { str_array(ptr::null(), 0, "argv") }
            .unwrap()
            .is_empty());
        let env = [c"A=1=2".as_ptr(), c"NOEQ".as_ptr()];
        // SAFETY: valid C strings.
        let e = unsafe { env_array(env.as_ptr(), 2, "envp") }.unwrap_err();
        assert!(
            e.message.contains("envp[1]") && e.message.contains("NOEQ"),
            "{}",
            e.message
        );
        // SAFETY: valid C strings.
        assert_eq!(
            unsafe { env_array(env.as_ptr(), 1, "envp") }.unwrap(),
            vec![("A".to_string(), "1=2".to_string())]
        );
        let bad = [0xffu8, 0];
        // SAFETY: NUL-terminated buffer.
        let e = unsafe { str_arg(bad.as_ptr().cast(), "cwd") }.unwrap_err();
        assert_eq!(e.status, kvmsb_status::InvalidArgument);
        // SAFETY: NULL with len 0 is allowed, NULL with len 1 is reported.
        assert!(unsafe { bytes_arg(ptr::null(), 0, "data") }
            .unwrap()
            .is_empty());
        assert_eq!(
            unsafe { bytes_arg(ptr::null(), 1, "data") }
                .unwrap_err()
                .status,
            kvmsb_status::NullArgument
        );
    }
}
