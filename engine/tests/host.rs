//! `Host`: an embedder who only opens and closes a host still gets recovery and
//! expiry — the lease that expired while nothing ran is revoked, its user
//! dropped — and `expire_now` runs what is due on demand. Closing lets the
//! expirer finish the revocations it started, up to the grace; past it they are
//! interrupted, recorded as intents only, and the next open's recovery finishes
//! them — or the caller's, with recovery turned off. The database is the
//! fault-injecting test double (no SQL here), whose revocations a test can hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lessor_engine::Recovered;
use lessor_engine::clock::ManualClock;
use lessor_engine::event::ConnectionWritten;
use lessor_engine::plugin::{CommitGate, DatabasePlugin, NewUser, PluginFactory, PluginFuture};
use lessor_engine::request::{ErrorKind, Operation};
use lessor_engine::state::{Lease, LeaseStatus};
use lessor_engine::testing::FaultInjectingPlugin;
use lessor_engine::{Closed, Engine, EngineOptions, Host, HostOptions};
use serde_json::{Value, json};
use tokio::sync::Notify;

const T0: i64 = 1_800_000_000_000;

/// Revocations held at the database (once `on`): each says it reached the
/// database (`started`), then waits for `release` — so a test knows a revocation
/// is in flight, and decides when (or whether) it finishes.
#[derive(Debug, Default)]
struct Hold {
    on: AtomicBool,
    started: Notify,
    release: Notify,
}

/// The fault-injecting database, its revocations subject to a [`Hold`].
#[derive(Debug, Clone)]
struct HeldPlugin {
    db: FaultInjectingPlugin,
    hold: Arc<Hold>,
}

impl DatabasePlugin for HeldPlugin {
    fn verify(&self) -> PluginFuture<'_, ()> {
        self.db.verify()
    }
    fn create_user<'a>(&'a self, user: NewUser<'a>, gate: CommitGate<'a>) -> PluginFuture<'a, ()> {
        self.db.create_user(user, gate)
    }
    fn renew_user<'a>(&'a self, username: &'a str, expiration: &'a str, sql: &'a [String]) -> PluginFuture<'a, ()> {
        self.db.renew_user(username, expiration, sql)
    }
    fn revoke_user<'a>(
        &'a self,
        username: &'a str,
        sql: &'a [String],
        terminate: bool,
        gate: CommitGate<'a>,
    ) -> PluginFuture<'a, ()> {
        Box::pin(async move {
            if self.hold.on.load(Ordering::SeqCst) {
                self.hold.started.notify_one();
                self.hold.release.notified().await;
            }
            self.db.revoke_user(username, sql, terminate, gate).await
        })
    }
    fn rotate_root<'a>(&'a self, username: &'a str, password: &'a str, sql: &'a [String]) -> PluginFuture<'a, ()> {
        self.db.rotate_root(username, password, sql)
    }
    fn user_exists<'a>(&'a self, username: &'a str) -> PluginFuture<'a, bool> {
        self.db.user_exists(username)
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    plugin: FaultInjectingPlugin,
    hold: Arc<Hold>,
    username: String,
    lease_id: String,
}

impl Fixture {
    fn options(&self) -> EngineOptions {
        let plugin = HeldPlugin { db: self.plugin.clone(), hold: self.hold.clone() };
        let factory = move |_: &ConnectionWritten| Ok(Arc::new(plugin.clone()) as Arc<dyn DatabasePlugin>);
        EngineOptions {
            clock: self.clock.clone(),
            plugin_factory: Some(PluginFactory(Arc::new(factory))),
            ..EngineOptions::default()
        }
    }

    /// A directory holding one lease with a 1 h TTL, closed, and the clock 2 h on.
    fn with_an_expired_lease() -> Fixture {
        let mut f = Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::new(T0)),
            plugin: FaultInjectingPlugin::default(),
            hold: Arc::default(),
            username: String::new(),
            lease_id: String::new(),
        };
        let (engine, root) = Engine::init(f.dir.path(), f.options()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ok = |path: &str, operation, data| {
            rt.block_on(engine.request(root.expose(), operation, path, data)).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        ok("sys/mounts/database", Operation::Update, json!({"type": "database"}));
        ok(
            "database/config/pg",
            Operation::Update,
            json!({"plugin_name": "postgresql-database-plugin", "allowed_roles": "*", "username": "admin",
                   "password": "pw", "connection_url": "postgresql://{{username}}:{{password}}@sim/db"}),
        );
        ok(
            "database/roles/app",
            Operation::Update,
            json!({"db_name": "pg", "default_ttl": "1h", "creation_statements": "CREATE ROLE \"{{name}}\";"}),
        );
        let issued = ok("database/creds/app", Operation::Read, Value::Null);
        f.lease_id = issued.lease_id;
        f.username = issued.data.unwrap()["username"].as_str().unwrap().to_string();
        engine.close();
        f.clock.advance_ms(2 * 3_600_000);
        f
    }

    /// The lease as the log records it (`None`: gone).
    fn lease(&self) -> Option<Lease> {
        let engine = Engine::open(self.dir.path(), self.options()).unwrap();
        let lease = engine.with_state(|s| s.leases.get(self.lease_id.as_str()).cloned());
        engine.close();
        lease
    }

    fn lease_is_recorded(&self) -> bool {
        self.lease().is_some()
    }

    fn user_exists(&self) -> bool {
        self.plugin.db.lock().unwrap().users.contains_key(&self.username)
    }

    /// Usernames the database dropped, in order.
    fn revoked(&self) -> Vec<String> {
        self.plugin.db.lock().unwrap().revoked.clone()
    }

    /// From now on, revocations are held at the database ([`Hold`]).
    fn hold_revocations(&self) {
        self.hold.on.store(true, Ordering::SeqCst);
    }

    /// A host whose expirer started the expired lease's revocation, closed with
    /// a grace of 1 ms while the database never answered: the revocation
    /// interrupted. Then the database is released, so the next attempt finishes.
    fn with_an_interrupted_revocation() -> (Fixture, Closed) {
        let f = Fixture::with_an_expired_lease();
        f.hold_revocations();
        let options = HostOptions { expirer_grace: Duration::from_millis(1), ..HostOptions::default() };
        let host = Host::open(f.dir.path(), f.options(), options).unwrap();
        host.block_on(f.hold.started.notified());
        let closed = host.close();
        f.hold.release.notify_one();
        (f, closed)
    }
}

