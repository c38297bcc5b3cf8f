//! `lessor_error`, strings handed to C, and the argument checks every function uses.

use std::ffi::{CStr, CString, c_char};

use ::lessor_engine::request::{ErrorKind, RequestError};
use zeroize::Zeroize;

use crate::panic::ffi_panic_boundary;
use crate::status::lessor_status;

/// Details of a failed call: its status and a human-readable message.
///
/// Returned through the `err_out` parameter of fallible functions when the call
/// fails (and only then). The caller owns it and frees it with `lessor_error_free`.
/// An error is immutable: it may be read from any thread.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct lessor_error {
    status: lessor_status,
    message: CString,
}

/// Why a call failed, before it becomes a `lessor_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: lessor_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: lessor_status, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(lessor_status::LESSOR_INVALID_ARGUMENT, message)
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Failure {
        let status = match e.kind() {
            ErrorKind::InvalidArgument => lessor_status::LESSOR_INVALID_ARGUMENT,
            ErrorKind::PermissionDenied => lessor_status::LESSOR_PERMISSION_DENIED,
            ErrorKind::NotFound => lessor_status::LESSOR_NOT_FOUND,
            ErrorKind::Database => lessor_status::LESSOR_DATABASE,
            ErrorKind::Io => lessor_status::LESSOR_IO,
            ErrorKind::Corrupt => lessor_status::LESSOR_CORRUPT,
            ErrorKind::Busy => lessor_status::LESSOR_BUSY,
            _ => lessor_status::LESSOR_IO,
        };
        Failure::new(status, e.to_string())
    }
}

/// A Rust string as a C string: interior NUL bytes (never expected) become U+FFFD.
pub(crate) fn c_string(s: impl Into<String>) -> CString {
    let s: String = s.into();
    CString::new(s).unwrap_or_else(|e| {
        let lossy = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\u{FFFD}");
        CString::new(lossy).expect("NUL bytes were replaced")
    })
}

/// Ends a call: `LESSOR_OK`, or the failure's status with `*err_out` set (if
/// `err_out` is not NULL).
pub(crate) fn finish(result: Result<(), Failure>, err_out: *mut *mut lessor_error) -> lessor_status {
    match result {
        Ok(()) => lessor_status::LESSOR_OK,
        Err(failure) => {
            let status = failure.status;
            if !err_out.is_null() {
                let error = Box::new(lessor_error { status, message: c_string(failure.message) });
                // SAFETY: `err_out` is not NULL, and the C caller promises it points to
                // writable storage for one pointer.
                unsafe { *err_out = Box::into_raw(error) };
            }
            status
        }
    }
}

/// Fails with `LESSOR_NULL_PARAMETER` naming `name` when `ptr` is NULL.
pub(crate) fn not_null<T>(ptr: *const T, name: &str) -> Result<(), Failure> {
    if ptr.is_null() {
        Err(Failure::new(lessor_status::LESSOR_NULL_PARAMETER, format!("{name} must not be NULL")))
    } else {
        Ok(())
    }
}

/// Borrows the NUL-terminated UTF-8 string argument `name`.
pub(crate) fn arg_str<'a>(ptr: *const c_char, name: &str) -> Result<&'a str, Failure> {
    not_null(ptr, name)?;
    // SAFETY: `ptr` is not NULL, and the C caller promises a NUL-terminated string
    // that stays valid and unmodified for the duration of the call.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map_err(|e| Failure::invalid(format!("{name} is not valid UTF-8: {e}")))
}

/// Like [`arg_str`], but NULL is `None`.
pub(crate) fn opt_arg_str<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() { Ok(None) } else { arg_str(ptr, name).map(Some) }
}

/// Stores `value` in the out-parameter `out` (checked not NULL beforehand).
pub(crate) fn write_out<T>(out: *mut T, value: T) {
    debug_assert!(!out.is_null());
    // SAFETY: callers check `out` is not NULL before doing any work, and the C caller
    // promises it points to writable, suitably aligned storage for a `T`.
    unsafe { out.write(value) };
}

/// Returns the status of `error`, or `LESSOR_NULL_PARAMETER` if `error` is NULL.
/// Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_error_status(error: *const lessor_error) -> lessor_status {
    ffi_panic_boundary(|| match error_ref(error) {
        Some(e) => e.status,
        None => lessor_status::LESSOR_NULL_PARAMETER,
    })
}

/// Returns the message of `error`: NUL-terminated UTF-8, never containing a secret.
///
/// The string is owned by `error` and valid until `lessor_error_free(error)`; do not
/// free it. Returns a static placeholder (not NULL) if `error` is NULL. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_error_message(error: *const lessor_error) -> *const c_char {
    ffi_panic_boundary(|| match error_ref(error) {
        Some(e) => e.message.as_ptr(),
        None => c"(no error: lessor_error_message was given NULL)".as_ptr(),
    })
}

/// Frees an error returned through an `err_out` parameter. NULL is a no-op.
/// Each error must be freed exactly once.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_error_free(error: *mut lessor_error) {
    ffi_panic_boundary(|| {
        // The C contract: a non-NULL `error` came from `Box::into_raw` in `finish`, and the
        // caller frees it once.
        free_box(error)
    })
}

/// Frees a `Box` handed to C; NULL is a no-op. Callers guarantee that `ptr` is
/// NULL or came from `Box::into_raw` and is not used afterwards (the C contract).
pub(crate) fn free_box<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: the C contract: `ptr`/`s` came from this library and is freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// Zeroizes and frees a string handed to C; NULL is a no-op. Callers guarantee
/// that `s` is NULL or came from `CString::into_raw` and is not used afterwards.
fn free_c_string(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: the C contract: `ptr`/`s` came from this library and is freed once.
        let owned = unsafe { CString::from_raw(s) };
        owned.into_bytes_with_nul().zeroize();
    }
}

fn error_ref<'a>(error: *const lessor_error) -> Option<&'a lessor_error> {
    // SAFETY: a non-NULL `error` points to a live `lessor_error` made by this library.
    unsafe { error.as_ref() }
}

/// Frees a string returned by lessor (a root token, a response JSON), first
/// overwriting its bytes with zeros, as it may hold a secret. NULL is a no-op.
/// Never pass a string that lessor documents as owned by another object.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_string_free(s: *mut c_char) {
    ffi_panic_boundary(|| {
        // The C contract: a non-NULL `s` came from `CString::into_raw` in this library, and
        // the caller frees it once.
        free_c_string(s)
    })
}

/// Returns the name of status code `status` ("LESSOR_OK", ...) as a static string,
/// or "LESSOR_UNKNOWN_STATUS" for a number that is not a status. Never NULL; do not
/// free. Thread-safe.
///
/// The parameter is the status number (a `lessor_status` value), taken as an
/// integer so that any number is safe to pass.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_status_str(status: u32) -> *const c_char {
    ffi_panic_boundary(|| match lessor_status::from_code(status) {
        Some(s) => s.name().as_ptr(),
        None => c"LESSOR_UNKNOWN_STATUS".as_ptr(),
    })
}
