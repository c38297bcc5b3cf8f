//! The C API called as C would: NULL and invalid UTF-8 for every pointer
//! argument, bad tokens, unknown options, and the version defines of the header.

use std::ffi::{CStr, CString, c_char};
use std::ptr;

use lessor::*;

const BAD_UTF8: &[u8] = b"\xff\xfe\0";

fn bad() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

/// Takes the error out of `err`, returning (status, message), and frees it.
fn take_error(err: *mut lessor_error) -> (lessor_status, String) {
    assert!(!err.is_null(), "a failing call must set *err_out");
    let status = lessor_error_status(err);
    // SAFETY: `lessor_error_message` returns a NUL-terminated string owned by `err`.
    let message = unsafe { CStr::from_ptr(lessor_error_message(err)) }.to_str().unwrap().to_string();
    lessor_error_free(err);
    (status, message)
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// An initialized and opened engine with its root token.
struct Fixture {
    _dir: tempfile::TempDir,
    engine: *mut lessor_engine,
    root: CString,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = c(dir.path().join("data").to_str().unwrap());
        let mut token: *mut c_char = ptr::null_mut();
        let mut err: *mut lessor_error = ptr::null_mut();
        assert_eq!(lessor_init(data.as_ptr(), ptr::null(), &mut token, &mut err), lessor_status::LESSOR_OK);
        assert!(err.is_null());
        // SAFETY: `token` is a NUL-terminated string from lessor_init.
        let root = unsafe { CStr::from_ptr(token) }.to_owned();
        lessor_string_free(token);
        let mut engine: *mut lessor_engine = ptr::null_mut();
        assert_eq!(lessor_engine_open(data.as_ptr(), ptr::null(), &mut engine, &mut err), lessor_status::LESSOR_OK);
        assert!(!engine.is_null());
        Fixture { _dir: dir, engine, root }
    }
}

impl Fixture {
    /// Frees the engine (if not already: a second free is a no-op) and opens the
    /// directory again.
    fn reopen(&mut self) {
        lessor_engine_free(self.engine);
        let data = c(self._dir.path().join("data").to_str().unwrap());
        let mut engine: *mut lessor_engine = ptr::null_mut();
        assert_eq!(
            lessor_engine_open(data.as_ptr(), ptr::null(), &mut engine, ptr::null_mut()),
            lessor_status::LESSOR_OK
        );
        self.engine = engine;
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        lessor_engine_free(self.engine);
    }
}

#[test]
fn free_functions_accept_null() {
    lessor_engine_free(ptr::null_mut());
    lessor_credential_free(ptr::null_mut());
    lessor_error_free(ptr::null_mut());
    lessor_string_free(ptr::null_mut());
    assert_eq!(lessor_error_status(ptr::null()), lessor_status::LESSOR_NULL_PARAMETER);
    assert!(!lessor_error_message(ptr::null()).is_null());
    assert!(lessor_credential_lease_id(ptr::null()).is_null());
    assert!(lessor_credential_username(ptr::null()).is_null());
    assert!(lessor_credential_password(ptr::null()).is_null());
    assert_eq!(lessor_credential_ttl_s(ptr::null()), -1);
}

#[test]
fn status_strings() {
    // SAFETY: lessor_status_str returns static NUL-terminated strings.
    let name = |code: u32| unsafe { CStr::from_ptr(lessor_status_str(code)) }.to_str().unwrap().to_string();
    assert_eq!(name(0), "LESSOR_OK");
    assert_eq!(name(2), "LESSOR_PERMISSION_DENIED");
    assert_eq!(name(8), "LESSOR_NULL_PARAMETER");
    assert_eq!(name(9), "LESSOR_INVALID_HANDLE");
    assert_eq!(name(100), "LESSOR_PANIC");
    assert_eq!(name(4242), "LESSOR_UNKNOWN_STATUS");
}

