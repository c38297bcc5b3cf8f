//! Runs `ffi/python/tests/test_lessor.py` (unittest, ctypes over liblessor.so)
//! against a throwaway PostgreSQL database, checking the issued role on the server
//! between the steps. The same run has the tests that need no database: close()
//! under calls from other threads (EngineClosed), and arguments refused before C
//! (a NUL byte in a string, an integer outside int64).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

#[test]
fn python_binding_end_to_end_against_postgresql() {
    let lib = common::lib_dir().join("liblessor.so");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/tests");

    let db = lessor_tests::pg::database("ffi_py");
    let prefix = common::prefix("py", &db);
    let mut command = Command::new(&python);
    command.args(["-m", "unittest", "discover", "-v", "-s"]).arg(&tests).env("LESSOR_LIBRARY", &lib);
    let mut child = common::database_env(&mut command, &db, &prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e}; install Python 3 (Debian/Ubuntu: apt-get install python3)")
        });
    common::handshake(&mut child, "python", &db, &prefix, None);
    assert!(child.wait().unwrap().success(), "the Python tests failed (see stderr above)");
}
