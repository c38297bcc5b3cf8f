//! One test per `lessor_status`: each failure a C caller can branch on is
//! produced through the C API and arrives with its own status (the mapping is by
//! the engine error's variant, never by its message). `every_status_has_a_test`
//! keeps this list complete when a status is added.

use std::ffi::{CStr, CString, c_char};
use std::path::Path;
use std::ptr;

use lessor::*;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// The status a call returned and, when it failed, the error's status and
/// message (the error freed). Asserts the two statuses agree.
fn call(f: impl FnOnce(*mut *mut lessor_error) -> lessor_status) -> (lessor_status, String) {
    let mut err: *mut lessor_error = ptr::null_mut();
    let status = f(&mut err);
    if status == lessor_status::LESSOR_OK {
        assert!(err.is_null(), "an error on success");
        return (status, String::new());
    }
    assert_eq!(lessor_error_status(err), status, "the error carries the status returned");
    // SAFETY: a NUL-terminated string owned by `err`, read before it is freed.
    let message = unsafe { CStr::from_ptr(lessor_error_message(err)) }.to_string_lossy().into_owned();
    lessor_error_free(err);
    (status, message)
}

/// Initializes `dir` and returns its root token.
fn init(dir: &Path) -> CString {
    let data = c(dir.to_str().unwrap());
    let mut token: *mut c_char = ptr::null_mut();
    assert_eq!(call(|err| lessor_init(data.as_ptr(), ptr::null(), &mut token, err)).0, lessor_status::LESSOR_OK);
    // SAFETY: `token` is a NUL-terminated string from lessor_init, freed once.
    let root = unsafe { CStr::from_ptr(token) }.to_owned();
    lessor_string_free(token);
    root
}

fn open(dir: &Path) -> (lessor_status, String, *mut lessor_engine) {
    let data = c(dir.to_str().unwrap());
    let mut engine: *mut lessor_engine = ptr::null_mut();
    let (status, message) = call(|err| lessor_engine_open(data.as_ptr(), ptr::null(), &mut engine, err));
    (status, message, engine)
}

fn request(engine: *mut lessor_engine, token: &CStr, op: &str, path: &str, data: &str) -> (lessor_status, String) {
    let (op, path, data) = (c(op), c(path), c(data));
    let mut out: *mut c_char = ptr::null_mut();
    let result =
        call(|err| lessor_request(engine, token.as_ptr(), op.as_ptr(), path.as_ptr(), data.as_ptr(), &mut out, err));
    lessor_string_free(out);
    result
}

#[test]
fn ok() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(&dir.path().join("d"));
    let (status, _, engine) = open(&dir.path().join("d"));
    assert_eq!(status, lessor_status::LESSOR_OK);
    assert_eq!(request(engine, &root, "read", "sys/mounts", "{}").0, lessor_status::LESSOR_OK);
    lessor_engine_free(engine);
}

#[test]
fn invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(&dir.path().join("d"));
    let (_, _, engine) = open(&dir.path().join("d"));
    let (status, message) = request(engine, &root, "update", "sys/mounts/db", r#"{"type": "database", "bogus": 1}"#);
    assert_eq!(status, lessor_status::LESSOR_INVALID_ARGUMENT);
    assert!(message.contains("bogus"), "the message names the field: {message}");
    // An operation the path does not take (HTTP's 405) is a bad argument to C.
    let (status, message) = request(engine, &root, "update", "sys/mounts", "{}");
    assert_eq!(status, lessor_status::LESSOR_INVALID_ARGUMENT);
    assert!(message.contains("unsupported operation update"), "{message}");
    lessor_engine_free(engine);
}

#[test]
fn permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    init(&dir.path().join("d"));
    let (_, _, engine) = open(&dir.path().join("d"));
    let (status, _) = request(engine, &c("lsr.not-a-token"), "read", "sys/mounts", "{}");
    assert_eq!(status, lessor_status::LESSOR_PERMISSION_DENIED);
    lessor_engine_free(engine);
}

#[test]
fn not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (status, message, engine) = open(dir.path());
    assert_eq!(status, lessor_status::LESSOR_NOT_FOUND, "{message}");
    assert!(engine.is_null());
}

