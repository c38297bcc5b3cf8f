//! Disk full and I/O errors under the request API, against a real PostgreSQL:
//!
//! - through the storage seam (`FaultInjectingStorage` failing writes and fsyncs,
//!   once or for good) and, when the tests run as root, on a real tmpfs filled to
//!   the last byte;
//! - every request either is acknowledged with all of its effects, or fails with a
//!   clear error and leaves no database side effect whose intent was not durable:
//!   no role appears in `pg_roles` for a failed issue, a failed renew does not move
//!   `VALID UNTIL`, a failed revoke does not drop the role (I1, I6);
//! - once space is freed the same engine — no restart — serves again, and
//!   everything acknowledged is there, live and after a reopen (the log verifies).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lessor_engine::audit::{VerifyOptions, verify};
use lessor_engine::auth::keys::{KEY_FILE_NAME, MasterKey};
use lessor_engine::event::Event;
use lessor_engine::log::storage::{FaultInjectingStorage, Faults, FsStorage, ReadOnlyDir};
use lessor_engine::request::{Operation, RequestError, Response};
use lessor_engine::state::LeaseStatus;
use lessor_engine::{Engine, EngineOptions};
use lessor_tests::pg;
use serde_json::{Value, json};

const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

fn options(dir: &Path) -> EngineOptions {
    EngineOptions {
        snapshot_every_events: 0,
        master_key: Some(MasterKey::read_file(&dir.join(KEY_FILE_NAME)).expect("master key")),
        ..EngineOptions::default()
    }
}

/// An engine over a data directory, through the fault-injecting seam or straight.
struct Rig {
    dir: PathBuf,
    storage: Option<FaultInjectingStorage>,
    engine: Option<Arc<Engine>>,
    root: String,
    rt: tokio::runtime::Runtime,
    db: pg::TestDb,
    prefix: String,
}

impl Rig {
    /// Initializes `dir`, connects it to `db` with usernames `<prefix>-…`, writes
    /// role `r` (1 h leases), and reopens it through the seam if `seam`.
    fn new(dir: &Path, db: pg::TestDb, prefix: &str, seam: bool) -> Rig {
        let (engine, root) =
            Engine::init(dir, EngineOptions { snapshot_every_events: 0, ..EngineOptions::default() }).expect("init");
        engine.close();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let mut rig = Rig {
            dir: dir.to_path_buf(),
            storage: None,
            engine: None,
            root: root.expose().to_string(),
            rt,
            db,
            prefix: prefix.to_string(),
        };
        rig.open(seam);
        rig.write("sys/mounts/database", json!({"type": "database"}));
        let config = json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": rig.db.url_template(),
            "username": rig.db.admin_username(),
            "password": rig.db.admin_password(),
            "allowed_roles": "*",
            "username_template": format!("{prefix}-{{{{random 16}}}}"),
        });
        rig.write("database/config/pg", config);
        rig.write(
            "database/roles/r",
            json!({"db_name": "pg", "creation_statements": CREATION, "default_ttl": "1h", "max_ttl": "24h"}),
        );
        rig
    }

    fn open(&mut self, seam: bool) {
        let engine = if seam {
            let storage = FaultInjectingStorage::new(Arc::new(FsStorage::open(&self.dir).expect("lock")));
            self.storage = Some(storage.clone());
            Engine::open_with_storage(Arc::new(storage), options(&self.dir))
        } else {
            Engine::open(&self.dir, options(&self.dir))
        };
        self.engine = Some(Arc::new(engine.expect("open")));
    }

    fn close(&mut self) {
        let engine = Arc::into_inner(self.engine.take().expect("open")).expect("engine shared");
        engine.close();
        self.storage = None;
    }

    fn engine(&self) -> &Arc<Engine> {
        self.engine.as_ref().expect("open")
    }

    fn faults(&self, faults: Faults) {
        self.storage.as_ref().expect("opened through the seam").set_faults(faults);
    }

    /// One request, then its riding outcome settled (written, or failed by the
    /// faults too), so the checks read the state it left.
    fn req(&self, op: Operation, path: &str, data: Value) -> Result<Response, RequestError> {
        self.rt.block_on(async {
            let reply = self.engine().request(&self.root, op, path, data).await;
            self.engine().settle_outcomes().await;
            reply
        })
    }

    fn write(&self, path: &str, data: Value) -> Response {
        self.req(Operation::Update, path, data).unwrap_or_else(|e| panic!("write {path}: {e}"))
    }

    fn roles(&self) -> Vec<String> {
        self.db.roles_with_prefix(&format!("{}-", self.prefix))
    }

    fn valid_until(&self, role: &str) -> Option<String> {
        self.db.superuser_scalar(&format!("SELECT rolvaliduntil::text FROM pg_roles WHERE rolname = '{role}'"))
    }

    /// I2, checked against the live engine: every role of ours belongs to a lease.
    fn assert_no_orphan(&self, when: &str) {
        let users: Vec<String> =
            self.engine().with_state(|s| s.leases.values().map(|l| l.username.to_string()).collect());
        for role in self.roles() {
            assert!(users.contains(&role), "{when}: role {role} exists in PostgreSQL but no lease tracks it (orphan)");
        }
    }
}