#[test]
fn header_version_defines_match_cargo_toml() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../include/lessor.h")).unwrap();
    for (name, value) in [
        ("LESSOR_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("LESSOR_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("LESSOR_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        assert!(header.contains(&format!("#define {name} {value}\n")), "{name} {value} missing from lessor.h");
    }
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml")).unwrap();
    let expected = format!(
        "version = \"{}.{}.{}\"",
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    assert!(manifest.contains(&expected), "workspace Cargo.toml lacks {expected}");
}

#[test]
fn init_and_open_check_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let data = c(dir.path().join("d").to_str().unwrap());
    let mut token: *mut c_char = ptr::null_mut();
    let mut engine: *mut lessor_engine = ptr::null_mut();
    let mut err: *mut lessor_error = ptr::null_mut();

    assert_eq!(
        lessor_init(ptr::null(), ptr::null(), &mut token, ptr::null_mut()),
        lessor_status::LESSOR_NULL_PARAMETER
    );
    assert_eq!(lessor_init(ptr::null(), ptr::null(), &mut token, &mut err), lessor_status::LESSOR_NULL_PARAMETER);
    assert!(take_error(err).1.contains("data_dir"));
    err = ptr::null_mut();
    assert_eq!(lessor_init(bad(), ptr::null(), &mut token, &mut err), lessor_status::LESSOR_INVALID_ARGUMENT);
    assert!(take_error(err).1.contains("UTF-8"));
    err = ptr::null_mut();
    assert_eq!(lessor_init(data.as_ptr(), bad(), &mut token, &mut err), lessor_status::LESSOR_INVALID_ARGUMENT);
    take_error(err);
    err = ptr::null_mut();
    assert_eq!(
        lessor_init(data.as_ptr(), ptr::null(), ptr::null_mut(), &mut err),
        lessor_status::LESSOR_NULL_PARAMETER
    );
    assert!(take_error(err).1.contains("root_token_out"));
    err = ptr::null_mut();
    let unknown = c(r#"{"fsink": "never"}"#);
    assert_eq!(
        lessor_init(data.as_ptr(), unknown.as_ptr(), &mut token, &mut err),
        lessor_status::LESSOR_INVALID_ARGUMENT
    );
    assert!(take_error(err).1.contains("\"fsink\""));
    for bad_policy in [r#"{"fsync": "sometimes"}"#, r#"{"fsync": true}"#] {
        err = ptr::null_mut();
        let options = c(bad_policy);
        assert_eq!(
            lessor_init(data.as_ptr(), options.as_ptr(), &mut token, &mut err),
            lessor_status::LESSOR_INVALID_ARGUMENT
        );
        let message = take_error(err).1;
        assert!(message.contains("option fsync must be \"always\" or \"never\""), "{message}");
    }
    err = ptr::null_mut();
    let not_json = c("{");
    assert_eq!(
        lessor_init(data.as_ptr(), not_json.as_ptr(), &mut token, &mut err),
        lessor_status::LESSOR_INVALID_ARGUMENT
    );
    take_error(err);
    err = ptr::null_mut();
    assert!(token.is_null(), "out-parameters are written only on success");

    // Open before init: not found, and engine_out untouched.
    assert_eq!(lessor_engine_open(data.as_ptr(), ptr::null(), &mut engine, &mut err), lessor_status::LESSOR_NOT_FOUND);
    assert!(take_error(err).1.contains("initialize"));
    err = ptr::null_mut();
    assert!(engine.is_null());
    assert_eq!(
        lessor_engine_open(ptr::null(), ptr::null(), &mut engine, &mut err),
        lessor_status::LESSOR_NULL_PARAMETER
    );
    take_error(err);
    err = ptr::null_mut();
    assert_eq!(lessor_engine_open(bad(), ptr::null(), &mut engine, &mut err), lessor_status::LESSOR_INVALID_ARGUMENT);
    take_error(err);
    err = ptr::null_mut();
    assert_eq!(lessor_engine_open(data.as_ptr(), bad(), &mut engine, &mut err), lessor_status::LESSOR_INVALID_ARGUMENT);
    take_error(err);
    err = ptr::null_mut();
    assert_eq!(
        lessor_engine_open(data.as_ptr(), ptr::null(), ptr::null_mut(), &mut err),
        lessor_status::LESSOR_NULL_PARAMETER
    );
    take_error(err);

    // A supplied master key: init with it, open with it, and a wrong one is refused.
    let key = c(&format!(r#"{{"master_key_hex": "{}", "segment_bytes_max": 1048576}}"#, "ab".repeat(32)));
    assert_eq!(lessor_init(data.as_ptr(), key.as_ptr(), &mut token, ptr::null_mut()), lessor_status::LESSOR_OK);
    assert!(!token.is_null());
    lessor_string_free(token);
    assert!(!dir.path().join("d/master.key").exists());
    let mut err: *mut lessor_error = ptr::null_mut();
    assert_eq!(
        lessor_init(data.as_ptr(), key.as_ptr(), &mut token, &mut err),
        lessor_status::LESSOR_ALREADY_INITIALIZED
    );
    assert!(take_error(err).1.contains("already initialized"));
    let wrong = c(&format!(r#"{{"master_key_hex": "{}"}}"#, "cd".repeat(32)));
    let mut err: *mut lessor_error = ptr::null_mut();
    assert_eq!(
        lessor_engine_open(data.as_ptr(), wrong.as_ptr(), &mut engine, &mut err),
        lessor_status::LESSOR_PERMISSION_DENIED
    );
    take_error(err);
    // The engine releases the directory lock of a refused open a moment later
    // (a background thread of the failed open still holds it), so retry briefly.
    let mut attempts = 0;
    loop {
        let mut err: *mut lessor_error = ptr::null_mut();
        let status = lessor_engine_open(data.as_ptr(), key.as_ptr(), &mut engine, &mut err);
        if status == lessor_status::LESSOR_OK {
            break;
        }
        let (status, message) = take_error(err);
        attempts += 1;
        assert!(
            status == lessor_status::LESSOR_BUSY && attempts < 100,
            "open with the right key: {status:?} {message}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The directory is locked while open.
    let mut second: *mut lessor_engine = ptr::null_mut();
    let mut err: *mut lessor_error = ptr::null_mut();
    assert_eq!(lessor_engine_open(data.as_ptr(), key.as_ptr(), &mut second, &mut err), lessor_status::LESSOR_BUSY);
    take_error(err);
    assert!(second.is_null());
    lessor_engine_free(engine);
}

/// `"fsync": "never"` opens and works, and what it acknowledged is there after
/// `lessor_engine_free` and a reopen with the defaults.
#[test]
fn fsync_never_option_works_and_a_clean_free_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = c(dir.path().join("d").to_str().unwrap());
    let never = c(r#"{"fsync": "never"}"#);
    let mut token: *mut c_char = ptr::null_mut();
    assert_eq!(lessor_init(data.as_ptr(), never.as_ptr(), &mut token, ptr::null_mut()), lessor_status::LESSOR_OK);
    let mut engine: *mut lessor_engine = ptr::null_mut();
    assert_eq!(
        lessor_engine_open(data.as_ptr(), never.as_ptr(), &mut engine, ptr::null_mut()),
        lessor_status::LESSOR_OK
    );
    let (update, mount, body) = (c("update"), c("sys/mounts/database"), c(r#"{"type":"database"}"#));
    let mut out: *mut c_char = ptr::null_mut();
    let status =
        lessor_request(engine, token, update.as_ptr(), mount.as_ptr(), body.as_ptr(), &mut out, ptr::null_mut());
    assert_eq!(status, lessor_status::LESSOR_OK);
    lessor_string_free(out);
    lessor_engine_free(engine);

    let mut engine: *mut lessor_engine = ptr::null_mut();
    assert_eq!(lessor_engine_open(data.as_ptr(), ptr::null(), &mut engine, ptr::null_mut()), lessor_status::LESSOR_OK);
    let read = c("read");
    let mut out: *mut c_char = ptr::null_mut();
    let status = lessor_request(engine, token, read.as_ptr(), mount.as_ptr(), ptr::null(), &mut out, ptr::null_mut());
    assert_eq!(status, lessor_status::LESSOR_OK);
    // SAFETY: `out` is a NUL-terminated string from lessor_request.
    let json: serde_json::Value = serde_json::from_str(unsafe { CStr::from_ptr(out) }.to_str().unwrap()).unwrap();
    assert_eq!(json["data"]["type"], "database", "{json}");
    lessor_string_free(out);
    lessor_string_free(token);
    lessor_engine_free(engine);
}

#[test]
fn request_checks_every_argument_and_the_token() {
    let f = Fixture::new();
    let (tok, op, path, data) = (f.root.as_ptr(), c("update"), c("sys/mounts/database"), c(r#"{"type":"database"}"#));
    let mut out: *mut c_char = ptr::null_mut();
    let call = |engine: *mut lessor_engine,
                tok: *const c_char,
                op: *const c_char,
                path: *const c_char,
                data: *const c_char,
                out: *mut *mut c_char| {
        let mut err: *mut lessor_error = ptr::null_mut();
        let status = lessor_request(engine, tok, op, path, data, out, &mut err);
        if status == lessor_status::LESSOR_OK {
            assert!(err.is_null());
            (status, String::new())
        } else {
            take_error(err)
        }
    };
    let e = f.engine;
    let (o, p, d) = (op.as_ptr(), path.as_ptr(), data.as_ptr());
    let n = lessor_status::LESSOR_NULL_PARAMETER;
    let i = lessor_status::LESSOR_INVALID_ARGUMENT;
    assert_eq!(call(ptr::null_mut(), tok, o, p, d, &mut out).0, n);
    assert_eq!(call(e, ptr::null(), o, p, d, &mut out).0, n);
    assert_eq!(call(e, tok, ptr::null(), p, d, &mut out).0, n);
    assert_eq!(call(e, tok, o, ptr::null(), d, &mut out).0, n);
    assert_eq!(call(e, tok, o, p, d, ptr::null_mut()).0, n);
    assert_eq!(call(e, bad(), o, p, d, &mut out).0, i);
    assert_eq!(call(e, tok, bad(), p, d, &mut out).0, i);
    assert_eq!(call(e, tok, o, bad(), d, &mut out).0, i);
    assert_eq!(call(e, tok, o, p, bad(), &mut out).0, i);
    let not_json = c("{nope");
    assert_eq!(call(e, tok, o, p, not_json.as_ptr(), &mut out).0, i);
    let frob = c("frobnicate");
    assert!(call(e, tok, frob.as_ptr(), p, d, &mut out).1.contains("frobnicate"));
    assert!(out.is_null());

    let wrong = c("not-a-token");
    let (status, message) = call(e, wrong.as_ptr(), o, p, d, &mut out);
    assert_eq!(status, lessor_status::LESSOR_PERMISSION_DENIED);
    assert!(message.contains("permission denied"), "{message}");
    assert!(out.is_null());

    assert_eq!(call(e, tok, o, p, d, &mut out).0, lessor_status::LESSOR_OK);
    assert!(!out.is_null());
    lessor_string_free(out);
    let read = c("read");
    assert_eq!(call(e, tok, read.as_ptr(), p, ptr::null(), &mut out).0, lessor_status::LESSOR_OK);
    // SAFETY: `out` is a NUL-terminated string from lessor_request.
    let json: serde_json::Value = serde_json::from_str(unsafe { CStr::from_ptr(out) }.to_str().unwrap()).unwrap();
    lessor_string_free(out);
    assert_eq!(json["data"]["type"], "database", "{json}");
}

#[test]
fn issue_renew_revoke_check_every_argument() {
    let f = Fixture::new();
    let (e, tok) = (f.engine, f.root.as_ptr());
    let (path, lease) = (c("database/creds/nope"), c("database/creds/nope/abc"));
    let n = lessor_status::LESSOR_NULL_PARAMETER;
    let i = lessor_status::LESSOR_INVALID_ARGUMENT;
    let mut cred: *mut lessor_credential = ptr::null_mut();
    let mut ttl: i64 = 7;
    let check = |expected: lessor_status, call: &mut dyn FnMut(*mut *mut lessor_error) -> lessor_status| {
        let mut err: *mut lessor_error = ptr::null_mut();
        assert_eq!(call(&mut err), expected);
        take_error(err);
    };
    check(n, &mut |err| lessor_issue(ptr::null_mut(), tok, path.as_ptr(), &mut cred, err));
    check(n, &mut |err| lessor_issue(e, ptr::null(), path.as_ptr(), &mut cred, err));
    check(n, &mut |err| lessor_issue(e, tok, ptr::null(), &mut cred, err));
    check(n, &mut |err| lessor_issue(e, tok, path.as_ptr(), ptr::null_mut(), err));
    check(i, &mut |err| lessor_issue(e, bad(), path.as_ptr(), &mut cred, err));
    check(i, &mut |err| lessor_issue(e, tok, bad(), &mut cred, err));
    let wrong = c("s.wrong");
    check(lessor_status::LESSOR_PERMISSION_DENIED, &mut |err| {
        lessor_issue(e, wrong.as_ptr(), path.as_ptr(), &mut cred, err)
    });
    assert!(cred.is_null());

    check(n, &mut |err| lessor_renew(ptr::null_mut(), tok, lease.as_ptr(), 0, &mut ttl, err));
    check(n, &mut |err| lessor_renew(e, ptr::null(), lease.as_ptr(), 0, &mut ttl, err));
    check(n, &mut |err| lessor_renew(e, tok, ptr::null(), 0, &mut ttl, err));
    check(n, &mut |err| lessor_renew(e, tok, lease.as_ptr(), 0, ptr::null_mut(), err));
    check(i, &mut |err| lessor_renew(e, bad(), lease.as_ptr(), 0, &mut ttl, err));
    check(i, &mut |err| lessor_renew(e, tok, bad(), 0, &mut ttl, err));
    check(i, &mut |err| lessor_renew(e, tok, lease.as_ptr(), -5, &mut ttl, err));
    check(lessor_status::LESSOR_PERMISSION_DENIED, &mut |err| {
        lessor_renew(e, wrong.as_ptr(), lease.as_ptr(), 0, &mut ttl, err)
    });
    assert_eq!(ttl, 7);

    check(n, &mut |err| lessor_revoke(ptr::null_mut(), tok, lease.as_ptr(), err));
    check(n, &mut |err| lessor_revoke(e, ptr::null(), lease.as_ptr(), err));
    check(n, &mut |err| lessor_revoke(e, tok, ptr::null(), err));
    check(i, &mut |err| lessor_revoke(e, bad(), lease.as_ptr(), err));
    check(i, &mut |err| lessor_revoke(e, tok, bad(), err));
    check(lessor_status::LESSOR_PERMISSION_DENIED, &mut |err| lessor_revoke(e, wrong.as_ptr(), lease.as_ptr(), err));
    // err_out may be NULL.
    assert_eq!(
        lessor_revoke(e, wrong.as_ptr(), lease.as_ptr(), ptr::null_mut()),
        lessor_status::LESSOR_PERMISSION_DENIED
    );
}

/// Reads `sys/mounts` through `engine`: the status, with the error taken and freed.
fn read_mounts(engine: *mut lessor_engine, token: *const c_char) -> (lessor_status, String) {
    let (read, path) = (c("read"), c("sys/mounts"));
    let mut out: *mut c_char = ptr::null_mut();
    let mut err: *mut lessor_error = ptr::null_mut();
    let status = lessor_request(engine, token, read.as_ptr(), path.as_ptr(), ptr::null(), &mut out, &mut err);
    if status == lessor_status::LESSOR_OK {
        assert!(err.is_null() && !out.is_null());
        lessor_string_free(out);
        (status, String::new())
    } else {
        assert!(out.is_null(), "out-parameters are written only on success");
        take_error(err)
    }
}

/// A freed engine is recognised by every call (issue 14, item 6): a status, not a
/// crash; a second free is a no-op, and so is freeing a pointer that is not an engine.
#[test]
fn a_freed_engine_is_invalid_handle_and_a_second_free_is_a_no_op() {
    let mut f = Fixture::new();
    let (e, tok) = (f.engine, f.root.as_ptr());
    assert_eq!(read_mounts(e, tok).0, lessor_status::LESSOR_OK);
    lessor_engine_free(e);
    lessor_engine_free(e);

    let invalid = lessor_status::LESSOR_INVALID_HANDLE;
    let (status, message) = read_mounts(e, tok);
    assert_eq!(status, invalid);
    assert!(message.contains("engine was freed"), "{message}");
    let (path, lease) = (c("database/creds/x"), c("database/creds/x/y"));
    let mut cred: *mut lessor_credential = ptr::null_mut();
    let mut ttl: i64 = 7;
    let check = |call: &mut dyn FnMut(*mut *mut lessor_error) -> lessor_status| {
        let mut err: *mut lessor_error = ptr::null_mut();
        assert_eq!(call(&mut err), invalid);
        assert_eq!(take_error(err).0, invalid);
    };
    check(&mut |err| lessor_issue(e, tok, path.as_ptr(), &mut cred, err));
    check(&mut |err| lessor_renew(e, tok, lease.as_ptr(), 60, &mut ttl, err));
    check(&mut |err| lessor_revoke(e, tok, lease.as_ptr(), err));
    assert!(cred.is_null());
    assert_eq!(ttl, 7);

    // A pointer that lessor_engine_open never returned (here: an error).
    let mut err: *mut lessor_error = ptr::null_mut();
    assert_eq!(lessor_issue(e, tok, path.as_ptr(), ptr::null_mut(), &mut err), invalid);
    let not_an_engine = err.cast::<lessor_engine>();
    let (status, message) = read_mounts(not_an_engine, tok);
    assert_eq!(status, invalid);
    assert!(message.contains("not a lessor_engine"), "{message}");
    lessor_engine_free(not_an_engine);
    assert_eq!(lessor_error_status(err), invalid, "the error was not freed as an engine");
    lessor_error_free(err);
    // The directory was released by the first free: it opens again.
    f.reopen();
    assert_eq!(read_mounts(f.engine, f.root.as_ptr()).0, lessor_status::LESSOR_OK);
}

/// Errors and strings freed twice, and read after free, are caught by their
/// registries; a pointer of another kind is refused.
#[test]
fn errors_and_strings_freed_twice_are_no_ops() {
    let f = Fixture::new();
    let wrong = c("not-a-token");
    let (read, path) = (c("read"), c("sys/mounts"));
    let mut err: *mut lessor_error = ptr::null_mut();
    let mut out: *mut c_char = ptr::null_mut();
    let status =
        lessor_request(f.engine, wrong.as_ptr(), read.as_ptr(), path.as_ptr(), ptr::null(), &mut out, &mut err);
    assert_eq!(status, lessor_status::LESSOR_PERMISSION_DENIED);
    // A string owned by the error is not a string to free.
    lessor_string_free(lessor_error_message(err).cast_mut());
    lessor_credential_free(err.cast());
    assert_eq!(lessor_error_status(err), lessor_status::LESSOR_PERMISSION_DENIED);
    lessor_error_free(err);
    lessor_error_free(err);
    assert_eq!(lessor_error_status(err), lessor_status::LESSOR_INVALID_HANDLE);
    // SAFETY: lessor_error_message never returns NULL and its placeholders are static.
    let message = unsafe { CStr::from_ptr(lessor_error_message(err)) }.to_str().unwrap();
    assert!(message.contains("invalid lessor_error"), "{message}");

    let status =
        lessor_request(f.engine, f.root.as_ptr(), read.as_ptr(), path.as_ptr(), ptr::null(), &mut out, &mut err);
    assert_eq!(status, lessor_status::LESSOR_OK);
    lessor_string_free(out);
    lessor_string_free(out);
    assert!(lessor_credential_username(out.cast()).is_null());
}

/// `lessor_engine_free` while other threads are inside calls waits for them:
/// every call succeeds or gets `LESSOR_INVALID_HANDLE`, nothing panics or hangs.
#[test]
fn engine_free_waits_for_calls_in_flight() {
    const THREADS: usize = 4;
    let mut f = Fixture::new();
    for round in 0..20 {
        #[derive(Clone, Copy)]
        struct Shared(*mut lessor_engine, *const c_char);
        // SAFETY: the engine is documented thread-safe, and the token outlives the threads.
        unsafe impl Send for Shared {}
        let shared = Shared(f.engine, f.root.as_ptr());
        let started = std::sync::Barrier::new(THREADS + 1);
        let outcomes = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    let started = &started;
                    scope.spawn(move || {
                        let shared = shared;
                        let mut calls = 0u64;
                        loop {
                            let (status, message) = read_mounts(shared.0, shared.1);
                            calls += 1;
                            if calls == 1 {
                                started.wait();
                            }
                            if status != lessor_status::LESSOR_OK {
                                return (status, message, calls);
                            }
                        }
                    })
                })
                .collect();
            started.wait();
            lessor_engine_free(shared.0);
            workers.into_iter().map(|w| w.join().expect("a calling thread panicked")).collect::<Vec<_>>()
        });
        for (status, message, _) in outcomes {
            assert_eq!(status, lessor_status::LESSOR_INVALID_HANDLE, "round {round}: {message}");
        }
        f.reopen();
    }
}

/// A credential freed twice, and read after free, with a real issue.
#[test]
fn a_credential_freed_twice_is_a_no_op() {
    let db = lessor_tests::pg::database("ffi_api_handles");
    let prefix = format!("hx{}", &db.dbname()[db.dbname().len() - 8..]).replace(['_', '-'], "x");
    let f = Fixture::new();
    let (e, tok) = (f.engine, f.root.as_ptr());
    let request = |operation: &str, path: &str, data: serde_json::Value| {
        let (operation, path, data) = (c(operation), c(path), c(&data.to_string()));
        let mut out: *mut c_char = ptr::null_mut();
        let mut err: *mut lessor_error = ptr::null_mut();
        let status = lessor_request(e, tok, operation.as_ptr(), path.as_ptr(), data.as_ptr(), &mut out, &mut err);
        assert_eq!(status, lessor_status::LESSOR_OK, "{path:?}: {:?}", (!err.is_null()).then(|| take_error(err)));
        lessor_string_free(out);
    };
    request("update", "sys/mounts/database", serde_json::json!({"type": "database"}));
    request(
        "update",
        "database/config/pg",
        serde_json::json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": db.url_template(),
            "username": db.admin_username(),
            "password": db.admin_password(),
            "allowed_roles": "*",
            "username_template": format!("{prefix}-{{{{random 16}}}}"),
        }),
    );
    request(
        "update",
        "database/roles/app",
        serde_json::json!({
            "db_name": "pg",
            "creation_statements":
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        }),
    );
    let path = c("database/creds/app");
    let mut cred: *mut lessor_credential = ptr::null_mut();
    assert_eq!(lessor_issue(e, tok, path.as_ptr(), &mut cred, ptr::null_mut()), lessor_status::LESSOR_OK);
    // SAFETY: the lease ID of a live credential is a NUL-terminated string it owns.
    let lease = unsafe { CStr::from_ptr(lessor_credential_lease_id(cred)) }.to_owned();
    assert!(lessor_credential_ttl_s(cred) > 0);
    lessor_credential_free(cred);
    lessor_credential_free(cred);
    assert!(lessor_credential_lease_id(cred).is_null());
    assert!(lessor_credential_username(cred).is_null());
    assert!(lessor_credential_password(cred).is_null());
    assert_eq!(lessor_credential_ttl_s(cred), -1);
    assert_eq!(lessor_revoke(e, tok, lease.as_ptr(), ptr::null_mut()), lessor_status::LESSOR_OK);
    assert!(db.roles_with_prefix(&format!("{prefix}-")).is_empty());
    // Gone: revoking again is OK with nothing to do (a retried revoke), renewing is NOT_FOUND.
    assert_eq!(lessor_revoke(e, tok, lease.as_ptr(), ptr::null_mut()), lessor_status::LESSOR_OK);
    let mut ttl = 7;
    assert_eq!(lessor_renew(e, tok, lease.as_ptr(), 0, &mut ttl, ptr::null_mut()), lessor_status::LESSOR_NOT_FOUND);
    assert_eq!(ttl, 7, "untouched on failure");
}
