//! The riding write path (docs/DESIGN.md, "The write path"): an issue, renewal
//! or revocation answers once its SQL committed, and its outcome rides the next
//! group commit. Held here for 0.3 s (`ride_delay_us_max`) so every step below
//! meets an outcome still riding: the next operation on the lease waits for it
//! instead of answering "busy", a lookup reads what the caller was told, and
//! the intent already names who asked.

use std::sync::Arc;

use lessor_engine::clock::ManualClock;
use lessor_engine::event::Event;
use lessor_engine::log::LogOptions;
use lessor_engine::log::read_entries;
use lessor_engine::log::storage::ReadOnlyDir;
use lessor_engine::request::{ErrorKind, Operation};
use lessor_engine::state::LeaseStatus;
use lessor_engine::testing::FaultInjectingPlugin;
use lessor_engine::{Engine, EngineOptions};
use serde_json::{Value, json};

#[test]
fn the_next_operation_on_a_lease_meets_its_riding_outcome_and_a_lookup_reads_what_was_told() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = FaultInjectingPlugin::default();
    let options = EngineOptions {
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        snapshot_every_events: 0,
        plugin_factory: Some(plugin.factory()),
        log: LogOptions { ride_delay_us_max: 300_000, ..LogOptions::default() },
        ..EngineOptions::default()
    };
    let (engine, root) = Engine::init(dir.path(), options).unwrap();
    let root = root.expose().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let req = |op, path: &str, data: Value| rt.block_on(engine.request(&root, op, path, data));
    let ok = |op, path: &str, data: Value| req(op, path, data).unwrap_or_else(|e| panic!("{path}: {e}"));
    ok(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    ok(
        Operation::Update,
        "database/config/pg",
        json!({"plugin_name": "postgresql-database-plugin", "allowed_roles": "*", "username": "admin",
               "password": "pw", "connection_url": "postgresql://{{username}}:{{password}}@sim/db"}),
    );
    ok(
        Operation::Update,
        "database/roles/app",
        json!({"db_name": "pg", "creation_statements": "CREATE ROLE \"{{name}}\";", "default_ttl": "1h", "max_ttl": "24h"}),
    );

    let issued = ok(Operation::Read, "database/creds/app", Value::Null);
    let lease = issued.lease_id.clone();
    let username = issued.data.as_ref().unwrap()["username"].as_str().unwrap().to_string();
    assert!(plugin.db.lock().unwrap().users.contains_key(&username), "answered before COMMIT");
    // The outcome is riding: the state has only the intent.
    let status = engine.with_state(|s| s.leases[lease.as_str()].status);
    assert_eq!(status, LeaseStatus::Issuing, "the outcome did not ride");

    // A renewal at once waits for the issue's claim (not "busy"), and a lookup
    // then reads the expiry it was told, its outcome riding or not.
    let renewed = ok(Operation::Update, "sys/leases/renew", json!({"lease_id": lease, "increment": "2h"}));
    assert_eq!(renewed.lease_duration, 7200);
    let looked = ok(Operation::Update, "sys/leases/lookup", json!({"lease_id": lease}));
    assert_eq!(looked.data.as_ref().unwrap()["ttl"], json!(7200));
    assert_eq!(engine.with_state(|s| s.leases[lease.as_str()].status), LeaseStatus::Active);

    // A revocation at once: the user is dropped when it answers; a lookup after
    // it no longer finds the lease.
    let revoked = ok(Operation::Update, "sys/leases/revoke", json!({"lease_id": lease}));
    assert!(!plugin.db.lock().unwrap().users.contains_key(&username), "answered before the DROP committed");
    let gone = req(Operation::Update, "sys/leases/lookup", json!({"lease_id": lease}));
    assert_eq!(gone.map(drop).map_err(|e| e.kind()), Err(ErrorKind::NotFound));
    engine.close();

    // Every intent names the request that asked, as its reply did.
    let (entries, _) = read_entries(&ReadOnlyDir::new(dir.path())).unwrap();
    let asked: Vec<(String, String)> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::IssueStarted(i) if i.lease_id == lease => Some((i.request_id.clone(), i.path.clone())),
            Event::RenewStarted(r) if r.lease_id == lease => Some((r.request_id.clone(), r.path.clone())),
            Event::RevokeStarted(r) if r.lease_id == lease => Some((r.request_id.clone(), r.path.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        asked,
        vec![
            (issued.request_id.clone(), "database/creds/app".to_string()),
            (renewed.request_id.clone(), "sys/leases/renew".to_string()),
            (revoked.request_id.clone(), "sys/leases/revoke".to_string()),
        ]
    );
    assert!(asked.iter().all(|(id, _)| id.len() == 36), "{asked:?}");
}