/// A failed request's error must say the log could not be written, as an I/O error.
fn assert_log_error(what: &str, e: &RequestError) {
    let text = e.to_string();
    assert_eq!(e.kind(), lessor_engine::request::ErrorKind::Io, "{what}: {text}");
    assert!(
        text.contains("log write failed") || text.contains("cannot be cut back") || text.contains("No space left"),
        "{what}: the error does not say the log could not be written: {text}"
    );
}

/// What one scenario counted.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: usize,
    refused: usize,
}

/// The acknowledged leases and other objects a scenario must find again.
#[derive(Debug, Default)]
struct Acked {
    leases: Vec<(String, String)>,
    revoked: Vec<(String, String)>,
    policies: Vec<String>,
    refused_policies: Vec<String>,
}

/// One request of each kind, each checked: acknowledged with its effects, or
/// refused with a log error and without a database effect. `k` names things.
fn mixed_requests(rig: &Rig, acked: &mut Acked, k: usize, tally: &mut Tally) {
    let when = |what: &str| format!("round {k}, {what}");
    // Issue.
    let roles_before = rig.roles();
    match rig.req(Operation::Read, "database/creds/r", Value::Null) {
        Ok(r) => {
            let user = r.data.as_ref().unwrap()["username"].as_str().unwrap().to_string();
            assert!(rig.db.role_exists(&user), "{}: acknowledged, but no role {user}", when("issue"));
            // Issuing if the fault took the riding outcome's write: the caller
            // holds the password, so the lease stays live until its expiry.
            let status = rig.engine().with_state(|s| s.leases.get(&r.lease_id).map(|l| l.status));
            assert!(
                matches!(status, Some(LeaseStatus::Active | LeaseStatus::Issuing)),
                "{}: {status:?}",
                when("issue")
            );
            acked.leases.push((r.lease_id, user));
            tally.acknowledged += 1;
        }
        Err(e) => {
            assert_log_error(&when("issue"), &e);
            // No role committed for an intent that was not durable. When the
            // intent was durable and only the outcome failed, the role COMMIT
            // created is revoked before the error returns: the caller never had
            // its password (the recovery table's rule, without waiting for a
            // restart or the lease's expiry).
            let mut created = rig.roles();
            created.retain(|r| !roles_before.contains(r));
            if let Some(role) = created.first() {
                let lease = rig.engine().with_state(|s| {
                    s.leases.values().find(|l| *l.username == **role).map(|l| (l.lease_id.clone(), l.status))
                });
                panic!("{}: refused ({e}), yet role {role} exists (lease {lease:?})", when("issue"));
            }
            tally.refused += 1;
        }
    }
    rig.assert_no_orphan(&when("issue"));

    // Renew the oldest acknowledged lease.
    if let Some((lease, user)) = acked.leases.first().cloned() {
        let before = rig.valid_until(&user);
        let expiry_before = rig.engine().with_state(|s| s.leases[&lease].expire_time_ms);
        // Another increment every round, so an acknowledged renewal always moves
        // VALID UNTIL (whole seconds) and the expiry.
        let increment = format!("{}m", 120 + k);
        match rig.req(Operation::Update, "sys/leases/renew", json!({"lease_id": lease, "increment": increment})) {
            Ok(_) => {
                assert_ne!(rig.valid_until(&user), before, "{}: acknowledged, VALID UNTIL unchanged", when("renew"));
                // (The expiry the renewal's intent holds: its riding outcome may
                // have been refused by the full disk.)
                assert_ne!(rig.engine().with_state(|s| s.leases[&lease].expire_time_effective_ms()), expiry_before);
                tally.acknowledged += 1;
            }
            Err(e) => {
                assert_log_error(&when("renew"), &e);
                let (expiry, renewing) =
                    rig.engine().with_state(|s| (s.leases[&lease].expire_time_ms, s.leases[&lease].renewing_to_ms));
                if expiry != expiry_before {
                    // The renewal and its outcome were logged; only the request's
                    // audit record was not: the caller hears of the failure, the
                    // renewal stands (as with a revocation), in the database too.
                    assert!(renewing.is_none(), "{}: refused, expiry moved, outcome missing", when("renew"));
                    assert_ne!(rig.valid_until(&user), before, "{}: expiry moved, VALID UNTIL not", when("renew"));
                } else if rig.valid_until(&user) != before {
                    // VALID UNTIL moved, the expiry did not: the renewal's intent
                    // was durable, its outcome not — the old expiry stands, and the
                    // user is dropped then.
                    assert!(
                        renewing.is_some(),
                        "{}: refused, VALID UNTIL moved without a durable intent",
                        when("renew")
                    );
                }
                tally.refused += 1;
            }
        }
    }

    // Revoke the newest acknowledged lease (if there are two).
    if acked.leases.len() >= 2 {
        let (lease, user) = acked.leases.last().cloned().unwrap();
        match rig.req(Operation::Update, "sys/leases/revoke", json!({"lease_id": lease})) {
            Ok(_) => {
                assert!(!rig.db.role_exists(&user), "{}: acknowledged, role {user} still exists", when("revoke"));
                // Gone, or — the fault took the riding outcome's write — still
                // Revoking, which the expirer (or recovery) runs again.
                let status = rig.engine().with_state(|s| s.leases.get(&lease).map(|l| l.status));
                assert!(matches!(status, None | Some(LeaseStatus::Revoking(_))), "{}: {status:?}", when("revoke"));
                acked.leases.pop();
                acked.revoked.push((lease, user));
                tally.acknowledged += 1;
            }
            Err(e) => {
                assert_log_error(&when("revoke"), &e);
                let status = rig.engine().with_state(|s| s.leases.get(&lease).map(|l| l.status));
                match status {
                    // The intent was not durable: nothing ran.
                    Some(LeaseStatus::Active) => {
                        assert!(rig.db.role_exists(&user), "{}: refused, yet role {user} dropped", when("revoke"))
                    }
                    // The intent was durable, the outcome not: revocation is
                    // idempotent and finished by the expirer (recovery table).
                    Some(LeaseStatus::Revoking(_)) => {
                        acked.leases.pop();
                        acked.revoked.push((lease, user));
                    }
                    // Revoked and logged; only the request's audit record was
                    // not: the caller hears of the failure, the revocation stands.
                    None => {
                        assert!(!rig.db.role_exists(&user), "{}: lease gone, role {user} not", when("revoke"));
                        acked.leases.pop();
                        acked.revoked.push((lease, user));
                    }
                    other => panic!("{}: refused, lease is {other:?}", when("revoke")),
                }
                tally.refused += 1;
            }
        }
    }

    // Policy write.
    let name = format!("p{k}");
    let policy = json!({"policy": format!("path \"secret/{k}\" {{ capabilities = [\"read\"] }}")});
    match rig.req(Operation::Update, &format!("sys/policy/{name}"), policy) {
        Ok(_) => {
            acked.policies.push(name);
            tally.acknowledged += 1;
        }
        Err(e) => {
            assert_log_error(&when("policy"), &e);
            assert!(rig.engine().with_state(|s| !s.policies.contains_key(&name)), "{}", when("policy"));
            acked.refused_policies.push(name);
            tally.refused += 1;
        }
    }
    rig.assert_no_orphan(&when("all"));
}

