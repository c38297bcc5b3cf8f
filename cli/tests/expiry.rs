//! A one-shot command and the expirer, through the real binary against a real
//! PostgreSQL: a lease that expired while nothing ran is revoked by the next
//! command, which does not exit with that revocation half done (the regression:
//! the expirer was aborted at exit, leaving `RevokeStarted` without an outcome
//! for the command after it to retry and warn about).

use lessor_pgtemp as pg;
use serde_json::Value;

mod common;
use common::{ok_output as ok, text};

#[test]
fn a_command_finishes_the_expiry_revocation_it_started_before_exiting() {
    let db = pg::database("expiry_exit");
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    let init = text(&ok(dir, "", &["init"]).stdout);
    let root = init.lines().find_map(|l| l.strip_prefix("Initial Root Token: ")).unwrap().trim().to_string();
    ok(dir, &root, &["secrets", "enable", "database"]);
    ok(
        dir,
        &root,
        &[
            "write",
            "database/config/pg",
            "plugin_name=postgresql-database-plugin",
            "allowed_roles=slow",
            &format!("connection_url={}", db.url_template()),
            &format!("username={}", db.admin_username()),
            &format!("password={}", db.admin_password()),
        ],
    );
    // A revocation that takes a while in the database, so the command's own
    // request is long done while it runs.
    ok(
        dir,
        &root,
        &[
            "write",
            "database/roles/slow",
            "db_name=pg",
            "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "revocation_statements=SELECT pg_sleep(0.5); DROP ROLE IF EXISTS \"{{name}}\";",
            "default_ttl=1s",
            "max_ttl=1h",
        ],
    );
    let issued: Value =
        serde_json::from_str(&text(&ok(dir, &root, &["read", "-format=json", "database/creds/slow"]).stdout)).unwrap();
    let lease = issued["lease_id"].as_str().unwrap().to_string();
    let username = issued["data"]["username"].as_str().unwrap().to_string();
    assert!(db.role_exists(&username));

    // Let the 1 s TTL and the expirer's 1 s tick pass with nothing running (the
    // wheel fires a lease at its expiry rounded up to the tick): setup, not an
    // assertion.
    std::thread::sleep(std::time::Duration::from_millis(2_200));

    // Any command runs the expirer's first pass, which starts the revocation; the
    // command must not exit before its outcome is logged.
    let first = ok(dir, &root, &["secrets", "list"]);
    let kinds: Vec<String> = text(&ok(dir, "", &["audit", "log", "--jsonl", "--lease", &lease]).stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["kind"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.iter().any(|k| k == "RevokeStarted"),
        "{kinds:?}\n{}\n{}",
        text(&first.stderr),
        text(&ok(dir, "", &["audit", "log"]).stdout)
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("RevokeCompleted"),
        "the revocation finished before exit: {kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "RevokeFailed"), "{kinds:?}");
    assert!(!db.role_exists(&username), "{username} was dropped by the command that started revoking it");
    assert_eq!(text(&first.stderr), "", "nothing failed, so nothing to warn of");

    // The next command has nothing to finish and nothing to warn of.
    let next = ok(dir, &root, &["secrets", "list"]);
    assert_eq!(text(&next.stderr), "", "no warning about a failure the log does not record");
}
