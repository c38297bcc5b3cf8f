//! The PostgreSQL plugin against a real server: the article's walkthrough, default
//! revocation in awkward databases, concurrency, TLS, injection.

use lessor_engine::clock::Clock as _;
use lessor_engine::event::RevokeReason;
use lessor_engine::request::{ErrorKind, Operation};
use lessor_tests::lessor::{Lessor, connection_json};
use lessor_tests::pg;
use serde_json::{Value, json};

const ARTICLE_CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"; ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";";
const ARTICLE_REVOCATION: &str =
    "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";";
const FIXED_REVOCATION: &str = "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM \"{{name}}\"; REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";";

/// Issues a credential and returns (lease_id, username, password).
fn issue(l: &Lessor, role: &str) -> (String, String, String) {
    let r = l.read(&format!("database/creds/{role}")).unwrap_or_else(|e| panic!("issue {role}: {e}"));
    let data = r.data.unwrap();
    (r.lease_id, data["username"].as_str().unwrap().to_string(), data["password"].as_str().unwrap().to_string())
}

fn revoke(l: &Lessor, lease_id: &str) -> Result<(), lessor_engine::request::RequestError> {
    l.request(Operation::Update, "sys/leases/revoke", json!({ "lease_id": lease_id })).map(drop)
}

/// Runs `sql` over TCP as `user`; rows as text.
fn query_as(db: &pg::TestDb, user: &str, password: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let config = db.login_config(user, password);
    let sql = sql.to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let msgs = client.simple_query(&sql).await.map_err(|e| e.to_string())?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect())
    })
}

fn article_db(hint: &str) -> pg::TestDb {
    let db = pg::database(hint);
    db.admin_execute("CREATE TABLE public.items (id int); INSERT INTO public.items VALUES (1), (2)");
    db
}

fn default_acl_mentions(db: &pg::TestDb, user: &str) -> bool {
    let n = db.superuser_scalar(&format!("SELECT count(*) FROM pg_default_acl WHERE defaclacl::text LIKE '%{user}%'"));
    n.as_deref() != Some("0")
}

#[test]
fn article_walkthrough_warns_about_default_privileges_and_still_revokes_cleanly() {
    let db = article_db("article");
    let l = Lessor::new();
    let suffix = if db.tls_available() { "?sslmode=require" } else { "" };
    l.connect(&db, "art", suffix);
    // The article's own connection settings: only app-readonly may use it.
    l.write("database/config/pg", json!({ "allowed_roles": "app-readonly" }));
    let written = l.write(
        "database/roles/app-readonly",
        json!({
            "db_name": "pg",
            "creation_statements": ARTICLE_CREATION,
            "revocation_statements": ARTICLE_REVOCATION,
            "default_ttl": "1h",
            "max_ttl": "24h",
        }),
    );
    let warnings = written.warnings.expect("the article's role draws warnings");
    assert!(warnings.iter().any(|w| w.contains("default privileges") && w.contains("REVOKE ALL ON TABLES")));
    assert!(warnings.iter().any(|w| w.contains("GRANT readers TO")), "{warnings:?}");

    let (lease, user, password) = issue(&l, "app-readonly");
    assert!(user.starts_with("art-"), "{user}");
    assert!(db.can_login(&user, &password), "the credential logs in over TCP");
    let rows = query_as(&db, &user, &password, "SELECT count(*) FROM public.items").unwrap();
    assert_eq!(rows[0][0].as_deref(), Some("2"));
    assert!(query_as(&db, &user, &password, "INSERT INTO public.items VALUES (3)").is_err(), "read-only");

    // The article's revocation alone cannot drop the role (its default privileges
    // remain); lessor finishes with its default revocation, so the lease ends.
    revoke(&l, &lease).unwrap();
    assert!(!db.role_exists(&user), "role gone from pg_roles");
    assert!(!default_acl_mentions(&db, &user), "pg_default_acl holds nothing of it");
    assert!(l.engine().with_state(|s| !s.leases.contains_key(&lease)));

    // The role fixed as the warning says revokes on its own statements.
    l.write("database/roles/app-readonly", json!({ "revocation_statements": FIXED_REVOCATION }));
    let (fixed_lease, fixed_user, _) = issue(&l, "app-readonly");
    revoke(&l, &fixed_lease).unwrap();
    assert!(!db.role_exists(&fixed_user));
    assert!(!default_acl_mentions(&db, &fixed_user));

    // I5: neither the root password nor the issued one is anywhere at rest.
    l.engine().snapshot().unwrap();
    for file in std::fs::read_dir(l.dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        for secret in [db.admin_password(), password.as_str()] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "a password at rest");
        }
    }
}

