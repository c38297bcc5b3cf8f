//! The README's command-line walkthrough, extracted from README.md and run as
//! written by bash against a throwaway PostgreSQL (issue 15, item 10): if the
//! README drifts from what lessor does, this fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use lessor_pgtemp as pg;

const LESSOR: &str = env!("CARGO_BIN_EXE_lessor");

/// The first `sh` code block under the "The `lessor` command line" heading.
fn walkthrough_block() -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme.split("\n## The `lessor` command line\n").nth(1).expect("no command-line section in README");
    let block = section.split("\n```sh\n").nth(1).expect("no sh block in the command-line section");
    block.split("\n```\n").next().unwrap().to_string()
}

#[test]
fn the_readme_command_line_walkthrough_runs_as_written() {
    let script = walkthrough_block();
    let db = pg::database("readme");
    let home = tempfile::tempdir().unwrap();
    let bin_dir = PathBuf::from(LESSOR).parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let mut command = Command::new("bash");
    command
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("PATH", path);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LESSOR_") {
            command.env_remove(&name);
        }
    }
    command
        .env("PGHOST", db.host())
        .env("PGPORT", db.port().to_string())
        .env("PGDATABASE", db.dbname())
        .env("PGUSER", db.admin_username())
        .env("PGPASSWORD", db.admin_password());
    let out = command.output().expect("run bash");
    assert!(
        out.status.success(),
        "the README walkthrough failed ({}):\n--- script ---\n{script}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // What it claims happened, happened: the credential was issued under the
    // username form the README shows, and its revocation dropped the user.
    let cred: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.path().join("cred.json")).unwrap()).unwrap();
    let username = cred["data"]["username"].as_str().expect("no username in cred.json");
    assert!(username.starts_with("v-token-ap-app-read-"), "the README shows another form: {username}");
    assert!(!db.role_exists(username), "{username} survived lease revoke");
    // And the admin password was rotated: the one in PGPASSWORD no longer works.
    assert!(!db.can_login(db.admin_username(), db.admin_password()), "rotate-root left the old password working");
}
