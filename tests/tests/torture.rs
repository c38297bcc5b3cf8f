//! Crash torture: a child process runs a seeded mixed workload against a real
//! PostgreSQL — issue, renew, revoke, revoke-prefix, token create and revoke
//! (child tokens too), policy and role writes, short-TTL leases expiring under the
//! running expirer, snapshots, segment seals and signed checkpoints — and prints
//! every *acknowledged* operation (one flushed line each) before going on. The
//! parent SIGKILLs it at seeded moments (during start-up and recovery too), and
//! after every kill checks:
//!
//! - the log verifies (crc, hash chain, checkpoint signatures; the newest
//!   checkpoint of the previous cycle is still in it, so no acknowledged history
//!   was rewritten), and the records added since the last cycle chain on to it;
//! - every lease that ended, ended legitimately (I3): at or after its expiry, by a
//!   revoke / revoke-prefix / token revoke that was asked for, or — an issue whose
//!   outcome never became durable — by recovery;
//! - after a restart (open + recover): every acknowledged operation is in the
//!   replayed state — acknowledged issues live or legitimately ended, acknowledged
//!   renewals' expiries kept, acknowledged revokes gone, revoke-prefix and token
//!   revoke applied to everything issued before them, tokens, policies and roles
//!   present at (at least) their acknowledged version;
//! - every role in `pg_roles` with the test's prefix belongs to a lease of the
//!   replayed state (I2), and after recovery and one expirer pass, to a live one.
//!
//! `LESSOR_TORTURE_SEED=<n>` reproduces a run (the kill points, the workload's
//! choices; thread scheduling and the database's timing are not under the seed),
//! `LESSOR_TORTURE_CYCLES=<n>` sets the number of kills (default 150). Every
//! failure message names the seed and the cycle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lessor_engine::audit::{Reader, SignedCheckpoint, VerifyOptions, verify};
use lessor_engine::event::{Event, Lsn, RevokeReason};
use lessor_engine::expiry::ExpiryOptions;
use lessor_engine::log::LogOptions;
use lessor_engine::log::format::Chain;
use lessor_engine::request::Operation;
use lessor_engine::state::LeaseStatus;
use lessor_engine::testing::SplitMix64;
use lessor_engine::{Engine, EngineOptions, Host, HostOptions};
use lessor_tests::pg;
use serde_json::{Value, json};

const CHILD_DIR: &str = "LESSOR_TORTURE_CHILD_DIR";
const CHILD_TOKEN: &str = "LESSOR_TORTURE_CHILD_TOKEN";
const CHILD_SEED: &str = "LESSOR_TORTURE_CHILD_SEED";
const CHILD_CYCLE: &str = "LESSOR_TORTURE_CHILD_CYCLE";
const PREFIX: &str = "tort-";
const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";
/// Roles, their TTLs, and the constant renew increment of each (constant, so an
/// acknowledged renewal's expiry is never lowered by a later one).
const ROLES: [(&str, &str, &str, &str); 3] =
    [("short", "1s", "10s", "2s"), ("medium", "4s", "30s", "5s"), ("long", "1h", "24h", "2h")];
const WORKERS: u64 = 3;

fn engine_options() -> EngineOptions {
    EngineOptions {
        // Snapshots, seals and checkpoints all happen under the kills.
        snapshot_every_events: 300,
        log: LogOptions { segment_bytes_max: 64 << 10, checkpoint_interval_ms: 500, ..LogOptions::default() },
        expiry: ExpiryOptions { tick_ms: 100, retry_ms_first: 200, retry_ms_max: 1_000, ..ExpiryOptions::default() },
        ..EngineOptions::default()
    }
}

// ------------------------------------------------------------------------------------
// The child: a seeded workload that prints what was acknowledged.
// ------------------------------------------------------------------------------------

/// Prints one line and flushes it before the caller goes on.
fn emit(out: &Mutex<std::io::Stdout>, line: String) {
    let out = out.lock().unwrap();
    let mut out = out.lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Not a test by itself: the child that runs the workload until it is killed.
#[test]
fn torture_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else { return };
    let root = std::env::var(CHILD_TOKEN).unwrap();
    let seed: u64 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    let cycle: u64 = std::env::var(CHILD_CYCLE).unwrap().parse().unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    // Started as an embedder starts it: open, recover, then the expirer.
    let host = Host::open(&dir, engine_options(), HostOptions::default()).expect("child: open and recover");
    emit(&out, format!("READY {:?}", host.recovered()));
    let engine = host.engine().clone();
    host.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..WORKERS {
            let (engine, root, out) = (engine.clone(), root.clone(), out.clone());
            let rng = SplitMix64(seed ^ cycle.wrapping_mul(0x9E37_79B9) ^ (worker + 1).wrapping_mul(0x5851_F42D));
            tasks.spawn(async move {
                Worker { engine, root, out, rng, worker, cycle, tokens: Vec::new(), k: 0 }.run().await
            });
        }
        while tasks.join_next().await.is_some() {}
    });
}

