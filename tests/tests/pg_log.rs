//! The log in PostgreSQL against a real server (docs/DESIGN.md §11): the schema
//! `lessor log init-postgresql` creates, its version and the append-only wall.

use lessor_engine::log::postgres::{InitOptions, SCHEMA_VERSION, SchemaError, init_schema};
use lessor_tests::pg;

/// Runs `sql` over TCP as `user`; the server's error text and SQLSTATE on failure.
fn execute_as(db: &pg::TestDb, user: &str, password: &str, sql: &str) -> Result<(), (String, String)> {
    let config = db.login_config(user, password);
    let sql = sql.to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let (client, conn) = config.connect(tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        client.batch_execute(&sql).await.map_err(|e| {
            let db = e.as_db_error().expect("a server error");
            (db.message().to_string(), db.code().code().to_string())
        })
    })
}

fn init(url: &str, options: &InitOptions) -> Result<lessor_engine::log::postgres::InitReport, SchemaError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(init_schema(url, options))
}

/// A login role of this test's own (roles are cluster-wide).
fn engine_role(db: &pg::TestDb) -> (String, String) {
    let role = format!("{}_engine", db.dbname());
    let password = "engine-password-1".to_string();
    db.superuser_execute(&format!("CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"));
    (role, password)
}

const INSERT_STREAM: &str = "INSERT INTO lessor_stream (stream, owner, epoch) VALUES ('s1', 'me', 1)";
const INSERT_RECORD: &str = "INSERT INTO lessor_log (stream, lsn, ts_ms, kind, payload, chain, crc, epoch) \
     VALUES ('s1', 1, 1700000000000, 1, '\\x00', decode(repeat('ab', 32), 'hex'), 7, 1)";

#[test]
fn init_creates_the_tables_once_and_the_engine_role_can_only_append() {
    let db = pg::database("pglog_init");
    let (role, password) = engine_role(&db);
    let owner_url = db.admin_url();

    let first = init(&owner_url, &InitOptions::with_engine_role(role.clone())).unwrap();
    assert_eq!((first.version_before, first.version), (0, SCHEMA_VERSION));
    assert_eq!(first.engine_role.as_deref(), Some(role.as_str()));
    let again = init(&owner_url, &InitOptions::with_engine_role(role.clone())).unwrap();
    assert_eq!((again.version_before, again.version), (SCHEMA_VERSION, SCHEMA_VERSION), "a second run is a no-op");
    let version = db.admin_query("SELECT version FROM lessor_schema");
    assert_eq!(version, vec![vec![Some(SCHEMA_VERSION.to_string())]]);

    // The engine's role appends and reads…
    execute_as(&db, &role, &password, INSERT_STREAM).unwrap();
    execute_as(&db, &role, &password, INSERT_RECORD).unwrap();
    execute_as(&db, &role, &password, "SELECT count(*) FROM lessor_log").unwrap();
    execute_as(&db, &role, &password, "UPDATE lessor_stream SET epoch = 2 WHERE stream = 's1'").unwrap();
    // …and rewrites nothing: no privilege to.
    for sql in [
        "UPDATE lessor_log SET ts_ms = 0",
        "DELETE FROM lessor_log",
        "TRUNCATE lessor_log",
        "DROP TABLE lessor_log",
        "ALTER TABLE lessor_log DISABLE TRIGGER lessor_log_append_only",
    ] {
        let (message, code) = execute_as(&db, &role, &password, sql).unwrap_err();
        assert!(code == "42501", "{sql}: {code} {message}");
    }
    // A second row at an LSN, a bad chain: the constraints refuse them.
    let (_, code) = execute_as(&db, &role, &password, INSERT_RECORD).unwrap_err();
    assert_eq!(code, "23505", "the primary key refuses a second writer at an LSN");
    let short_chain = INSERT_RECORD.replace("1, 1700000000000", "2, 1700000000000").replace("repeat('ab', 32)", "'ab'");
    let (_, code) = execute_as(&db, &role, &password, &short_chain).unwrap_err();
    assert_eq!(code, "23514", "a chain is 32 bytes");

    // The owner may not rewrite history either: the trigger is the second wall.
    for sql in ["UPDATE lessor_log SET ts_ms = 0", "DELETE FROM lessor_log", "TRUNCATE lessor_log"] {
        let (message, code) = execute_as(&db, db.admin_username(), db.admin_password(), sql).unwrap_err();
        assert_eq!(code, "42501", "{sql}: {message}");
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    assert_eq!(db.admin_query("SELECT ts_ms FROM lessor_log"), vec![vec![Some("1700000000000".into())]]);
}

#[test]
fn a_schema_newer_than_this_build_or_an_unknown_role_is_refused_and_changes_nothing() {
    let db = pg::database("pglog_refuse");
    let owner_url = db.admin_url();

    // An unknown role: refused, and the whole run rolled back (no tables).
    let err = init(&owner_url, &InitOptions::with_engine_role("no_such_role_here")).unwrap_err();
    assert!(matches!(err, SchemaError::Role { ref role, .. } if role == "no_such_role_here"), "{err}");
    assert!(err.to_string().contains("no such role"), "{err}");
    assert_eq!(db.admin_query("SELECT to_regclass('lessor_log')::text"), vec![vec![None]]);

    // A bad name is refused before connecting.
    let err = init("postgresql://nobody@127.0.0.1:1/x", &InitOptions::with_engine_role("")).unwrap_err();
    assert!(matches!(err, SchemaError::Role { .. }), "{err}");
    // Nothing listening: a connection error that says so.
    let err = init("postgresql://nobody@127.0.0.1:1/x", &InitOptions::default()).unwrap_err();
    assert!(matches!(err, SchemaError::Connect(_)), "{err}");

    init(&owner_url, &InitOptions::default()).unwrap();
    db.admin_execute("UPDATE lessor_schema SET version = 99");
    let err = init(&owner_url, &InitOptions::default()).unwrap_err();
    assert!(matches!(err, SchemaError::Newer { found: 99, known: SCHEMA_VERSION }), "{err}");
    assert_eq!(db.admin_query("SELECT version FROM lessor_schema"), vec![vec![Some("99".into())]]);
}
