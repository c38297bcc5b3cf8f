//! `lessor token …` through the real binary (no PostgreSQL needed): every form of
//! `token lookup` and `token revoke` sends the request Vault's CLI sends,
//! authenticates with the caller's token (-token / LESSOR_TOKEN) and never with
//! its argument, and the audit log names the caller.
//!
//! The regression: the positional TOKEN shared clap's id with the global
//! `--token`, so `token revoke T` authenticated as T (an operator could not revoke
//! a leaked token; the audit named T as the caller), and `token revoke` with no
//! argument revoked the caller's own token.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::{LESSOR, lessor, ok, text};

fn json(dir: &Path, token: &str, args: &[&str]) -> Value {
    let mut all = vec!["-format=json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(dir, token, &all)).unwrap()
}

/// A token made by `token create`: (secret, accessor).
fn create(dir: &Path, token: &str, display_name: &str) -> (String, String) {
    let name = format!("-display-name={display_name}");
    let created = json(dir, token, &["token", "create", &name]);
    let auth = &created["auth"];
    (auth["client_token"].as_str().unwrap().to_string(), auth["accessor"].as_str().unwrap().to_string())
}

/// Whether `token` still authenticates.
fn valid(dir: &Path, token: &str) -> bool {
    lessor(dir, token, &["token", "lookup"]).status.success()
}

/// The request records of the log, oldest first.
fn requests(dir: &Path) -> Vec<Value> {
    ok(dir, "", &["audit", "log", "--jsonl"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["kind"] == "RequestRecorded")
        .map(|l| l["event"].clone())
        .collect()
}

struct Dir {
    dir: tempfile::TempDir,
    root: String,
    root_accessor: String,
}

fn setup() -> Dir {
    let dir = tempfile::tempdir().unwrap();
    let init = ok(dir.path(), "", &["init"]);
    let root = init.lines().find_map(|l| l.strip_prefix("Initial Root Token: ")).unwrap().trim().to_string();
    let me = json(dir.path(), &root, &["token", "lookup"]);
    let root_accessor = me["data"]["accessor"].as_str().unwrap().to_string();
    Dir { dir, root, root_accessor }
}

/// The last request in the log, and that it was `path` by `accessor`, allowed.
fn assert_last_request(dir: &Path, path: &str, accessor: &str) {
    let last = requests(dir).pop().expect("a request record");
    assert_eq!(last["path"], path, "{last}");
    assert_eq!(last["accessor"], accessor, "the audit names the caller: {last}");
    assert_eq!(last["outcome"], "ok", "{last}");
}

#[test]
fn token_lookup_each_form_authenticates_as_the_caller() {
    let d = setup();
    let dir = d.dir.path();
    let (leaked, leaked_accessor) = create(dir, &d.root, "leaked-app");

    // No argument: the caller's own token (lookup-self).
    let me = json(dir, &d.root, &["token", "lookup"]);
    assert_eq!(me["data"]["accessor"], d.root_accessor.as_str());
    assert_eq!(me["data"]["display_name"], "root");
    assert_last_request(dir, "auth/token/lookup-self", &d.root_accessor);

    // TOKEN: that token, looked up by the caller.
    let other = json(dir, &d.root, &["token", "lookup", &leaked]);
    assert_eq!(other["data"]["accessor"], leaked_accessor.as_str(), "{other}");
    assert_eq!(other["data"]["display_name"], "token-leaked-app");
    assert_last_request(dir, "auth/token/lookup", &d.root_accessor);
    // The same with the caller given as a flag, in both spellings.
    for flag in [format!("-token={}", d.root), format!("--token={}", d.root)] {
        let out = lessor(dir, "", &[flag.as_str(), "-format=json", "token", "lookup", &leaked]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_last_request(dir, "auth/token/lookup", &d.root_accessor);
    }

    // -accessor A.
    let by_accessor = json(dir, &d.root, &["token", "lookup", "-accessor", &leaked_accessor]);
    assert_eq!(by_accessor["data"]["display_name"], "token-leaked-app", "{by_accessor}");
    assert_last_request(dir, "auth/token/lookup-accessor", &d.root_accessor);
    let missing = lessor(dir, &d.root, &["token", "lookup", "-accessor"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("token lookup -accessor ACCESSOR"), "{}", text(&missing.stderr));

    // The text table never echoes another token's secret as the caller.
    let table = ok(dir, &d.root, &["token", "lookup", "-accessor", &leaked_accessor]);
    assert!(!table.contains(&leaked) && !table.contains(&d.root), "{table}");
}

#[test]
fn token_revoke_token_revokes_it_as_the_operator() {
    let d = setup();
    let dir = d.dir.path();
    let (leaked, leaked_accessor) = create(dir, &d.root, "leaked-app");
    let out = ok(dir, &d.root, &["token", "revoke", &leaked]);
    assert!(out.contains("Success! Revoked token"), "{out}");
    assert_last_request(dir, "auth/token/revoke", &d.root_accessor);
    assert!(!valid(dir, &leaked), "the leaked token no longer authenticates");
    assert!(valid(dir, &d.root), "the operator's token is untouched");
    // Nothing in the log was done as the leaked token.
    assert!(requests(dir).iter().all(|r| r["accessor"] != leaked_accessor.as_str()), "{:?}", requests(dir));

    // The caller given with -token, the target as the positional.
    let (second, _) = create(dir, &d.root, "second");
    let flag = format!("-token={}", d.root);
    let out = lessor(dir, "", &[flag.as_str(), "token", "revoke", &second]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_last_request(dir, "auth/token/revoke", &d.root_accessor);
    assert!(!valid(dir, &second) && valid(dir, &d.root));
}

#[test]
fn token_revoke_accessor_revokes_by_accessor_as_the_operator() {
    let d = setup();
    let dir = d.dir.path();
    let (leaked, leaked_accessor) = create(dir, &d.root, "leaked-app");
    ok(dir, &d.root, &["token", "revoke", "-accessor", &leaked_accessor]);
    assert_last_request(dir, "auth/token/revoke-accessor", &d.root_accessor);
    assert!(!valid(dir, &leaked) && valid(dir, &d.root));
    let missing = lessor(dir, &d.root, &["token", "revoke", "-accessor"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("token revoke -accessor ACCESSOR"), "{}", text(&missing.stderr));
}

#[test]
fn token_revoke_without_an_argument_is_an_error_and_self_needs_the_flag() {
    let d = setup();
    let dir = d.dir.path();
    let before = requests(dir).len();
    let out = lessor(dir, &d.root, &["token", "revoke"]);
    assert_eq!(out.status.code(), Some(1), "Vault: Not enough arguments");
    let err = text(&out.stderr);
    assert!(err.contains("Not enough arguments") && err.contains("-self"), "{err}");
    assert!(valid(dir, &d.root), "the caller's token was not revoked");
    assert_eq!(requests(dir).len(), before + 1, "nothing was sent (the one new record is the lookup above)");

    // -self: the caller's own token, by revoke-self.
    let (mine, my_accessor) = create(dir, &d.root, "short-lived");
    ok(dir, &mine, &["token", "revoke", "-self"]);
    assert_last_request(dir, "auth/token/revoke-self", &my_accessor);
    assert!(!valid(dir, &mine) && valid(dir, &d.root));

    // -self with an argument, or with -accessor, is refused before anything is sent.
    let before = requests(dir).len();
    for args in [&["token", "revoke", "-self", "lsr.x"][..], &["token", "revoke", "-self", "-accessor", "a"][..]] {
        let out = lessor(dir, &d.root, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(text(&out.stderr).contains("-self"), "{args:?}: {}", text(&out.stderr));
    }
    assert_eq!(requests(dir).len(), before);
}

#[test]
fn token_help_shows_the_global_token_flag() {
    for sub in ["revoke", "lookup", "create"] {
        let out = Command::new(LESSOR).args(["token", sub, "--help"]).output().unwrap();
        let help = text(&out.stdout);
        assert!(out.status.success(), "{help}");
        assert!(help.contains("--token <T>"), "token {sub} --help must list --token:\n{help}");
        if sub != "create" {
            assert!(help.contains("[TOKEN]") && help.contains("--accessor"), "{help}");
        }
    }
}