struct Worker {
    engine: Arc<Engine>,
    root: String,
    out: Arc<Mutex<std::io::Stdout>>,
    rng: SplitMix64,
    worker: u64,
    cycle: u64,
    /// Tokens this worker created: (secret, accessor).
    tokens: Vec<(String, String)>,
    k: u64,
}

impl Worker {
    fn emit(&self, line: String) {
        emit(&self.out, line);
    }

    async fn req(
        &self,
        token: &str,
        op: Operation,
        path: &str,
        data: Value,
    ) -> Option<lessor_engine::request::Response> {
        match self.engine.request(token, op, path, data).await {
            Ok(r) => Some(r),
            Err(e) => {
                self.emit(format!("ERR {:?} {path}: {e}", e.kind()));
                None
            }
        }
    }

    /// A live lease of the state, picked by the seed; with `mine`, only among the
    /// leases this worker renews (one renewer per lease: two concurrent renewals
    /// of one lease race — the one applied last wins, even if it was planned
    /// first — so an acknowledged expiry is only well defined without them).
    fn pick_lease(&mut self, mine: bool) -> Option<String> {
        let n = self.rng.next_u64();
        let worker = self.worker;
        let owned = |id: &str| {
            !mine || id.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) % WORKERS == worker
        };
        self.engine.with_state(|s| {
            let active: Vec<&str> = s
                .leases
                .values()
                .filter(|l| l.status == LeaseStatus::Active && owned(&l.lease_id))
                .map(|l| &*l.lease_id)
                .collect();
            (!active.is_empty()).then(|| active[(n % active.len() as u64) as usize].to_string())
        })
    }

    /// A version that grows across cycles, so the latest acknowledged write wins.
    fn version(&mut self) -> u64 {
        self.k += 1;
        self.cycle * 1_000_000 + self.k
    }

    async fn run(mut self) {
        loop {
            let dice = self.rng.below(100);
            match dice {
                0..=34 => self.issue().await,
                35..=49 => self.renew().await,
                50..=61 => self.revoke().await,
                62..=69 => self.create_token().await,
                70..=74 => self.revoke_token().await,
                75..=77 => self.revoke_prefix().await,
                78..=89 => self.write_policy().await,
                _ => self.write_role().await,
            }
        }
    }

    async fn issue(&mut self) {
        let (role, ..) = ROLES[self.rng.below(ROLES.len() as u64) as usize];
        let token = match self.rng.below(3) {
            0 if !self.tokens.is_empty() => self.tokens[self.rng.below(self.tokens.len() as u64) as usize].0.clone(),
            _ => self.root.clone(),
        };
        let path = format!("database/creds/{role}");
        if let Some(r) = self.req(&token, Operation::Read, &path, Value::Null).await {
            let user = r.data.as_ref().and_then(|d| d["username"].as_str()).unwrap_or("?").to_string();
            self.emit(format!("ACK ISSUE {} {user}", r.lease_id));
        }
    }

    async fn renew(&mut self) {
        let Some(lease) = self.pick_lease(true) else { return };
        let role = lease.split('/').nth(2).unwrap_or_default().to_string();
        let increment = ROLES.iter().find(|r| r.0 == role).map_or("2s", |r| r.3);
        let data = json!({"lease_id": lease, "increment": increment});
        if self.req(&self.root, Operation::Update, "sys/leases/renew", data).await.is_some() {
            // The expiry the caller now holds: the renewal's intent, durable before
            // the reply (its outcome may still be riding to the log).
            let expiry =
                self.engine.with_state(|s| s.leases.get(&lease).map(|l| l.renewing_to_ms.unwrap_or(l.expire_time_ms)));
            if let Some(expiry) = expiry {
                self.emit(format!("ACK RENEW {lease} {expiry}"));
            }
        }
    }

    async fn revoke(&mut self) {
        let Some(lease) = self.pick_lease(false) else { return };
        self.emit(format!("BEGIN REVOKE {lease}"));
        let data = json!({"lease_id": lease});
        if self.req(&self.root, Operation::Update, "sys/leases/revoke", data).await.is_some() {
            self.emit(format!("ACK REVOKE {lease}"));
        }
    }

    async fn revoke_prefix(&mut self) {
        let (role, ..) = ROLES[self.rng.below(ROLES.len() as u64) as usize];
        let prefix = format!("database/creds/{role}/");
        self.emit(format!("BEGIN PREFIX {prefix}"));
        let path = format!("sys/leases/revoke-prefix/{prefix}");
        if self.req(&self.root, Operation::Update, &path, json!({})).await.is_some() {
            self.emit(format!("ACK PREFIX {prefix}"));
        }
    }

    async fn create_token(&mut self) {
        // A child of one of this worker's tokens, or of root.
        let parent = match self.rng.below(2) {
            0 if !self.tokens.is_empty() => self.tokens[self.rng.below(self.tokens.len() as u64) as usize].0.clone(),
            _ => self.root.clone(),
        };
        let data = json!({"policies": ["issuer"], "ttl": "1h", "display_name": format!("w{}", self.worker)});
        if let Some(r) = self.req(&parent, Operation::Update, "auth/token/create", data).await {
            let auth = r.auth.expect("token create returns auth");
            self.emit(format!("ACK TOKEN {}", auth.accessor));
            self.tokens.push((auth.client_token, auth.accessor));
        }
    }

    async fn revoke_token(&mut self) {
        if self.tokens.is_empty() {
            return;
        }
        let (_, accessor) = self.tokens.remove(self.rng.below(self.tokens.len() as u64) as usize);
        self.emit(format!("BEGIN TOKREVOKE {accessor}"));
        let data = json!({"accessor": accessor});
        if self.req(&self.root, Operation::Update, "auth/token/revoke-accessor", data).await.is_some() {
            self.emit(format!("ACK TOKREVOKE {accessor}"));
        }
        // Its descendants are gone too: forget those this worker knows.
        let alive: HashSet<String> = self.engine.with_state(|s| s.tokens.keys().cloned().collect());
        self.tokens.retain(|(_, a)| alive.contains(a));
    }

    async fn write_policy(&mut self) {
        let name = format!("w{}", self.worker);
        let v = self.version();
        let text = format!("path \"secret/{name}/{v}\" {{ capabilities = [\"read\"] }}");
        let path = format!("sys/policy/{name}");
        if self.req(&self.root, Operation::Update, &path, json!({"policy": text})).await.is_some() {
            self.emit(format!("ACK POLICY {name} {v}"));
        }
    }

    async fn write_role(&mut self) {
        let name = format!("w{}", self.worker);
        let v = self.version();
        let data = json!({"db_name": "pg", "creation_statements": CREATION, "default_ttl": "1s", "lease_count_max": v});
        let path = format!("database/roles/{name}");
        if self.req(&self.root, Operation::Update, &path, data).await.is_some() {
            self.emit(format!("ACK ROLE {name} {v}"));
        }
    }
}

