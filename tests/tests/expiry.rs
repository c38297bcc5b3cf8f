//! The expirer against a real PostgreSQL: leases end in dropped roles on time, and
//! a database outage longer than the retry budget ends with every lease revoked.

use std::time::{Duration, Instant};

use lessor_engine::EngineOptions;
use lessor_engine::expiry::ExpiryOptions;
use lessor_tests::lessor::Lessor;
use lessor_tests::pg;
use serde_json::json;

const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// Calls `expire_due` until no lease is left or `limit` passes.
fn expire_until_empty(l: &Lessor, limit: Duration) {
    let start = Instant::now();
    while l.engine().with_state(|s| !s.leases.is_empty()) {
        assert!(start.elapsed() < limit, "leases still live after {limit:?}");
        l.rt().block_on(l.engine().expire_due()).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_thousand_two_second_leases_all_end_in_dropped_roles() {
    let db = pg::database("expire_1000");
    let l = Lessor::new();
    l.connect(&db, "exp1k", "");
    l.write("database/config/pg", json!({ "max_open_connections": 8 }));
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": CREATION, "default_ttl": "2s" }));
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..125 {
                    l.read("database/creds/r").unwrap();
                }
            });
        }
    });
    assert_eq!(db.roles_with_prefix("exp1k-").len(), 1000);
    // Nothing is revoked early.
    let report = l.rt().block_on(l.engine().expire_due()).unwrap();
    let expired_already = l.engine().with_state(|s| 1000 - s.leases.len());
    assert_eq!(report.revoked, expired_already, "only leases past their expiry were revoked");
    std::thread::sleep(Duration::from_millis(2_500));
    expire_until_empty(&l, Duration::from_secs(60));
    assert!(db.roles_with_prefix("exp1k-").is_empty(), "every role is gone from pg_roles");
}

