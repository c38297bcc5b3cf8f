//! `scripts/setup`, the set-up both `./scripts/test` and `.ci/run` start with:
//! on a machine that lacks something and cannot install it, it stops at once
//! with one message naming every missing piece and the command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/setup")
}

/// A PATH holding only the shell and the few tools the script itself uses.
fn bare_path() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for tool in ["bash", "id", "printf"] {
        let found = which(tool).unwrap_or_else(|| panic!("{tool} not on PATH"));
        std::os::unix::fs::symlink(found, dir.path().join(tool)).unwrap();
    }
    dir
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(tool)).find(|p| p.is_file())
}

#[test]
fn a_machine_missing_tools_gets_one_message_naming_each_and_the_install_command() {
    let bin = bare_path();
    let out =
        Command::new(bin.path().join("bash")).arg(script()).arg("--check").env("PATH", bin.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing but the message: {}", String::from_utf8_lossy(&out.stdout));
    for (piece, package) in
        [("go", "golang-go"), ("valgrind", "valgrind"), ("pkg-config", "pkg-config"), ("openssl", "openssl")]
    {
        assert!(stderr.contains(&format!("- {piece} ")), "{piece} not named: {stderr}");
        assert!(stderr.contains(package), "{package} not named: {stderr}");
    }
    let install = stderr.lines().find(|l| l.contains("apt-get install")).expect("no install command");
    for package in ["golang-go", "valgrind", "pkg-config", "openssl", "binutils", "python3"] {
        assert!(install.contains(package), "the install command lacks {package}: {install}");
    }
}

#[test]
fn on_this_machine_everything_is_present() {
    // `./scripts/test` ran the set-up before the tests: nothing may be missing.
    let out = Command::new("bash").arg(script()).arg("--check").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("every prerequisite is present"));
}
