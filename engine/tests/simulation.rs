//! Deterministic simulation of the lease lifecycle: a manual clock, a
//! fault-injecting plugin, and random issue / renew / revoke / token-revoke /
//! clock-advance / outage / crash-and-reopen steps, checked after every step
//! against a reference model:
//! - I2: every user in the database belongs to a lease in the state;
//! - I3: no user is revoked before its lease expired unless it was revoked on purpose;
//! - no acknowledged lease is lost;
//! - with the database up, no lease outlives its expiry by more than a tick.
//!
//! A failure names its seed: `LESSOR_SIM_SEED=<seed> cargo test -p lessor-engine --test simulation`.
//! `LESSOR_SIM_SEEDS=<n>` runs more seeds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lessor_engine::clock::ManualClock;
use lessor_engine::expiry::ExpiryOptions;
use lessor_engine::request::Operation;
use lessor_engine::state::LeaseStatus;
use lessor_engine::testing::{FaultInjectingPlugin, SplitMix64};
use lessor_engine::{Engine, EngineOptions};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000_000;
const TICK_MS: u64 = 1_000;
const STEPS: usize = 1_500;

struct Sim {
    seed: u64,
    rng: SplitMix64,
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    plugin: FaultInjectingPlugin,
    engine: Option<Arc<Engine>>,
    root: String,
    rt: tokio::runtime::Runtime,
    /// Acknowledged leases not revoked on purpose: id → (username, expiry).
    model: BTreeMap<String, (String, i64)>,
    /// Usernames revoked on purpose (explicitly or through their token).
    revoked_on_purpose: BTreeSet<String>,
    /// How far into `plugin.db.revoked` the checks have looked.
    revoked_seen: usize,
    token: String,
    token_accessor: String,
}

impl Sim {
    fn options(&self) -> EngineOptions {
        EngineOptions {
            clock: self.clock.clone(),
            snapshot_every_events: 64,
            plugin_factory: Some(self.plugin.factory()),
            expiry: ExpiryOptions {
                tick_ms: TICK_MS,
                retry_ms_first: 1_000,
                retry_ms_max: 4_000,
                revoke_attempts_budget: 3,
                ..ExpiryOptions::default()
            },
            ..EngineOptions::default()
        }
    }

