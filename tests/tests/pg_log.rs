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

mod streams {
    use std::time::{Duration, Instant};

    use lessor_engine::log::postgres::connect::connect;
    use lessor_engine::log::postgres::stream::{
        LEASE_MS_MIN, RecordRow, StreamError, append, claim, owner, read_after, release, renew,
    };
    use lessor_engine::log::postgres::{InitOptions, init_schema};
    use lessor_tests::pg;

    const LEASE: Duration = Duration::from_secs(15);

    fn rows(lsns: std::ops::RangeInclusive<u64>, tag: u8) -> Vec<RecordRow> {
        lsns.map(|lsn| RecordRow {
            lsn,
            ts_ms: 1_700_000_000_000 + lsn as i64,
            kind: 90,
            payload: vec![tag, lsn as u8],
            chain: [tag; 32],
            crc: lsn as u32 * 7,
        })
        .collect()
    }

    /// Waits (polling the database, never asserting on time) until the owner's
    /// lease has lapsed on the database's clock.
    async fn until_lapsed(client: &tokio_postgres::Client, stream: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while owner(client, stream).await.unwrap().unwrap().live {
            assert!(Instant::now() < deadline, "the lease never lapsed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[test]
    fn a_stream_has_one_writer_and_a_take_over_fences_the_old_one() {
        let db = pg::database("pglog_fence");
        let role = format!("{}_engine", db.dbname());
        db.superuser_execute(&format!("CREATE ROLE \"{role}\" LOGIN PASSWORD 'e-1'"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            init_schema(&db.admin_url(), &InitOptions::with_engine_role(role.clone())).await.unwrap();
            // Both engines log in as the engine role: its grants are enough.
            let url = db.url_for(&role, "e-1");
            // Each engine's session carries its owner id, as an engine's does.
            let mut a = connect(&url, "lessor/engine-a").await.unwrap();
            let mut b = connect(&url, "lessor/engine-b").await.unwrap();

            let epoch_a = claim(&a, "s1", "engine-a", "https://a:8200", LEASE).await.unwrap();
            assert_eq!(epoch_a, 1);
            let held = claim(&b, "s1", "engine-b", "https://b:8200", LEASE).await.unwrap_err();
            match &held {
                StreamError::Held { active, .. } => {
                    assert_eq!((active.owner.as_str(), active.epoch, active.live), ("engine-a", 1, true));
                }
                other => panic!("{other:?}"),
            }
            assert!(held.to_string().starts_with("standby") && held.to_string().contains("https://a:8200"), "{held}");

            append(&mut a, "s1", "engine-a", epoch_a, &rows(1..=3, 0xa1)).await.unwrap();
            assert_eq!(read_after(&b, "s1", 0, 100).await.unwrap(), rows(1..=3, 0xa1), "rows as written");
            assert_eq!(read_after(&b, "s1", 2, 100).await.unwrap(), rows(3..=3, 0xa1));
            // One record per LSN, and no gaps.
            let taken = append(&mut a, "s1", "engine-a", epoch_a, &rows(3..=4, 0xa1)).await.unwrap_err();
            assert!(matches!(taken, StreamError::LsnTaken { lsn: 3, .. }), "{taken:?}");
            let gap = append(&mut a, "s1", "engine-a", epoch_a, &rows(5..=6, 0xa1)).await.unwrap_err();
            assert!(matches!(gap, StreamError::Gap { first_lsn: 5, last_lsn: 3, .. }), "{gap:?}");
            let bad = append(&mut a, "s1", "engine-a", epoch_a, &[rows(4..=4, 1), rows(6..=6, 1)].concat()).await;
            assert!(matches!(bad.unwrap_err(), StreamError::Invalid { .. }), "LSNs must be consecutive");
            renew(&a, "s1", "engine-a", epoch_a, LEASE).await.unwrap();

            // A's lease runs out (shortened, then waited out on the database clock).
            renew(&a, "s1", "engine-a", epoch_a, Duration::from_millis(LEASE_MS_MIN)).await.unwrap();
            until_lapsed(&b, "s1").await;
            let lapsed = renew(&a, "s1", "engine-a", epoch_a, LEASE).await.unwrap_err();
            assert!(matches!(lapsed, StreamError::Fenced { epoch: 1, .. }), "a lapsed lease is never revived");
            let lapsed = append(&mut a, "s1", "engine-a", epoch_a, &rows(4..=4, 0xa1)).await.unwrap_err();
            assert!(matches!(lapsed, StreamError::Fenced { .. }), "{lapsed:?}");

            // B takes over; A's appends insert nothing, whatever LSN they name.
            let epoch_b = claim(&b, "s1", "engine-b", "https://b:8200", LEASE).await.unwrap();
            assert_eq!(epoch_b, 2);
            for lsns in [4..=4, 4..=5] {
                let fenced = append(&mut a, "s1", "engine-a", epoch_a, &rows(lsns, 0xa1)).await.unwrap_err();
                match &fenced {
                    StreamError::Fenced { epoch: 1, now, .. } => {
                        assert_eq!((now.owner.as_str(), now.epoch), ("engine-b", 2))
                    }
                    other => panic!("{other:?}"),
                }
                assert!(fenced.to_string().contains("https://b:8200"), "{fenced}");
            }
            append(&mut b, "s1", "engine-b", epoch_b, &rows(4..=5, 0xb2)).await.unwrap();
            let all = read_after(&a, "s1", 0, 100).await.unwrap();
            assert_eq!(all, [rows(1..=3, 0xa1), rows(4..=5, 0xb2)].concat(), "one linear stream");

            // Released: claimed again at once, by anyone, with the next epoch.
            release(&b, "s1", "engine-b", epoch_b).await.unwrap();
            assert!(!owner(&a, "s1").await.unwrap().unwrap().live);
            assert_eq!(claim(&a, "s1", "engine-a", "", LEASE).await.unwrap(), 3);
            let fenced = append(&mut b, "s1", "engine-b", epoch_b, &rows(6..=6, 0xb2)).await.unwrap_err();
            assert!(matches!(fenced, StreamError::Fenced { .. }), "{fenced:?}");

            // A bad stream name or lease is refused before anything is written.
            let bad = claim(&a, "no spaces", "engine-a", "", LEASE).await.unwrap_err();
            assert!(matches!(bad, StreamError::Invalid { .. }), "{bad:?}");
            let bad = claim(&a, "s2", "engine-a", "", Duration::from_millis(1)).await.unwrap_err();
            assert!(matches!(bad, StreamError::Invalid { .. }), "{bad:?}");
            assert!(owner(&a, "s2").await.unwrap().is_none());
        });
    }

    /// The fence's lock: a take-over waits for an append in flight (here one
    /// held open by hand at the point where the real append holds its lock),
    /// and reads the stream's end only after it.
    #[test]
    fn a_take_over_waits_for_the_append_in_flight() {
        let db = pg::database("pglog_inflight");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            init_schema(&db.admin_url(), &InitOptions::default()).await.unwrap();
            let url = db.admin_url();
            let mut a = connect(&url, "lessor/engine-a").await.unwrap();
            let b = connect(&url, "lessor/inflight-b").await.unwrap();
            let watch = connect(&url, "lessor/inflight-watch").await.unwrap();
            let epoch_a = claim(&a, "s1", "engine-a", "", LEASE).await.unwrap();
            renew(&a, "s1", "engine-a", epoch_a, Duration::from_millis(LEASE_MS_MIN)).await.unwrap();

            // A's append, in flight: the stream row held FOR SHARE, as the
            // fenced INSERT holds it until its commit.
            let tx = a.transaction().await.unwrap();
            tx.execute("SELECT 1 FROM lessor_stream WHERE stream = 's1' FOR SHARE", &[]).await.unwrap();
            until_lapsed(&watch, "s1").await;

            let take_over = tokio::spawn(async move {
                let epoch = claim(&b, "s1", "engine-b", "", LEASE).await;
                (b, epoch)
            });
            // B's claim is waiting on the row lock, not done.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let waiting: i64 = watch
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity
                          WHERE application_name = 'lessor/inflight-b' AND wait_event_type = 'Lock'",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if waiting == 1 {
                    break;
                }
                assert!(!take_over.is_finished(), "the take-over did not wait for the append in flight");
                assert!(Instant::now() < deadline, "the take-over never reached the lock");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tx.execute(
                "INSERT INTO lessor_log (stream, lsn, ts_ms, kind, payload, chain, crc, epoch)
                 VALUES ('s1', 1, 1, 90, '\\x01', decode(repeat('a1', 32), 'hex'), 7, $1)",
                &[&epoch_a],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();

            let (mut b, epoch_b) = take_over.await.unwrap();
            assert_eq!(epoch_b.unwrap(), 2, "the take-over went ahead once the append committed");
            let seen = read_after(&b, "s1", 0, 10).await.unwrap();
            assert_eq!(seen.iter().map(|r| r.lsn).collect::<Vec<_>>(), [1], "the new owner sees the committed append");
            append(&mut b, "s1", "engine-b", 2, &rows(2..=2, 0xb2)).await.unwrap();
            let late = append(&mut a, "s1", "engine-a", epoch_a, &rows(3..=3, 0xa1)).await.unwrap_err();
            assert!(matches!(late, StreamError::Fenced { .. }), "{late:?}");
        });
    }
}

/// The engine itself over the log in PostgreSQL: the same machinery, the rows
/// its only storage.
mod engine_over_postgresql {
    use std::sync::Arc;