// ------------------------------------------------------------------------------------
// The parent: kills, restarts, checks.
// ------------------------------------------------------------------------------------

/// What the log says about one lease.
#[derive(Debug, Clone)]
struct LeaseLog {
    username: String,
    accessor: String,
    expire_ms: i64,
    completed: bool,
    failed: bool,
    /// The first revocation's reason and time.
    revoke: Option<(RevokeReason, i64)>,
    ended: bool,
}

/// The log, read incrementally, cycle after cycle.
#[derive(Debug, Default)]
struct History {
    next_lsn: Lsn,
    /// The last record read, to check the next read chains on to it.
    last: Option<(Lsn, Chain)>,
    leases: HashMap<String, LeaseLog>,
    token_parent: HashMap<String, Option<String>>,
    records: u64,
}

/// What the child asked for and what it was told.
#[derive(Debug, Default)]
struct Acks {
    /// Global line sequence numbers give the order of BEGIN and ACK lines.
    seq: u64,
    /// Acknowledged issues still to be checked: lease → (username, ack seq).
    leases: BTreeMap<String, (String, u64)>,
    /// Acknowledged renewals: lease → the highest expiry acknowledged.
    renewed: HashMap<String, i64>,
    /// Acknowledged revokes (must stay gone).
    revoked: HashSet<String>,
    revoke_begins: HashSet<String>,
    prefix_begins: Vec<(String, u64)>,
    tokrevoke_begins: Vec<(String, u64)>,
    acked_prefixes: Vec<(String, u64)>,
    acked_tokrevokes: Vec<(String, u64)>,
    tokens: HashSet<String>,
    policies: HashMap<String, u64>,
    roles: HashMap<String, u64>,
    /// Acknowledged operations checked against a restarted engine.
    checked: u64,
    errors: BTreeMap<String, u64>,
    /// The first error line of each kind, for the report.
    error_samples: BTreeMap<String, String>,
}

struct Torture {
    seed: u64,
    cycle: u64,
    dir: PathBuf,
    root: String,
    db: pg::TestDb,
    history: History,
    acks: Acks,
    exported: Option<SignedCheckpoint>,
    verified_records: u64,
    child_stderr: PathBuf,
    /// Kills that left a torn record at the end of the log.
    torn_tails: u64,
    /// Kills that left whole records after the newest batch proof.
    unproven_tails: u64,
    /// Kills after which recovery found interrupted issues or revocations to finish.
    kills_mid_operation: u64,
    /// Interrupted issues and revocations recovery finished.
    recovered: u64,
    /// Acknowledged issues whose riding outcome a kill cut off: live until expiry.
    acked_without_outcome: u64,
}