#[test]
fn article_role_with_empty_revocation_uses_the_default_revocation() {
    let db = article_db("article_default");
    let l = Lessor::new();
    l.connect(&db, "artd", "");
    let w = l.write("database/roles/ro", json!({ "db_name": "pg", "creation_statements": ARTICLE_CREATION }));
    let warnings = w.warnings.unwrap_or_default();
    assert!(!warnings.iter().any(|w| w.contains("default privileges")), "default revocation clears them: {warnings:?}");
    let (lease, user, password) = issue(&l, "ro");
    assert_eq!(
        query_as(&db, &user, &password, "SELECT count(*) FROM public.items").unwrap()[0][0].as_deref(),
        Some("2")
    );
    // A revocation request costs two durable appends: the intent (its fsync
    // under way while the DROP runs, its COMMIT waiting for it), then the
    // outcome together with the request's audit record, riding after the reply.
    let batches = || l.engine().log_stats().batches_synced.load(std::sync::atomic::Ordering::SeqCst);
    l.settle(); // the issue's own riding outcome, first
    let before = batches();
    revoke(&l, &lease).unwrap();
    l.settle();
    assert_eq!(batches() - before, 2, "intent, then outcome + audit record in one append");
    assert!(!db.role_exists(&user));
    assert!(!default_acl_mentions(&db, &user));
    assert!(l.engine().with_state(|s| s.leases.is_empty()));
}

#[test]
fn eight_concurrent_issues_with_grants_on_all_tables_all_succeed() {
    let db = article_db("concurrent");
    let l = Lessor::new();
    l.connect(&db, "conc", "");
    l.write("database/roles/ro", json!({ "db_name": "pg", "creation_statements": ARTICLE_CREATION }));
    // Run them truly at once.
    let concurrent: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| l.read("database/creds/ro"))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in concurrent {
        let r = r.expect("every concurrent issue succeeds");
        assert!(db.role_exists(r.data.unwrap()["username"].as_str().unwrap()));
    }
}

#[test]
fn default_revocation_handles_other_schemas_sequences_group_roles_and_no_public_schema() {
    let db = pg::database("default_revoke");
    db.admin_execute(
        "DROP SCHEMA public CASCADE; CREATE SCHEMA app; CREATE TABLE app.t (id serial primary key, v text); \
         CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1'; CREATE ROLE grp_readers_dr NOLOGIN; \
         GRANT SELECT ON app.t TO grp_readers_dr",
    );
    let l = Lessor::new();
    l.connect(&db, "dr", "");
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
        GRANT USAGE ON SCHEMA app TO \"{{name}}\"; GRANT SELECT, INSERT ON app.t TO \"{{name}}\"; \
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA app TO \"{{name}}\"; \
        GRANT EXECUTE ON FUNCTION app.f() TO \"{{name}}\"; GRANT grp_readers_dr TO \"{{name}}\"; \
        ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO \"{{name}}\"; \
        GRANT CONNECT ON DATABASE \"{{dbname}}\" TO \"{{name}}\";";
    let creation = creation.replace("{{dbname}}", db.dbname());
    l.write("database/roles/rw", json!({ "db_name": "pg", "creation_statements": creation }));
    let (lease, user, password) = issue(&l, "rw");
    query_as(&db, &user, &password, "INSERT INTO app.t (v) VALUES ('x'); SELECT app.f()").unwrap();
    revoke(&l, &lease).unwrap();
    assert!(!db.role_exists(&user));
    assert!(!default_acl_mentions(&db, &user));
}

#[test]
fn revoking_a_role_dropped_behind_lessors_back_succeeds() {
    let db = pg::database("dropped");
    let l = Lessor::new();
    l.connect(&db, "gone", "");
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
    l.write(
        "database/roles/r",
        json!({ "db_name": "pg", "creation_statements": creation, "revocation_statements": "DROP ROLE \"{{name}}\";" }),
    );
    let (lease, user, _) = issue(&l, "r");
    db.superuser_execute(&format!("DROP ROLE \"{user}\""));
    revoke(&l, &lease).unwrap();
    l.settle();
    assert!(l.engine().with_state(|s| s.leases.is_empty()));
}