#[test]
fn a_host_opened_and_closed_revokes_what_expired_while_nothing_ran() {
    let f = Fixture::with_an_expired_lease();
    assert!(f.user_exists() && f.lease_is_recorded());
    let host = Host::open(f.dir.path(), f.options(), HostOptions::default()).unwrap();
    // The expirer's first pass always runs, and closing waits for it.
    let closed = host.close();
    assert!(!closed.interrupted);
    assert!(!f.user_exists(), "the expired lease's user was dropped");
    assert!(!f.lease_is_recorded(), "its revocation is in the log");
}

#[test]
fn without_a_background_expirer_expire_now_runs_what_is_due() {
    let f = Fixture::with_an_expired_lease();
    let options = HostOptions { expirer: false, ..HostOptions::default() };
    let host = Host::open(f.dir.path(), f.options(), options).unwrap();
    assert!(f.user_exists(), "nothing expires on its own without the expirer");
    host.expire_now().unwrap();
    assert!(!f.user_exists());
    assert!(host.engine().with_state(|s| s.leases.is_empty()));
    host.close();
}

#[test]
fn close_waits_for_the_revocation_the_expirer_started() {
    let f = Fixture::with_an_expired_lease();
    f.hold_revocations();
    let options = HostOptions { expirer_grace: Duration::from_secs(600), ..HostOptions::default() };
    let host = Host::open(f.dir.path(), f.options(), options).unwrap();
    // The first pass always runs: the expired lease's revocation reaches the
    // database. The database answers only once closing has begun, so a close
    // that cut the pass short (an abort) would leave it half done.
    host.block_on(f.hold.started.notified());
    let mut stopping = host.stopping().expect("the expirer runs");
    let hold = f.hold.clone();
    host.runtime().spawn(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
        hold.release.notify_one();
    });
    let closed = host.close();
    assert!(!closed.interrupted);
    assert_eq!(f.revoked(), std::slice::from_ref(&f.username), "the database user was dropped");
    assert_eq!(f.lease(), None, "the revocation's outcome is in the log: the lease is gone");
}

#[test]
fn past_the_grace_an_interrupted_revocation_is_left_to_the_next_open() {
    let (f, closed) = Fixture::with_an_interrupted_revocation();
    assert!(closed.interrupted);
    let lease = f.lease().expect("still recorded");
    assert!(matches!(lease.status, LeaseStatus::Revoking(_)), "{lease:?}");
    // Interrupted, not refused: no failure is recorded, so none may be reported.
    assert_eq!(lease.revoke_attempts, 0);
    assert!(f.revoked().is_empty());

    // The next open's recovery finishes it before anything else runs.
    let host = Host::open(f.dir.path(), f.options(), HostOptions::default()).unwrap();
    assert_eq!(host.recovered(), Recovered { revoked: 1, ..Recovered::default() });
    assert!(!host.close().interrupted);
    assert_eq!(f.lease(), None);
    assert_eq!(f.revoked(), std::slice::from_ref(&f.username));
}

#[test]
fn with_recovery_off_the_interrupted_revocation_waits_for_the_callers_recover() {
    let (f, _) = Fixture::with_an_interrupted_revocation();
    let options = HostOptions { recover: false, expirer: false, ..HostOptions::default() };
    let host = Host::open(f.dir.path(), f.options(), options).unwrap();
    assert_eq!(host.recovered(), Recovered::default(), "the host recovered nothing");
    let status = host.engine().with_state(|s| s.leases[f.lease_id.as_str()].status);
    assert!(matches!(status, LeaseStatus::Revoking(_)), "{status:?}");
    assert!(f.user_exists());
    // The caller recovers when it chooses to.
    let recovered = host.block_on(host.engine().recover()).unwrap();
    assert_eq!(recovered, Recovered { revoked: 1, ..Recovered::default() });
    assert!(!f.user_exists());
    assert!(host.engine().with_state(|s| s.leases.is_empty()));
    host.close();
}

