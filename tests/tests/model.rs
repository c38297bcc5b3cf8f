//! Model-based test of the whole request API: seeded random sequences of requests
//! — mounts (enable, tune, disable), connections, roles, policies, tokens (create,
//! child tokens, revoke, revoke-orphan), issue, renew, revoke, revoke-prefix,
//! lookups, denied and invalid requests — interleaved with clock advances (the
//! expirer), snapshots and restarts (close, reopen, recover), run against the
//! engine and against a small reference model of Vault's semantics. After every
//! step the engine's answer (success, or the kind of error) must be the model's,
//! and the engine's whole state — mounts, connections (live and retired), roles,
//! policies, tokens, leases with their expiries and revocation reasons, request
//! counters — and the users in the (fault-injecting, SQL-free) database must
//! equal the model's. A reopen must replay to the same digest (I4).
//!
//! `LESSOR_MODEL_SEED=<n>` runs one seed; `LESSOR_MODEL_SEEDS=<n>` (default 16)
//! and `LESSOR_MODEL_STEPS=<n>` (default 600) scale it. Failures name the seed
//! and the step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use lessor_engine::clock::ManualClock;
use lessor_engine::event::RevokeReason;
use lessor_engine::expiry::ExpiryOptions;
use lessor_engine::request::{ErrorKind, Operation, RequestError, Response};
use lessor_engine::state::LeaseStatus;
use lessor_engine::testing::{FaultInjectingPlugin, SplitMix64};
use lessor_engine::{Engine, EngineOptions};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000_000;
const SYSTEM_TTL_MS: u64 = 768 * 3_600_000;
const MOUNTS: [&str; 2] = ["database/", "db2/"];
const CONNECTIONS: [&str; 2] = ["pg", "pg2"];
// `r1x` shares a string prefix with `r1`: a lease prefix is a path, so
// revoke-prefix of `database/creds/r1` must never reach `r1x`'s leases.
const ROLES: [&str; 4] = ["r1", "r2", "r3", "r1x"];
const POLICIES: [&str; 3] = ["p0", "p1", "p2"];
const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// The policy texts the test writes, and what the model knows of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Text {
    /// `database/creds/*` read, `auth/token/create` update.
    Issue,
    /// `database/creds/*` deny.
    Deny,
    /// `database/creds/r1` read (an exact path: beats the glob, even a denied one).
    R1,
    /// `sys/leases/revoke` update.
    Revoke,
}

impl Text {
    const ALL: [Text; 4] = [Text::Issue, Text::Deny, Text::R1, Text::Revoke];