/// A connection nothing listens on, written without verification: the issue
/// fails in the database plugin.
#[test]
fn database() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(&dir.path().join("d"));
    let (_, _, engine) = open(&dir.path().join("d"));
    let ok = lessor_status::LESSOR_OK;
    assert_eq!(request(engine, &root, "update", "sys/mounts/database", r#"{"type": "database"}"#).0, ok);
    // Port 1 on loopback: connection refused at once.
    let config = r#"{"plugin_name": "postgresql-database-plugin", "verify_connection": false, "allowed_roles": "*",
        "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/postgres", "username": "u", "password": "p"}"#;
    assert_eq!(request(engine, &root, "update", "database/config/pg", config).0, ok);
    let role = r#"{"db_name": "pg", "creation_statements": "CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}'"}"#;
    assert_eq!(request(engine, &root, "update", "database/roles/app", role).0, ok);
    let path = c("database/creds/app");
    let mut credential: *mut lessor_credential = ptr::null_mut();
    let (status, message) = call(|err| lessor_issue(engine, root.as_ptr(), path.as_ptr(), &mut credential, err));
    assert_eq!(status, lessor_status::LESSOR_DATABASE, "{message}");
    assert!(credential.is_null(), "out-parameters are written only on success");
    lessor_engine_free(engine);
}

/// The data directory's parent is a regular file: it cannot be created.
#[test]
fn io() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let data = c(file.join("d").to_str().unwrap());
    let mut token: *mut c_char = ptr::null_mut();
    let (status, message) = call(|err| lessor_init(data.as_ptr(), ptr::null(), &mut token, err));
    assert_eq!(status, lessor_status::LESSOR_IO, "{message}");
    assert!(token.is_null());
}

/// A byte of an acknowledged record changed in the middle of the log (not a
/// torn tail, which recovery may cut): opening refuses.
#[test]
fn corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let root = init(&data);
    let (_, _, engine) = open(&data);
    for i in 0..20 {
        let policy = format!(r#"{{"policy": "path \"p{i}/*\" {{ capabilities = [\"read\"] }}"}}"#);
        assert_eq!(request(engine, &root, "update", &format!("sys/policy/p{i}"), &policy).0, lessor_status::LESSOR_OK);
    }
    lessor_engine_free(engine);
    let segment = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("a log segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    // A third of the way into the records (the segment is allocated ahead:
    // zeros follow its data).
    let data_end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let middle = data_end / 3;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, bytes).unwrap();
    let (status, message, engine) = open(&data);
    assert_eq!(status, lessor_status::LESSOR_CORRUPT, "{message}");
    assert!(engine.is_null());
}

#[test]
fn busy() {
    let dir = tempfile::tempdir().unwrap();
    init(&dir.path().join("d"));
    let (_, _, engine) = open(&dir.path().join("d"));
    let (status, message, second) = open(&dir.path().join("d"));
    assert_eq!(status, lessor_status::LESSOR_BUSY, "the directory is locked while open: {message}");
    assert!(second.is_null());
    lessor_engine_free(engine);
}

#[test]
fn null_parameter() {
    let mut engine: *mut lessor_engine = ptr::null_mut();
    let (status, message) = call(|err| lessor_engine_open(ptr::null(), ptr::null(), &mut engine, err));
    assert_eq!(status, lessor_status::LESSOR_NULL_PARAMETER);
    assert!(message.contains("data_dir"), "names the argument: {message}");
}

#[test]
fn invalid_handle() {
    let dir = tempfile::tempdir().unwrap();
    let root = init(&dir.path().join("d"));
    let (_, _, engine) = open(&dir.path().join("d"));
    lessor_engine_free(engine);
    assert_eq!(request(engine, &root, "read", "sys/mounts", "{}").0, lessor_status::LESSOR_INVALID_HANDLE);
}

#[test]
fn already_initialized() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let data = c(dir.path().to_str().unwrap());
    let mut token: *mut c_char = ptr::null_mut();
    let (status, _) = call(|err| lessor_init(data.as_ptr(), ptr::null(), &mut token, err));
    assert_eq!(status, lessor_status::LESSOR_ALREADY_INITIALIZED);
}

/// No input reaches a panic through the C API (the fuzz targets and these tests
/// look for one); the boundary that would turn one into `LESSOR_PANIC` is tested
/// from inside the crate (`ffi/src/panic.rs`). Here: its number and name.
#[test]
fn panic() {
    assert_eq!(lessor_status::LESSOR_PANIC as u32, 100);
    // SAFETY: lessor_status_str returns a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr(lessor_status_str(lessor_status::LESSOR_PANIC as u32)) };
    assert_eq!(name.to_str().unwrap(), "LESSOR_PANIC");
}

/// Each status has a test above, named after it: a new status without one
/// fails here.
#[test]
fn every_status_has_a_test() {
    let source = include_str!("statuses.rs");
    for status in lessor_status::all() {
        let name = status.name().to_str().unwrap();
        let test = name.strip_prefix("LESSOR_").unwrap().to_ascii_lowercase();
        assert!(source.contains(&format!("#[test]\nfn {test}()")), "no test for {name}: add `fn {test}()` here");
    }
}
