//! `lessor log init-postgresql` against a real PostgreSQL: the tables of a log
//! kept there, created as their owner, with the engines' role granted only
//! appending (docs/DESIGN.md §11).

mod common;

use std::process::Command;

use common::{LESSOR, text};
use lessor_pgtemp as pg;

fn init_postgresql(url: &str, extra: &[&str]) -> std::process::Output {
    Command::new(LESSOR)
        .args(["log", "init-postgresql"])
        .args(extra)
        .env("LESSOR_LOG_URL", url)
        .output()
        .expect("run lessor log init-postgresql")
}

#[test]
fn init_postgresql_creates_the_tables_grants_the_engine_role_and_is_idempotent() {
    let db = pg::database("cli_pglog");
    let role = format!("{}_engine", db.dbname());
    db.superuser_execute(&format!("CREATE ROLE \"{role}\" LOGIN PASSWORD 'x-1'"));

    let out = init_postgresql(&db.admin_url(), &["-engine-role", &role]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("Created the log's tables (schema version 1)"), "{stdout}");
    assert!(stdout.contains(&format!("Granted {role}: SELECT, INSERT on lessor_log")), "{stdout}");
    let grants = db.admin_query(&format!(
        "SELECT string_agg(privilege_type, ',' ORDER BY privilege_type) FROM information_schema.role_table_grants \
         WHERE grantee = '{role}' AND table_name = 'lessor_log'"
    ));
    assert_eq!(grants, vec![vec![Some("INSERT,SELECT".into())]]);
    // The URL holds the owner's password: it is never echoed.
    assert!(!stdout.contains(db.admin_password()) && !text(&out.stderr).contains(db.admin_password()));

    let again = init_postgresql(&db.admin_url(), &[]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("nothing to do"), "{}", text(&again.stdout));

    // A role that does not exist: exit 1, the flag named, nothing granted.
    let bad = init_postgresql(&db.admin_url(), &["-engine-role", "no_such_role_at_all"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).contains("-engine-role") && text(&bad.stderr).contains("no such role"));
    // A database that is not there: exit 2, the flag named, no password shown.
    let url = db.admin_url().replace(&format!("/{}", db.dbname()), "/no_such_database");
    let gone = init_postgresql(&url, &[]);
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone.stderr));
    assert!(text(&gone.stderr).contains("-log-url"), "{}", text(&gone.stderr));
    assert!(!text(&gone.stderr).contains(db.admin_password()));
}