/// A server hosts the engine on its own runtime (`Host::start_in`): the same
/// recovery and expiry as `Host::start`, and `close_in` closes it, durable.
#[test]
fn a_host_started_in_the_callers_runtime_recovers_expires_and_closes() {
    let f = Fixture::with_an_expired_lease();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let closed = rt.block_on(async {
        let engine = Engine::open(f.dir.path(), f.options()).unwrap();
        let host = Host::start_in(engine, HostOptions::default()).await.unwrap();
        // The expirer's first pass runs at once: the expired lease is revoked.
        let engine = host.engine().clone();
        for _ in 0..1000 {
            if engine.with_state(|s| !s.leases.contains_key(f.lease_id.as_str())) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(engine);
        host.close_in().await
    });
    assert!(!closed.interrupted);
    assert!(!f.user_exists(), "the expired lease's user is dropped");
    assert!(!f.lease_is_recorded(), "and the log says so, durable across a reopen");
}

/// `sys/leases/revoke` with `sync: false` records the intent and answers
/// `queued`; the expirer runs the revocation. The path form
/// (`sys/leases/revoke/<lease_id>`) names the lease in the path. The directory
/// is made with a chosen root token (`Engine::init_with_root_token`, dev mode).
#[test]
fn a_queued_revoke_is_an_intent_the_expirer_finishes() {
    let mut f = Fixture::with_an_expired_lease();
    f.dir = tempfile::tempdir().unwrap();
    let root = lessor_engine::auth::tokens::TokenSecret::chosen("root-for-tests").unwrap();
    assert!(lessor_engine::auth::tokens::TokenSecret::chosen("has space").is_err());
    assert!(lessor_engine::auth::tokens::TokenSecret::chosen("").is_err());
    let engine = Engine::init_with_root_token(f.dir.path(), f.options(), root).unwrap();
    assert!(Engine::initialized(f.dir.path()).unwrap());
    let host = Host::start(engine, HostOptions { expirer: false, ..HostOptions::default() }).unwrap();
    let engine = host.engine().clone();
    let ok = |operation, path: &str, data| {
        host.block_on(engine.request("root-for-tests", operation, path, data)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    ok(Operation::Update, "sys/mounts/database", json!({"type": "database", "options": {}, "local": false}));
    ok(
        Operation::Update,
        "database/config/pg",
        json!({"plugin_name": "postgresql-database-plugin", "allowed_roles": "*", "username": "admin",
               "password": "pw", "connection_url": "postgresql://{{username}}:{{password}}@sim/db"}),
    );
    ok(
        Operation::Update,
        "database/roles/app",
        json!({"db_name": "pg", "creation_statements": "CREATE ROLE \"{{name}}\";"}),
    );
    let first = ok(Operation::Read, "database/creds/app", Value::Null);
    let second = ok(Operation::Read, "database/creds/app", Value::Null);

    // Queued: the lease is revoking, the user still there until the expirer runs.
    let queued = ok(Operation::Update, "sys/leases/revoke", json!({"lease_id": first.lease_id, "sync": false}));
    assert!(queued.queued);
    let status = engine.with_state(|s| s.leases.get(first.lease_id.as_str()).map(|l| l.status));
    assert!(matches!(status, Some(LeaseStatus::Revoking(_))), "{status:?}");
    host.expire_now().unwrap();
    assert!(engine.with_state(|s| !s.leases.contains_key(first.lease_id.as_str())));

    // The path form, synchronous by default: the user is dropped when it
    // answers, and a lookup after it (read-your-writes, though the outcome rides
    // the next group commit) no longer finds the lease.
    let done = ok(Operation::Update, &format!("sys/leases/revoke/{}", second.lease_id), Value::Null);
    assert!(!done.queued);
    let username = second.data.as_ref().unwrap()["username"].as_str().unwrap().to_string();
    assert!(!f.plugin.db.lock().unwrap().users.contains_key(&username), "the user outlived the synchronous revoke");
    let lookup = host.block_on(engine.request(
        "root-for-tests",
        Operation::Update,
        "sys/leases/lookup",
        json!({"lease_id": second.lease_id}),
    ));
    assert_eq!(lookup.map(drop).map_err(|e| e.kind()), Err(ErrorKind::NotFound));
    assert!(engine.with_state(|s| !s.leases.contains_key(second.lease_id.as_str())));

    // A field Vault's clients send is accepted at its default, refused otherwise.
    let refused = host.block_on(engine.request(
        "root-for-tests",
        Operation::Update,
        "sys/mounts/other",
        json!({"type": "database", "seal_wrap": true}),
    ));
    assert!(matches!(refused, Err(ref e) if e.kind() == lessor_engine::request::ErrorKind::InvalidArgument));
    assert!(engine.with_state(|s| !s.mounts.contains_key("other/")), "a refused request changes nothing");
    drop(engine);
    host.close();
}