/// Everything acknowledged is in `rig`'s state and `pg_roles`.
fn assert_all_there(rig: &Rig, acked: &Acked, when: &str) {
    rig.engine().with_state(|s| {
        for (lease, _) in &acked.leases {
            assert!(s.leases.contains_key(lease), "{when}: acknowledged lease {lease} is missing");
        }
        for (lease, _) in &acked.revoked {
            assert!(!s.leases.contains_key(lease), "{when}: revoked lease {lease} is back");
        }
        for p in &acked.policies {
            assert!(s.policies.contains_key(p), "{when}: acknowledged policy {p} is missing");
        }
        for p in &acked.refused_policies {
            assert!(!s.policies.contains_key(p), "{when}: refused policy {p} exists");
        }
    });
    for (_, user) in &acked.leases {
        assert!(rig.db.role_exists(user), "{when}: acknowledged user {user} is gone");
    }
    rig.assert_no_orphan(when);
}

/// After the faults: the same engine serves, then a reopen replays the same state
/// and the log verifies.
fn finish(rig: &mut Rig, acked: &mut Acked, seam: bool, tally: &mut Tally) -> String {
    // Revocations whose intent was durable but whose outcome was not are finished
    // by the expirer, as after any failed revocation.
    rig.rt.block_on(rig.engine().expire_due()).unwrap();
    let ok_before = tally.acknowledged;
    mixed_requests(rig, acked, 1000, tally);
    assert_eq!(tally.acknowledged - ok_before, 4, "after the disk recovered, a request still failed");
    assert_all_there(rig, acked, "after the disk recovered");
    assert!(rig.engine().with_state(|s| s.leases.values().all(|l| l.status == LeaseStatus::Active)));
    let live = rig.engine().digest();
    rig.close();
    let report = verify(&rig.dir, VerifyOptions::default()).unwrap_or_else(|e| panic!("audit verify: {e}"));
    assert!(report.torn_tail.is_none(), "a torn tail was left: {:?}", report.torn_tail);
    // No record of a refused policy write reached the log.
    let (entries, _) = lessor_engine::log::read_entries(&ReadOnlyDir::new(&rig.dir)).unwrap();
    for e in &entries {
        if let Event::PolicyWritten(p) = &e.event {
            assert!(!acked.refused_policies.contains(&p.name), "refused policy {} is in the log", p.name);
        }
    }
    rig.open(seam);
    assert_eq!(rig.engine().digest(), live, "the reopened state differs from the live one");
    assert_all_there(rig, acked, "after a reopen");
    format!("{} records verified", report.records)
}

