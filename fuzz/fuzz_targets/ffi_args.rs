//! The C API's argument handling: arbitrary bytes (NUL-terminated, often invalid
//! UTF-8) as every string argument of `lessor_request`, `lessor_issue`,
//! `lessor_renew`, `lessor_revoke` and as `options_json` of `lessor_engine_open`,
//! through a live engine handle. Every call returns a known status, writes its
//! out-parameter only on success, and an error's message is a bounded C string.
#![no_main]

use std::ffi::{CStr, CString, c_char};
use std::ptr;
use std::sync::OnceLock;

use lessor::*;
use libfuzzer_sys::fuzz_target;

struct Handle {
    _dir: tempfile::TempDir,
    dir: CString,
    engine: usize,
}

static HANDLE: OnceLock<Handle> = OnceLock::new();

fn handle() -> &'static Handle {
    HANDLE.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = tempfile::Builder::new().prefix("lessor-fuzz-ffi-").tempdir_in(base).unwrap();
        let c_dir = CString::new(dir.path().to_str().unwrap()).unwrap();
        let mut root = ptr::null_mut();
        assert_eq!(lessor_init(c_dir.as_ptr(), ptr::null(), &mut root, ptr::null_mut()), lessor_status::LESSOR_OK);
        lessor_string_free(root);
        let mut engine = ptr::null_mut();
        assert_eq!(lessor_engine_open(c_dir.as_ptr(), ptr::null(), &mut engine, ptr::null_mut()), lessor_status::LESSOR_OK);
        Handle { _dir: dir, dir: c_dir, engine: engine as usize }
    })
}

/// Checks one call's contract: a known status, the out-parameter untouched on
/// failure, and a readable, bounded error.
fn check<T>(status: lessor_status, out: *mut T, err: *mut lessor_error) {
    assert_ne!(status, lessor_status::LESSOR_PANIC, "a panic crossed the boundary");
    if status == lessor_status::LESSOR_OK {
        assert!(err.is_null());
    } else {
        assert!(out.is_null(), "out-parameter written on failure ({status:?})");
        assert!(!err.is_null(), "no error for {status:?}");
        assert_eq!(lessor_error_status(err), status);
        // SAFETY: lessor_error_message returns a NUL-terminated string owned by `err`.
        let message = unsafe { CStr::from_ptr(lessor_error_message(err)) };
        assert!(message.to_bytes().len() <= 4_096);
        lessor_error_free(err);
    }
}

fuzz_target!(|data: &[u8]| {
    let h = handle();
    let engine = h.engine as *mut lessor_engine;
    // Up to four NUL-free strings, separated by 0xFF (never valid UTF-8 itself).
    let mut fields = data.split(|&b| b == 0xFF).map(|f| CString::new(f.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>()).unwrap());
    let mut next = || fields.next().unwrap_or_default();
    let (a, b, c, d) = (next(), next(), next(), next());
    let selector = data.first().copied().unwrap_or(0);
    // The fuzzer never gets to write a connection: its URL would be dialed.
    if [&b, &c].iter().any(|s| s.to_bytes().windows(6).any(|w| w == b"config") || s.to_bytes().windows(6).any(|w| w == b"rotate")) {
        return;
    }
    let null_or = |s: &CString, bit: u8| if selector & bit != 0 { ptr::null() } else { s.as_ptr() };
    let mut err: *mut lessor_error = ptr::null_mut();
    match selector % 5 {
        0 => {
            let mut out: *mut c_char = ptr::null_mut();
            let status = lessor_request(engine, null_or(&a, 8), null_or(&b, 16), null_or(&c, 32), null_or(&d, 64), &mut out, &mut err);
            check(status, out, err);
            lessor_string_free(out);
        }
        1 => {
            let mut out: *mut lessor_credential = ptr::null_mut();
            let status = lessor_issue(engine, null_or(&a, 8), null_or(&b, 16), &mut out, &mut err);
            check(status, out, err);
            lessor_credential_free(out);
        }
        2 => {
            let mut ttl: i64 = -12345;
            let status = lessor_renew(engine, null_or(&a, 8), null_or(&b, 16), i64::from(selector) - 100, &mut ttl, &mut err);
            if status != lessor_status::LESSOR_OK {
                assert_eq!(ttl, -12345, "ttl written on failure");
            }
            check(status, ptr::null_mut::<u8>(), err);
        }
        3 => {
            let status = lessor_revoke(engine, null_or(&a, 8), null_or(&b, 16), &mut err);
            check(status, ptr::null_mut::<u8>(), err);
        }
        _ => {
            // Options are parsed before the directory is opened: a bad one is
            // INVALID_ARGUMENT, a good one finds the directory held (BUSY).
            let mut out: *mut lessor_engine = ptr::null_mut();
            let status = lessor_engine_open(h.dir.as_ptr(), null_or(&a, 8), &mut out, &mut err);
            assert_ne!(status, lessor_status::LESSOR_OK, "a second open of a held directory succeeded");
            check(status, out, err);
        }
    }
});