impl Torture {
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "seed {} cycle {}: {what}\n(the data directory is kept at {}; reproduce: LESSOR_TORTURE_SEED={} \
             LESSOR_TORTURE_CYCLES={} cargo test -p lessor-tests --test torture)",
            self.seed,
            self.cycle,
            self.dir.display(),
            self.seed,
            self.cycle + 1
        )
    }

    /// What the log says about the lease of `username`, for failure messages.
    fn log_of_user(&self, username: &str) -> String {
        match self.history.leases.iter().find(|(_, l)| l.username == username) {
            Some((id, l)) => format!("the log has lease {id} for it: {l:?}"),
            None => "no IssueStarted in the log names it".to_string(),
        }
    }

    /// Whether `accessor` or an ancestor of it had a revoke asked for.
    fn token_revoke_asked(&self, accessor: &str) -> bool {
        let asked: HashSet<&str> = self.acks.tokrevoke_begins.iter().map(|(a, _)| a.as_str()).collect();
        let mut at = Some(accessor.to_string());
        let mut hops = 0;
        while let Some(a) = at {
            if asked.contains(a.as_str()) {
                return true;
            }
            hops += 1;
            if hops > 10_000 {
                return false;
            }
            at = self.history.token_parent.get(&a).cloned().flatten();
        }
        false
    }

    /// Accessors at or below `accessor` in the token tree (from the log).
    fn in_subtree(&self, accessor: &str, root_of_revoke: &str) -> bool {
        let mut at = Some(accessor.to_string());
        while let Some(a) = at {
            if a == root_of_revoke {
                return true;
            }
            at = self.history.token_parent.get(&a).cloned().flatten();
        }
        false
    }

    /// Reads the records added since the last cycle, checking each lease's end.
    fn read_log(&mut self) {
        let from = self.history.next_lsn.max(1);
        let mut reader = Reader::open_from(&self.dir, from).unwrap_or_else(|e| self.fail(format!("log reader: {e}")));
        let mut pending = Vec::new();
        loop {
            let rec = match reader.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => {
                    if reader.torn_tail().is_some() {
                        self.torn_tails += 1;
                    }
                    break;
                }
                Err(e) => self.fail(format!("the log does not read back: {e}")),
            };
            if let Some((lsn, chain)) = self.history.last
                && rec.lsn == lsn
                && rec.chain != chain
            {
                self.fail(format!("LSN {lsn} changed since the last cycle: the log was rewritten"));
            }
            if rec.lsn < from {
                continue;
            }
            let (lsn, ts, chain) = (rec.lsn, rec.ts_ms, rec.chain);
            let event = rec.decode().unwrap_or_else(|e| self.fail(format!("LSN {lsn} does not decode: {e}")));
            // Only what a batch proof covers is the log's: whole records after the
            // newest proof (a batch the kill cut short) are cut by the next open.
            let proof = matches!(event, Event::BatchSigned(_) | Event::BatchMac(_));
            pending.push((lsn, ts, chain, event));
            if proof {
                for (lsn, ts, chain, event) in pending.drain(..) {
                    self.history.last = Some((lsn, chain));
                    self.history.next_lsn = lsn + 1;
                    self.history.records += 1;
                    self.apply(lsn, ts, event);
                }
            }
        }
        if !pending.is_empty() {
            self.unproven_tails += 1;
        }
    }

    fn apply(&mut self, lsn: Lsn, ts: i64, event: Event) {
        match event {
            Event::IssueStarted(e) => {
                let lease = LeaseLog {
                    username: e.username,
                    accessor: e.accessor,
                    expire_ms: e.expire_time_ms,
                    completed: false,
                    failed: false,
                    revoke: None,
                    ended: false,
                };
                self.history.leases.insert(e.lease_id, lease);
            }
            Event::IssueCompleted(e) => {
                if let Some(l) = self.history.leases.get_mut(&e.lease_id) {
                    l.completed = true;
                }
            }
            Event::IssueFailed(e) => {
                if let Some(l) = self.history.leases.get_mut(&e.lease_id)
                    && !l.completed
                    && l.revoke.is_none()
                {
                    l.failed = true;
                    l.ended = true;
                }
            }
            Event::RenewCompleted(e) => {
                if let Some(l) = self.history.leases.get_mut(&e.lease_id) {
                    l.expire_ms = e.expire_time_ms;
                }
            }
            Event::RevokeStarted(e) => {
                let Some(l) = self.history.leases.get(&e.lease_id).cloned() else {
                    self.fail(format!("LSN {lsn}: revocation of unknown lease {}", e.lease_id))
                };
                if l.revoke.is_some() || l.ended {
                    return;
                }
                let legit = match e.reason {
                    RevokeReason::Expired => ts >= l.expire_ms,
                    // An issue whose caller got an error (its COMMIT's fate
                    // unknown) is revoked at once; one that may have been
                    // answered, only at its expiry.
                    RevokeReason::Recovery => {
                        ts >= l.expire_ms || (!l.completed && !self.acks.leases.contains_key(&e.lease_id))
                    }
                    RevokeReason::Explicit => self.acks.revoke_begins.contains(&e.lease_id),
                    RevokeReason::Prefix => self.acks.prefix_begins.iter().any(|(p, _)| e.lease_id.starts_with(p)),
                    RevokeReason::TokenRevoked => self.token_revoke_asked(&l.accessor),
                    other => {
                        self.fail(format!("LSN {lsn}: lease {} revoked for {other:?}, never asked for", e.lease_id))
                    }
                };
                if !legit {
                    self.fail(format!(
                        "LSN {lsn}: lease {} revoked early (I3): reason {:?} at {ts}, expiry {}, issue completed {}",
                        e.lease_id, e.reason, l.expire_ms, l.completed
                    ));
                }
                self.history.leases.get_mut(&e.lease_id).unwrap().revoke = Some((e.reason, ts));
            }
            Event::RevokeCompleted(e) => {
                let started = self.history.leases.get(&e.lease_id).is_some_and(|l| l.revoke.is_some());
                if !started {
                    self.fail(format!("LSN {lsn}: RevokeCompleted for {} without a RevokeStarted", e.lease_id));
                }
                self.history.leases.get_mut(&e.lease_id).unwrap().ended = true;
            }
            Event::RevokeForced(e) => self.fail(format!("LSN {lsn}: lease {} force-revoked", e.lease_id)),
            Event::TokenCreated(e) => {
                self.history.token_parent.insert(e.accessor, e.parent_accessor);
            }
            _ => {}
        }
    }

    /// Registers the child's output lines; returns how many ACK lines there were.
    fn take_lines(&mut self, lines: &[String]) -> u64 {
        let mut acked = 0;
        for line in lines {
            self.acks.seq += 1;
            let seq = self.acks.seq;
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["BEGIN", "REVOKE", lease] => {
                    self.acks.revoke_begins.insert(lease.to_string());
                }
                ["BEGIN", "PREFIX", prefix] => self.acks.prefix_begins.push((prefix.to_string(), seq)),
                ["BEGIN", "TOKREVOKE", accessor] => self.acks.tokrevoke_begins.push((accessor.to_string(), seq)),
                ["ACK", what, rest @ ..] => {
                    acked += 1;
                    match (*what, rest) {
                        ("ISSUE", [lease, user]) => {
                            self.acks.leases.insert(lease.to_string(), (user.to_string(), seq));
                        }
                        ("RENEW", [lease, expiry]) => {
                            let expiry: i64 = expiry.parse().unwrap();
                            let e = self.acks.renewed.entry(lease.to_string()).or_insert(expiry);
                            *e = (*e).max(expiry);
                        }
                        ("REVOKE", [lease]) => {
                            self.acks.revoked.insert(lease.to_string());
                        }
                        ("PREFIX", [prefix]) => {
                            let begin = self.acks.prefix_begins.iter().rev().find(|(p, _)| p == prefix).unwrap().1;
                            self.acks.acked_prefixes.push((prefix.to_string(), begin));
                        }
                        ("TOKEN", [accessor]) => {
                            self.acks.tokens.insert(accessor.to_string());
                        }
                        ("TOKREVOKE", [accessor]) => {
                            let begin = self.acks.tokrevoke_begins.iter().rev().find(|(a, _)| a == accessor).unwrap().1;
                            self.acks.acked_tokrevokes.push((accessor.to_string(), begin));
                        }
                        ("POLICY", [name, v]) => {
                            let v = v.parse().unwrap();
                            let e = self.acks.policies.entry(name.to_string()).or_insert(v);
                            *e = (*e).max(v);
                        }
                        ("ROLE", [name, v]) => {
                            let v = v.parse().unwrap();
                            let e = self.acks.roles.entry(name.to_string()).or_insert(v);
                            *e = (*e).max(v);
                        }
                        _ => self.fail(format!("unreadable child line: {line}")),
                    }
                }
                ["READY", ..] => {
                    // The child's own recovery (when the parent left it to it).
                    let revoked: u64 = line
                        .split("revoked: ")
                        .nth(1)
                        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if revoked > 0 {
                        self.kills_mid_operation += 1;
                        self.recovered += revoked;
                    }
                }
                ["ERR", kind, ..] => {
                    *self.acks.errors.entry(kind.to_string()).or_default() += 1;
                    self.acks.error_samples.entry(kind.to_string()).or_insert_with(|| line.clone());
                    if *kind == "Corrupt" || *kind == "Io" {
                        self.fail(format!("the child got an unexpected error: {line}"));
                    }
                }
                _ => {}
            }
        }
        acked
    }

    /// Whether an acknowledged issue at `seq` was covered by an acknowledged
    /// revoke-prefix or token revoke asked for after it.
    fn doomed(&self, lease: &str, accessor: &str, seq: u64) -> bool {
        self.acks.acked_prefixes.iter().any(|(p, begin)| *begin > seq && lease.starts_with(p.as_str()))
            || self.acks.acked_tokrevokes.iter().any(|(a, begin)| *begin > seq && self.in_subtree(accessor, a))
    }

    /// The acknowledged operations against the replayed state of a restart, and I2.
    fn check_restarted(&mut self, engine: &Engine) {
        // Leases.
        let mut settled = Vec::new();
        for (lease, (user, seq)) in &self.acks.leases {
            let Some(log) = self.history.leases.get(lease) else {
                self.fail(format!("acknowledged lease {lease} ({user}) has no IssueStarted in the log"))
            };
            if !log.completed {
                // Answered after its COMMIT, killed before the riding outcome
                // was durable: live until its expiry (checked below and in
                // read_log), revoked then.
                self.acked_without_outcome += 1;
            }
            let state = engine.with_state(|s| s.leases.get(lease).map(|l| (l.status, l.expire_time_effective_ms())));
            match state {
                Some((status, expiry)) => {
                    // Answered once its DROP ROLE committed: the outcome may have
                    // been riding when the kill came, and recovery runs it again.
                    if self.acks.revoked.contains(lease) && !matches!(status, LeaseStatus::Revoking(_)) {
                        self.fail(format!("lease {lease}: revoke acknowledged, yet the lease is back ({status:?})"));
                    }
                    if let Some(renewed) = self.acks.renewed.get(lease)
                        && expiry < *renewed
                    {
                        self.fail(format!(
                            "lease {lease}: renewal to {renewed} acknowledged, replayed expiry {expiry}"
                        ));
                    }
                    if status == LeaseStatus::Active && self.doomed(lease, &log.accessor, *seq) {
                        self.fail(format!(
                            "lease {lease}: a revoke-prefix or token revoke was acknowledged, still Active"
                        ));
                    }
                }
                None => {
                    // Ended: legitimately (checked record by record in read_log)?
                    if !log.ended || log.failed {
                        self.fail(format!(
                            "acknowledged lease {lease} ({user}) is lost: not in the state, not revoked"
                        ));
                    }
                    if let (Some(renewed), Some((RevokeReason::Expired, ts))) =
                        (self.acks.renewed.get(lease), log.revoke)
                        && ts < *renewed
                    {
                        self.fail(format!(
                            "lease {lease}: renewal to {renewed} acknowledged, yet revoked as expired at {ts} (I3)"
                        ));
                    }
                    settled.push(lease.clone());
                }
            }
        }
        for lease in settled {
            self.acks.leases.remove(&lease);
            self.acks.renewed.remove(&lease);
        }
        for lease in &self.acks.revoked {
            let status = engine.with_state(|s| s.leases.get(lease.as_str()).map(|l| l.status));
            if status.is_some_and(|status| !matches!(status, LeaseStatus::Revoking(_))) {
                self.fail(format!("lease {lease}: revoke acknowledged, still in the state ({status:?})"));
            }
        }
        // Tokens.
        let tokens: HashSet<String> = engine.with_state(|s| s.tokens.keys().cloned().collect());
        for accessor in &self.acks.tokens {
            if !tokens.contains(accessor) && !self.token_revoke_asked(accessor) {
                self.fail(format!("acknowledged token {accessor} is lost"));
            }
        }
        for (accessor, _) in &self.acks.acked_tokrevokes {
            if tokens.contains(accessor) {
                self.fail(format!("token {accessor}: revoke acknowledged, still in the state"));
            }
        }
        // Policies and roles, at least at their acknowledged version.
        for (name, v) in &self.acks.policies {
            let text = engine.with_state(|s| s.policies.get(name).cloned());
            let found = text.as_deref().and_then(|t| t.split('/').nth(2)).and_then(|v| v.split('"').next());
            let found: Option<u64> = found.and_then(|v| v.parse().ok());
            if found.is_none_or(|f| f < *v) {
                self.fail(format!("policy {name}: version {v} acknowledged, replayed {text:?}"));
            }
        }
        for (name, v) in &self.acks.roles {
            let found =
                engine.with_state(|s| s.roles.get(&("database/".to_string(), name.clone())).map(|r| r.lease_count_max));
            if found.is_none_or(|f| f < *v) {
                self.fail(format!("role {name}: version {v} acknowledged, replayed {found:?}"));
            }
        }
        // I2: every role of ours belongs to a lease of the replayed state.
        let users: HashSet<String> = engine.with_state(|s| s.leases.values().map(|l| l.username.to_string()).collect());
        for role in self.db.roles_with_prefix(PREFIX) {
            if !users.contains(&role) {
                self.fail(format!(
                    "role {role} exists in PostgreSQL but no lease of the replayed state tracks it (I2); {}",
                    self.log_of_user(&role)
                ));
            }
        }
    }

    /// After recovery and one expirer pass: no lease in doubt, every role of ours
    /// belongs to a live lease, and every revoke asked for and acknowledged is done.
    fn check_recovered(&self, engine: &Engine) {
        let now = lessor_engine::clock::Clock::now_ms(&lessor_engine::clock::SystemClock);
        let (in_doubt, users): (Vec<(String, LeaseStatus, i64)>, HashSet<String>) = engine.with_state(|s| {
            (
                s.leases
                    .values()
                    // An issue answered but not recorded stays until its expiry.
                    // (The expirer's pass sees what is due by its wheel's tick.)
                    .filter(|l| {
                        !(l.status == LeaseStatus::Active
                            || l.status == LeaseStatus::Issuing && l.expire_time_effective_ms() + 1_000 > now)
                    })
                    .map(|l| (l.lease_id.to_string(), l.status, l.expire_time_effective_ms() - now))
                    .collect(),
                s.leases.values().map(|l| l.username.to_string()).collect(),
            )
        });
        if !in_doubt.is_empty() {
            self.fail(format!(
                "after recovery and an expirer pass, leases still in doubt (id, status, ms to expiry): {in_doubt:?}"
            ));
        }
        for role in self.db.roles_with_prefix(PREFIX) {
            if !users.contains(&role) {
                self.fail(format!(
                    "role {role} survived recovery and an expirer pass without a lease (orphan); {}",
                    self.log_of_user(&role)
                ));
            }
        }
        for (lease, (_, seq)) in &self.acks.leases {
            let accessor = self.history.leases.get(lease).map(|l| l.accessor.clone()).unwrap_or_default();
            if self.doomed(lease, &accessor, *seq) && engine.with_state(|s| s.leases.contains_key(lease)) {
                self.fail(format!("lease {lease}: revoke-prefix or token revoke acknowledged, lease survives"));
            }
        }
    }

    fn verify_log(&mut self, full: bool) {
        if !full {
            return;
        }
        let options = VerifyOptions { exported: self.exported.as_ref(), ..VerifyOptions::default() };
        let report = verify(&self.dir, options).unwrap_or_else(|e| self.fail(format!("audit verify: {e}")));
        self.verified_records = report.records;
        if report.latest_checkpoint.is_some() {
            self.exported = report.latest_checkpoint;
        }
    }

    /// A restart as an operator does it: open, recover, one expirer pass. With
    /// `recover` false only the replayed state is checked, and recovery is left
    /// to the next child (which may be killed in the middle of it).
    fn restart_and_check(&mut self, rt: &tokio::runtime::Runtime, recover: bool) {
        let engine =
            Arc::new(Engine::open(&self.dir, engine_options()).unwrap_or_else(|e| self.fail(format!("open: {e}"))));
        self.check_restarted(&engine);
        if !recover {
            Arc::into_inner(engine).unwrap().close();
            return;
        }
        let recovered = rt.block_on(engine.recover()).unwrap_or_else(|e| self.fail(format!("recover: {e}")));
        if recovered.revoked + recovered.revoke_failed > 0 {
            self.kills_mid_operation += 1;
            self.recovered += recovered.revoked as u64;
        }
        loop {
            let report = rt.block_on(engine.expire_due()).unwrap_or_else(|e| self.fail(format!("expire: {e}")));
            if !report.more_due {
                break;
            }
        }
        self.check_recovered(&engine);
        Arc::into_inner(engine).unwrap().close();
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name} must be a number, got {v}")))
}