fn scenario(hint: &str, prefix: &str, faults: Faults, rounds: usize) -> Tally {
    let tmp = tempfile::tempdir().unwrap();
    let mut rig = Rig::new(tmp.path(), pg::database(hint), prefix, true);
    let mut acked = Acked::default();
    let mut tally = Tally::default();
    for k in 0..3 {
        mixed_requests(&rig, &mut acked, k, &mut tally);
    }
    assert_eq!(tally.refused, 0);
    rig.faults(faults);
    for k in 3..3 + rounds {
        mixed_requests(&rig, &mut acked, k, &mut tally);
    }
    assert!(rig.storage.as_ref().unwrap().fired(), "{hint}: the fault never fired");
    rig.faults(Faults::default());
    let verified = finish(&mut rig, &mut acked, true, &mut tally);
    println!(
        "{hint}: {} requests acknowledged, {} refused with a log error, no SQL effect without a durable intent, \
         none lost; {verified}",
        tally.acknowledged, tally.refused
    );
    tally
}

#[test]
fn a_disk_that_stays_full_refuses_every_request_without_a_database_effect_and_serves_again_once_freed() {
    let faults = Faults { fail_write_in: Some(1), tear_keep_bytes: Some(29), sticky: true, ..Faults::default() };
    let tally = scenario("disk_full_sticky", "dfst", faults, 3);
    assert!(tally.refused >= 9, "{tally:?}");
}

