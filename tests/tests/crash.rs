//! SIGKILL during a stream of issues against a real PostgreSQL: after reopening
//! and recovering, no role is left without a lease (I2) and no acknowledged lease
//! is missing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use lessor_engine::{Engine, EngineOptions};
use lessor_tests::lessor::Lessor;
use lessor_tests::pg;
use serde_json::json;

const CHILD_DIR: &str = "LESSOR_CRASH_CHILD_DIR";

/// Not a test by itself: the child that issues until it is killed, printing each
/// acknowledged lease id.
#[test]
fn crash_child_issues_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let engine = std::sync::Arc::new(Engine::open(&dir, EngineOptions::default()).unwrap());
    let root = std::env::var("LESSOR_CRASH_CHILD_TOKEN").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let engine = engine.clone();
            let root = root.clone();
            tasks.spawn(async move {
                loop {
                    if let Ok(c) = engine.issue(&root, "database/creds/r").await {
                        println!("ACK {}", c.lease_id);
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    });
}

#[test]
fn sigkill_at_random_moments_leaves_no_orphan_and_loses_no_acknowledged_lease() {
    let db = pg::database("sigkill");
    let mut l = Lessor::new();
    l.connect(&db, "kill", "");
    let creation = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
    l.write("database/roles/r", json!({ "db_name": "pg", "creation_statements": creation }));
    let dir = l.dir.path().to_path_buf();
    let root = l.root.clone();
    let mut acknowledged = Vec::new();
    for (cycle, delay_ms) in [120u64, 260, 75, 400, 190].into_iter().enumerate() {
        l.close();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child_issues_until_killed", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir)
            .env("LESSOR_CRASH_CHILD_TOKEN", &root)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| line.strip_prefix("ACK ").map(str::to_string))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(300 + delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        acknowledged.extend(reader.join().unwrap());
        l.open();
        l.rt().block_on(l.engine().recover()).unwrap();
        let (live_users, live_ids): (Vec<String>, Vec<String>) = l.engine().with_state(|s| {
            (
                s.leases.values().map(|l| l.username.to_string()).collect(),
                s.leases.keys().map(|k| k.to_string()).collect(),
            )
        });
        for id in &acknowledged {
            assert!(live_ids.contains(id), "cycle {cycle}: acknowledged lease {id} is missing");
        }
        for role in db.roles_with_prefix("kill-") {
            assert!(live_users.contains(&role), "cycle {cycle}: role {role} has no lease (orphan)");
        }
    }
    assert!(acknowledged.len() > 10, "the child issued only {} credentials", acknowledged.len());
    // And everything revocable.
    l.write("sys/leases/revoke-prefix/database/creds/r/", json!({}));
    let start = std::time::Instant::now();
    while l.engine().with_state(|s| !s.leases.is_empty()) {
        assert!(start.elapsed() < Duration::from_secs(60));
        l.rt().block_on(l.engine().expire_due()).unwrap();
    }
    assert!(db.roles_with_prefix("kill-").is_empty());
}
