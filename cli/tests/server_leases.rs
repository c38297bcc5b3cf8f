//! `lessor server -config=FILE` issuing real PostgreSQL credentials: SIGTERM in
//! the middle of a stream of issues loses no acknowledged lease and leaves no
//! orphan role; the access log names every request and never a secret.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::config::{Setup, mode};
use common::http::{Conn, once};
use common::server::ServerProcess;
use lessor_pgtemp as pg;
use serde_json::{Value, json};

const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
const REVOCATION: &str = "DROP ROLE IF EXISTS \"{{name}}\";";

/// `PUT sys/init`, then the database mount, a connection and `role` written
/// through the API as any client would. Returns the root token.
fn set_up(server: &ServerProcess, db: &pg::TestDb, role: &str) -> String {
    let reply = once(server.addr, "PUT", "/v1/sys/init", None, Some(r#"{"secret_shares":1,"secret_threshold":1}"#));
    assert_eq!(reply.status, 200, "{reply:?}");
    let root = reply.json()["root_token"].as_str().unwrap().to_string();
    let steps = [
        ("/v1/sys/mounts/database", json!({"type": "database"})),
        (
            "/v1/database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "allowed_roles": role,
                "connection_url": db.url_template(),
                "username": db.admin_username(),
                "password": db.admin_password(),
            }),
        ),
        (
            &format!("/v1/database/roles/{role}"),
            json!({
                "db_name": "pg",
                "creation_statements": CREATION,
                "revocation_statements": REVOCATION,
                "default_ttl": "1h",
                "max_ttl": "24h",
            }),
        ),
    ];
    for (path, body) in steps {
        let reply = once(server.addr, "POST", path, Some(&root), Some(&body.to_string()));
        assert!(reply.status == 200 || reply.status == 204, "{path}: {reply:?}");
    }
    root
}

/// The leases the data directory's log holds now (`lessor audit state`), by id.
fn leases_in_state(dir: &std::path::Path) -> HashMap<String, Value> {
    let at = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 60).to_string();
    let out = common::ok(dir, "", &["audit", "state", "--at", &at, "--json"]);
    let state: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("audit state --json ({e}): {out}"));
    state["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|l| (l["lease_id"].as_str().unwrap().to_string(), l.clone()))
        .collect()
}

