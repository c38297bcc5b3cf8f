//! Runs `ffi/python/tests/test_lessor.py` (unittest, ctypes over liblessor.so)
//! against a throwaway PostgreSQL database, checking the issued role on the server
//! between the steps.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[test]
fn python_binding_end_to_end_against_postgresql() {
    let exe = std::env::current_exe().unwrap();
    let lib = exe.parent().and_then(|deps| deps.parent()).unwrap().join("liblessor.so");
    assert!(
        lib.exists(),
        "{} is missing: run the suite with ./scripts/test, or `cargo build -p lessor-ffi` first",
        lib.display()
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/tests");

    let db = lessor_tests::pg::database("ffi_py");
    let prefix = format!("py{}", &db.dbname()[db.dbname().len() - 8..]).replace(['_', '-'], "x");
    let mut child = Command::new(&python)
        .args(["-m", "unittest", "discover", "-v", "-s"])
        .arg(&tests)
        .env("LESSOR_LIBRARY", &lib)
        .env("LESSOR_PG_URL", db.url_template())
        .env("LESSOR_PG_USER", db.admin_username())
        .env("LESSOR_PG_PASSWORD", db.admin_password())
        .env("LESSOR_PREFIX", &prefix)
        .env("LESSOR_TEST_HANDSHAKE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e}; install Python 3 (Debian/Ubuntu: apt-get install python3)")
        });
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_with = |start: &str| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            println!("python: {line}");
            if let Some(rest) = line.strip_prefix(start) {
                return rest.to_string();
            }
        }
        panic!("the Python tests ended before printing {start:?} (see their output above)");
    };

    let username = next_with("ISSUED ");
    assert!(username.starts_with(&format!("{prefix}-")), "{username}");
    assert!(db.role_exists(&username), "role {username} should exist after issue");
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(next_with("REVOKED "), username);
    assert!(!db.role_exists(&username), "role {username} should be gone after revoke");
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success(), "the Python tests failed (see stderr above)");
}
