//! Builds `ffi/tests/handles.c` with `-Wall -Wextra -Wpedantic -Werror` against
//! `include/lessor.h` and `liblessor.so` and runs it, plainly and under
//! valgrind's memcheck: double frees, calls on a freed engine and on pointers
//! that are not handles get `LESSOR_INVALID_HANDLE` or nothing, never a crash or
//! a read of freed memory; `lessor_engine_free` under calls from other threads
//! waits for them (see "Handles" in lessor.h). Needs no database.

mod common;

use std::path::PathBuf;
use std::process::Command;

#[test]
fn handle_misuse_in_c_gets_a_status() {
    run_handles_c(None, "4", "20");
}

#[test]
fn handle_misuse_in_c_under_valgrind() {
    let found = Command::new("valgrind").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(found, "valgrind is missing: install it (Debian/Ubuntu: apt-get install valgrind)");
    let suppressions = format!("--suppressions={}/tests/valgrind.supp", env!("CARGO_MANIFEST_DIR"));
    run_handles_c(
        Some(&[
            "valgrind",
            "--quiet",
            &suppressions,
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
        ]),
        "2",
        "3",
    );
}

fn run_handles_c(wrapper: Option<&[&str]>, threads: &str, rounds: &str) {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib_dir = common::lib_dir();
    let tmp = tempfile::tempdir().unwrap();
    let binary = tmp.path().join("handles");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let compiled = Command::new(&cc)
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-std=c11", "-I"])
        .arg(workspace.join("include"))
        .arg(workspace.join("ffi/tests/handles.c"))
        .arg("-L")
        .arg(&lib_dir)
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-llessor", "-lpthread", "-o"])
        .arg(&binary)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc} (install gcc: apt-get install gcc): {e}"));
    assert!(compiled.success(), "compiling handles.c failed");

    let mut command = match wrapper {
        Some([program, args @ ..]) => {
            let mut command = Command::new(program);
            command.args(args).arg(&binary);
            command
        }
        _ => Command::new(&binary),
    };
    let output = command
        .env("LESSOR_DATA_DIR", tmp.path().join("data"))
        .env("LESSOR_THREADS", threads)
        .env("LESSOR_ROUNDS", rounds)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("OK"),
        "handles.c failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
