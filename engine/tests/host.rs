//! `Host`: an embedder who only opens and closes a host still gets recovery and
//! expiry — the lease that expired while nothing ran is revoked, its user
//! dropped — and `expire_now` runs what is due on demand. The database is the
//! fault-injecting test double (no SQL here).

use std::sync::Arc;

use lessor_engine::clock::ManualClock;
use lessor_engine::request::Operation;
use lessor_engine::testing::FaultInjectingPlugin;
use lessor_engine::{Engine, EngineOptions, Host, HostOptions};
use serde_json::{Value, json};

const T0: i64 = 1_800_000_000_000;

struct Fixture {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    plugin: FaultInjectingPlugin,
    username: String,
    lease_id: String,
}

impl Fixture {
    fn options(&self) -> EngineOptions {
        EngineOptions {
            clock: self.clock.clone(),
            plugin_factory: Some(self.plugin.factory()),
            ..EngineOptions::default()
        }
    }

    /// A directory holding one lease with a 1 h TTL, closed, and the clock 2 h on.
    fn with_an_expired_lease() -> Fixture {
        let mut f = Fixture {
            dir: tempfile::tempdir().unwrap(),
            clock: Arc::new(ManualClock::new(T0)),
            plugin: FaultInjectingPlugin::default(),
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

    fn lease_is_recorded(&self) -> bool {
        let engine = Engine::open(self.dir.path(), self.options()).unwrap();
        let recorded = engine.with_state(|s| s.leases.contains_key(self.lease_id.as_str()));
        engine.close();
        recorded
    }

    fn user_exists(&self) -> bool {
        self.plugin.db.lock().unwrap().users.contains_key(&self.username)
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