#[test]
fn tls_require_works_against_a_self_signed_server() {
    let db = pg::database("tls");
    assert!(
        db.tls_available(),
        "the test cluster has no TLS: install openssl (apt-get install -y openssl) so the harness can make a certificate"
    );
    let l = Lessor::new();
    l.connect(&db, "tls", "?sslmode=require");
    l.write(
        "database/roles/r",
        json!({ "db_name": "pg", "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';" }),
    );
    let (_, user, _) = issue(&l, "r");
    assert!(db.role_exists(&user));
    // verify-full against the harness's CA works too; a wrong CA fails verification.
    let ca = db.ca_cert_path().unwrap().display().to_string();
    l.connect(&db, "tls", &format!("?sslmode=verify-full&sslrootcert={ca}"));
    let (_, user, _) = issue(&l, "r");
    assert!(db.role_exists(&user));
}

#[test]
fn verify_connection_reports_the_servers_own_error() {
    let db = pg::database("verify");
    let l = Lessor::new();
    l.write("sys/mounts/database", json!({"type": "database"}));
    let err = l
        .request(
            Operation::Update,
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": db.url_template(),
                "username": db.admin_username(),
                "password": "wrong-password",
                "allowed_roles": "*",
            }),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Database);
    assert!(err.to_string().contains("password authentication failed"), "{err}");
    assert!(!err.to_string().contains("wrong-password"), "the password never appears in an error");
    assert!(l.engine().with_state(|s| s.connections.is_empty()), "nothing was written");
}

#[test]
fn allowed_roles_is_enforced_with_vaults_message() {
    let db = pg::database("allowed");
    let l = Lessor::new();
    l.write("sys/mounts/database", json!({"type": "database"}));
    l.write(
        "database/config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": db.url_template(),
            "username": db.admin_username(),
            "password": db.admin_password(),
            "allowed_roles": "app-*",
        }),
    );
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';";
    l.write("database/roles/other", json!({ "db_name": "pg", "creation_statements": creation }));
    let err = l.read("database/creds/other").unwrap_err();
    assert!(err.to_string().contains("\"other\" is not an allowed role"), "{err}");
    let read = l.read("database/config/pg").unwrap().data.unwrap();
    assert!(read.get("password").is_none() && !Value::Object(read).to_string().contains(db.admin_password()));
}

#[test]
fn hostile_names_and_values_cannot_inject_sql() {
    let db = pg::database("inject");
    db.admin_execute("CREATE TABLE public.victim (id int)");
    let l = Lessor::new();
    l.write("sys/mounts/database", json!({"type": "database"}));
    l.write("database/config/pg", connection_json(&db, json!({})));
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';";
    // A role name carrying SQL is refused outright.
    let err = l.request(Operation::Update, "database/roles/x'; DROP TABLE victim; --", json!({"db_name": "pg"}));
    assert!(err.is_err());
    // A token display name carrying SQL is sanitized before it reaches a username.
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": creation }));
    l.write("sys/policy/r", json!({"policy": "path \"database/creds/r\" { capabilities = [\"read\"] }"}));
    let t = l.write("auth/token/create", json!({"policies": ["r"], "display_name": "x'; DROP TABLE victim; --"}));
    let token = t.auth.unwrap().client_token;
    let r = l.request_as(&token, Operation::Read, "database/creds/r", Value::Null).unwrap();
    let user = r.data.unwrap()["username"].as_str().unwrap().to_string();
    assert!(!user.contains('\'') && !user.contains(';') && !user.contains(' '), "{user}");
    assert_eq!(db.superuser_scalar("SELECT count(*) FROM public.victim").as_deref(), Some("0"));
}

fn valid_until_s(db: &pg::TestDb, user: &str) -> i64 {
    db.superuser_scalar(&format!(
        "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles WHERE rolname = '{user}'"
    ))
    .unwrap()
    .parse()
    .unwrap()
}

