//! `lessor_error`, strings handed to C, and the argument checks every function uses.

use std::ffi::{CStr, CString, c_char};

use ::lessor_engine::request::{ErrorKind, RequestError};
use zeroize::Zeroize;

use crate::handle::{ERRORS, Registry, STRINGS};
use crate::panic::ffi_panic_boundary;
use crate::status::lessor_status;

/// Details of a failed call: its status and a human-readable message.
///
/// Returned through the `err_out` parameter of fallible functions when the call
/// fails (and only then). The caller owns it and frees it with `lessor_error_free`.
/// An error is immutable: it may be read from any thread. A freed error passed
/// back is recognised (see "Handles" above) and treated like NULL.
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

    pub(crate) fn invalid_handle(message: impl Into<String>) -> Failure {
        Failure::new(lessor_status::LESSOR_INVALID_HANDLE, message)
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Failure {
        let status = match e.kind() {
            // A C caller gave an operation the path does not take: a bad argument.
            ErrorKind::InvalidArgument | ErrorKind::UnsupportedOperation => lessor_status::LESSOR_INVALID_ARGUMENT,
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
                let error =
                    ERRORS.insert(Box::into_raw(Box::new(lessor_error { status, message: c_string(failure.message) })));
                // SAFETY: `err_out` is not NULL, and the C caller promises it points to
                // writable storage for one pointer.
                unsafe { *err_out = error };
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

/// Hands `s` to C: the caller frees it with `lessor_string_free`.
pub(crate) fn string_out(s: CString) -> *mut c_char {
    STRINGS.insert(s.into_raw())
}

/// Returns the status of `error`; `LESSOR_NULL_PARAMETER` if `error` is NULL,
/// `LESSOR_INVALID_HANDLE` if it is not a live error (already freed, or not from
/// lessor). Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_error_status(error: *const lessor_error) -> lessor_status {
    ffi_panic_boundary(|| {
        if error.is_null() {
            return lessor_status::LESSOR_NULL_PARAMETER;
        }
        with_error(error, |e| e.status).unwrap_or(lessor_status::LESSOR_INVALID_HANDLE)
    })
}

/// Returns the message of `error`: NUL-terminated UTF-8, never containing a secret.
///
/// The string is owned by `error` and valid until `lessor_error_free(error)`; do not
/// free it. Returns a static placeholder (not NULL) if `error` is NULL or not a
/// live error. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_error_message(error: *const lessor_error) -> *const c_char {
    ffi_panic_boundary(|| {
        if error.is_null() {
            return c"(no error: lessor_error_message was given NULL)".as_ptr();
        }
        with_error(error, |e| e.message.as_ptr())
            .unwrap_or(c"(invalid lessor_error: already freed, or not from lessor)".as_ptr())
    })
}

/// Frees an error returned through an `err_out` parameter. NULL is a no-op, and
/// so is an error that was already freed (see "Handles" above).
#[unsafe(no_mangle)]
pub extern "C" fn lessor_error_free(error: *mut lessor_error) {
    ffi_panic_boundary(|| free_registered_box(&ERRORS, error))
}

/// Frees a `Box` handed to C and recorded in `registry`; NULL, and a pointer
/// the registry does not hold (freed before, or never lessor's), are no-ops.
pub(crate) fn free_registered_box<T>(registry: &Registry, ptr: *mut T) {
    if registry.remove(ptr) {
        // SAFETY: `ptr` was live in `registry`, which holds only pointers from
        // `Box::into_raw` of a `T`; removing it made this call its only owner.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// Runs `f` on the live error `error` (NULL or not live: `None`), with the error
/// kept from being freed meanwhile.
fn with_error<R>(error: *const lessor_error, f: impl FnOnce(&lessor_error) -> R) -> Option<R> {
    ERRORS.with_live(error, || {
        // SAFETY: `error` is live in ERRORS: it came from `Box::into_raw` in
        // `finish` and is not freed while the registry's lock is held.
        f(unsafe { &*error })
    })
}

/// Frees a string returned by lessor (a root token, a response JSON), first
/// overwriting its bytes with zeros, as it may hold a secret. NULL is a no-op,
/// and so is a string that was already freed or that lessor did not return as
/// the caller's to free (see "Handles" above).
#[unsafe(no_mangle)]
pub extern "C" fn lessor_string_free(s: *mut c_char) {
    ffi_panic_boundary(|| free_registered_string(s))
}

/// Zeroizes and frees a string from [`string_out`]; NULL, and a pointer not in
/// STRINGS (freed before, or never a string to free), are no-ops.
fn free_registered_string(s: *mut c_char) {
    if STRINGS.remove(s) {
        // SAFETY: `s` was live in STRINGS, which holds only pointers from
        // `CString::into_raw` (`string_out`); removing it made this call its only owner.
        let owned = unsafe { CString::from_raw(s) };
        owned.into_bytes_with_nul().zeroize();
    }
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
