//! `options_json`'s `"log"`: the log in a PostgreSQL stream, through the C API,
//! against a real PostgreSQL (docs/DESIGN.md §11).

use std::ffi::{CStr, CString, c_char};
use std::ptr;

use ::lessor_engine::log::postgres::{InitOptions, init_schema};
use lessor::*;
use lessor_tests::pg;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The status and, on failure, the error's message (the error freed).
fn call(f: impl FnOnce(*mut *mut lessor_error) -> lessor_status) -> (lessor_status, String) {
    let mut err: *mut lessor_error = ptr::null_mut();
    let status = f(&mut err);
    if status == lessor_status::LESSOR_OK {
        return (status, String::new());
    }
    // SAFETY: a NUL-terminated string owned by `err`, read before it is freed.
    let message = unsafe { CStr::from_ptr(lessor_error_message(err)) }.to_string_lossy().into_owned();
    lessor_error_free(err);
    (status, message)
}

#[test]
fn options_json_puts_the_log_in_a_postgresql_stream() {
    let db = pg::database("ffi_pglog");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(init_schema(&db.admin_url(), &InitOptions::default())).unwrap();
    let options = serde_json::json!({ "log": { "postgresql": db.admin_url(), "stream": "ffi-app" } }).to_string();
    let options = c(&options);
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (dir, other) = (c(dirs.0.path().to_str().unwrap()), c(dirs.1.path().to_str().unwrap()));

    let mut token: *mut c_char = ptr::null_mut();
    let (status, message) = call(|err| lessor_init(dir.as_ptr(), options.as_ptr(), &mut token, err));
    assert_eq!(status, lessor_status::LESSOR_OK, "{message}");
    // SAFETY: the root token lessor_init returned, read once, then freed.
    let root = unsafe { CStr::from_ptr(token) }.to_owned();
    lessor_string_free(token);

    let mut engine: *mut lessor_engine = ptr::null_mut();
    let (status, message) = call(|err| lessor_engine_open(dir.as_ptr(), options.as_ptr(), &mut engine, err));
    assert_eq!(status, lessor_status::LESSOR_OK, "{message}");
    let (update, path, body) =
        (c("update"), c("sys/policy/app"), c(r#"{"policy": "path \"x\" { capabilities = [\"read\"] }"}"#));
    let mut out: *mut c_char = ptr::null_mut();
    let (status, message) =
        call(|err| lessor_request(engine, root.as_ptr(), update.as_ptr(), path.as_ptr(), body.as_ptr(), &mut out, err));
    assert_eq!(status, lessor_status::LESSOR_OK, "{message}");
    lessor_string_free(out);
    let rows = db.admin_query("SELECT count(*) > 0 FROM lessor_log WHERE stream = 'ffi-app'");
    assert_eq!(rows, vec![vec![Some("t".into())]], "the records are rows");

    // Another engine on the same stream, while this one runs: busy (a standby).
    let mut second: *mut lessor_engine = ptr::null_mut();
    let (status, message) = call(|err| lessor_engine_open(other.as_ptr(), options.as_ptr(), &mut second, err));
    assert_eq!(status, lessor_status::LESSOR_BUSY, "{message}");
    assert!(message.contains("standby") && second.is_null(), "{message}");
    lessor_engine_free(engine);

    // A log option without its stream: named.
    let bad = c(&serde_json::json!({ "log": { "postgresql": db.admin_url() } }).to_string());
    let (status, message) = call(|err| lessor_engine_open(dir.as_ptr(), bad.as_ptr(), &mut second, err));
    assert_eq!(status, lessor_status::LESSOR_INVALID_ARGUMENT);
    assert!(message.contains("stream"), "{message}");
    assert!(!message.contains(db.admin_password()), "{message}");
}
