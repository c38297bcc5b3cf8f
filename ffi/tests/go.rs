//! Builds the Go binding's tests (`ffi/go`, cgo over liblessor.so) and runs them
//! against a throwaway PostgreSQL database, checking the issued role on the
//! server between the steps. The same binary runs the tests that need no
//! database: Close under calls from other goroutines (ErrClosed), and arguments
//! refused before C (a NUL byte in a string, an integer outside int64).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

#[test]
fn go_binding_end_to_end_against_postgresql() {
    common::lib_dir(); // fails early, naming the fix, when the library is missing
    let package = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("go");
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("lessor.test");
    let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
    let built = Command::new(&go)
        .args(["test", "-c", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&package)
        .env("CGO_ENABLED", "1")
        .env("PKG_CONFIG_PATH", common::pc_dir_for_build_tree(tmp.path()))
        .status()
        .unwrap_or_else(|e| panic!("cannot run {go}: {e}; install Go (Debian/Ubuntu: apt-get install golang-go)"));
    assert!(built.success(), "building the Go tests failed");

    let db = lessor_tests::pg::database("ffi_go");
    let prefix = common::prefix("go", &db);
    let mut command = Command::new(&binary);
    command.arg("-test.v").current_dir(&package);
    let mut child =
        common::database_env(&mut command, &db, &prefix).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    common::handshake(&mut child, "go", &db, &prefix, Some("PASS"));
    assert!(child.wait().unwrap().success(), "the Go tests failed (see their output above)");
    assert!(db.roles_with_prefix(&format!("{prefix}-")).is_empty(), "every goroutine's credential was revoked");
}
