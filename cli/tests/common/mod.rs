//! Running the real `lessor` binary against a data directory, for the CLI's
//! integration tests. Each test file uses what it needs of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

pub const LESSOR: &str = env!("CARGO_BIN_EXE_lessor");

/// `lessor` on `dir` as `token`, with nothing from the caller's environment that
/// would change its output.
pub fn command(dir: &Path, token: &str) -> Command {
    let mut c = Command::new(LESSOR);
    c.env("LESSOR_DATA_DIR", dir)
        .env("LESSOR_TOKEN", token)
        .env_remove("LESSOR_FORMAT")
        .env_remove("LESSOR_MASTER_KEY_FILE")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null());
    c
}

pub fn lessor(dir: &Path, token: &str, args: &[&str]) -> Output {
    command(dir, token).args(args).output().expect("run lessor")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and insists on exit 0.
pub fn ok_output(dir: &Path, token: &str, args: &[&str]) -> Output {
    let out = lessor(dir, token, args);
    assert!(out.status.success(), "lessor {args:?}: {}\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
    out
}

/// Runs and insists on exit 0; returns stdout.
pub fn ok(dir: &Path, token: &str, args: &[&str]) -> String {
    text(&ok_output(dir, token, args).stdout)
}
pub mod config;
pub mod http;
pub mod server;