#[test]
fn renew_moves_valid_until_and_is_capped_at_the_max_ttl() {
    let db = pg::database("renew");
    let l = Lessor::new();
    l.connect(&db, "ren", "");
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
    l.write(
        "database/roles/r",
        json!({ "db_name": "pg", "creation_statements": creation, "default_ttl": "10m", "max_ttl": "3h" }),
    );
    let (lease, user, password) = issue(&l, "r");
    let before = valid_until_s(&db, &user);
    // Like a revocation, a renewal costs two durable appends: the intent (before
    // the ALTER ROLE), then the outcome together with the request's audit record.
    let batches = || l.engine().log_stats().batches_synced.load(std::sync::atomic::Ordering::SeqCst);
    l.settle(); // the issue's own riding outcome, first
    let batches_before = batches();
    let r = l.request(Operation::Update, "sys/leases/renew", json!({"lease_id": lease, "increment": "2h"})).unwrap();
    l.settle();
    assert_eq!(batches() - batches_before, 2, "intent, then outcome + audit record in one append");
    assert_eq!(r.lease_duration, 7200);
    let after = valid_until_s(&db, &user);
    assert!(after - before >= 7200 - 600 - 5, "VALID UNTIL moved by ~1h50m: {before} → {after}");
    let expire_s = l.engine().with_state(|s| s.leases[&lease].expire_time_ms / 1000);
    assert!((after - (expire_s + 5)).abs() <= 1, "VALID UNTIL = lease expiry + 5 s");
    assert!(db.can_login(&user, &password), "renewal keeps the password");
    let capped =
        l.request(Operation::Update, "sys/leases/renew", json!({"lease_id": lease, "increment": "5h"})).unwrap();
    assert!(capped.lease_duration <= 3 * 3600);
    assert!(capped.warnings.unwrap()[0].contains("capped"));
    let err =
        l.request(Operation::Update, "sys/leases/renew", json!({"lease_id": "database/creds/r/nope"})).unwrap_err();
    assert!(err.to_string().contains("lease not found"), "{err}");
}

/// A rotation changes the root password: give it an admin role of its own, as
/// the shared cluster's admin serves every other test.
fn own_admin(db: &pg::TestDb, name: &str) -> (String, String) {
    let password = format!("Pw-{name}-initial-1");
    db.superuser_execute(&format!("CREATE ROLE {name} LOGIN CREATEROLE PASSWORD '{password}'"));
    (name.to_string(), password)
}

fn connect_as(l: &Lessor, db: &pg::TestDb, user: &str, password: &str, prefix: &str) {
    l.write("sys/mounts/database", json!({"type": "database"}));
    l.write(
        "database/config/pg",
        json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": db.url_template(),
            "username": user,
            "password": password,
            "allowed_roles": "*",
            "username_template": format!("{prefix}-{{{{random 16}}}}"),
        }),
    );
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';";
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": creation }));
}

#[test]
fn rotate_root_retires_the_old_password_and_lessor_keeps_working() {
    let db = pg::database("rotate");
    let (admin, old) = own_admin(&db, "rot_admin_a");
    let l = Lessor::new();
    connect_as(&l, &db, &admin, &old, "rot");
    l.write("database/rotate-root/pg", json!({}));
    assert!(!db.can_login(&admin, &old), "the old root password no longer logs in");
    let (_, user, _) = issue(&l, "r");
    assert!(db.role_exists(&user), "lessor still works with the new password");
    assert!(l.engine().with_state(|s| s.rotations.is_empty()));
}

#[test]
fn a_crash_between_the_rotation_sql_and_its_outcome_recovers_to_a_working_connection() {
    let db = pg::database("rotate_crash");
    let (admin, old) = own_admin(&db, "rot_admin_b");
    let mut l = Lessor::new();
    connect_as(&l, &db, &admin, &old, "rotc");
    // The intent is durable, the SQL ran, then the process died.
    let new = "Pw-after-crash-2";
    let context = "connection database/ pg";
    let started = lessor_engine::event::RotateRootStarted {
        mount: "database/".into(),
        name: "pg".into(),
        old_password: l.engine().seal_for_tests(context, old.as_bytes()),
        new_password: l.engine().seal_for_tests(context, new.as_bytes()),
    };
    l.engine().append_unchecked_blocking(vec![started.into()]).unwrap();
    db.superuser_execute(&format!("ALTER ROLE {admin} PASSWORD '{new}'"));
    l.reopen();
    assert!(l.engine().with_state(|s| s.rotations.len()) == 1);
    assert_eq!(l.rt().block_on(l.engine().recover_rotations()).unwrap(), 1);
    assert!(l.engine().with_state(|s| s.rotations.is_empty()));
    let (_, user, _) = issue(&l, "r");
    assert!(db.role_exists(&user), "recovered to the password that works");
}

