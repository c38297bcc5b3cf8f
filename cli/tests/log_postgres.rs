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

/// `<tmp>/<name>.hcl`: `lessor server` on plain HTTP with its log in `stream`
/// of `url`, its directory `<tmp>/<name>`.
fn server_config(tmp: &std::path::Path, name: &str, url: &str, stream: &str) -> std::path::PathBuf {
    let path = tmp.join(format!("{name}.hcl"));
    let text = format!(
        "storage \"postgresql\" {{\n  connection_url = \"{url}\"\n  stream = \"{stream}\"\n  path = \"{}\"\n}}\n\
         listener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}}\n",
        tmp.join(name).display()
    );
    std::fs::write(&path, text).unwrap();
    path
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

#[test]
fn the_global_log_url_and_stream_put_a_data_directory_s_log_in_postgresql() {
    let db = pg::database("cli_pglog_dir");
    assert!(init_postgresql(&db.admin_url(), &[]).status.success());
    let dir = tempfile::tempdir().unwrap();
    let lessor = |token: &str, args: &[&str]| {
        Command::new(LESSOR)
            .args(args)
            .env("LESSOR_DATA_DIR", dir.path())
            .env("LESSOR_TOKEN", token)
            .env("LESSOR_LOG_URL", db.admin_url())
            .env("LESSOR_STREAM", "cli-app")
            .output()
            .expect("run lessor")
    };
    let init = lessor("", &["init"]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let out = text(&init.stdout);
    let root = out.lines().find_map(|l| l.split_whitespace().last().filter(|w| w.starts_with("lsr."))).unwrap();
    let root = root.to_string();
    let written =
        lessor(&root, &["write", "sys/policy/app", r#"policy=path "sys/mounts" { capabilities = ["read"] }"#]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    let read = lessor(&root, &["read", "sys/policy/app"]);
    assert!(read.status.success() && text(&read.stdout).contains("sys/mounts"), "{}", text(&read.stderr));
    let files: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(!files.iter().any(|f| f.ends_with(".log")), "the log is in PostgreSQL: {files:?}");
    let rows = db.admin_query("SELECT count(*) > 5 FROM lessor_log WHERE stream = 'cli-app'");
    assert_eq!(rows, vec![vec![Some("t".into())]]);

    // `audit verify` reads the stream's rows (no lock, no key), and catches a
    // row its owner edited behind the trigger.
    let verified = lessor("", &["audit", "verify"]);
    assert!(verified.status.success(), "{}{}", text(&verified.stdout), text(&verified.stderr));
    assert!(text(&verified.stdout).starts_with("OK:"), "{}", text(&verified.stdout));
    let state = lessor("", &["audit", "log"]);
    assert_eq!(state.status.code(), Some(2));
    assert!(text(&state.stderr).contains("only `lessor audit verify`"), "{}", text(&state.stderr));
    db.admin_execute(
        "ALTER TABLE lessor_log DISABLE TRIGGER lessor_log_append_only;
         UPDATE lessor_log SET payload = payload || '\\x00'::bytea WHERE stream = 'cli-app' AND lsn = 4;
         ALTER TABLE lessor_log ENABLE TRIGGER lessor_log_append_only;",
    );
    let caught = lessor("", &["audit", "verify"]);
    assert_eq!(caught.status.code(), Some(2), "{}{}", text(&caught.stdout), text(&caught.stderr));
    assert!(text(&caught.stderr).contains("LSN 4"), "{}", text(&caught.stderr));

    // Half the pair: refused, naming the other flag.
    let half = Command::new(LESSOR)
        .args(["read", "sys/policy/app", "-d"])
        .arg(dir.path())
        .env("LESSOR_TOKEN", &root)
        .env("LESSOR_LOG_URL", db.admin_url())
        .env_remove("LESSOR_STREAM")
        .output()
        .unwrap();
    assert_eq!(half.status.code(), Some(1));
    assert!(text(&half.stderr).contains("-stream"), "{}", text(&half.stderr));
}

/// `lessor server` with `storage "postgresql"`: initialized through the API,
/// serving, restarted on the same stream (a second server on a held stream
/// stands by: the next test).
#[test]
fn lessor_server_keeps_its_log_in_postgresql() {
    use common::http::once;
    use common::server::ServerProcess;

    let db = pg::database("cli_pglog_server");
    assert!(init_postgresql(&db.admin_url(), &[]).status.success());
    let tmp = tempfile::tempdir().unwrap();
    let config = |name: &str| server_config(tmp.path(), name, &db.admin_url(), "server-app");
    let first = config("a");
    let server = ServerProcess::with_config(&first, &["-access-log=off"]);
    assert_eq!(once(server.addr, "GET", "/v1/sys/health", None, None).status, 501, "not initialized yet");
    let init = once(server.addr, "PUT", "/v1/sys/init", None, Some(r#"{"secret_shares":1,"secret_threshold":1}"#));
    assert_eq!(init.status, 200, "{init:?}");
    let root = init.json()["root_token"].as_str().unwrap().to_string();
    let body = r#"{"policy": "path \"sys/mounts\" { capabilities = [\"read\"] }"}"#;
    assert_eq!(once(server.addr, "PUT", "/v1/sys/policies/acl/app", Some(&root), Some(body)).status, 204);

    server.stop();

    // Restarted: the state is the rows'.
    let server = ServerProcess::with_config(&first, &["-access-log=off"]);
    assert_eq!(once(server.addr, "GET", "/v1/sys/health", None, None).status, 200);
    let read = once(server.addr, "GET", "/v1/sys/policies/acl/app", Some(&root), None);
    assert_eq!(read.status, 200, "{read:?}");
    server.stop();
    let files: Vec<String> = std::fs::read_dir(tmp.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!files.iter().any(|f| f.ends_with(".log")), "{files:?}");
}

/// Two servers on one stream: the second stands by (health 429, requests 503
/// naming the active), and takes over when the active is killed — at once,
/// since the dead engine's database session is gone — with the state and the
/// chain the active left.
#[test]
fn a_standby_server_takes_over_when_the_active_is_killed() {
    use std::time::{Duration, Instant};

    use common::http::once;
    use common::server::ServerProcess;

    let db = pg::database("cli_pglog_standby");
    assert!(init_postgresql(&db.admin_url(), &[]).status.success());
    let tmp = tempfile::tempdir().unwrap();
    let key_file = tmp.path().join("master.key");
    let config = |name: &str| server_config(tmp.path(), name, &db.admin_url(), "ha-app");
    let key_flag = format!("-master-key-file={}", key_file.display());
    let active = ServerProcess::with_config(&config("a"), &["-access-log=off", &key_flag]);
    let init = once(active.addr, "PUT", "/v1/sys/init", None, Some(r#"{"secret_shares":1,"secret_threshold":1}"#));
    assert_eq!(init.status, 200, "{init:?}");
    let root = init.json()["root_token"].as_str().unwrap().to_string();
    let body = r#"{"policy": "path \"sys/mounts\" { capabilities = [\"read\"] }"}"#;
    assert_eq!(once(active.addr, "PUT", "/v1/sys/policies/acl/ha", Some(&root), Some(body)).status, 204);

    // The standby shares the master key (a file both hosts hold), not the directory.
    let standby = ServerProcess::with_config(&config("b"), &["-access-log=off", &key_flag]);
    let health = once(standby.addr, "GET", "/v1/sys/health", None, None);
    assert_eq!(health.status, 429, "{health:?}");
    assert_eq!(health.json()["standby"], true);
    assert_eq!(once(standby.addr, "GET", "/v1/sys/health?standbyok=true", None, None).status, 200);
    let leader = once(standby.addr, "GET", "/v1/sys/leader", None, None).json();
    assert_eq!((leader["ha_enabled"].as_bool(), leader["is_self"].as_bool()), (Some(true), Some(false)), "{leader}");
    let refused = once(standby.addr, "GET", "/v1/sys/policies/acl/ha", Some(&root), None);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.json()["errors"][0].as_str().unwrap().starts_with("standby"), "{refused:?}");

    let killed = Instant::now();
    let (status, _) = active.stop_with(libc::SIGKILL);
    assert!(!status.success());
    let deadline = killed + Duration::from_secs(60);
    while once(standby.addr, "GET", "/v1/sys/health", None, None).status != 200 {
        assert!(Instant::now() < deadline, "the standby never took over");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("take-over after SIGKILL of the active: {:?}", killed.elapsed());
    let read = once(standby.addr, "GET", "/v1/sys/policies/acl/ha", Some(&root), None);
    assert_eq!(read.status, 200, "the state the active left: {read:?}");
    let leader = once(standby.addr, "GET", "/v1/sys/leader", None, None).json();
    assert_eq!(leader["is_self"], true, "{leader}");
    assert_eq!(once(standby.addr, "PUT", "/v1/sys/policies/acl/after", Some(&root), Some(body)).status, 204);
    standby.stop();

    let verified = Command::new(LESSOR)
        .args(["audit", "verify", "-d"])
        .arg(tmp.path().join("b"))
        .env("LESSOR_LOG_URL", db.admin_url())
        .env("LESSOR_STREAM", "ha-app")
        .output()
        .unwrap();
    assert!(verified.status.success(), "one chain across the take-over: {}", text(&verified.stderr));
    let epochs = db.admin_query("SELECT count(DISTINCT epoch) FROM lessor_log WHERE stream = 'ha-app'");
    assert_eq!(epochs, vec![vec![Some("2".into())]]);
}

/// The log's database restarts under an active server: requests fail cleanly
/// while it is down, the server closes its engine and takes its stream again
/// once the database is back, and nothing acknowledged is lost. (A private
/// cluster: restarting the shared one would disturb the other tests.)
#[test]
fn service_resumes_after_the_log_database_restarts() {
    use std::time::{Duration, Instant};

    use common::http::once;
    use common::server::ServerProcess;

    let mut cluster = pg::private_cluster();
    let db = cluster.database("cli_pglog_restart");
    assert!(init_postgresql(&db.admin_url(), &[]).status.success());
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::with_config(
        &server_config(tmp.path(), "a", &db.admin_url(), "restart-app"),
        &["-access-log=off"],
    );
    let init = once(server.addr, "PUT", "/v1/sys/init", None, Some(r#"{"secret_shares":1,"secret_threshold":1}"#));
    let root = init.json()["root_token"].as_str().unwrap().to_string();
    let body = r#"{"policy": "path \"sys/mounts\" { capabilities = [\"read\"] }"}"#;
    assert_eq!(once(server.addr, "PUT", "/v1/sys/policies/acl/before", Some(&root), Some(body)).status, 204);

    cluster.restart();
    // The first write after the restart finds the old connection gone: a clean
    // failure. Then writes succeed again, by themselves.
    let first = once(server.addr, "PUT", "/v1/sys/policies/acl/during", Some(&root), Some(body));
    assert!(first.status == 204 || first.status >= 500, "{first:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = once(server.addr, "PUT", "/v1/sys/policies/acl/after", Some(&root), Some(body));
        if reply.status == 204 {
            break;
        }
        assert!(reply.status >= 500, "a failure while the stream is retaken is a server error: {reply:?}");
        assert!(Instant::now() < deadline, "service never resumed: {reply:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = once(server.addr, "GET", "/v1/sys/policies/acl/before", Some(&root), None);
    assert_eq!(before.status, 200, "acknowledged before the restart: {before:?}");
    let said = server.stop();
    assert!(said.contains("lost the log's stream") && said.contains("took the log's stream"), "{said}");
}
