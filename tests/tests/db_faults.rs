//! Database faults against a real PostgreSQL, with the expirer running:
//!
//! - the server stopped in the middle of a stream of issues (a crash-like
//!   `pg_ctl stop -m immediate`), kept down past the revocation retry budget,
//!   then started again;
//! - `pg_terminate_backend` on lessor's pooled connections, between requests and
//!   in the middle of a concurrent stream.
//!
//! Checked: while the database is unreachable every request fails cleanly (a
//! database error naming the cause, never a hang); no lease is left `Issuing`
//! once its request returned; no role exists without a lease (I2); once the
//! database is back lessor reconnects by itself and every expiring lease is
//! revoked, irrevocable ones included; nothing acknowledged is lost; and pooled
//! connections the server closed between requests cost no request at all.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lessor_engine::EngineOptions;
use lessor_engine::expiry::ExpiryOptions;
use lessor_engine::request::{ErrorKind, Operation, RequestError};
use lessor_engine::state::LeaseStatus;
use lessor_tests::lessor::{Lessor, connection_json};
use lessor_tests::pg;
use serde_json::json;

const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
/// Bound of every wait for a condition (the conditions, not the times, are asserted).
const WAIT_MAX: Duration = Duration::from_secs(120);

fn lessor() -> Lessor {
    let expiry = ExpiryOptions {
        tick_ms: 100,
        retry_ms_first: 100,
        retry_ms_max: 400,
        revoke_attempts_budget: 3,
        ..ExpiryOptions::default()
    };
    Lessor::with_options(EngineOptions { snapshot_every_events: 0, expiry, ..EngineOptions::default() })
}

/// Polls `cond` (sleeping briefly) until it holds; panics naming `what` past [`WAIT_MAX`].
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT_MAX, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// I2: every role of ours in `pg_roles` belongs to a lease of the live state.
fn assert_no_orphan(l: &Lessor, db: &pg::TestDb, prefix: &str, when: &str) {
    let users: Vec<String> = l.engine().with_state(|s| s.leases.values().map(|l| l.username.to_string()).collect());
    for role in db.roles_with_prefix(prefix) {
        assert!(users.contains(&role), "{when}: role {role} has no lease (orphan)");
    }
}

fn assert_none_issuing(l: &Lessor, when: &str) {
    // Answered issues' outcomes ride the next group commit: settle them first.
    l.settle();
    let issuing: Vec<String> = l.engine().with_state(|s| {
        s.leases.values().filter(|l| l.status == LeaseStatus::Issuing).map(|l| l.lease_id.to_string()).collect()
    });
    assert!(issuing.is_empty(), "{when}: leases left Issuing after their requests returned: {issuing:?}");
}

/// A database outage's error: a database error that says what happened.
fn assert_clean_database_error(e: &RequestError, when: &str) {
    assert_eq!(e.kind(), ErrorKind::Database, "{when}: {e}");
    let text = e.to_string().to_lowercase();
    let says = ["connect", "closed", "terminat", "shutting down", "did not answer", "error communicating", "refused"];
    assert!(says.iter().any(|s| text.contains(s)), "{when}: the error does not say what happened: {e}");
}

/// What a stream of issues saw.
#[derive(Debug, Default)]
struct Stream {
    acked: Vec<(String, String)>,
    errors: Vec<RequestError>,
}

