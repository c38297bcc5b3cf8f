//! What the binding tests (Python, Go) share: where liblessor.so is, the
//! environment that points a binding's test at a database, and the handshake in
//! which the Rust side checks the server between the binding's steps.
// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use lessor_tests::pg::TestDb;

/// The directory holding `liblessor.so` next to this test binary, made to look
/// like an installed library directory: a program linked with `-llessor` records
/// the SONAME (`liblessor.so.0.1`), so that name must resolve at run time too.
/// A directory holding a `lessor.pc` for the library this build made (in
/// `lib_dir()`, with an rpath to it) and the checkout's header: what the Go
/// package's `#cgo pkg-config: lessor` finds, as it would an installed lessor.
pub fn pc_dir_for_build_tree(scratch: &Path) -> PathBuf {
    let include = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../include");
    let dir = scratch.join("pkgconfig");
    std::fs::create_dir_all(&dir).unwrap();
    let pc = format!(
        "libdir={}\nincludedir={}\n\nName: lessor\nDescription: lessor (build tree)\nVersion: {}\n\
         Libs: -L${{libdir}} -Wl,-rpath,${{libdir}} -llessor\nCflags: -I${{includedir}}\n",
        lib_dir().display(),
        include.display(),
        env!("CARGO_PKG_VERSION"),
    );
    std::fs::write(dir.join("lessor.pc"), pc).unwrap();
    dir
}

pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf();
    assert!(
        dir.join("liblessor.so").exists(),
        "liblessor.so is missing from {}: run the suite with ./scripts/test, or `cargo build -p lessor-ffi` first",
        dir.display()
    );
    let link = dir.join(soname());
    if std::fs::symlink_metadata(&link).is_err() {
        // Another test may create it at the same moment: either way it exists after.
        let _ = std::os::unix::fs::symlink("liblessor.so", &link);
    }
    assert!(link.exists(), "cannot create {}", link.display());
    dir
}

/// `liblessor.so.MAJOR`, or `liblessor.so.0.MINOR` in 0.x: the rule of ffi/build.rs.
pub fn soname() -> String {
    let (major, minor) = (env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"));
    if major == "0" { format!("liblessor.so.0.{minor}") } else { format!("liblessor.so.{major}") }
}

/// A username prefix unique to this test's database.
pub fn prefix(tag: &str, db: &TestDb) -> String {
    format!("{tag}{}", &db.dbname()[db.dbname().len() - 8..]).replace(['_', '-'], "x")
}

/// Points a binding's test at `db`, issuing usernames that start with `prefix`.
pub fn database_env<'c>(command: &'c mut Command, db: &TestDb, prefix: &str) -> &'c mut Command {
    command
        .env("LESSOR_PG_URL", db.url_template())
        .env("LESSOR_PG_USER", db.admin_username())
        .env("LESSOR_PG_PASSWORD", db.admin_password())
        .env("LESSOR_PREFIX", prefix)
        .env("LESSOR_TEST_HANDSHAKE", "1")
}

/// The handshake: the binding prints `ISSUED <user>` and waits for a line; we
/// check the role exists; it revokes and prints `REVOKED <user>`; we check the
/// role is gone. With `end`, waits for that line too. Returns nothing: it asserts.
pub fn handshake(child: &mut Child, who: &str, db: &TestDb, prefix: &str, end: Option<&str>) {
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_with = |start: &str| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            println!("{who}: {line}");
            if let Some(rest) = line.strip_prefix(start) {
                return rest.to_string();
            }
        }
        panic!("the {who} tests ended before printing {start:?} (see their output above)");
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
    if let Some(end) = end {
        next_with(end);
    }
}