    use lessor_engine::auth::keys::MasterKey;
    use lessor_engine::log::postgres::storage::{Ownership, PG_SEGMENT_BYTES_MAX, PgOpenError, PgStorage};
    use lessor_engine::log::postgres::stream::StreamError;
    use lessor_engine::log::postgres::{InitOptions, init_schema};
    use lessor_engine::log::read_entries;
    use lessor_engine::log::storage::MemStorage;
    use lessor_engine::request::{ErrorKind, Operation};
    use lessor_engine::{Engine, EngineOptions};
    use lessor_tests::pg;
    use serde_json::{Value, json};

    fn options(key: &MasterKey) -> EngineOptions {
        let mut options =
            EngineOptions { master_key: Some(key.clone()), snapshot_every_events: 0, ..Default::default() };
        options.log.segment_bytes_max = PG_SEGMENT_BYTES_MAX;
        options
    }

    fn owned(url: &str, owner: &str) -> Result<PgStorage, PgOpenError> {
        PgStorage::open(url, "app-1", Some(Ownership::new(owner)), Arc::new(MemStorage::default()))
    }

    #[test]
    fn an_engine_appends_reopens_and_verifies_from_rows_and_an_edited_row_is_caught() {
        let db = pg::database("pglog_engine");
        let role = format!("{}_engine", db.dbname());
        db.superuser_execute(&format!("CREATE ROLE \"{role}\" LOGIN PASSWORD 'e-1'"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(init_schema(&db.admin_url(), &InitOptions::with_engine_role(role.clone()))).unwrap();
        let url = db.url_for(&role, "e-1");
        let key = MasterKey::generate().unwrap();

        let storage = Arc::new(owned(&url, "host-a/1").unwrap());
        let (engine, root) = Engine::init_with_storage(storage, options(&key)).unwrap();
        let root = root.expose().to_string();
        let policy = r#"path "sys/mounts" { capabilities = ["read"] }"#;
        rt.block_on(engine.request(&root, Operation::Update, "sys/policy/reader", json!({ "policy": policy })))
            .unwrap();
        let created = rt
            .block_on(engine.request(&root, Operation::Update, "auth/token/create", json!({"policies": ["reader"]})))
            .unwrap();
        let token = created.auth.unwrap().client_token;
        // While it runs, the stream is its: a second engine is a standby.
        match owned(&url, "host-b/1").unwrap_err() {
            PgOpenError::Stream(StreamError::Held { active, .. }) => assert_eq!(active.owner, "host-a/1"),
            other => panic!("{other:?}"),
        }
        let rows_before_close: i64 =
            db.admin_query("SELECT count(*) FROM lessor_log")[0][0].as_ref().unwrap().parse().unwrap();
        assert!(rows_before_close >= 6, "init, the policy, the token and their records: {rows_before_close}");
        engine.close();

        // Reopened from the rows alone (another owner: the stream was released).
        let storage = Arc::new(owned(&url, "host-b/1").unwrap());
        let engine = Engine::open_with_storage(storage, options(&key)).unwrap();
        let me = rt.block_on(engine.request(&token, Operation::Read, "auth/token/lookup-self", Value::Null)).unwrap();
        assert_eq!(me.data.unwrap()["policies"], json!(["default", "reader"]));
        rt.block_on(engine.request(&token, Operation::Read, "sys/mounts", Value::Null)).unwrap();
        let denied = rt.block_on(engine.request(&token, Operation::Read, "sys/policy/reader", Value::Null));
        assert_eq!(denied.unwrap_err().kind(), ErrorKind::PermissionDenied);
        engine.close();
        let epochs = db.admin_query("SELECT DISTINCT epoch FROM lessor_log ORDER BY epoch");
        assert_eq!(epochs, vec![vec![Some("1".into())], vec![Some("2".into())]], "each run appended at its epoch");

        // Read back, fully verified, by a reader without the stream.
        let reader = PgStorage::open(&url, "app-1", None, Arc::new(MemStorage::default())).unwrap();
        let (entries, summary) = read_entries(&reader).unwrap();
        assert_eq!(entries.len() as u64, summary.records);
        assert_eq!(summary.next_lsn - 1, entries.last().unwrap().lsn);
        drop(reader);

        // The owner edits a row behind the trigger's back: the crc catches it.
        db.admin_execute(
            "ALTER TABLE lessor_log DISABLE TRIGGER lessor_log_append_only;
             UPDATE lessor_log SET ts_ms = ts_ms + 1 WHERE lsn = 3;
             ALTER TABLE lessor_log ENABLE TRIGGER lessor_log_append_only;",
        );
        let reader = PgStorage::open(&url, "app-1", None, Arc::new(MemStorage::default())).unwrap();
        let err = read_entries(&reader).unwrap_err();
        assert!(err.to_string().contains("LSN 3") && err.to_string().contains("corrupt"), "{err}");
    }

    /// Split brain, in one process: A's lease lapses while it still runs (the
    /// fault, injected as the owner: its `valid_until` set in the past, as if
    /// A had been paused past it), B takes over, and A acknowledges nothing
    /// more; the stream stays one verified chain.
    #[test]
    fn an_engine_whose_lease_lapsed_acknowledges_nothing_after_the_take_over() {
        let db = pg::database("pglog_split");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(init_schema(&db.admin_url(), &InitOptions::default())).unwrap();
        let url = db.admin_url();
        let key = MasterKey::generate().unwrap();
        let (a, root) = Engine::init_with_storage(Arc::new(owned(&url, "host-a/1").unwrap()), options(&key)).unwrap();
        let root = root.expose().to_string();
        let write = |engine: &Engine, name: &str| {
            let policy = json!({ "policy": r#"path "sys/mounts" { capabilities = ["read"] }"# });
            rt.block_on(engine.request(&root, Operation::Update, &format!("sys/policy/{name}"), policy))
        };
        write(&a, "before").unwrap();

        // The fault: A's lease is over on the database's clock.
        db.admin_execute("UPDATE lessor_stream SET valid_until = now() - interval '1 second'");
        let refused = write(&a, "after-lapse").unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Io, "{refused}");
        assert!(refused.to_string().contains("fenced"), "{refused}");

        let b = Engine::open_with_storage(Arc::new(owned(&url, "host-b/1").unwrap()), options(&key)).unwrap();
        write(&b, "by-b").unwrap();
        // A, still running, is fenced for good: nothing it is asked is acknowledged.
        for name in ["late-1", "late-2"] {
            let late = write(&a, name).unwrap_err();
            assert!(late.to_string().contains("fenced"), "{late}");
        }
        let policies = rt.block_on(b.request(&root, Operation::List, "sys/policy", Value::Null)).unwrap();
        let names = policies.data.unwrap()["keys"].clone();
        assert_eq!(names, json!(["before", "by-b", "default", "root"]), "only what was acknowledged");
        a.close();
        b.close();

        let reader = PgStorage::open(&url, "app-1", None, Arc::new(MemStorage::default())).unwrap();
        let (entries, summary) = read_entries(&reader).unwrap();
        assert_eq!(summary.next_lsn - 1, entries.len() as u64, "one linear chain, LSN 1 on");
        let epochs = db.admin_query("SELECT DISTINCT epoch FROM lessor_log ORDER BY epoch");
        assert_eq!(epochs, vec![vec![Some("1".into())], vec![Some("2".into())]]);
    }

    /// `EngineOptions::log_store`: the data directory keeps the key, the head
    /// and the snapshot cache; the log is the stream's rows.
    #[test]
    fn a_data_directory_with_its_log_in_postgresql() {
        use lessor_engine::{InitError, LogStore, OpenError, PgLogOptions};

        let db = pg::database("pglog_dir");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(init_schema(&db.admin_url(), &InitOptions::default())).unwrap();
        let store = LogStore::PostgreSql(PgLogOptions::new(db.admin_url(), "svc.dir-1"));
        let opts = || EngineOptions { log_store: store.clone(), snapshot_every_events: 3, ..Default::default() };
        let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());

        let (engine, root) = Engine::init(dir.path(), opts()).unwrap();
        let root = root.expose().to_string();
        for i in 0..4 {
            let body = json!({ "policy": r#"path "sys/mounts" { capabilities = ["read"] }"# });
            rt.block_on(engine.request(&root, Operation::Update, &format!("sys/policy/p{i}"), body)).unwrap();
        }
        // A second directory on the same stream: a standby, refused while this one runs.
        match Engine::open(other.path(), EngineOptions { create_if_missing: true, ..opts() }).unwrap_err() {
            OpenError::Postgres(e) => assert!(e.to_string().starts_with("standby"), "{e}"),
            other => panic!("{other:?}"),
        }
        engine.snapshot().unwrap();
        engine.close();
        let mut files: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        assert!(files.iter().any(|f| f == "master.key") && files.iter().any(|f| f == "HEAD"), "{files:?}");
        assert!(files.iter().any(|f| f.starts_with("snap-")), "snapshots are cached locally: {files:?}");
        assert!(!files.iter().any(|f| f.ends_with(".log")), "no segment file: the log is in PostgreSQL: {files:?}");
        // init again on the same stream: refused, nothing changed.
        let again = Engine::init(other.path(), opts()).unwrap_err();
        assert!(matches!(again, InitError::StorageInitialized { .. }), "{again:?}");

        let engine = Engine::open(dir.path(), opts()).unwrap();
        let listed = rt.block_on(engine.request(&root, Operation::List, "sys/policy", Value::Null)).unwrap();
        assert_eq!(listed.data.unwrap()["keys"], json!(["default", "p0", "p1", "p2", "p3", "root"]));
        engine.close();
        // The URL's password never shows in the options' debug output.
        assert!(!format!("{:?}", opts()).contains(db.admin_password()));
        let bad = EngineOptions {
            log_store: LogStore::PostgreSql({
                let mut pg = PgLogOptions::new(db.admin_url(), "svc.dir-1");
                pg.renew_every = pg.lease;
                pg
            }),
            ..Default::default()
        };
        let err = Engine::open(dir.path(), bad).unwrap_err();
        assert!(err.to_string().contains("renew_every"), "{err}");
        let mut never = opts();
        never.log.fsync = lessor_engine::log::FsyncPolicy::Never;
        let err = Engine::open(dir.path(), never).unwrap_err();
        assert!(err.to_string().contains("log.fsync"), "records only in memory are never acknowledged: {err}");
    }
}

mod session_gone {
    use std::time::{Duration, Instant};

    use lessor_engine::log::postgres::connect::connect;
    use lessor_engine::log::postgres::stream::{StreamError, claim};
    use lessor_engine::log::postgres::{InitOptions, init_schema};
    use lessor_tests::pg;

    /// An owner whose database session is gone (the process died) is taken
    /// over without waiting out its lease; one whose session lives is not.
    #[test]
    fn a_dead_owner_s_stream_is_taken_over_before_its_lease_ends() {
        let db = pg::database("pglog_gone");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            init_schema(&db.admin_url(), &InitOptions::default()).await.unwrap();
            let url = db.admin_url();
            let lease = Duration::from_secs(600);
            let a = connect(&url, "lessor/engine-a").await.unwrap();
            let b = connect(&url, "lessor/engine-b").await.unwrap();
            assert_eq!(claim(&a, "s1", "engine-a", "", lease).await.unwrap(), 1);
            let held = claim(&b, "s1", "engine-b", "", lease).await.unwrap_err();
            assert!(matches!(held, StreamError::Held { .. }), "a live session keeps the stream: {held:?}");
            drop(a);
            // The backend ends once its client is gone: wait for that, not for the lease.
            let deadline = Instant::now() + Duration::from_secs(60);
            let epoch = loop {
                match claim(&b, "s1", "engine-b", "", lease).await {
                    Ok(epoch) => break epoch,
                    Err(StreamError::Held { .. }) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("{e:?}"),
                }
            };
            assert_eq!(epoch, 2, "taken over long before a 10-minute lease ended");
        });
    }
}