/// Runs `threads` issuers of `role` until `stop`; each acknowledged lease and each
/// error is recorded, and `acks` counts the acknowledged ones as they come.
fn issue_stream(l: &Lessor, role: &str, threads: usize, stop: &AtomicBool, acks: &AtomicUsize) -> Stream {
    let path = format!("database/creds/{role}");
    let results: Vec<Stream> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Stream::default();
                    while !stop.load(Ordering::SeqCst) {
                        match l.read(&path) {
                            Ok(r) => {
                                let user = r.data.unwrap()["username"].as_str().unwrap().to_string();
                                mine.acked.push((r.lease_id, user));
                                acks.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => {
                                mine.errors.push(e);
                                // A refused connection fails fast: do not spin.
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = Stream::default();
    for r in results {
        all.acked.extend(r.acked);
        all.errors.extend(r.errors);
    }
    all
}

#[test]
fn postgres_stopped_mid_stream_fails_issues_cleanly_and_every_expiring_lease_is_revoked_once_it_is_back() {
    let mut cluster = pg::private_cluster();
    let db = cluster.database("outage_stream");
    let mut l = lessor();
    l.connect(&db, "dbo", "");
    l.write("database/roles/short", json!({"db_name": "pg", "creation_statements": CREATION, "default_ttl": "2s"}));
    l.write("database/roles/long", json!({"db_name": "pg", "creation_statements": CREATION, "default_ttl": "1h"}));
    let long: Vec<String> = (0..4).map(|_| l.read("database/creds/long").unwrap().lease_id).collect();
    l.start_expirer();

    // Issues stream on three threads; the server dies under them.
    let stop = AtomicBool::new(false);
    let acks = AtomicUsize::new(0);
    let (stream, down_errors) = std::thread::scope(|s| {
        let stream = s.spawn(|| issue_stream(&l, "short", 3, &stop, &acks));
        wait_until("30 issues before the outage", || acks.load(Ordering::SeqCst) >= 30);
        cluster.stop_immediate();
        // While it is down: every kind of request fails cleanly.
        let mut errors = Vec::new();
        for lease in &long[..3] {
            errors.push(l.read("database/creds/long").unwrap_err());
            let renew = json!({"lease_id": lease, "increment": "2h"});
            errors.push(l.request(Operation::Update, "sys/leases/renew", renew).unwrap_err());
        }
        errors.push(l.request(Operation::Update, "sys/leases/revoke", json!({"lease_id": long[3]})).unwrap_err());
        // Short leases expire meanwhile; their revocations fail past the budget.
        wait_until("a lease marked irrevocable while the database is down", || {
            l.engine().with_state(|s| s.leases.values().any(|l| l.irrevocable))
        });
        stop.store(true, Ordering::SeqCst);
        (stream.join().unwrap(), errors)
    });
    assert!(stream.acked.len() >= 30, "{} issues acknowledged before the outage", stream.acked.len());
    assert!(!stream.errors.is_empty(), "no issue failed while the database was down");
    for (i, e) in stream.errors.iter().chain(&down_errors).enumerate() {
        assert_clean_database_error(e, &format!("error {i} while the database was down"));
    }
    assert_none_issuing(&l, "while the database is down");
    let irrevocable = l.engine().with_state(|s| s.leases.values().filter(|l| l.irrevocable).count());
    // Acknowledged leases are all still there or legitimately expired.
    let now = lessor_engine::clock::Clock::now_ms(l.engine().clock().as_ref());
    l.engine().with_state(|s| {
        for (lease, _) in &stream.acked {
            if let Some(lease) = s.leases.get(lease) {
                assert!(lease.status != LeaseStatus::Issuing, "{} acknowledged yet Issuing", lease.lease_id);
            }
        }
        for id in &long {
            assert!(s.leases.contains_key(id), "long lease {id} was lost during the outage");
        }
        assert!(matches!(s.leases[&long[3]].status, LeaseStatus::Revoking(_)), "the refused revoke left no intent");
        assert!(
            s.leases
                .values()
                .filter(|l| l.expire_time_ms > now)
                .all(|l| l.status == LeaseStatus::Active || matches!(l.status, LeaseStatus::Revoking(_)))
        );
    });

    cluster.start();
    // lessor reconnects by itself: the pool's dead connections are replaced.
    let mut attempts = 0;
    wait_until("an issue succeeding after the restart", || {
        attempts += 1;
        match l.read("database/creds/long") {
            Ok(_) => true,
            Err(e) => {
                assert_clean_database_error(&e, "right after the restart");
                false
            }
        }
    });
    for i in 0..10 {
        l.read("database/creds/long").unwrap_or_else(|e| panic!("issue {i} after reconnecting: {e}"));
    }
    l.request(Operation::Update, "sys/leases/renew", json!({"lease_id": long[0], "increment": "2h"})).unwrap();
    // The revocation refused during the outage had its intent logged: the expirer
    // finishes it (revocation is idempotent), it is never forgotten.
    wait_until("the revocation refused during the outage finished", || {
        l.engine().with_state(|s| !s.leases.contains_key(&long[3]))
    });
    assert_no_orphan(&l, &db, "dbo-", "after the restart");

    // Every short lease — expired during the outage, irrevocable, or in doubt —
    // is revoked by the running expirer.
    wait_until("every short lease revoked", || {
        l.engine().with_state(|s| s.leases.values().all(|l| &*l.role != "short"))
            && db.roles_with_prefix("dbo-").len() == l.engine().with_state(|s| s.leases.len())
    });
    assert_no_orphan(&l, &db, "dbo-", "after the expirer caught up");
    for (lease, user) in &stream.acked {
        assert!(!db.role_exists(user), "expired lease {lease}: role {user} survived");
    }
    l.write("sys/leases/revoke-prefix/database/creds/long/", json!({}));
    wait_until("every long lease revoked", || l.engine().with_state(|s| s.leases.is_empty()));
    assert!(db.roles_with_prefix("dbo-").is_empty());
    l.stop_expirer();
    let mut kinds: Vec<String> = stream.errors.iter().chain(&down_errors).map(|e| e.to_string()).collect();
    kinds.sort();
    kinds.dedup();
    println!("errors seen during the outage: {kinds:#?}");
    println!(
        "outage: {} issues acknowledged before it, {} requests failed cleanly during it, {irrevocable} leases \
         irrevocable, reconnected after {attempts} attempt(s), every lease revoked, 0 orphans",
        stream.acked.len(),
        stream.errors.len() + down_errors.len()
    );
}

/// Terminates every backend lessor holds in `db`'s database.
fn terminate_lessor_backends(db: &pg::TestDb) -> usize {
    let sql = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
               WHERE datname = current_database() AND application_name LIKE 'lessor/%'";
    db.superuser_scalar(sql).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn terminated_pooled_connections_are_replaced_without_failing_a_request_and_without_orphans() {
    let db = pg::database("terminate");
    let l = lessor();
    l.connect(&db, "dbt", "");
    l.write("database/roles/r", json!({"db_name": "pg", "creation_statements": CREATION, "default_ttl": "1h"}));
    let mut acked: Vec<String> = Vec::new();
    let mut terminated = 0;
    for round in 0..6 {
        // Fill the pool, then kill every connection in it.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| l.read("database/creds/r").unwrap());
            }
        });
        let killed = terminate_lessor_backends(&db);
        assert!(killed >= 1, "round {round}: no lessor connection to terminate");
        terminated += killed;
        // Requests right after all succeed: a pooled connection the server closed
        // is replaced at BEGIN (or, if the termination races the transaction,
        // before COMMIT), as database/sql does for Vault — no request pays for it.
        // Odd rounds meet the dead pool with a renew and a revoke first.
        if round % 2 == 1 {
            let renew = json!({"lease_id": acked[0], "increment": format!("{}m", 90 + round)});
            l.request(Operation::Update, "sys/leases/renew", renew)
                .unwrap_or_else(|e| panic!("round {round}: renew after terminating the pool: {e}"));
            let gone = acked.pop().unwrap();
            l.request(Operation::Update, "sys/leases/revoke", json!({"lease_id": gone}))
                .unwrap_or_else(|e| panic!("round {round}: revoke after terminating the pool: {e}"));
        }
        for i in 0..8 {
            match l.read("database/creds/r") {
                Ok(r) => acked.push(r.lease_id),
                Err(e) => panic!("round {round}, issue {i} after terminating the pool: {e}"),
            }
        }
        assert_none_issuing(&l, &format!("round {round}"));
        assert_no_orphan(&l, &db, "dbt-", &format!("round {round}"));
        // Renew and revoke work on the fresh connections.
        let renew = json!({"lease_id": acked[0], "increment": format!("{}m", 90 + round)});
        l.request(Operation::Update, "sys/leases/renew", renew).unwrap();
        let gone = acked.pop().unwrap();
        l.request(Operation::Update, "sys/leases/revoke", json!({"lease_id": gone})).unwrap();
    }

    // Terminations in the middle of a concurrent stream: transactions die between
    // their statements and COMMIT, or inside COMMIT.
    let stop = AtomicBool::new(false);
    let acks = AtomicUsize::new(0);
    let stream = std::thread::scope(|s| {
        let stream = s.spawn(|| issue_stream(&l, "r", 3, &stop, &acks));
        for k in 1..=8 {
            wait_until("issues between terminations", || acks.load(Ordering::SeqCst) >= 15 * k);
            terminated += terminate_lessor_backends(&db);
        }
        stop.store(true, Ordering::SeqCst);
        stream.join().unwrap()
    });
    for (i, e) in stream.errors.iter().enumerate() {
        assert_clean_database_error(e, &format!("stream error {i}"));
    }
    assert_none_issuing(&l, "after the stream");
    // A COMMIT whose fate was unknown was revoked at once or left for the expirer.
    l.rt().block_on(l.engine().expire_due()).unwrap();
    wait_until("revocations in doubt finished", || {
        l.rt().block_on(l.engine().expire_due()).unwrap();
        l.engine().with_state(|s| s.leases.values().all(|l| l.status == LeaseStatus::Active))
    });
    assert_no_orphan(&l, &db, "dbt-", "after the stream");
    l.engine().with_state(|s| {
        for (lease, _) in &stream.acked {
            assert!(s.leases.contains_key(lease), "acknowledged lease {lease} lost");
        }
        for lease in &acked {
            assert!(s.leases.contains_key(lease), "acknowledged lease {lease} lost");
        }
    });
    for (_, user) in &stream.acked {
        assert!(db.role_exists(user), "acknowledged user {user} is gone");
    }
    l.write("sys/leases/revoke-prefix/database/creds/r/", json!({}));
    wait_until("every lease revoked", || {
        l.rt().block_on(l.engine().expire_due()).unwrap();
        l.engine().with_state(|s| s.leases.is_empty())
    });
    assert!(db.roles_with_prefix("dbt-").is_empty());
    let mut kinds: Vec<String> = stream.errors.iter().map(|e| e.to_string()).collect();
    kinds.sort();
    kinds.dedup();
    println!("errors seen in the stream: {kinds:#?}");
    println!(
        "terminations: {terminated} pooled connections terminated, {} + {} issues acknowledged, 0 + {} failed \
         cleanly, 0 orphans",
        acked.len(),
        stream.acked.len(),
        stream.errors.len()
    );
}

/// A database slower than the lease's TTL: the expirer runs (every 100 ms) while
/// a creation transaction that outlives the lease's 1 s TTL is still open.
/// Whatever the order, no role may end up without a lease (I2): the expirer must
/// not revoke an issue still in flight (its DROP ROLE would run before the
/// CREATE commits, and the lease would be forgotten with the role left behind).
#[test]
fn a_creation_slower_than_the_lease_ttl_leaves_no_orphan() {
    let db = pg::database("slow_create");
    let mut l = lessor();
    l.connect(&db, "dbs", "");
    let slow = format!("{CREATION} SELECT pg_sleep(2);");
    l.write("database/roles/slow", json!({"db_name": "pg", "creation_statements": slow, "default_ttl": "1s"}));
    l.start_expirer();
    let issued = l.read("database/creds/slow");
    // Acknowledged or not, the role is tracked or gone once the expirer caught up.
    // The lease expired during its own issue: the expirer ends it once it is issued.
    wait_until("the slow lease ended", || l.engine().with_state(|s| s.leases.is_empty()));
    let orphans = db.roles_with_prefix("dbs-");
    assert!(
        orphans.is_empty(),
        "role {orphans:?} outlived its lease: the expirer revoked the issue while its CREATE was still running \
         (issue answered {issued:?})"
    );
    l.stop_expirer();
}

/// A renewal slower than the time left on the lease: the expirer must not revoke
/// the lease under a renewal in flight, or the caller is told of an expiry the
/// lease no longer has (I3).
#[test]
fn a_renewal_slower_than_the_time_left_is_not_undone_by_the_expirer() {
    let db = pg::database("slow_renew");
    let mut l = lessor();
    l.connect(&db, "dbr", "");
    let slow_renew = "ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}'; SELECT pg_sleep(2);";
    let role = json!({"db_name": "pg", "creation_statements": CREATION, "renew_statements": slow_renew,
                      "default_ttl": "1s", "max_ttl": "1h"});
    l.write("database/roles/r", role);
    let lease = l.read("database/creds/r").unwrap();
    let user = lease.data.as_ref().unwrap()["username"].as_str().unwrap().to_string();
    l.start_expirer();
    let renewed =
        l.request(Operation::Update, "sys/leases/renew", json!({"lease_id": lease.lease_id, "increment": "1h"}));
    if let Ok(r) = &renewed {
        assert!(r.lease_duration >= 3000, "{r:?}");
        // Acknowledged for an hour: the lease and its role must still be there.
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            l.engine().with_state(|s| s.leases.get(&lease.lease_id).is_some_and(|l| l.status == LeaseStatus::Active)),
            "renewal acknowledged for an hour, yet the lease was revoked"
        );
        assert!(db.role_exists(&user), "renewal acknowledged for an hour, yet role {user} was dropped");
    }
    l.stop_expirer();
    l.write("sys/leases/revoke-prefix/database/creds/r/", json!({}));
    wait_until("revoked", || {
        l.rt().block_on(l.engine().expire_due()).unwrap();
        l.engine().with_state(|s| s.leases.is_empty())
    });
    assert!(db.roles_with_prefix("dbr-").is_empty());
    println!("slow renewal answered {:?}", renewed.map(|r| r.lease_duration));
}

/// Lessor's connections to `db`'s database, and how many wait on a lock.
fn lessor_backends(db: &pg::TestDb) -> (usize, usize) {
    let sql = "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock') FROM pg_stat_activity \
               WHERE datname = current_database() AND application_name LIKE 'lessor/%'";
    let row = db.superuser_query(sql).pop().expect("one row");
    let n = |i: usize| row[i].as_deref().and_then(|v| v.parse().ok()).expect("a count");
    (n(0), n(1))
}

/// Vault's `max_idle_connections`: once a burst has opened the whole pool (4
/// issues held open together on an advisory lock), the idle connections beyond
/// the limit are closed as they come back; 0, the default, keeps them all.
#[test]
fn max_idle_connections_closes_idle_connections_beyond_the_limit() {
    const BARRIER_KEY: i64 = 734_001;
    for (max_idle, open_after) in [(1u64, 1usize), (0, 4)] {
        let db = pg::database(&format!("idle{max_idle}"));
        let l = lessor();
        l.write("sys/mounts/database", json!({"type": "database"}));
        let extra = json!({
            "username_template": "dbi-{{random 16}}",
            "max_open_connections": 4,
            "max_idle_connections": max_idle,
        });
        l.write("database/config/pg", connection_json(&db, extra));
        let creation = format!("{CREATION} SELECT pg_advisory_xact_lock_shared({BARRIER_KEY});");
        l.write("database/roles/r", json!({"db_name": "pg", "creation_statements": creation, "default_ttl": "1h"}));

        // The barrier: a superuser session holds the lock until all 4 issues wait on it.
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let config = db.superuser_config();
        let holder = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let (client, conn) = config.connect(tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(conn);
                client.batch_execute(&format!("SELECT pg_advisory_lock({BARRIER_KEY})")).await.unwrap();
                locked_tx.send(()).unwrap();
                tokio::task::spawn_blocking(move || release_rx.recv()).await.unwrap().unwrap();
                client.batch_execute(&format!("SELECT pg_advisory_unlock({BARRIER_KEY})")).await.unwrap();
            });
        });
        locked_rx.recv().unwrap();
        std::thread::scope(|s| {
            let issues: Vec<_> = (0..4).map(|_| s.spawn(|| l.read("database/creds/r"))).collect();
            wait_until("4 issues waiting on the barrier", || lessor_backends(&db).1 == 4);
            release_tx.send(()).unwrap();
            for issue in issues {
                issue.join().unwrap().unwrap_or_else(|e| panic!("max_idle_connections={max_idle}: issue: {e}"));
            }
        });
        holder.join().unwrap();
        wait_until(&format!("max_idle_connections={max_idle}: {open_after} connections left"), || {
            lessor_backends(&db).0 == open_after
        });
        assert_eq!(l.engine().with_state(|s| s.leases.len()), 4);
        drop(l);
    }
}