    fn hcl(self) -> &'static str {
        match self {
            Text::Issue => {
                "path \"database/creds/*\" { capabilities = [\"read\"] }\npath \"auth/token/create\" { capabilities = [\"update\"] }"
            }
            Text::Deny => "path \"database/creds/*\" { capabilities = [\"deny\"] }",
            Text::R1 => "path \"database/creds/r1\" { capabilities = [\"read\"] }",
            Text::Revoke => "path \"sys/leases/revoke\" { capabilities = [\"update\"] }",
        }
    }

    /// `(pattern, capability)`: `r` read, `u` update, `d` deny.
    fn rules(self) -> &'static [(&'static str, char)] {
        match self {
            Text::Issue => &[("database/creds/*", 'r'), ("auth/token/create", 'u')],
            Text::Deny => &[("database/creds/*", 'd')],
            Text::R1 => &[("database/creds/r1", 'r')],
            Text::Revoke => &[("sys/leases/revoke", 'u')],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MMount {
    default_ms: u64,
    max_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MRole {
    db: String,
    default_ms: u64,
    max_ms: u64,
}

#[derive(Clone, Debug)]
struct MToken {
    secret: String,
    parent: Option<String>,
    policies: Vec<String>,
    expire: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MLease {
    mount: String,
    role: String,
    conn: String,
    username: String,
    accessor: String,
    expire: i64,
    expire_max: i64,
    revoking: Option<RevokeReason>,
}

/// The reference model.
#[derive(Debug, Default)]
struct Model {
    mounts: BTreeMap<String, MMount>,
    /// Connection → its allowed_roles patterns.
    conns: BTreeMap<(String, String), Vec<String>>,
    retired: BTreeSet<(String, String)>,
    roles: BTreeMap<(String, String), MRole>,
    /// Policy name → text (`None`: the built-in `default`).
    policies: BTreeMap<String, Option<Text>>,
    tokens: BTreeMap<String, MToken>,
    leases: BTreeMap<String, MLease>,
    requests: u64,
    denied: u64,
}

fn ttl_or(primary: u64, fallback: u64) -> u64 {
    if primary > 0 { primary } else { fallback }
}

fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => name.len() >= pre.len() + post.len() && name.starts_with(pre) && name.ends_with(post),
    }
}

impl Model {
    /// The token behind `secret` if it may make requests now.
    fn authenticate(&self, secret: &str, now: i64) -> Result<(String, MToken), ErrorKind> {
        let (accessor, token) =
            self.tokens.iter().find(|(_, t)| t.secret == secret).ok_or(ErrorKind::PermissionDenied)?;
        if token.expire.is_some_and(|e| e <= now) {
            return Err(ErrorKind::PermissionDenied);
        }
        Ok((accessor.clone(), token.clone()))
    }

    /// Vault's ACL over the texts this test writes: an exact path first, else the
    /// glob; capabilities merged across policies; deny wins.
    fn allows(&self, token: &MToken, path: &str, cap: char) -> bool {
        if token.policies.iter().any(|p| p == "root") {
            return true;
        }
        let mut rules: Vec<(&str, char)> = Vec::new();
        for name in &token.policies {
            match self.policies.get(name) {
                Some(Some(text)) => rules.extend(text.rules()),
                // The built-in default policy, as far as these paths go.
                Some(None) => rules.push(("sys/leases/renew", 'u')),
                None => {}
            }
        }
        let exact: Vec<char> = rules.iter().filter(|(p, _)| *p == path).map(|(_, c)| *c).collect();
        let caps = if exact.is_empty() {
            rules.iter().filter(|(p, _)| p.ends_with('*') && glob(p, path)).map(|(_, c)| *c).collect()
        } else {
            exact
        };
        !caps.contains(&'d') && caps.contains(&cap)
    }

    /// The mount a path routes to (the longest enabled prefix).
    fn route(&self, path: &str) -> Option<String> {
        let with_slash = format!("{}/", path.trim_end_matches('/'));
        self.mounts.keys().filter(|m| with_slash.starts_with(m.as_str())).max_by_key(|m| m.len()).cloned()
    }

    fn retire(&mut self, key: (String, String)) {
        if self.leases.values().any(|l| l.mount == key.0 && l.conn == key.1) {
            self.retired.insert(key);
        }
    }

    fn descendants(&self, accessor: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut frontier = vec![accessor.to_string()];
        while let Some(parent) = frontier.pop() {
            for (a, t) in &self.tokens {
                if t.parent.as_deref() == Some(parent.as_str()) {
                    out.push(a.clone());
                    frontier.push(a.clone());
                }
            }
        }
        out
    }

    /// Starts revocation of `leases` (those not being revoked yet) for `reason`.
    fn start_revoking(&mut self, reason: RevokeReason, pick: impl Fn(&str, &MLease) -> bool) {
        for (id, lease) in self.leases.iter_mut() {
            if lease.revoking.is_none() && pick(id, lease) {
                lease.revoking = Some(reason);
            }
        }
    }
}

struct Run {
    seed: u64,
    step: usize,
    rng: SplitMix64,
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    plugin: FaultInjectingPlugin,
    engine: Option<Arc<Engine>>,
    rt: tokio::runtime::Runtime,
    root: String,
    root_accessor: String,
    m: Model,
    /// Steps by kind, for the report.
    tally: BTreeMap<&'static str, u64>,
    /// The step being run, and what its requests got, for the report.
    kind: &'static str,
    outcomes: BTreeMap<String, u64>,
}

type Reply = Result<Response, RequestError>;

impl Run {
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "seed {} step {}: {what}\n(reproduce: LESSOR_MODEL_SEED={} cargo test -p lessor-tests --test model)",
            self.seed, self.step, self.seed
        )
    }

    fn options(&self) -> EngineOptions {
        EngineOptions {
            clock: self.clock.clone(),
            snapshot_every_events: 40,
            plugin_factory: Some(self.plugin.factory()),
            expiry: ExpiryOptions { tick_ms: 1_000, ..ExpiryOptions::default() },
            ..EngineOptions::default()
        }
    }

    fn new(seed: u64) -> Run {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.unwrap();
        let mut run = Run {
            seed,
            step: 0,
            rng: SplitMix64(seed),
            dir,
            clock: Arc::new(ManualClock::new(T0)),
            plugin: FaultInjectingPlugin::default(),
            engine: None,
            rt: tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            root: String::new(),
            root_accessor: String::new(),
            m: Model::default(),
            tally: BTreeMap::new(),
            kind: "setup",
            outcomes: BTreeMap::new(),
        };
        let (engine, root) = Engine::init(run.dir.path(), run.options()).unwrap();
        run.root = root.expose().to_string();
        run.root_accessor = engine.with_state(|s| s.tokens.keys().next().unwrap().clone());
        run.engine = Some(Arc::new(engine));
        run.m.policies.insert("default".into(), None);
        let token = MToken { secret: run.root.clone(), parent: None, policies: vec!["root".into()], expire: None };
        run.m.tokens.insert(run.root_accessor.clone(), token);
        run
    }

    fn engine(&self) -> &Arc<Engine> {
        self.engine.as_ref().unwrap()
    }

    fn now(&self) -> i64 {
        lessor_engine::clock::Clock::now_ms(self.clock.as_ref())
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    /// One of `of`, the first one three times in four (a working configuration
    /// most of the time, so issues get through).
    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        if self.below(4) > 0 { of[0] } else { of[self.below(of.len())] }
    }

    /// One request, counted the way the engine counts it.
    fn call(&mut self, secret: &str, op: Operation, path: &str, data: Value) -> Reply {
        let reply = self.rt.block_on(async {
            let reply = self.engine().request(secret, op, path, data).await;
            // Outcomes ride after replies: the model compares with the settled state.
            self.engine().settle_outcomes().await;
            reply
        });
        self.m.requests += 1;
        if matches!(reply, Err(RequestError::PermissionDenied(_))) {
            self.m.denied += 1;
        }
        let outcome = match &reply {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{:?}", e.kind()),
        };
        *self.outcomes.entry(format!("{} {outcome}", self.kind)).or_default() += 1;
        reply
    }

    /// The engine's answer must be the model's: success, or an error of that kind.
    fn expect(&self, what: &str, reply: &Reply, predicted: Result<(), ErrorKind>) {
        match (reply, predicted) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(kind)) if e.kind() == kind => {}
            (got, want) => self.fail(format!("{what}: the engine answered {got:?}, the model expected {want:?}")),
        }
    }

    /// A token to act as: root, a model token (maybe expired), or a bogus one.
    fn pick_caller(&mut self) -> String {
        let tokens: Vec<String> = self.m.tokens.values().map(|t| t.secret.clone()).collect();
        match self.below(10) {
            0..=3 => self.root.clone(),
            4 => "lsr.not-a-token-at-all".to_string(),
            _ => tokens[self.below(tokens.len())].clone(),
        }
    }

    fn pick_lease(&mut self) -> Option<String> {
        if self.m.leases.is_empty() || self.below(10) == 0 {
            return Some(format!("database/creds/r1/{}", "x".repeat(24)));
        }
        let i = self.below(self.m.leases.len());
        self.m.leases.keys().nth(i).cloned()
    }

    fn duration(&mut self, choices: &[(&str, u64)]) -> (Value, u64) {
        let (text, ms) = choices[self.below(choices.len())];
        if text.is_empty() { (Value::Null, 0) } else { (json!(text), ms) }
    }

    // --------------------------------------------------------------------------------
    // Steps.
    // --------------------------------------------------------------------------------

    fn enable_mount(&mut self) {
        let path = self.pick(&MOUNTS).to_string();
        let kind = if self.below(12) == 0 { "kv" } else { "database" };
        let (default, default_ms) = self.duration(&[("", 0), ("1h", 3_600_000), ("20m", 1_200_000)]);
        let (max, max_ms) = self.duration(&[("", 0), ("3h", 10_800_000), ("30m", 1_800_000)]);
        let mut config = serde_json::Map::new();
        if !default.is_null() {
            config.insert("default_lease_ttl".into(), default);
        }
        if !max.is_null() {
            config.insert("max_lease_ttl".into(), max);
        }
        let data = json!({"type": kind, "config": config});
        let reply = self.call(&self.root.clone(), Operation::Update, &format!("sys/mounts/{path}"), data);
        let overlaps = self.m.mounts.keys().any(|m| m.starts_with(&path) || path.starts_with(m.as_str()));
        let predicted = if kind != "database" || overlaps || (max_ms > 0 && default_ms > max_ms) {
            Err(ErrorKind::InvalidArgument)
        } else {
            self.m.mounts.insert(path.clone(), MMount { default_ms, max_ms });
            Ok(())
        };
        self.expect(&format!("enable {path}"), &reply, predicted);
    }

    fn tune_mount(&mut self) {
        let path = self.pick(&MOUNTS).to_string();
        let (default, default_ms) = self.duration(&[("", 0), ("2h", 7_200_000), ("10m", 600_000)]);
        let (max, max_ms) = self.duration(&[("", 0), ("4h", 14_400_000), ("15m", 900_000)]);
        let mut data = serde_json::Map::new();
        if !default.is_null() {
            data.insert("default_lease_ttl".into(), default.clone());
        }
        if !max.is_null() {
            data.insert("max_lease_ttl".into(), max.clone());
        }
        let reply = self.call(&self.root.clone(), Operation::Update, &format!("sys/mounts/{path}tune"), data.into());
        let predicted = match self.m.mounts.get(&path).cloned() {
            None => Err(ErrorKind::NotFound),
            Some(_) if !default.is_null() && !max.is_null() && max_ms > 0 && default_ms > max_ms => {
                Err(ErrorKind::InvalidArgument)
            }
            Some(old) => {
                let d = if default.is_null() { old.default_ms } else { default_ms };
                let x = if max.is_null() { old.max_ms } else { max_ms };
                if x > 0 && d > x {
                    Err(ErrorKind::InvalidArgument)
                } else {
                    self.m.mounts.insert(path.clone(), MMount { default_ms: d, max_ms: x });
                    Ok(())
                }
            }
        };
        self.expect(&format!("tune {path}"), &reply, predicted);
    }

    fn disable_mount(&mut self) {
        // Mostly the second mount: disabling the first wipes its configuration.
        let path = if self.below(4) == 0 { MOUNTS[0] } else { MOUNTS[1] }.to_string();
        let reply = self.call(&self.root.clone(), Operation::Delete, &format!("sys/mounts/{path}"), Value::Null);
        if self.m.mounts.remove(&path).is_some() {
            self.m.start_revoking(RevokeReason::MountDisabled, |_, l| l.mount == path);
            let conns: Vec<_> = self.m.conns.keys().filter(|(m, _)| *m == path).cloned().collect();
            for key in conns {
                self.m.conns.remove(&key);
                self.m.retire(key);
            }
            self.m.roles.retain(|(m, _), _| *m != path);
        }
        self.expect(&format!("disable {path}"), &reply, Ok(()));
    }

    fn write_connection(&mut self) {
        let mount = self.pick(&MOUNTS).to_string();
        let name = self.pick(&CONNECTIONS).to_string();
        let allowed: Vec<String> = match self.below(8) {
            0 => vec!["r1".into()],
            1 => vec!["r*".into()],
            2 => vec!["r2".into(), "r3".into()],
            _ => vec!["*".into()],
        };
        let data = json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@sim/db",
            "username": "admin",
            "password": "pw",
            "allowed_roles": allowed,
        });
        let reply = self.call(&self.root.clone(), Operation::Update, &format!("{mount}config/{name}"), data);
        let predicted = if self.m.mounts.contains_key(&mount) {
            let key = (mount.clone(), name.clone());
            self.m.retired.remove(&key);
            self.m.conns.insert(key, allowed);
            Ok(())
        } else {
            Err(ErrorKind::NotFound)
        };
        self.expect(&format!("write {mount}config/{name}"), &reply, predicted);
    }

    fn delete_connection(&mut self) {
        let mount = self.pick(&MOUNTS).to_string();
        let name = self.pick(&CONNECTIONS).to_string();
        let reply = self.call(&self.root.clone(), Operation::Delete, &format!("{mount}config/{name}"), Value::Null);
        let predicted = if self.m.mounts.contains_key(&mount) {
            let key = (mount.clone(), name.clone());
            if self.m.conns.remove(&key).is_some() {
                self.m.retire(key);
            }
            Ok(())
        } else {
            Err(ErrorKind::NotFound)
        };
        self.expect(&format!("delete {mount}config/{name}"), &reply, predicted);
    }

    fn write_role(&mut self) {
        let mount = self.pick(&MOUNTS).to_string();
        let name = self.pick(&ROLES).to_string();
        let db = self.pick(&CONNECTIONS).to_string();
        let (default, default_ms) = self.duration(&[("", 0), ("30s", 30_000), ("10m", 600_000), ("1h", 3_600_000)]);
        let (max, max_ms) = self.duration(&[("", 0), ("20m", 1_200_000), ("2h", 7_200_000)]);
        let mut data = json!({"db_name": db, "creation_statements": CREATION});
        if !default.is_null() {
            data["default_ttl"] = default.clone();
        }
        if !max.is_null() {
            data["max_ttl"] = max.clone();
        }
        let reply = self.call(&self.root.clone(), Operation::Update, &format!("{mount}roles/{name}"), data);
        let key = (mount.clone(), name.clone());
        let old = self.m.roles.get(&key).cloned();
        let d = if default.is_null() { old.as_ref().map_or(0, |o| o.default_ms) } else { default_ms };
        let x = if max.is_null() { old.as_ref().map_or(0, |o| o.max_ms) } else { max_ms };
        let predicted = if !self.m.mounts.contains_key(&mount) {
            Err(ErrorKind::NotFound)
        } else if !self.m.conns.contains_key(&(mount.clone(), db.clone())) || (x > 0 && d > x) {
            Err(ErrorKind::InvalidArgument)
        } else {
            self.m.roles.insert(key, MRole { db, default_ms: d, max_ms: x });
            Ok(())
        };
        self.expect(&format!("write {mount}roles/{name}"), &reply, predicted);
    }

    fn delete_role(&mut self) {
        let mount = self.pick(&MOUNTS).to_string();
        let name = self.pick(&ROLES).to_string();
        let reply = self.call(&self.root.clone(), Operation::Delete, &format!("{mount}roles/{name}"), Value::Null);
        let predicted = if self.m.mounts.contains_key(&mount) {
            self.m.roles.remove(&(mount.clone(), name.clone()));
            Ok(())
        } else {
            Err(ErrorKind::NotFound)
        };
        self.expect(&format!("delete {mount}roles/{name}"), &reply, predicted);
    }

    fn write_policy(&mut self) {
        let name = if self.below(15) == 0 { "root".to_string() } else { self.pick(&POLICIES).to_string() };
        let broken = self.below(12) == 0;
        let text = Text::ALL[self.below(Text::ALL.len())];
        let hcl = if broken { "path \"x\" { capabilities = [\"fly\"] }" } else { text.hcl() };
        let reply =
            self.call(&self.root.clone(), Operation::Update, &format!("sys/policy/{name}"), json!({"policy": hcl}));
        let predicted = if broken || name == "root" {
            Err(ErrorKind::InvalidArgument)
        } else {
            self.m.policies.insert(name.clone(), Some(text));
            Ok(())
        };
        self.expect(&format!("write policy {name}"), &reply, predicted);
    }

    fn delete_policy(&mut self) {
        let name = match self.below(8) {
            0 => "default".to_string(),
            _ => self.pick(&POLICIES).to_string(),
        };
        let reply = self.call(&self.root.clone(), Operation::Delete, &format!("sys/policy/{name}"), Value::Null);
        let predicted = if name == "default" {
            Err(ErrorKind::InvalidArgument)
        } else {
            self.m.policies.remove(&name);
            Ok(())
        };
        self.expect(&format!("delete policy {name}"), &reply, predicted);
    }

    fn create_token(&mut self) {
        let caller = self.pick_caller();
        let mut wanted: Vec<String> = Vec::new();
        for p in POLICIES {
            if self.below(2) == 0 {
                wanted.push(p.to_string());
            }
        }
        let (ttl, ttl_ms) = self.duration(&[("1h", 3_600_000), ("24h", 86_400_000), ("", 0)]);
        let mut data = json!({"policies": wanted});
        if !ttl.is_null() {
            data["ttl"] = ttl;
        }
        let reply = self.call(&caller, Operation::Update, "auth/token/create", data);
        let now = self.now();
        let predicted = match self.m.authenticate(&caller, now) {
            Err(kind) => Err(kind),
            Ok((_, parent)) if !self.m.allows(&parent, "auth/token/create", 'u') => Err(ErrorKind::PermissionDenied),
            Ok((_, parent))
                if !parent.policies.iter().any(|p| p == "root")
                    && wanted.iter().any(|w| !parent.policies.contains(w)) =>
            {
                Err(ErrorKind::PermissionDenied)
            }
            Ok((parent_accessor, parent)) => {
                let Ok(r) = &reply else { self.fail(format!("token create refused: {reply:?}")) };
                let auth = r.auth.clone().unwrap();
                let mut policies = wanted.clone();
                policies.push("default".into());
                policies.sort();
                policies.dedup();
                let ttl_ms = ttl_or(ttl_ms, SYSTEM_TTL_MS);
                let mut expire = now + ttl_ms as i64;
                if let Some(parent_expiry) = parent.expire {
                    expire = expire.min(parent_expiry);
                }
                if auth.policies != policies {
                    self.fail(format!("token create: policies {:?}, the model says {policies:?}", auth.policies));
                }
                let token =
                    MToken { secret: auth.client_token, parent: Some(parent_accessor), policies, expire: Some(expire) };
                self.m.tokens.insert(auth.accessor, token);
                Ok(())
            }
        };
        self.expect("token create", &reply, predicted);
    }

    fn revoke_token(&mut self, orphan: bool) {
        let candidates: Vec<(String, String)> = self
            .m
            .tokens
            .iter()
            .filter(|(a, _)| **a != self.root_accessor)
            .map(|(a, t)| (a.clone(), t.secret.clone()))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (accessor, secret) = candidates[self.below(candidates.len())].clone();
        let reply = if orphan {
            self.call(&self.root.clone(), Operation::Update, "auth/token/revoke-orphan", json!({"token": secret}))
        } else {
            let data = json!({"accessor": accessor});
            self.call(&self.root.clone(), Operation::Update, "auth/token/revoke-accessor", data)
        };
        let mut doomed = vec![accessor.clone()];
        if !orphan {
            doomed.extend(self.m.descendants(&accessor));
        }
        self.m.start_revoking(RevokeReason::TokenRevoked, |_, l| doomed.contains(&l.accessor));
        if orphan {
            self.m.tokens.remove(&accessor);
            for t in self.m.tokens.values_mut() {
                if t.parent.as_deref() == Some(accessor.as_str()) {
                    t.parent = None;
                }
            }
        } else {
            for a in &doomed {
                self.m.tokens.remove(a);
            }
        }
        self.expect(if orphan { "token revoke-orphan" } else { "token revoke" }, &reply, Ok(()));
    }

    fn issue(&mut self) {
        let caller = self.pick_caller();
        let mount = if self.below(6) == 0 { "db2/" } else { "database/" };
        let role = ROLES[self.below(ROLES.len())].to_string();
        let path = format!("{mount}creds/{role}");
        let reply = self.call(&caller, Operation::Read, &path, Value::Null);
        let now = self.now();
        let predicted = (|| {
            let (accessor, token) = self.m.authenticate(&caller, now)?;
            // A caller who may not read the path is denied before learning
            // whether it routes anywhere (Vault's 403).
            if !self.m.allows(&token, &path, 'r') {
                return Err(ErrorKind::PermissionDenied);
            }
            let mount = self.m.route(&path).ok_or(ErrorKind::NotFound)?;
            let r = self.m.roles.get(&(mount.clone(), role.clone())).ok_or(ErrorKind::NotFound)?.clone();
            let allowed = self.m.conns.get(&(mount.clone(), r.db.clone())).ok_or(ErrorKind::NotFound)?;
            if !allowed.iter().any(|p| glob(p, &role)) {
                return Err(ErrorKind::InvalidArgument);
            }
            let m = &self.m.mounts[&mount];
            let max = ttl_or(r.max_ms, ttl_or(m.max_ms, SYSTEM_TTL_MS));
            let ttl = ttl_or(r.default_ms, ttl_or(m.default_ms, SYSTEM_TTL_MS)).min(max);
            let mut expire = now + ttl as i64;
            let mut expire_max = now + max as i64;
            if let Some(t) = token.expire {
                expire = expire.min(t);
                expire_max = expire_max.min(t);
            }
            Ok((mount, r.db, accessor, expire, expire_max))
        })();
        match (&reply, predicted) {
            (Ok(r), Ok((mount, conn, accessor, expire, expire_max))) => {
                let username = r.data.as_ref().unwrap()["username"].as_str().unwrap().to_string();
                if !r.lease_id.starts_with(&format!("{path}/")) {
                    self.fail(format!("issue {path}: lease id {}", r.lease_id));
                }
                if r.lease_duration != ((expire - now) / 1000) as u64 {
                    self.fail(format!(
                        "issue {path}: lease_duration {}, model {}",
                        r.lease_duration,
                        (expire - now) / 1000
                    ));
                }
                let lease = MLease { mount, role, conn, username, accessor, expire, expire_max, revoking: None };
                self.m.leases.insert(r.lease_id.clone(), lease);
            }
            (_, predicted) => self.expect(&format!("issue {path}"), &reply, predicted.map(drop)),
        }
    }

    fn renew(&mut self) {
        let caller = self.pick_caller();
        let Some(lease_id) = self.pick_lease() else { return };
        let (increment, inc_ms) = self.duration(&[("", 0), ("5m", 300_000), ("3h", 10_800_000)]);
        let mut data = json!({"lease_id": lease_id});
        if !increment.is_null() {
            data["increment"] = increment;
        }
        let reply = self.call(&caller, Operation::Update, "sys/leases/renew", data);
        let now = self.now();
        let predicted = (|| {
            let (_, token) = self.m.authenticate(&caller, now)?;
            if !self.m.allows(&token, "sys/leases/renew", 'u') {
                return Err(ErrorKind::PermissionDenied);
            }
            let lease = self.m.leases.get(&lease_id).ok_or(ErrorKind::NotFound)?;
            if lease.revoking.is_some() || lease.expire <= now || now >= lease.expire_max {
                return Err(ErrorKind::InvalidArgument);
            }
            let role_default = self.m.roles.get(&(lease.mount.clone(), lease.role.clone())).map_or(0, |r| r.default_ms);
            let mount_default = self.m.mounts.get(&lease.mount).map_or(0, |m| m.default_ms);
            let wanted = ttl_or(inc_ms, ttl_or(role_default, ttl_or(mount_default, SYSTEM_TTL_MS)));
            let key = (lease.mount.clone(), lease.conn.clone());
            if !self.m.conns.contains_key(&key) && !self.m.retired.contains(&key) {
                return Err(ErrorKind::Database);
            }
            Ok((now + wanted as i64).min(lease.expire_max))
        })();
        match (&reply, predicted) {
            (Ok(r), Ok(expire)) => {
                if r.lease_duration != ((expire - now) / 1000) as u64 {
                    self.fail(format!(
                        "renew {lease_id}: lease_duration {}, model {}",
                        r.lease_duration,
                        (expire - now) / 1000
                    ));
                }
                self.m.leases.get_mut(&lease_id).unwrap().expire = expire;
            }
            (_, predicted) => self.expect(&format!("renew {lease_id}"), &reply, predicted.map(drop)),
        }
    }

    fn revoke(&mut self) {
        let caller = self.pick_caller();
        let Some(lease_id) = self.pick_lease() else { return };
        let reply = self.call(&caller, Operation::Update, "sys/leases/revoke", json!({"lease_id": lease_id}));
        let now = self.now();
        let predicted = (|| {
            let (_, token) = self.m.authenticate(&caller, now)?;
            if !self.m.allows(&token, "sys/leases/revoke", 'u') {
                return Err(ErrorKind::PermissionDenied);
            }
            // A lease that is gone is revoked already: nothing to do (Vault's 204).
            let Some(lease) = self.m.leases.get(&lease_id) else { return Ok(()) };
            let key = (lease.mount.clone(), lease.conn.clone());
            if !self.m.conns.contains_key(&key) && !self.m.retired.contains(&key) {
                return Err(ErrorKind::Database);
            }
            Ok(())
        })();
        if predicted.is_ok() {
            self.m.leases.remove(&lease_id);
        }
        self.expect(&format!("revoke {lease_id}"), &reply, predicted);
    }

    fn revoke_prefix(&mut self) {
        let prefix =
            ["database/creds/", "database/creds/r1/", "db2/", "database/creds/r2/", "database/creds/r1", "database"]
                [self.below(6)]
            .to_string();
        // The model's own reading of Vault's rule: the `/` is implied.
        let dir = if prefix.ends_with('/') { prefix.clone() } else { format!("{prefix}/") };
        let caller = if self.below(4) == 0 { self.pick_caller() } else { self.root.clone() };
        let reply = self.call(&caller, Operation::Update, &format!("sys/leases/revoke-prefix/{prefix}"), json!({}));
        let now = self.now();
        let predicted = match self.m.authenticate(&caller, now) {
            Err(kind) => Err(kind),
            // Needs sudo: only root has it here.
            Ok((_, token)) if !token.policies.iter().any(|p| p == "root") => Err(ErrorKind::PermissionDenied),
            Ok(_) => {
                self.m.start_revoking(RevokeReason::Prefix, |id, _| id.starts_with(&dir));
                Ok(())
            }
        };
        self.expect(&format!("revoke-prefix {prefix}"), &reply, predicted);
    }

    /// Reads whose answers the model knows.
    fn lookups(&mut self) {
        let root = self.root.clone();
        let now = self.now();
        if let Some(lease_id) = self.pick_lease() {
            let reply = self.call(&root, Operation::Update, "sys/leases/lookup", json!({"lease_id": lease_id}));
            match (&reply, self.m.leases.get(&lease_id)) {
                (Ok(r), Some(l)) => {
                    let ttl = r.data.as_ref().unwrap()["ttl"].as_i64().unwrap();
                    if ttl != (l.expire - now).max(0) / 1000 {
                        self.fail(format!("lookup {lease_id}: ttl {ttl}, model {}", (l.expire - now) / 1000));
                    }
                }
                (_, l) => {
                    self.expect("lease lookup", &reply, if l.is_some() { Ok(()) } else { Err(ErrorKind::NotFound) })
                }
            }
        }
        let reply = self.call(&root, Operation::List, "sys/policy", Value::Null);
        let mut names: Vec<String> = self.m.policies.keys().cloned().chain(["root".to_string()]).collect();
        names.sort();
        let got: Vec<String> = reply.as_ref().unwrap().data.as_ref().unwrap()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        if got != names {
            self.fail(format!("sys/policy lists {got:?}, the model has {names:?}"));
        }
        let mount = self.pick(&MOUNTS).to_string();
        let role = self.pick(&ROLES).to_string();
        let reply = self.call(&root, Operation::Read, &format!("{mount}roles/{role}"), Value::Null);
        match (&reply, self.m.mounts.contains_key(&mount), self.m.roles.get(&(mount.clone(), role.clone()))) {
            (Ok(r), true, Some(m)) => {
                let d = r.data.as_ref().unwrap();
                if d["default_ttl"] != json!(m.default_ms / 1000) || d["max_ttl"] != json!(m.max_ms / 1000) {
                    self.fail(format!("read {mount}roles/{role}: {d:?}, model {m:?}"));
                }
            }
            (_, false, _) | (_, true, None) => self.expect("read role", &reply, Err(ErrorKind::NotFound)),
            (Err(e), true, Some(_)) => self.fail(format!("read {mount}roles/{role}: {e}")),
        }
        // A token looks itself up.
        let caller = self.pick_caller();
        let reply = self.call(&caller, Operation::Read, "auth/token/lookup-self", Value::Null);
        let predicted = self.m.authenticate(&caller, now).map(drop);
        if let (Ok(r), Ok((_, token))) = (&reply, self.m.authenticate(&caller, now)) {
            let policies: Vec<String> = r.data.as_ref().unwrap()["policies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            if policies != token.policies {
                self.fail(format!("lookup-self: policies {policies:?}, model {:?}", token.policies));
            }
        }
        self.expect("lookup-self", &reply, predicted);
    }

    /// The working configuration, (re)written as requests: the first mount, its
    /// first connection allowing every role, and the three roles.
    fn standard_config(&mut self) {
        let root = self.root.clone();
        if !self.m.mounts.contains_key(MOUNTS[0]) {
            let reply = self.call(&root, Operation::Update, "sys/mounts/database", json!({"type": "database"}));
            self.m.mounts.insert(MOUNTS[0].into(), MMount { default_ms: 0, max_ms: 0 });
            self.expect("standard mount", &reply, Ok(()));
        }
        let data = json!({
            "plugin_name": "postgresql-database-plugin",
            "connection_url": "postgresql://{{username}}:{{password}}@sim/db",
            "allowed_roles": "*",
        });
        let reply = self.call(&root, Operation::Update, "database/config/pg", data);
        let key = (MOUNTS[0].to_string(), CONNECTIONS[0].to_string());
        self.m.retired.remove(&key);
        self.m.conns.insert(key, vec!["*".into()]);
        self.expect("standard connection", &reply, Ok(()));
        for (role, default_ms, max_ms) in [
            ("r1", 30_000u64, 1_200_000u64),
            ("r2", 600_000, 7_200_000),
            ("r3", 3_600_000, 0),
            ("r1x", 600_000, 7_200_000),
        ] {
            let data = json!({"db_name": "pg", "creation_statements": CREATION, "default_ttl": default_ms / 1000, "max_ttl": max_ms / 1000});
            let reply = self.call(&root, Operation::Update, &format!("database/roles/{role}"), data);
            let r = MRole { db: CONNECTIONS[0].into(), default_ms, max_ms };
            self.m.roles.insert((MOUNTS[0].into(), role.into()), r);
            self.expect("standard role", &reply, Ok(()));
        }
    }

    /// Time passes; the expirer revokes what is due and what revocations began.
    fn advance(&mut self) {
        let ms = match self.below(20) {
            0 => 40 * 3_600_000,
            1 => 3 * 3_600_000,
            2..=3 => 3_600_000,
            n => [1_000i64, 10_000, 30_000, 60_000, 600_000][n % 5],
        };
        self.clock.advance_ms(ms);
        let now = self.now();
        loop {
            let report =
                self.rt.block_on(self.engine().expire_due()).unwrap_or_else(|e| self.fail(format!("expire: {e}")));
            if report.failed > 0 {
                self.fail(format!("a revocation failed: {report:?}"));
            }
            if !report.more_due {
                break;
            }
        }
        self.m.leases.retain(|_, l| l.revoking.is_none() && l.expire > now);
    }

    /// A restart: close, reopen (same digest: I4), recover.
    fn reopen(&mut self) {
        let digest = self.engine().digest();
        let engine = Arc::into_inner(self.engine.take().unwrap()).unwrap();
        engine.close();
        if self.below(2) == 0 {
            // Snapshots are caches: without them the replay must be the same.
            for entry in std::fs::read_dir(self.dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().unwrap().to_string_lossy().starts_with("snap-") {
                    std::fs::remove_file(path).unwrap();
                }
            }
        }
        let engine =
            Engine::open(self.dir.path(), self.options()).unwrap_or_else(|e| self.fail(format!("reopen: {e}")));
        if engine.digest() != digest {
            self.fail("the reopened state differs from the state before closing (I4)");
        }
        self.engine = Some(Arc::new(engine));
        // Recovery runs again the revocations that were started.
        self.rt.block_on(self.engine().recover()).unwrap_or_else(|e| self.fail(format!("recover: {e}")));
        self.m.leases.retain(|_, l| l.revoking.is_none());
    }

    /// The engine's whole state against the model.
    fn compare(&self) {
        let e = self.engine();
        e.with_state(|s| {
            let mounts: BTreeMap<String, MMount> = s
                .mounts
                .values()
                .map(|m| (m.path.clone(), MMount { default_ms: m.default_lease_ttl_ms, max_ms: m.max_lease_ttl_ms }))
                .collect();
            if mounts != self.m.mounts {
                self.fail(format!("mounts: engine {mounts:?}, model {:?}", self.m.mounts));
            }
            let conns: BTreeMap<(String, String), Vec<String>> =
                s.connections.iter().map(|(k, c)| (k.clone(), c.allowed_roles.clone())).collect();
            if conns != self.m.conns {
                self.fail(format!("connections: engine {conns:?}, model {:?}", self.m.conns));
            }
            let retired: BTreeSet<(String, String)> = s.retired_connections.keys().cloned().collect();
            // A retired connection is kept while a lease still uses it.
            let in_use: BTreeSet<(String, String)> = self
                .m
                .retired
                .iter()
                .filter(|k| self.m.leases.values().any(|l| l.mount == k.0 && l.conn == k.1))
                .cloned()
                .collect();
            if retired != in_use {
                self.fail(format!("retired connections: engine {retired:?}, model (in use) {in_use:?}"));
            }
            let roles: BTreeMap<(String, String), MRole> = s
                .roles
                .iter()
                .map(|(k, r)| {
                    (k.clone(), MRole { db: r.db_name.clone(), default_ms: r.default_ttl_ms, max_ms: r.max_ttl_ms })
                })
                .collect();
            if roles != self.m.roles {
                self.fail(format!("roles: engine {roles:?}, model {:?}", self.m.roles));
            }
            let policies: BTreeMap<String, Option<&str>> =
                self.m.policies.iter().map(|(n, t)| (n.clone(), t.map(Text::hcl))).collect();
            for (name, text) in &policies {
                match (s.policies.get(name), text) {
                    (Some(_), None) => {}
                    (Some(got), Some(want)) if got == want => {}
                    (got, want) => self.fail(format!("policy {name}: engine {got:?}, model {want:?}")),
                }
            }
            if s.policies.len() != policies.len() {
                self.fail(format!(
                    "policies: engine {:?}, model {:?}",
                    s.policies.keys().collect::<Vec<_>>(),
                    policies.keys()
                ));
            }
            let tokens: BTreeSet<&String> = s.tokens.keys().collect();
            let model_tokens: BTreeSet<&String> = self.m.tokens.keys().collect();
            if tokens != model_tokens {
                self.fail(format!("tokens: engine {tokens:?}, model {model_tokens:?}"));
            }
            for (a, t) in &self.m.tokens {
                let got = &s.tokens[a];
                if got.parent_accessor != t.parent || got.policies != t.policies || got.expire_time_ms != t.expire {
                    self.fail(format!("token {a}: engine {got:?}, model {t:?}"));
                }
            }
            let ids: BTreeSet<&str> = s.leases.keys().map(|k| &**k).collect();
            let model_ids: BTreeSet<&str> = self.m.leases.keys().map(String::as_str).collect();
            if ids != model_ids {
                self.fail(format!("leases: engine {ids:?}, model {model_ids:?}"));
            }
            for (id, l) in &self.m.leases {
                let got = &s.leases[id];
                let status = match l.revoking {
                    None => LeaseStatus::Active,
                    Some(reason) => LeaseStatus::Revoking(reason),
                };
                let same = *got.mount == *l.mount
                    && *got.role == *l.role
                    && *got.connection == *l.conn
                    && *got.username == *l.username
                    && *got.accessor == *l.accessor
                    && got.expire_time_ms == l.expire
                    && got.expire_time_max_ms == l.expire_max
                    && got.status == status;
                if !same {
                    self.fail(format!("lease {id}: engine {got:?}, model {l:?}"));
                }
            }
            if s.counters.requests != self.m.requests || s.counters.requests_denied != self.m.denied {
                self.fail(format!(
                    "counters: engine {} requests / {} denied, model {} / {}",
                    s.counters.requests, s.counters.requests_denied, self.m.requests, self.m.denied
                ));
            }
        });
        let users: BTreeSet<String> = self.plugin.db.lock().unwrap().users.keys().cloned().collect();
        let model_users: BTreeSet<String> = self.m.leases.values().map(|l| l.username.clone()).collect();
        if users != model_users {
            self.fail(format!("database users: {users:?}, model {model_users:?} (orphans or lost users)"));
        }
    }

    fn step(&mut self) {
        let kind = match self.below(200) {
            0..=5 => "enable mount",
            6..=9 => "tune mount",
            10..=11 => "disable mount",
            12..=19 => "write connection",
            20..=21 => "delete connection",
            22..=33 => "write role",
            34..=36 => "delete role",
            37..=46 => "write policy",
            47..=48 => "delete policy",
            49..=62 => "create token",
            63..=67 => "revoke token",
            68..=69 => "revoke-orphan token",
            70..=119 => "issue",
            120..=139 => "renew",
            140..=151 => "revoke",
            152..=155 => "revoke-prefix",
            156..=167 => "lookups",
            168..=185 => "advance clock",
            186..=192 => "reopen",
            193..=196 => "standard config",
            _ => "snapshot",
        };
        self.kind = kind;
        match kind {
            "enable mount" => self.enable_mount(),
            "tune mount" => self.tune_mount(),
            "disable mount" => self.disable_mount(),
            "write connection" => self.write_connection(),
            "delete connection" => self.delete_connection(),
            "write role" => self.write_role(),
            "delete role" => self.delete_role(),
            "write policy" => self.write_policy(),
            "delete policy" => self.delete_policy(),
            "create token" => self.create_token(),
            "revoke token" => self.revoke_token(false),
            "revoke-orphan token" => self.revoke_token(true),
            "issue" => self.issue(),
            "renew" => self.renew(),
            "revoke" => self.revoke(),
            "revoke-prefix" => self.revoke_prefix(),
            "lookups" => self.lookups(),
            "advance clock" => self.advance(),
            "reopen" => self.reopen(),
            "standard config" => self.standard_config(),
            _ => {
                self.engine().snapshot().unwrap();
            }
        }
        *self.tally.entry(kind).or_default() += 1;
        self.compare();
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, got {v}")))
}

