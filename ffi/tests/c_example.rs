//! Builds `ffi/examples/issue.c` with `-Wall -Wextra -Wpedantic -Werror` against
//! `include/lessor.h` and `liblessor.so`, and runs it against a throwaway
//! PostgreSQL database: the issued role exists, and is gone after revoke; 8
//! threads then issue and revoke through one handle.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[test]
fn issue_c_end_to_end_against_postgresql() {
    run_issue_c(None);
}

/// The same run under valgrind's memcheck: no invalid access, no definite leak.
#[test]
fn issue_c_under_valgrind() {
    let found = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "valgrind is missing: install it (Debian/Ubuntu: apt-get install valgrind)");
    let suppressions = format!("--suppressions={}/tests/valgrind.supp", env!("CARGO_MANIFEST_DIR"));
    run_issue_c(Some(&[
        "valgrind",
        "--quiet",
        &suppressions,
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
    ]));
}

fn run_issue_c(wrapper: Option<&[&str]>) {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib_dir = common::lib_dir();
    assert!(
        lib_dir.join("liblessor.so").exists(),
        "{} is missing: run the suite with ./scripts/test, or `cargo build -p lessor-ffi` first",
        lib_dir.join("liblessor.so").display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("issue");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let compiled = Command::new(&cc)
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-std=c11", "-I"])
        .arg(workspace.join("include"))
        .arg(workspace.join("ffi/examples/issue.c"))
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-llessor", "-lpthread", "-o"])
        .arg(&binary)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc} (install gcc: apt-get install gcc): {e}"));
    assert!(compiled.success(), "compiling issue.c failed");

    let db = lessor_tests::pg::database(if wrapper.is_some() { "ffi_c_vg" } else { "ffi_c" });
    let prefix = format!("c{}", &db.dbname()[db.dbname().len() - 8..]).replace(['_', '-'], "x");
    let mut command = match wrapper {
        Some([program, args @ ..]) => {
            let mut command = Command::new(program);
            command.args(args).arg(&binary);
            command
        }
        _ => Command::new(&binary),
    };
    let mut child = command
        .env("LESSOR_DATA_DIR", tmp.path().join("data"))
        .env("LESSOR_PG_URL", db.url_template())
        .env("LESSOR_PG_USER", db.admin_username())
        .env("LESSOR_PG_PASSWORD", db.admin_password())
        .env("LESSOR_PREFIX", &prefix)
        .env("LESSOR_THREADS", if wrapper.is_some() { "2" } else { "8" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_with = |start: &str| -> String {
        for line in lines.by_ref() {
            let line = line.unwrap();
            println!("issue.c: {line}");
            if let Some(rest) = line.strip_prefix(start) {
                return rest.to_string();
            }
        }
        panic!("issue.c ended before printing {start:?}");
    };

    let issued = next_with("ISSUED ");
    let username = issued.split_whitespace().next().unwrap().to_string();
    assert!(username.starts_with(&format!("{prefix}-")), "{username}");
    assert!(db.role_exists(&username), "role {username} should exist after issue");
    stdin.write_all(b"\n").unwrap();

    let renewed = next_with("RENEWED ttl=");
    let ttl: i64 = renewed.trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 600, "renewed ttl {ttl}");
    assert_eq!(next_with("REVOKED "), username);
    assert!(!db.role_exists(&username), "role {username} should be gone after revoke");
    stdin.write_all(b"\n").unwrap();

    assert_eq!(next_with("THREADS "), if wrapper.is_some() { "2" } else { "8" });
    next_with("DONE");
    assert!(child.wait().unwrap().success(), "issue.c failed");
    assert!(db.roles_with_prefix(&format!("{prefix}-")).is_empty(), "every threaded credential was revoked");

    // As the README runs it: no LESSOR_DATA_DIR, twice; each run makes its own
    // directory, so the second works too.
    if wrapper.is_none() {
        let mut dirs = Vec::new();
        for _ in 0..2 {
            let out = Command::new(&binary)
                .env_remove("LESSOR_DATA_DIR")
                .env("LESSOR_PG_URL", db.url_template())
                .env("LESSOR_PG_USER", db.admin_username())
                .env("LESSOR_PG_PASSWORD", db.admin_password())
                .env("LESSOR_PREFIX", &prefix)
                .env("LESSOR_THREADS", "2")
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            assert!(stdout.contains("\nDONE"), "{stdout}");
            let dir = stdout.lines().find_map(|l| l.strip_prefix("DATA_DIR ")).expect("no DATA_DIR line").to_string();
            assert!(dir.starts_with("/tmp/lessor-example-"), "{dir}");
            dirs.push(dir);
        }
        assert_ne!(dirs[0], dirs[1]);
        for dir in dirs {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