#[test]
fn an_outage_longer_than_the_retry_budget_ends_with_every_lease_revoked() {
    let mut cluster = pg::private_cluster();
    let db = cluster.database("outage");
    let expiry =
        ExpiryOptions { revoke_attempts_budget: 3, retry_ms_first: 100, retry_ms_max: 300, ..ExpiryOptions::default() };
    let l = Lessor::with_options(EngineOptions { snapshot_every_events: 0, expiry, ..EngineOptions::default() });
    l.connect(&db, "out", "");
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": CREATION, "default_ttl": "1s" }));
    for _ in 0..20 {
        l.read("database/creds/r").unwrap();
    }
    cluster.stop();
    std::thread::sleep(Duration::from_millis(1_200));
    // Every attempt fails while the database is down; past the budget the leases
    // are marked irrevocable — and kept, not forgotten.
    let start = Instant::now();
    while l.engine().with_state(|s| s.leases.values().filter(|l| l.irrevocable).count()) < 20 {
        assert!(start.elapsed() < Duration::from_secs(60), "leases never became irrevocable");
        let report = l.rt().block_on(l.engine().expire_due()).unwrap();
        assert_eq!(report.revoked, 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(l.engine().with_state(|s| s.leases.len()), 20, "none lost");
    let listed = l
        .request(
            lessor_engine::request::Operation::List,
            "sys/leases/lookup/database/creds/r/",
            serde_json::Value::Null,
        )
        .unwrap();
    assert_eq!(listed.data.unwrap()["keys"].as_array().unwrap().len(), 20);
    let irrevocable = l.read("sys/leases?type=irrevocable").unwrap().data.unwrap();
    assert_eq!(irrevocable["count"], 20);
    assert!(irrevocable["leases"][0]["error"].as_str().unwrap().len() > 10, "the database's error is kept");
    cluster.start();
    expire_until_empty(&l, Duration::from_secs(60));
    assert!(db.roles_with_prefix("out-").is_empty());
}

fn roles_alive(db: &pg::TestDb, prefix: &str) -> usize {
    db.roles_with_prefix(prefix).len()
}

#[test]
fn leases_stay_revocable_after_their_role_and_connection_are_deleted() {
    let db = pg::database("orphaned_config");
    let l = Lessor::new();
    l.connect(&db, "delc", "");
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": CREATION }));
    let lease = l.read("database/creds/r").unwrap().lease_id;
    l.request(lessor_engine::request::Operation::Delete, "database/roles/r", serde_json::Value::Null).unwrap();
    l.request(lessor_engine::request::Operation::Delete, "database/config/pg", serde_json::Value::Null).unwrap();
    l.request(lessor_engine::request::Operation::Update, "sys/leases/revoke", json!({ "lease_id": lease })).unwrap();
    assert_eq!(roles_alive(&db, "delc-"), 0);
}

#[test]
fn revoking_a_token_or_disabling_the_mount_revokes_their_leases() {
    let db = pg::database("cascade");
    let l = Lessor::new();
    l.connect(&db, "casc", "");
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": CREATION }));
    l.write("sys/policy/r", json!({"policy": "path \"database/creds/r\" { capabilities = [\"read\"] }"}));
    let auth = l.write("auth/token/create", json!({"policies": ["r"]})).auth.unwrap();
    for _ in 0..3 {
        l.request_as(
            &auth.client_token,
            lessor_engine::request::Operation::Read,
            "database/creds/r",
            serde_json::Value::Null,
        )
        .unwrap();
    }
    let root_lease = l.read("database/creds/r").unwrap().lease_id;
    assert_eq!(roles_alive(&db, "casc-"), 4);
    l.write("auth/token/revoke-accessor", json!({"accessor": auth.accessor}));
    let report = l.rt().block_on(l.engine().expire_due()).unwrap();
    assert_eq!(report.revoked, 3, "the token's three leases, not root's");
    assert_eq!(roles_alive(&db, "casc-"), 1);
    assert!(l.engine().with_state(|s| s.leases.contains_key(root_lease.as_str())));
    l.request(lessor_engine::request::Operation::Delete, "sys/mounts/database", serde_json::Value::Null).unwrap();
    l.rt().block_on(l.engine().expire_due()).unwrap();
    assert_eq!(roles_alive(&db, "casc-"), 0, "disabling the mount revoked the rest");
    assert!(l.engine().with_state(|s| s.leases.is_empty()));
}

#[test]
fn after_a_restart_leases_are_rearmed_and_expire() {
    let db = pg::database("restart");
    let mut l = Lessor::new();
    l.connect(&db, "rst", "");
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": CREATION, "default_ttl": "1s" }));
    for _ in 0..5 {
        l.read("database/creds/r").unwrap();
    }
    l.reopen();
    assert_eq!(l.rt().block_on(l.engine().expire_due()).unwrap().revoked, 0, "nothing before its expiry");
    std::thread::sleep(Duration::from_millis(1_000));
    expire_until_empty(&l, Duration::from_secs(10));
    assert_eq!(roles_alive(&db, "rst-"), 0);
}

#[test]
fn the_engine_wide_lease_limit_refuses_issues_past_it() {
    let db = pg::database("limit");
    let expiry = ExpiryOptions { lease_count_max: 2, ..ExpiryOptions::default() };
    let l = Lessor::with_options(EngineOptions { snapshot_every_events: 0, expiry, ..EngineOptions::default() });
    l.connect(&db, "lim", "");
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": CREATION, "lease_count_max": 5 }));
    l.read("database/creds/r").unwrap();
    l.read("database/creds/r").unwrap();
    let err = l.read("database/creds/r").unwrap_err();
    assert_eq!(err.kind(), lessor_engine::request::ErrorKind::Busy);
    assert!(err.to_string().contains("lease_count_max"), "{err}");
    assert_eq!(roles_alive(&db, "lim-"), 2, "no user was created for the refused issue");
}
