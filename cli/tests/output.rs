//! What the CLI prints, as a Vault user expects it (issue 15, items 4–6), through
//! the real binary and no PostgreSQL: `-format=json` puts only JSON on stdout,
//! table mode wraps warnings and humanizes durations, errors speak of what the
//! user typed, and the small things (plurals, trailing lines, list prefixes).

use std::path::Path;

use serde_json::Value;

mod common;
use common::{lessor, ok, ok_output, text};

struct Dir {
    dir: tempfile::TempDir,
    root: String,
}

fn setup() -> Dir {
    let dir = tempfile::tempdir().unwrap();
    let init = ok(dir.path(), "", &["init"]);
    let root = init.lines().find_map(|l| l.strip_prefix("Initial Root Token: ")).unwrap().trim().to_string();
    Dir { dir, root }
}

/// A mount with a connection nothing listens on (never contacted) and a role
/// whose statements draw a warning.
fn with_warning_role(d: &Dir) -> Vec<String> {
    let dir = d.dir.path();
    ok(dir, &d.root, &["secrets", "enable", "database"]);
    ok(
        dir,
        &d.root,
        &[
            "write",
            "database/config/pg",
            "plugin_name=postgresql-database-plugin",
            "connection_url=postgresql://127.0.0.1:1/app?sslmode=disable",
            "username=admin",
            "password=secret",
            "verify_connection=false",
            "allowed_roles=*",
        ],
    );
    vec![
        "write".into(),
        "database/roles/ro".into(),
        "db_name=pg".into(),
        "creation_statements=CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}'; GRANT SELECT ON ALL TABLES IN \
         SCHEMA public TO \"{{name}}\";"
            .into(),
        "default_ttl=1h".into(),
    ]
}

fn run(dir: &Path, token: &str, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_output(dir, token, &args)
}

#[test]
fn json_format_prints_only_json_and_keeps_warnings_in_their_field() {
    let d = setup();
    let dir = d.dir.path();
    let mut args = vec!["-format=json".to_string()];
    args.extend(with_warning_role(&d));
    let out = run(dir, &d.root, &args);
    let reply: Value = serde_json::from_slice(&out.stdout).expect("stdout is not one JSON document");
    let warnings = reply["warnings"].as_array().expect("no warnings field");
    assert!(warnings.iter().any(|w| w.as_str().unwrap().contains("ON ALL TABLES")), "{reply}");
    assert!(text(&out.stderr).is_empty(), "JSON mode printed to stderr: {}", text(&out.stderr));

    // Commands that say `Success! …` in table mode print nothing here.
    for args in [
        vec!["-format=json", "secrets", "enable", "-path=db2", "database"],
        vec!["-format=json", "delete", "database/roles/none"],
        vec!["-format=json", "secrets", "disable", "db2"],
    ] {
        let out = ok_output(dir, &d.root, &args);
        assert!(out.stdout.is_empty(), "{args:?} printed {}", text(&out.stdout));
    }
}

#[test]
fn table_format_wraps_warnings_at_80_columns_on_stderr() {
    let d = setup();
    let out = run(d.dir.path(), &d.root, &with_warning_role(&d));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("WARNING! The following warnings were returned from lessor:"), "{stderr}");
    assert!(stderr.lines().all(|l| l.chars().count() <= 80), "a line past 80 columns:\n{stderr}");
    assert!(stderr.contains("\n  * creation_statements GRANT"), "{stderr}");
    assert!(text(&out.stdout).contains("Success! Data written to: database/roles/ro"));
}

#[test]
fn durations_print_humanized_in_tables() {
    let d = setup();
    let dir = d.dir.path();
    let args = with_warning_role(&d);
    run(dir, &d.root, &args);
    let role = ok(dir, &d.root, &["read", "database/roles/ro"]);
    let default_ttl = role.lines().find(|l| l.starts_with("default_ttl ")).expect("no default_ttl row");
    assert!(default_ttl.ends_with(" 1h"), "{default_ttl}");
    // Statements are shown as written, each with its semicolon.
    let creation = role.lines().find(|l| l.starts_with("creation_statements ")).expect("no creation_statements row");
    assert!(creation.contains("'{{password}}'; GRANT") && creation.ends_with(";]"), "{creation}");
    let me = ok(dir, &d.root, &["token", "create", "-ttl=90m"]);
    let token = me.lines().find_map(|l| l.strip_prefix("token ")).unwrap().trim().to_string();
    let lookup = ok(dir, &token, &["token", "lookup"]);
    let creation = lookup.lines().find(|l| l.starts_with("creation_ttl ")).expect("no creation_ttl row");
    assert!(creation.ends_with(" 1h30m"), "{creation}");
}

#[test]
fn errors_speak_of_what_the_user_typed() {
    let d = setup();
    let dir = d.dir.path();
    let out = lessor(dir, &d.root, &["lease", "renew", "database/creds/ro/gone"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("renewing lease database/creds/ro/gone: lease not found"), "{stderr}");
    assert!(!stderr.contains("sys/leases/renew"), "{stderr}");
    // Revoking it succeeds with nothing to do, as in Vault (a retried revoke).
    let out = lessor(dir, &d.root, &["lease", "revoke", "database/creds/ro/gone"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let again = lessor(dir, "", &["init"]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already initialized"), "{}", text(&again.stderr));
}

#[test]
fn lease_list_takes_a_prefix_without_its_slash_and_policy_read_ends_cleanly() {
    let d = setup();
    let dir = d.dir.path();
    ok(dir, &d.root, &["secrets", "enable", "database"]);
    // No leases: the listing names the prefix as a path, with its slash.
    let out = lessor(dir, &d.root, &["lease", "list", "database/creds/app-readonly"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("database/creds/app-readonly/"), "{}", text(&out.stderr));

    let policy = dir.join("p.hcl");
    std::fs::write(&policy, "path \"database/creds/ro\" {\n  capabilities = [\"read\"]\n}\n").unwrap();
    ok(dir, &d.root, &["policy", "write", "p", policy.to_str().unwrap()]);
    let read = ok(dir, &d.root, &["policy", "read", "p"]);
    assert!(read.ends_with("}\n"), "a stray line after the policy: {read:?}");
}

#[test]
fn audit_verify_json_names_times_as_times() {
    let d = setup();
    let report: Value = serde_json::from_str(&ok(d.dir.path(), "", &["audit", "verify", "--json"])).unwrap();
    let last = report["last_ts"].as_str().unwrap_or_else(|| panic!("no last_ts: {report}"));
    assert!(last.ends_with('Z') && last.contains('T'), "not RFC 3339: {last}");
    assert!(report.get("last_ts_ms").is_none(), "a date under a _ms name: {report}");
}
