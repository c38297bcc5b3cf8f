//! Builds the Go binding's tests (`ffi/go`, cgo over liblessor.so) and runs them
//! against a throwaway PostgreSQL database, checking the issued role on the
//! server between the steps.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[test]
fn go_binding_end_to_end_against_postgresql() {
    let exe = std::env::current_exe().unwrap();
    let lib_dir = exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf();
    assert!(
        lib_dir.join("liblessor.so").exists(),
        "liblessor.so is missing from {}: run the suite with ./scripts/test, or `cargo build -p lessor-ffi` first",
        lib_dir.display()
    );
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
        .env("CGO_LDFLAGS", format!("-L{0} -Wl,-rpath,{0}", lib_dir.display()))
        .status()
        .unwrap_or_else(|e| panic!("cannot run {go}: {e}; install Go (Debian/Ubuntu: apt-get install golang-go)"));
    assert!(built.success(), "building the Go tests failed");

    let db = lessor_tests::pg::database("ffi_go");
    let prefix = format!("go{}", &db.dbname()[db.dbname().len() - 8..]).replace(['_', '-'], "x");
    let mut child = Command::new(&binary)
        .arg("-test.v")
        .current_dir(&package)
        .env("LESSOR_PG_URL", db.url_template())
        .env("LESSOR_PG_USER", db.admin_username())
        .env("LESSOR_PG_PASSWORD", db.admin_password())
        .env("LESSOR_PREFIX", &prefix)
        .env("LESSOR_TEST_HANDSHAKE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_with = |start: &str| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            println!("go: {line}");
            if let Some(rest) = line.strip_prefix(start) {
                return rest.to_string();
            }
        }
        panic!("the Go tests ended before printing {start:?} (see their output above)");
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
    next_with("PASS");
    assert!(child.wait().unwrap().success(), "the Go tests failed (see their output above)");
    assert!(db.roles_with_prefix(&format!("{prefix}-")).is_empty(), "every goroutine's credential was revoked");
}