    fn new(seed: u64) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let plugin = FaultInjectingPlugin::default();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut sim = Sim {
            seed,
            rng: SplitMix64(seed),
            dir,
            clock,
            plugin,
            engine: None,
            root: String::new(),
            rt,
            model: BTreeMap::new(),
            revoked_on_purpose: BTreeSet::new(),
            revoked_seen: 0,
            token: String::new(),
            token_accessor: String::new(),
        };
        let (engine, root) = Engine::init(sim.dir.path(), sim.options()).unwrap();
        sim.engine = Some(Arc::new(engine));
        sim.root = root.expose().to_string();
        sim.req(Operation::Update, "sys/mounts/database", json!({"type": "database"})).unwrap();
        let config = json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@sim/db",
            "username": "admin", "password": "pw", "allowed_roles": "*",
        });
        sim.req(Operation::Update, "database/config/pg", config).unwrap();
        let ttl = 5 + sim.rng.below(40);
        let role = json!({"db_name": "pg", "creation_statements": "CREATE ROLE \"{{name}}\";", "default_ttl": ttl, "max_ttl": 120});
        sim.req(Operation::Update, "database/roles/r", role).unwrap();
        sim.req(
            Operation::Update,
            "sys/policy/r",
            json!({"policy": "path \"database/creds/r\" { capabilities = [\"read\"] }"}),
        )
        .unwrap();
        sim.new_token();
        sim
    }

    fn engine(&self) -> &Arc<Engine> {
        self.engine.as_ref().unwrap()
    }

    fn req(&self, op: Operation, path: &str, data: Value) -> Result<lessor_engine::request::Response, String> {
        self.rt.block_on(self.engine().request(&self.root, op, path, data)).map_err(|e| e.to_string())
    }

    fn new_token(&mut self) {
        let auth =
            self.req(Operation::Update, "auth/token/create", json!({"policies": ["r"], "ttl": "1000h"})).unwrap();
        let auth = auth.auth.unwrap();
        self.token = auth.client_token;
        self.token_accessor = auth.accessor;
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "seed {}: {what} (reproduce: LESSOR_SIM_SEED={} cargo test -p lessor-engine --test simulation)",
            self.seed, self.seed
        )
    }

    fn now(&self) -> i64 {
        lessor_engine::clock::Clock::now_ms(self.clock.as_ref())
    }

    fn issue(&mut self, token: &str) {
        let r = self.rt.block_on(self.engine().request(token, Operation::Read, "database/creds/r", Value::Null));
        if let Ok(r) = r {
            let user = r.data.unwrap()["username"].as_str().unwrap().to_string();
            let expiry = self.engine().with_state(|s| s.leases.get(&r.lease_id).map(|l| l.expire_time_ms));
            let Some(expiry) = expiry else { self.fail("an acknowledged issue has no lease") };
            self.model.insert(r.lease_id, (user, expiry));
        }
    }

    fn pick(&mut self) -> Option<String> {
        if self.model.is_empty() {
            return None;
        }
        let i = self.rng.below(self.model.len() as u64) as usize;
        self.model.keys().nth(i).cloned()
    }

    fn expire(&mut self) {
        loop {
            match self.rt.block_on(self.engine().expire_due()) {
                Ok(report) if report.more_due => continue,
                Ok(_) => break,
                Err(e) => self.fail(&format!("expire_due: {e}")),
            }
        }
        // Leases the expirer ended leave the model (they were due).
        let live: BTreeSet<String> = self.engine().with_state(|s| s.leases.keys().map(|k| k.to_string()).collect());
        let now = self.now();
        self.model.retain(|id, (_, expiry)| live.contains(id) || *expiry > now);
    }

    fn crash_and_reopen(&mut self) {
        let engine = Arc::into_inner(self.engine.take().unwrap()).unwrap();
        engine.close();
        let engine = Arc::new(Engine::open(self.dir.path(), self.options()).unwrap());
        self.engine = Some(engine);
        if let Err(e) = self.rt.block_on(self.engine().recover()) {
            self.fail(&format!("recover: {e}"));
        }
    }

    fn step(&mut self) {
        match self.rng.below(10) {
            0..=2 => {
                let token = self.token.clone();
                self.issue(&token);
            }
            3 => {
                if let Some(id) = self.pick() {
                    let inc = 1 + self.rng.below(60);
                    if self
                        .req(Operation::Update, "sys/leases/renew", json!({"lease_id": id, "increment": inc}))
                        .is_ok()
                    {
                        // What the caller was told: the renewal's intent (its outcome
                        // may still be riding to the log).
                        let expiry = self.engine().with_state(|s| {
                            let lease = &s.leases[&id];
                            lease.renewing_to_ms.unwrap_or(lease.expire_time_ms)
                        });
                        self.model.get_mut(&id).unwrap().1 = expiry;
                    }
                }
            }
            4 => {
                if let Some(id) = self.pick() {
                    let (user, _) = self.model.remove(&id).unwrap();
                    self.revoked_on_purpose.insert(user);
                    let _ = self.req(Operation::Update, "sys/leases/revoke", json!({"lease_id": id}));
                }
            }
            5 => {
                // Revoke the app token: all its leases go, on purpose.
                let accessor = self.token_accessor.clone();
                let owned: Vec<String> = self.engine().with_state(|s| {
                    s.leases.values().filter(|l| *l.accessor == *accessor).map(|l| l.lease_id.to_string()).collect()
                });
                for id in owned {
                    if let Some((user, _)) = self.model.remove(&id) {
                        self.revoked_on_purpose.insert(user);
                    }
                }
                self.req(Operation::Update, "auth/token/revoke-accessor", json!({"accessor": accessor})).unwrap();
                self.new_token();
            }
            6 => {
                self.clock.advance_ms(self.rng.below(20_000) as i64);
                self.expire();
            }
            7 => {
                let mut db = self.plugin.db.lock().unwrap();
                db.down = !db.down;
            }
            8 => self.crash_and_reopen(),
            _ => {
                // A crash between COMMIT and the outcome: the plugin commits and
                // hangs; the request is abandoned; the process "dies".
                self.plugin.db.lock().unwrap().hang_after_commit = true;
                let token = self.token.clone();
                let engine = self.engine().clone();
                let abandoned = self.rt.block_on(async {
                    tokio::time::timeout(
                        std::time::Duration::from_millis(20),
                        engine.request(&token, Operation::Read, "database/creds/r", Value::Null),
                    )
                    .await
                });
                drop(engine);
                self.plugin.db.lock().unwrap().hang_after_commit = false;
                if let Ok(Ok(r)) = abandoned {
                    // The database was down: nothing hung, the issue was acknowledged.
                    let user = r.data.unwrap()["username"].as_str().unwrap().to_string();
                    let expiry = self.engine().with_state(|s| s.leases[&r.lease_id].expire_time_ms);
                    self.model.insert(r.lease_id, (user, expiry));
                }
                self.crash_and_reopen();
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let now = self.now();
        let (lease_users, leases): (BTreeSet<String>, BTreeMap<String, (LeaseStatus, i64)>) =
            self.engine().with_state(|s| {
                (
                    s.leases.values().map(|l| l.username.to_string()).collect(),
                    s.leases.iter().map(|(id, l)| (id.to_string(), (l.status, l.expire_time_ms))).collect(),
                )
            });
        let db = self.plugin.db.lock().unwrap();
        // I2: no orphan.
        if let Some(orphan) = db.users.keys().find(|u| !lease_users.contains(*u)) {
            let orphan = orphan.clone();
            drop(db);
            self.fail(&format!("database user {orphan} belongs to no lease"));
        }
        // I3: nothing revoked early.
        let new_revocations: Vec<String> = db.revoked[self.revoked_seen..].to_vec();
        let down = db.down;
        drop(db);
        self.revoked_seen += new_revocations.len();
        for user in new_revocations {
            if let Some((_, (_, expiry))) = self.model.iter().find(|(_, (u, _))| *u == user)
                && *expiry > now
                && !self.revoked_on_purpose.contains(&user)
            {
                self.fail(&format!("{user} revoked at {now}, before its expiry {expiry}"));
            }
        }
        // No acknowledged lease lost.
        for (id, (_, expiry)) in &self.model {
            if *expiry > now && !leases.contains_key(id) {
                self.fail(&format!("acknowledged lease {id} (expiring {expiry}) is gone at {now}"));
            }
        }
        // Timely: with the database up, nothing Active is past its expiry by a tick
        // once the expirer has run.
        if !down && self.revoked_seen > 0 {
            for (id, (status, expiry)) in &leases {
                if *status == LeaseStatus::Active && expiry + (TICK_MS as i64) < now - 20_000 {
                    self.fail(&format!("lease {id} expired at {expiry} is still active at {now}"));
                }
            }
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("LESSOR_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("LESSOR_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    (0..n).map(|i| 0x5EED_0000 + i).collect()
}

#[test]
fn the_lease_lifecycle_holds_its_invariants_under_faults_and_crashes() {
    for seed in seeds() {
        let mut sim = Sim::new(seed);
        for _ in 0..STEPS {
            sim.step();
        }
        // The end: database up, time far ahead, everything expires.
        sim.plugin.db.lock().unwrap().down = false;
        sim.clock.advance_ms(10 * 3_600_000);
        sim.expire();
        sim.clock.advance_ms(60_000);
        sim.expire();
        sim.check();
        let left = sim.engine().with_state(|s| s.leases.len());
        if left != 0 || !sim.plugin.db.lock().unwrap().users.is_empty() {
            let leases = sim.engine().with_state(|s| format!("{:?}", s.leases.values().collect::<Vec<_>>()));
            sim.fail(&format!("{left} leases still live after everything expired: {leases}"));
        }
    }
}