#[test]
fn scram_sha_256_verifiers_are_computed_client_side_and_log_in() {
    let db = pg::database("scram");
    let l = Lessor::new();
    l.connect(&db, "scr", "");
    l.write("database/config/pg", json!({ "password_authentication": "scram-sha-256" }));
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';";
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": creation }));
    let (_, user, password) = issue(&l, "r");
    assert!(db.can_login(&user, &password));
    let stored = db.superuser_scalar(&format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{user}'")).unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
}

#[test]
fn terminate_sessions_ends_the_roles_open_connections_before_revoking() {
    let db = pg::database("terminate");
    let l = Lessor::new();
    l.connect(&db, "term", "");
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';";
    l.write(
        "database/roles/r",
        json!({ "db_name": "pg", "creation_statements": creation, "terminate_sessions": true }),
    );
    let (lease, user, password) = issue(&l, "r");
    let config = db.login_config(&user, &password);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let client = rt.block_on(async {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client.simple_query("SELECT 1").await.unwrap();
        client
    });
    revoke(&l, &lease).unwrap();
    assert!(!db.role_exists(&user));
    assert!(rt.block_on(client.simple_query("SELECT 1")).is_err(), "the open session was ended");
}

#[test]
fn reset_closes_the_pool_and_the_next_use_reconnects() {
    let db = pg::database("reset");
    let l = Lessor::new();
    l.connect(&db, "rst", "");
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';";
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": creation }));
    issue(&l, "r");
    // Kill lessor's pooled connections behind its back, then reset.
    db.superuser_execute(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}' AND datname = '{}'",
        db.admin_username(),
        db.dbname()
    ));
    l.write("database/reset/pg", json!({}));
    let (_, user, _) = issue(&l, "r");
    assert!(db.role_exists(&user));
    let err = l.request(Operation::Update, "database/reset/nope", json!({})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// The recovery table (docs/DESIGN.md, "Recovery") for lease intents a crash
/// left without their outcome: an issue's COMMIT may have run and its caller
/// may hold the password (the reply goes before the outcome is durable) — its
/// role exists, so it is recorded as committed and lives until its expiry; one
/// whose role does not exist, with no session of the earlier run left, never
/// committed and is forgotten; a renewal's expiry holds (its VALID UNTIL is set
/// again); a revocation runs again.
#[test]
fn recovery_keeps_issue_and_renew_intents_until_their_expiry_and_finishes_revocations() {
    let db = pg::database("recover_issue");
    let mut l = Lessor::new();
    l.connect(&db, "rci", "");
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';";
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": creation }));
    let now_ms = lessor_engine::clock::SystemClock.now_ms();
    let intent = |id: &str, user: &str, expire_time_ms: i64| lessor_engine::event::IssueStarted {
        lease_id: format!("database/creds/r/{id}"),
        mount: "database/".into(),
        role: "r".into(),
        connection: "pg".into(),
        username: user.into(),
        accessor: "x".into(),
        expire_time_ms,
        expire_time_max_ms: expire_time_ms,
        renewable: true,
        revocation_statements: vec![],
        request_id: format!("req-{id}"),
        path: "database/creds/r".into(),
    };
    // A crash after COMMIT, before the outcome: the intent is in the log, the user
    // in the database, and the caller may hold the password — one lease that
    // expires in an hour, one whose expiry has passed.
    let (live, expired) = ("rci-crashed-live", "rci-crashed-expired");
    // And one killed before its COMMIT: no role.
    let never = "rci-never-committed";
    let events = vec![
        intent("live", live, now_ms + 3_600_000).into(),
        intent("expired", expired, now_ms - 60_000).into(),
        intent("never", never, now_ms + 3_600_000).into(),
    ];
    l.engine().append_unchecked_blocking(events).unwrap();
    db.admin_execute(&format!("CREATE ROLE \"{live}\" LOGIN"));
    db.admin_execute(&format!("CREATE ROLE \"{expired}\" LOGIN"));
    // A revocation that was in progress, and a renewal answered but not recorded.
    let (lease, revoking_user, _) = issue(&l, "r");
    let started = lessor_engine::event::RevokeStarted::by_engine(lease.clone(), RevokeReason::Explicit);
    let (renewed, renewed_user, _) = issue(&l, "r");
    let renewed_to_ms = now_ms + 7_200_000;
    let renew = lessor_engine::event::RenewStarted {
        lease_id: renewed.clone(),
        expire_time_ms: renewed_to_ms,
        accessor: "x".into(),
        request_id: "req-renew".into(),
        path: "sys/leases/renew".into(),
    };
    l.engine().append_unchecked_blocking(vec![started.into(), renew.into()]).unwrap();
    l.reopen();
    let recovered = l.rt().block_on(l.engine().recover()).unwrap();
    assert_eq!((recovered.revoked, recovered.revoke_failed), (1, 0), "{recovered:?}");
    // No session of the earlier run is left on the server: the roles that exist
    // were committed (their callers may hold them), the missing one never will be.
    assert_eq!((recovered.issues_committed, recovered.issues_never_committed), (2, 1), "{recovered:?}");
    assert_eq!((recovered.issues_kept, recovered.renewed), (0, 1), "{recovered:?}");
    l.engine().with_state(|s| {
        assert_eq!(s.leases["database/creds/r/live"].status, lessor_engine::state::LeaseStatus::Active);
        assert!(!s.leases.contains_key("database/creds/r/never"), "a never-committed issue is still tracked");
    });
    assert!(!db.role_exists(&revoking_user), "the revocation in progress did not run again");
    assert!(db.role_exists(live) && db.role_exists(expired), "I3: an issue the caller may hold was revoked early");
    let expiry = l.engine().with_state(|s| s.leases[renewed.as_str()].expire_time_ms);
    assert_eq!(expiry, renewed_to_ms, "the answered renewal's expiry did not hold");
    let rows = db.admin_query(&format!(
        "SELECT extract(epoch FROM rolvaliduntil)::bigint::text FROM pg_roles WHERE rolname = '{renewed_user}'"
    ));
    let valid_until_s: i64 = rows[0][0].as_deref().expect("VALID UNTIL set").parse().unwrap();
    assert!(valid_until_s * 1000 >= renewed_to_ms, "VALID UNTIL {valid_until_s} s not moved to {renewed_to_ms} ms");
    // At its expiry, the interrupted issue is revoked (I2), and only that one.
    let report = l.rt().block_on(l.engine().expire_due()).unwrap();
    assert_eq!(report.revoked, 1, "{report:?}");
    assert!(!db.role_exists(expired), "I2: the expired interrupted issue's user is left");
    assert!(db.role_exists(live));
    l.engine().with_state(|s| {
        assert!(s.leases.contains_key("database/creds/r/live"));
        assert!(!s.leases.contains_key("database/creds/r/expired"));
    });
}

/// What recovery's proof rests on: a plugin sees the sessions another run of
/// the same engine left on the server (by `application_name`), and not its own.
#[test]
fn an_earlier_runs_sessions_are_seen_by_application_name() {
    use lessor_engine::plugin::DatabasePlugin;
    use lessor_engine::plugin::postgres::{PostgresPlugin, PostgresSettings};
    let db = pg::database("run_sessions");
    let plugin = |run: &str| {
        PostgresPlugin::new(&PostgresSettings {
            connection_url: db.admin_url(),
            application_name: format!("lessor/abcd1234/{run}"),
            ..PostgresSettings::default()
        })
        .unwrap()
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (earlier, now) = (plugin("run1"), plugin("run2"));
    rt.block_on(async {
        assert_eq!(now.other_sessions("lessor/abcd1234/", "lessor/abcd1234/run2").await.unwrap(), Some(0));
        // The earlier run's pooled connection stays open (idle) after this.
        earlier.verify().await.unwrap();
        assert_eq!(now.other_sessions("lessor/abcd1234/", "lessor/abcd1234/run2").await.unwrap(), Some(1));
        // Another engine's sessions are not this one's.
        assert_eq!(now.other_sessions("lessor/ffff0000/", "lessor/ffff0000/run2").await.unwrap(), Some(0));
    });
    drop(earlier);
}