#[test]
fn failing_fsyncs_refuse_requests_without_a_database_effect_and_the_engine_goes_on() {
    let faults = Faults { fail_sync_in: Some(1), sticky: true, ..Faults::default() };
    let tally = scenario("fsync_sticky", "dfsy", faults, 2);
    assert!(tally.refused >= 6, "{tally:?}");
}

#[test]
fn a_single_failed_write_or_fsync_at_every_point_of_the_request_mix_loses_nothing_and_leaves_no_orphan() {
    // The n-th write (or fsync) from now fails, once: it hits intents, outcomes,
    // audit records and the writes in between, request after request.
    let mut total = Tally::default();
    for n in 1..=12 {
        for kind in ["write", "torn", "fsync"] {
            let faults = match kind {
                "write" => Faults { fail_write_in: Some(n), ..Faults::default() },
                "torn" => Faults { fail_write_in: Some(n), tear_keep_bytes: Some(40), ..Faults::default() },
                _ => Faults { fail_sync_in: Some(n), ..Faults::default() },
            };
            let tally = scenario(&format!("once_{kind}_{n}"), &format!("df{}{n}", &kind[..1]), faults, 2);
            total.acknowledged += tally.acknowledged;
            total.refused += tally.refused;
        }
    }
    println!("single failed writes and fsyncs: {total:?}");
    // A fault that hits a riding batch (outcomes and records of requests
    // already answered) refuses nothing: their leases stay as their intents
    // left them (checked above). So fewer than one refusal per scenario.
    assert!(total.refused >= 12, "{total:?}");
}

// ------------------------------------------------------------------------------------
// A real full disk: tmpfs (needs root for mount(2)).
// ------------------------------------------------------------------------------------

fn running_as_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|v| v.split_whitespace().nth(1)) == Some("0")
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "running as root, yet `mount -t tmpfs` failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount").arg(self.dir.path()).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Still busy (a failing test left a file open): detach it now, the
            // kernel frees it once the last file closes.
            let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// Fills the file system holding `path` to the last byte; returns the file.
fn fill(path: &Path) -> PathBuf {
    let filler = path.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    for chunk in [65_536usize, 4_096, 512, 1] {
        let block = vec![0xa5u8; chunk];
        while f.write_all(&block).is_ok() {}
    }
    let _ = f.sync_all();
    filler
}

#[test]
fn a_real_full_tmpfs_refuses_requests_without_a_database_effect_and_serves_again_once_space_is_freed() {
    if !running_as_root() {
        println!(
            "NOT ROOT: the real-tmpfs scenario needs mount(2) and did not run; the disk-full scenarios ran through \
             the storage seam only (the other tests in this file)"
        );
        return;
    }
    let fs = Tmpfs::mount("1m");
    let data = fs.path().join("data");
    let mut rig = Rig::new(&data, pg::database("tmpfs_full"), "dftmp", false);
    let mut acked = Acked::default();
    let mut tally = Tally::default();
    for k in 0..2 {
        mixed_requests(&rig, &mut acked, k, &mut tally);
    }
    assert_eq!(tally.refused, 0);
    let filler = fill(fs.path());
    // The segment's last page may still hold a few records: requests go on until
    // the file system has no byte left for them, each checked either way.
    let mut k = 2;
    let mut refused_in_a_row = 0;
    while refused_in_a_row < 8 {
        assert!(k < 200, "the full tmpfs never refused a request");
        let before = tally.refused;
        mixed_requests(&rig, &mut acked, k, &mut tally);
        refused_in_a_row = if tally.refused - before >= 3 { refused_in_a_row + 1 } else { 0 };
        k += 1;
    }
    std::fs::remove_file(filler).unwrap();
    let verified = finish(&mut rig, &mut acked, false, &mut tally);
    rig.close();
    println!(
        "tmpfs full: {} requests acknowledged, {} refused with ENOSPC, no SQL effect without a durable intent, \
         none lost; {verified}",
        tally.acknowledged, tally.refused
    );
}