#[test]
fn sigterm_during_a_stream_of_issues_loses_no_acknowledged_lease_and_leaves_no_orphan() {
    let db = pg::database("server_sigterm");
    let setup = Setup::plain("");
    let (server, stderr) = setup.start_watched(&["-access-log=off"]);
    let role = "sigterm";
    let root = set_up(&server, &db, role);

    // Four clients issue over keep-alive until the server goes away.
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (acknowledged, count, stopped, root) =
                (acknowledged.clone(), count.clone(), stopped.clone(), root.clone());
            let addr = server.addr;
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                let mut other = 0;
                let deadline = Instant::now() + Duration::from_secs(120);
                while Instant::now() < deadline {
                    let reply = match conn.try_send("GET", &format!("/v1/database/creds/{role}"), Some(&root), None) {
                        Ok(reply) => reply,
                        // The server closed the connection (draining, or gone).
                        Err(_) => match std::net::TcpStream::connect(addr) {
                            Ok(_) if !stopped.load(Ordering::SeqCst) => {
                                conn = Conn::open(addr);
                                continue;
                            }
                            _ => return other,
                        },
                    };
                    if reply.status == 200 {
                        let body = reply.json();
                        let lease = body["lease_id"].as_str().expect("lease_id").to_string();
                        let user = body["data"]["username"].as_str().expect("username").to_string();
                        acknowledged.lock().unwrap().push((lease, user));
                        count.fetch_add(1, Ordering::SeqCst);
                    } else {
                        // A refusal while draining is allowed; it acknowledges nothing.
                        assert!(reply.status >= 500, "{reply:?}");
                        other += 1;
                    }
                }
                panic!("the server never went away");
            })
        })
        .collect();
    // A rude client meanwhile: asks for a credential and hangs up at once. Its
    // requests are finished all the same (a task of their own), never cut
    // half-done between the database and the log.
    let rude = {
        let (addr, root) = (server.addr, root.clone());
        std::thread::spawn(move || {
            for _ in 0..20 {
                let mut conn = Conn::open(addr);
                let request = Conn::request_bytes("GET", &format!("/v1/database/creds/{role}"), Some(&root), None);
                let _ = std::io::Write::write_all(&mut conn.stream, &request);
                drop(conn);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::SeqCst) < 40 {
        assert!(Instant::now() < deadline, "fewer than 40 issues in 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    rude.join().expect("the rude client");
    stopped.store(true, Ordering::SeqCst);
    let (status, _) = server.stop_with(libc::SIGTERM);
    for client in clients {
        client.join().expect("a client thread");
    }
    assert!(status.success(), "lessor server exited with {status} on SIGTERM");
    let said = stderr.drain(true);
    assert!(said.contains("lessor server stopped"), "{said}");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 40);

    // Every acknowledged lease is in the state, active, with its username.
    let state = leases_in_state(&setup.data_dir);
    for (lease, user) in &acknowledged {
        let known = state.get(lease).unwrap_or_else(|| panic!("acknowledged lease {lease} is not in the state"));
        assert_eq!(known["username"], user.as_str(), "{known}");
        assert_eq!(known["status"], "active", "{known}");
    }
    // Every role the server created belongs to a lease the state knows, active
    // (none left half-issued by a client that hung up or by the shutdown).
    let users: HashSet<&str> =
        state.values().filter(|l| l["status"] == "active").filter_map(|l| l["username"].as_str()).collect();
    let roles: Vec<String> = db.roles_with_prefix("v-").into_iter().filter(|r| r.contains(role)).collect();
    assert!(roles.len() >= acknowledged.len(), "{} roles for {} leases", roles.len(), acknowledged.len());
    for r in &roles {
        assert!(users.contains(r.as_str()), "role {r} belongs to no lease the state knows (an orphan)");
    }

    // Restarted on the same directory, the server lists them all.
    let server = setup.start();
    let listed = once(server.addr, "LIST", &format!("/v1/sys/leases/lookup/database/creds/{role}/"), Some(&root), None);
    assert_eq!(listed.status, 200, "{listed:?}");
    let keys: HashSet<String> =
        listed.json()["data"]["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    for (lease, _) in &acknowledged {
        let id = lease.rsplit('/').next().unwrap();
        assert!(keys.contains(id), "{lease} not listed after the restart");
    }
    server.stop();
}

#[test]
fn the_access_log_has_a_json_line_per_request_and_no_secret() {
    let db = pg::database("server_access_log");
    let setup = Setup::plain("");
    let log = setup.path("access.log");
    let flag = format!("-access-log={}", log.display());
    let server = ServerProcess::with_config(&setup.config, &[&flag]);
    let role = "logged";
    let root = set_up(&server, &db, role);
    let issued = once(server.addr, "GET", &format!("/v1/database/creds/{role}"), Some(&root), None);
    assert_eq!(issued.status, 200, "{issued:?}");
    let password = issued.json()["data"]["password"].as_str().unwrap().to_string();
    let denied = once(server.addr, "GET", "/v1/sys/mounts", Some("not-a-token"), None);
    assert_eq!(denied.status, 403, "{denied:?}");
    // A token the engine knows, refused a path its policy does not grant.
    let created = once(server.addr, "POST", "/v1/auth/token/create", Some(&root), Some(r#"{"policies":["default"]}"#));
    assert_eq!(created.status, 200, "{created:?}");
    let app_token = created.json()["auth"]["client_token"].as_str().unwrap().to_string();
    let app_accessor = created.json()["auth"]["accessor"].as_str().unwrap().to_string();
    let forbidden = once(server.addr, "GET", "/v1/sys/policies/acl/default", Some(&app_token), None);
    assert_eq!(forbidden.status, 403, "{forbidden:?}");
    assert_eq!(once(server.addr, "GET", "/v1/sys/health", None, None).status, 200);
    server.stop();

    assert_eq!(mode(&log), 0o600, "the access log is created private");
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [root.as_str(), password.as_str(), db.admin_password(), "not-a-token", app_token.as_str()] {
        assert!(!text.contains(secret), "the access log holds a secret: {secret}");
    }
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    // init, mount, connection, role, issue, denied, token create, forbidden, health.
    assert_eq!(lines.len(), 9, "{text}");
    for line in &lines {
        for field in ["request_id", "accessor", "path", "status", "duration", "remote", "method", "time"] {
            assert!(line.get(field).is_some(), "no {field}: {line}");
        }
        assert!(line["duration"].as_f64().is_some_and(|d| d >= 0.0), "{line}");
    }
    let issue = lines.iter().find(|l| l["path"] == format!("database/creds/{role}")).expect("the issue's line");
    assert_eq!(issue["status"], 200);
    assert!(issue["request_id"].as_str().is_some_and(|id| id.len() == 36), "{issue}");
    assert!(issue["accessor"].as_str().is_some_and(|a| !a.is_empty()), "{issue}");
    let refused = lines.iter().find(|l| l["path"] == "sys/mounts").expect("the denial's line");
    assert_eq!(refused["status"], 403);
    assert!(refused["accessor"].is_null(), "an unknown token has no accessor: {refused}");
    let forbidden = lines.iter().find(|l| l["path"] == "sys/policies/acl/default").expect("the forbidden line");
    assert_eq!(forbidden["status"], 403);
    assert_eq!(forbidden["accessor"], app_accessor.as_str(), "a known token is named by its accessor: {forbidden}");
    // Every request the engine answered, refusals included, names its audit
    // record: the same request id is in the log, with the same outcome.
    let audit = std::process::Command::new(common::LESSOR)
        .args(["audit", "log", "--jsonl", "-d"])
        .arg(&setup.data_dir)
        .output()
        .unwrap();
    assert!(audit.status.success(), "{audit:?}");
    let records: Vec<Value> =
        String::from_utf8(audit.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let record_of = |line: &Value| {
        let id = line["request_id"].as_str().unwrap_or_else(|| panic!("no request id: {line}"));
        assert_eq!(id.len(), 36, "{line}");
        records
            .iter()
            .find(|r| r["kind"] == "RequestRecorded" && r["event"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no audit record for {line}"))
            .clone()
    };
    assert_eq!(record_of(issue)["event"]["outcome"], "ok");
    assert_eq!(record_of(refused)["event"]["outcome"], "denied");
    let record = record_of(forbidden);
    assert_eq!(record["event"]["outcome"], "denied");
    assert_eq!(record["event"]["accessor"], app_accessor.as_str());
    assert_eq!(lines.last().unwrap()["path"], "sys/health");

    // A symbolic link where the log would go: refused, not followed.
    let target = setup.path("elsewhere");
    std::fs::write(&target, "").unwrap();
    let link = setup.path("link.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut command = std::process::Command::new(common::LESSOR);
    command
        .arg("server")
        .arg(format!("-config={}", setup.config.display()))
        .arg(format!("-access-log={}", link.display()));
    let out = common::config::refused(command);
    assert!(out.contains("-access-log"), "{out}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "", "written through the link");
}