#[test]
fn sigkill_at_seeded_moments_loses_no_acknowledged_operation_and_leaves_no_orphan() {
    let seed = env_u64("LESSOR_TORTURE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let cycles = env_u64("LESSOR_TORTURE_CYCLES").unwrap_or(150);
    println!("torture: seed {seed}, {cycles} kill cycles (LESSOR_TORTURE_SEED={seed} reproduces the choices)");
    let db = pg::database("torture");
    // Kept when a check fails (the message names it), removed after a pass.
    let kept = tempfile::tempdir().unwrap().keep();
    let dir = kept.join("data");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let root = {
        let (engine, root) = Engine::init(&dir, engine_options()).expect("init");
        let root = root.expose().to_string();
        let write = |path: &str, data: Value| {
            rt.block_on(engine.request(&root, Operation::Update, path, data)).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        write("sys/mounts/database", json!({"type": "database"}));
        write(
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": db.url_template(),
                "username": db.admin_username(),
                "password": db.admin_password(),
                "allowed_roles": "*",
                "max_open_connections": 8,
                "username_template": format!("{PREFIX}{{{{random 16}}}}"),
            }),
        );
        for (name, ttl, max, _) in ROLES {
            let role = json!({"db_name": "pg", "creation_statements": CREATION, "default_ttl": ttl, "max_ttl": max});
            write(&format!("database/roles/{name}"), role);
        }
        let policy = "path \"database/creds/*\" { capabilities = [\"read\"] }\n\
                      path \"auth/token/create\" { capabilities = [\"update\"] }";
        write("sys/policy/issuer", json!({"policy": policy}));
        engine.close();
        root
    };
    let mut t = Torture {
        seed,
        cycle: 0,
        dir: dir.clone(),
        root,
        db,
        history: History::default(),
        acks: Acks::default(),
        exported: None,
        verified_records: 0,
        child_stderr: kept.join("child.stderr"),
        torn_tails: 0,
        unproven_tails: 0,
        kills_mid_operation: 0,
        recovered: 0,
        acked_without_outcome: 0,
    };
    let mut rng = SplitMix64(seed);
    // A full verify after every cycle while the log is small; on long runs every
    // so often (each costs a pass over the whole log), and at the end.
    let verify_every = (cycles / 200).max(1);
    let mut early_kills = 0;
    for cycle in 0..cycles {
        t.cycle = cycle;
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "torture_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir)
            .env(CHILD_TOKEN, &t.root)
            .env(CHILD_SEED, seed.to_string())
            .env(CHILD_CYCLE, cycle.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&t.child_stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // The kill point: after a seeded number of acknowledged operations plus a
        // seeded delay, or (one cycle in eight) a delay from spawning, which lands
        // in start-up, replay or recovery.
        let mut lines = Vec::new();
        if rng.below(8) == 0 {
            early_kills += 1;
            std::thread::sleep(Duration::from_millis(rng.below(150)));
        } else {
            let target = 1 + rng.below(60) as usize;
            let mut acks = 0;
            while acks < target {
                match rx.recv_timeout(Duration::from_secs(60)) {
                    Ok(line) => {
                        acks += usize::from(line.starts_with("ACK "));
                        lines.push(line);
                    }
                    Err(e) => {
                        let _ = child.kill();
                        let stderr = std::fs::read_to_string(&t.child_stderr).unwrap_or_default();
                        let tail: String = stderr
                            .lines()
                            .rev()
                            .take(30)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect::<Vec<_>>()
                            .join("\n");
                        t.fail(format!(
                            "the child stopped acknowledging ({e}) after {acks} operations; its stderr:\n{tail}"
                        ))
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let acked = t.take_lines(&lines);
        t.read_log();
        t.verify_log(cycle % verify_every == 0);
        t.restart_and_check(&rt, rng.below(4) != 0);
        t.acks.checked += acked;
        if (cycle + 1) % 100 == 0 {
            println!(
                "torture: {} cycles, {} acknowledged operations checked, {} log records",
                cycle + 1,
                t.acks.checked,
                t.history.records
            );
        }
    }
    // The end: everything revoked, nothing left in PostgreSQL, the log verifies.
    t.cycle = cycles;
    t.acks.prefix_begins.push(("database/creds/".to_string(), u64::MAX));
    {
        let engine = Arc::new(Engine::open(&dir, engine_options()).unwrap());
        rt.block_on(engine.recover()).unwrap();
        rt.block_on(engine.request(&t.root, Operation::Update, "sys/leases/revoke-prefix/database/creds/", json!({})))
            .unwrap();
        for _ in 0..10_000 {
            if engine.with_state(|s| s.leases.is_empty()) {
                break;
            }
            rt.block_on(engine.expire_due()).unwrap();
        }
        assert!(engine.with_state(|s| s.leases.is_empty()), "seed {seed}: leases left after revoking everything");
        Arc::into_inner(engine).unwrap().close();
    }
    t.read_log();
    t.verify_log(true);
    let orphans = t.db.roles_with_prefix(PREFIX);
    assert!(orphans.is_empty(), "seed {seed}: roles left after revoking everything: {orphans:?}");
    let ended = t.history.leases.values().filter(|l| l.ended).count();
    println!(
        "torture: seed {seed}: {cycles} kill cycles survived ({early_kills} during start-up/recovery), {} acknowledged \
         operations checked, {} leases issued and {ended} ended legitimately, 0 orphans, {} log records verified; \
         {} kills left a torn tail, {} whole records after the newest proof, {} left issues or revocations half \
         done ({} finished by recovery), {} acknowledged issues lost their riding outcome (kept until expiry); \
         child errors by kind: {:?}",
        t.acks.checked,
        t.history.leases.len(),
        t.verified_records,
        t.torn_tails,
        t.unproven_tails,
        t.kills_mid_operation,
        t.recovered,
        t.acked_without_outcome,
        t.acks.errors
    );
    for sample in t.acks.error_samples.values() {
        println!("torture: e.g. {sample}");
    }
    assert!(
        t.acks.checked >= cycles,
        "seed {seed}: only {} acknowledged operations in {cycles} cycles",
        t.acks.checked
    );
    std::fs::remove_dir_all(&kept).unwrap();
}