#[test]
fn the_request_api_behaves_like_the_reference_model_across_restarts() {
    let seeds: Vec<u64> = match env_u64("LESSOR_MODEL_SEED") {
        Some(seed) => vec![seed],
        None => (1..=env_u64("LESSOR_MODEL_SEEDS").unwrap_or(16)).map(|i| 0xC0FFEE + i).collect(),
    };
    let steps = env_u64("LESSOR_MODEL_STEPS").unwrap_or(600) as usize;
    let mut tally: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut leases_seen = 0;
    for seed in &seeds {
        let mut run = Run::new(*seed);
        // A useful start: the mount, a connection, the roles, an issuing policy
        // (each through the same steps, checked against the model).
        run.m.mounts.insert("database/".into(), MMount { default_ms: 0, max_ms: 0 });
        run.call(&run.root.clone(), Operation::Update, "sys/mounts/database", json!({"type": "database"})).unwrap();
        run.standard_config();
        run.compare();
        for step in 0..steps {
            run.step = step;
            run.step();
            leases_seen = leases_seen.max(run.m.leases.len());
        }
        for (k, n) in run.tally {
            *tally.entry(k).or_default() += n;
        }
        for (k, n) in run.outcomes {
            *outcomes.entry(k).or_default() += n;
        }
    }
    let requests: u64 = outcomes.values().sum();
    println!(
        "model: {} seeds x {steps} steps ({requests} requests), every answer and every state matched the model; \
         at most {leases_seen} live leases; steps: {tally:?}; requests by outcome: {outcomes:#?}",
        seeds.len()
    );
    // The mix must reach the interesting outcomes, not only errors.
    for needed in ["issue ok", "issue PermissionDenied", "issue NotFound", "renew ok", "revoke ok", "create token ok"] {
        assert!(outcomes.get(needed).copied().unwrap_or(0) >= 5, "too few \"{needed}\": {outcomes:?}");
    }
}
