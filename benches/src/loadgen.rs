//! The issuance load generator: how many credentials per second a PostgreSQL
//! server hands out through lessor, against the same SQL run straight at it.
//!
//! For every statement set and every concurrency, rounds alternate between the
//! two systems doing the same work:
//!
//! * **raw**: plain tokio-postgres, one connection per worker; each credential is
//!   the role's creation statements in one transaction, with the same password
//!   generation (and SCRAM verifier, if any) lessor uses, the same handling of
//!   concurrent GRANTs (serialized per connection, bounded retry with jitter), and
//!   each revocation the role's revocation statements in one transaction;
//! * **lessor**: the full engine — token authentication and ACL, the durable log
//!   with group commit (intent, outcome and audit record), the creation SQL through
//!   the PostgreSQL plugin, the state fold, the expirer's wheel — through
//!   [`Engine::issue`] and [`Engine::revoke`] with an application token.
//!
//! A round of one system issues `per_round` credentials with `c` workers, then
//! revokes them the same way, so every measured phase starts from the same database
//! (no live users of the bench): the article's GRANTs get slower with every live
//! user (each table's ACL grows), and a baseline measured on an emptier database
//! would flatter the raw side. Rounds go raw, lessor, lessor, raw, raw, … (ABBA):
//! a drift over the run (autovacuum, page cache, other load) then falls on both
//! systems alike. Every role the run created is dropped at the end, also on error.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lessor_engine::plugin::credentials::{PasswordPolicy, SCRAM_ITERATIONS_DEFAULT, generate_password, random_alnum};
use lessor_engine::plugin::postgres::{
    self, CONFLICT_ATTEMPTS_MAX, PasswordAuthentication, db_error, default_revocation_sql, jitter_ms, password_for_sql,
    quote_identifier, retryable,
};
use lessor_engine::plugin::statements::{normalize_statement_list, updates_shared_catalog_rows};
use lessor_engine::plugin::template::{StatementVars, expiration_text, render_statement};
use lessor_engine::plugin::{CommitGate, DatabasePlugin, NewUser, PluginError, PluginFuture};
use lessor_engine::request::Operation;
use lessor_engine::{Engine, EngineOptions};
use serde_json::{Value, json};

/// The article's creation statements (reference/seed-article.txt).
pub const ARTICLE_CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL \
     '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"; ALTER DEFAULT PRIVILEGES IN \
     SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";";
/// The article's revocation, with the default-privileges REVOKE it lacks: without
/// it DROP ROLE fails ("some objects depend on it"), which lessor warns about.
pub const ARTICLE_REVOCATION: &str = "ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM \
     \"{{name}}\"; REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; DROP ROLE IF EXISTS \
     \"{{name}}\";";
/// Membership in a pre-created group role instead of per-user GRANTs.
pub const MEMBERSHIP_CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL \
     '{{expiration}}' IN ROLE readers;";
pub const MEMBERSHIP_REVOCATION: &str = "DROP ROLE IF EXISTS \"{{name}}\";";
/// The group role the membership set joins; created when missing.
pub const READERS_ROLE: &str = "readers";
/// Prefix of every role the load generator creates: `v-<run>-r-…` (raw) and
/// `v-<run>-l-…` (lessor), `<run>` random per run.
pub const ROLE_PREFIX: &str = "v-";

/// Arguments of `lessor-bench` (and `lessor bench`).
#[derive(Debug, Clone, clap::Args)]
pub struct LoadgenArgs {
    /// Admin URL of the server to measure (a user with LOGIN CREATEROLE that may
    /// create tables in the database's `public` schema). Without it, a throwaway
    /// PostgreSQL cluster is started (initdb from /usr/lib/postgresql/*/bin or
    /// LESSOR_TEST_PG_BINDIR) and removed afterwards.
    #[arg(long, env = "LESSOR_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Concurrent workers, a comma-separated list.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub concurrency: Vec<usize>,
    /// Statement sets, comma-separated: `article` (the article's CREATE ROLE + GRANT
    /// ON ALL TABLES + ALTER DEFAULT PRIVILEGES), `membership` (CREATE ROLE … IN ROLE
    /// readers), or a JSON file of a Vault role (`creation_statements`,
    /// `revocation_statements`, and optionally `setup_statements` run once before).
    #[arg(long, value_delimiter = ',', default_value = "article,membership")]
    pub statements: Vec<String>,
    /// Measured rounds per system, statement set and concurrency.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Credentials issued (and then revoked) per round.
    #[arg(long, default_value_t = 200)]
    pub per_round: usize,
    /// `password` (the server hashes it) or `scram-sha-256` (the client computes
    /// the verifier); used by both systems.
    #[arg(long, default_value = "password")]
    pub password_authentication: String,
    /// PBKDF2 rounds of client-computed SCRAM verifiers (with scram-sha-256).
    #[arg(long, default_value_t = SCRAM_ITERATIONS_DEFAULT)]
    pub scram_iterations: u32,
    /// Tables in `public` the article's GRANT ON ALL TABLES covers.
    #[arg(long, default_value_t = 4)]
    pub tables: usize,
    /// Handle concurrent GRANTs by retrying only (`retry`) instead of serializing
    /// them per connection and retrying (`serialize`, lessor's default); applies to
    /// both systems. `retry` builds lessor's plugin through a plugin factory.
    #[arg(long, default_value = "serialize")]
    pub grants: String,
    /// `off` makes lessor wait for its issue intent to be durable *before* running
    /// the creation SQL, instead of during it (DESIGN.md's overlap), to measure what
    /// the overlap buys; builds lessor's plugin through a plugin factory.
    #[arg(long, default_value = "on")]
    pub intent_overlap: String,
    /// Where lessor's data directory (its log) lives; default a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory for `loadgen.csv` and `loadgen.svg`.
    #[arg(long, default_value = "target/lessor-bench")]
    pub out: PathBuf,
    /// No progress bar (there is none anyway when stderr is not a terminal).
    #[arg(long)]
    pub no_progress: bool,
}

impl Default for LoadgenArgs {
    fn default() -> Self {
        LoadgenArgs {
            database_url: None,
            concurrency: vec![1, 2, 4, 8],
            statements: vec!["article".into(), "membership".into()],
            rounds: 3,
            per_round: 200,
            password_authentication: "password".into(),
            scram_iterations: SCRAM_ITERATIONS_DEFAULT,
            tables: 4,
            grants: "serialize".into(),
            intent_overlap: "on".into(),
            data_dir: None,
            out: PathBuf::from("target/lessor-bench"),
            no_progress: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    Raw,
    Lessor,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Raw => "raw",
            System::Lessor => "lessor",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Issue,
    Revoke,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Issue => "issue",
            Phase::Revoke => "revoke",
        }
    }
}

/// One measured phase: one system, one round.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub set: String,
    pub phase: Phase,
    pub concurrency: usize,
    pub system: System,
    pub round: usize,
    pub ok: usize,
    pub failed: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// lessor only: log events written per fdatasync during the phase.
    pub events_per_fsync: Option<f64>,
    /// Retries of colliding transactions (raw only: lessor's are inside the plugin).
    pub retries: u64,
    /// CPU time of this whole process (user + system) per operation, in µs: the
    /// client side of raw, the engine plus its client side for lessor.
    pub cpu_us_per_op: f64,
    /// The first error of the phase, if any.
    pub first_error: Option<String>,
}

impl Measurement {
    pub fn throughput(&self) -> f64 {
        if self.seconds > 0.0 { self.ok as f64 / self.seconds } else { 0.0 }
    }
}

/// Summary of one (set, phase, concurrency) across its rounds.
#[derive(Clone, Debug)]
pub struct Summary {
    pub set: String,
    pub phase: Phase,
    pub concurrency: usize,
    /// Median throughput over rounds.
    pub raw_per_s: f64,
    pub lessor_per_s: f64,
    /// lessor/raw of each round pair: median, min, max.
    pub ratio: f64,
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// Medians over rounds of each round's percentiles; max is the max of all.
    pub raw_p50_ms: f64,
    pub raw_p99_ms: f64,
    pub raw_max_ms: f64,
    pub lessor_p50_ms: f64,
    pub lessor_p99_ms: f64,
    pub lessor_max_ms: f64,
    pub events_per_fsync: f64,
    pub raw_cpu_us: f64,
    pub lessor_cpu_us: f64,
    pub failed: usize,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub measurements: Vec<Measurement>,
    pub summaries: Vec<Summary>,
    /// Server version, settings and machine, for the record.
    pub conditions: String,
    /// Roles of this run still present after cleanup (should be empty).
    pub leftover_roles: Vec<String>,
    pub csv_path: PathBuf,
    pub svg_path: PathBuf,
}

impl Report {
    /// The table `lessor-bench` prints.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.conditions);
        let _ = writeln!(
            out,
            "{:<11} {:<6} {:>2} | {:>8} {:>8} | {:>5} {:>11} | {:>6} {:>6} {:>7} | {:>6} {:>6} {:>7} | {:>6} | {:>6} {:>6} | {:>4}",
            "set",
            "phase",
            "c",
            "raw/s",
            "lessor/s",
            "ratio",
            "(min–max)",
            "raw50",
            "raw99",
            "rawmax",
            "les50",
            "les99",
            "lesmax",
            "ev/fs",
            "rawCPU",
            "lesCPU",
            "fail"
        );
        for s in &self.summaries {
            let _ = writeln!(
                out,
                "{:<11} {:<6} {:>2} | {:>8.1} {:>8.1} | {:>5.3} {:>11} | {:>6.2} {:>6.2} {:>7.2} | {:>6.2} {:>6.2} {:>7.2} | {:>6.2} | {:>6.0} {:>6.0} | {:>4}",
                truncate(&s.set, 11),
                s.phase.name(),
                s.concurrency,
                s.raw_per_s,
                s.lessor_per_s,
                s.ratio,
                format!("{:.3}–{:.3}", s.ratio_min, s.ratio_max),
                s.raw_p50_ms,
                s.raw_p99_ms,
                s.raw_max_ms,
                s.lessor_p50_ms,
                s.lessor_p99_ms,
                s.lessor_max_ms,
                s.events_per_fsync,
                s.raw_cpu_us,
                s.lessor_cpu_us,
                s.failed
            );
        }
        let _ = writeln!(
            out,
            "latencies in ms (median over rounds of each round's p50/p99; max of all); ev/fs = lessor log events per \
             fdatasync; CPU = this process's µs per operation (client side for raw; engine + client for lessor)"
        );
        out
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A role to measure: its name (the set's), statements, and setup SQL.
#[derive(Clone, Debug)]
struct StatementSet {
    name: String,
    creation: Vec<String>,
    revocation: Vec<String>,
    setup: Vec<String>,
}

fn statement_set(spec: &str, tables: usize) -> Result<StatementSet, String> {
    let split = |text: &str, what: &str| {
        normalize_statement_list(&[text.to_string()]).map_err(|e| format!("{spec}: {what}: {e}"))
    };
    let table_setup = (1..=tables)
        .map(|i| format!("CREATE TABLE IF NOT EXISTS public.lessor_bench_t{i} (id int PRIMARY KEY, v text)"))
        .collect::<Vec<_>>();
    match spec {
        "article" => Ok(StatementSet {
            name: "article".into(),
            creation: split(ARTICLE_CREATION, "creation")?,
            revocation: split(ARTICLE_REVOCATION, "revocation")?,
            setup: table_setup,
        }),
        "membership" => Ok(StatementSet {
            name: "membership".into(),
            creation: split(MEMBERSHIP_CREATION, "creation")?,
            revocation: split(MEMBERSHIP_REVOCATION, "revocation")?,
            setup: table_setup,
        }),
        path => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                format!("--statements {path}: not `article` or `membership`, and cannot read it as a file: {e}")
            })?;
            let value: Value = serde_json::from_str(&text).map_err(|e| {
                format!("--statements {path}: expected a JSON object with \"creation_statements\": {e}")
            })?;
            let list = |field: &str| -> Result<Vec<String>, String> {
                let items: Vec<String> = match value.get(field) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::String(s)) => vec![s.clone()],
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<_>>()
                        .ok_or_else(|| format!("{path}: \"{field}\" must hold strings"))?,
                    Some(_) => return Err(format!("{path}: \"{field}\" must be a string or a list of strings")),
                };
                normalize_statement_list(&items).map_err(|e| format!("{path}: \"{field}\": {e}"))
            };
            let creation = list("creation_statements")?;
            if creation.is_empty() {
                return Err(format!("{path}: \"creation_statements\" is required"));
            }
            let name = Path::new(path)
                .file_stem()
                .map(|s| s.to_string_lossy().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect())
                .filter(|s: &String| !s.is_empty())
                .unwrap_or_else(|| "custom".to_string());
            Ok(StatementSet {
                name,
                creation,
                revocation: list("revocation_statements")?,
                setup: list("setup_statements")?,
            })
        }
    }
}

/// Where the server is, and how to reach it as the admin.
struct Server {
    /// `postgresql://{{username}}:{{password}}@host:port/db` for lessor's connection.
    url_template: String,
    admin_user: String,
    admin_password: String,
    config: tokio_postgres::Config,
    /// Keeps a throwaway cluster alive for the run.
    _cluster: Option<lessor_pgtemp::Cluster>,
    description: String,
}

fn start_server(args: &LoadgenArgs) -> Result<Server, String> {
    match &args.database_url {
        Some(url) => {
            let config: tokio_postgres::Config =
                url.parse().map_err(|e| format!("--database-url is not a PostgreSQL URL: {e}"))?;
            let user = config.get_user().ok_or("--database-url names no user")?.to_string();
            let password = config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .ok_or("--database-url has no password (lessor's connection needs one)")?;
            let (host, port) = match (config.get_hosts().first(), config.get_ports().first()) {
                (Some(tokio_postgres::config::Host::Tcp(h)), port) => (h.clone(), port.copied().unwrap_or(5432)),
                _ => return Err("--database-url must use a TCP host".into()),
            };
            let db = config.get_dbname().unwrap_or(&user).to_string();
            Ok(Server {
                url_template: format!(
                    "postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/{db}?sslmode=disable"
                ),
                admin_user: user,
                admin_password: password,
                config,
                _cluster: None,
                description: format!("server {host}:{port}/{db}"),
            })
        }
        None => {
            let cluster = lessor_pgtemp::private_cluster();
            // A real server keeps its data safe: the harness turns durability off
            // for test speed, so it goes back on (the server's defaults) here.
            // ALTER SYSTEM refuses to run in a (multi-statement) transaction.
            for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
                cluster.superuser_execute(&format!("ALTER SYSTEM SET {setting} = on"));
            }
            cluster.superuser_execute("SELECT pg_reload_conf()");
            let db = cluster.database("lessor_bench");
            let description =
                format!("throwaway PostgreSQL {} in {} (fsync on)", cluster.version(), cluster.root_dir().display());
            Ok(Server {
                url_template: db.url_template(),
                admin_user: db.admin_username().to_string(),
                admin_password: db.admin_password().to_string(),
                config: db.admin_config(),
                _cluster: Some(cluster),
                description,
            })
        }
    }
}

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, String> {
    let (client, connection) =
        config.connect(tokio_postgres::NoTls).await.map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// How one system issues and revokes.
trait Target: Send + Sync {
    /// Issues one credential; returns the handle its revocation needs.
    fn issue(&self, worker: usize) -> impl Future<Output = Result<String, String>> + Send;
    fn revoke(&self, worker: usize, handle: String) -> impl Future<Output = Result<(), String>> + Send;
}

/// Raw SQL: one connection per worker.
struct Raw {
    clients: Vec<tokio::sync::Mutex<tokio_postgres::Client>>,
    set: StatementSet,
    run_id: String,
    policy: PasswordPolicy,
    mode: PasswordAuthentication,
    scram_iterations: u32,
    /// The same per-connection serialization of shared-catalog updates as the plugin.
    shared_catalog: Option<tokio::sync::Mutex<()>>,
    retries: AtomicU64,
}

impl Raw {
    fn fill(buf: &mut [u8]) {
        getrandom::fill(buf).expect("the OS random source failed");
    }

    /// Runs `statements` in one transaction, serialized and retried as the plugin does.
    async fn transaction(&self, worker: usize, prefix: Option<&str>, statements: &[String]) -> Result<(), String> {
        let mut client = self.clients[worker].lock().await;
        let mut attempt = 1;
        loop {
            let result: Result<(), PluginError> = async {
                let tx = client.transaction().await.map_err(db_error)?;
                let mut held = None;
                if let Some(prefix) = prefix {
                    tx.batch_execute(prefix).await.map_err(db_error)?;
                }
                for sql in statements {
                    if let Some(lock) = &self.shared_catalog
                        && held.is_none()
                        && updates_shared_catalog_rows(sql)
                    {
                        held = Some(lock.lock().await);
                    }
                    tx.batch_execute(sql).await.map_err(db_error)?;
                }
                let committed = tx.commit().await.map_err(db_error);
                drop(held);
                committed
            }
            .await;
            match result {
                Err(e) if retryable(&e) && attempt < CONFLICT_ATTEMPTS_MAX => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter_ms())).await;
                    attempt += 1;
                }
                other => return other.map_err(|e| e.to_string()),
            }
        }
    }
}

impl Target for Raw {
    async fn issue(&self, worker: usize) -> Result<String, String> {
        let username = format!("{ROLE_PREFIX}{}-r-{}", self.run_id, random_alnum(16, &mut Raw::fill));
        let password = generate_password(&self.policy, &mut Raw::fill);
        let sql_password = password_for_sql(self.mode, self.scram_iterations, &password);
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let expiration = expiration_text(now_ms + 3_600_000);
        let vars =
            StatementVars { name: Some(&username), password: Some(&sql_password), expiration: Some(&expiration) };
        let sql = self
            .set
            .creation
            .iter()
            .map(|s| render_statement(s, &vars).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        self.transaction(worker, None, &sql).await?;
        Ok(username)
    }

    async fn revoke(&self, worker: usize, username: String) -> Result<(), String> {
        if self.set.revocation.is_empty() {
            let grant = format!("GRANT {} TO CURRENT_USER", quote_identifier(&username));
            return self.transaction(worker, Some(&grant), &[default_revocation_sql(&username)]).await;
        }
        let vars = StatementVars { name: Some(&username), password: None, expiration: None };
        let sql = self
            .set
            .revocation
            .iter()
            .map(|s| render_statement(s, &vars).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        self.transaction(worker, None, &sql).await
    }
}

/// lessor: the engine's typed entry points with an application token.
struct Lessor {
    engine: Arc<Engine>,
    token: String,
    creds_path: String,
}

impl Target for Lessor {
    async fn issue(&self, _worker: usize) -> Result<String, String> {
        self.engine.issue(&self.token, &self.creds_path).await.map(|c| c.lease_id).map_err(|e| e.to_string())
    }

    async fn revoke(&self, _worker: usize, lease_id: String) -> Result<(), String> {
        self.engine.revoke(&self.token, &lease_id).await.map_err(|e| e.to_string())
    }
}

/// What one phase produced.
struct PhaseResult {
    handles: Vec<String>,
    latencies: Vec<Duration>,
    failed: usize,
    first_error: Option<String>,
    elapsed: Duration,
    cpu: Duration,
}

/// Runs `count` operations with `workers` workers; `inputs` (for revocations) are
/// handed out in order.
async fn run_phase<T: Target + 'static>(
    target: &Arc<T>,
    phase: Phase,
    workers: usize,
    count: usize,
    inputs: Vec<String>,
    progress: &indicatif::ProgressBar,
) -> PhaseResult {
    let next = Arc::new(AtomicUsize::new(0));
    let inputs = Arc::new(std::sync::Mutex::new(inputs.into_iter().map(Some).collect::<Vec<_>>()));
    let cpu_before = crate::process_cpu();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let (target, next, inputs, progress) = (target.clone(), next.clone(), inputs.clone(), progress.clone());
        tasks.spawn(async move {
            let mut out = (Vec::new(), Vec::new(), 0usize, None::<String>);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let t0 = Instant::now();
                let result = match phase {
                    Phase::Issue => target.issue(worker).await,
                    Phase::Revoke => {
                        let handle = inputs.lock().expect("inputs lock")[i].take().expect("one revocation per handle");
                        target.revoke(worker, handle).await.map(|()| String::new())
                    }
                };
                match result {
                    Ok(handle) => {
                        out.1.push(t0.elapsed());
                        if phase == Phase::Issue {
                            out.0.push(handle);
                        }
                    }
                    Err(e) => {
                        out.2 += 1;
                        out.3.get_or_insert(e);
                    }
                }
                progress.inc(1);
            }
            out
        });
    }
    let mut result = PhaseResult {
        handles: Vec::new(),
        latencies: Vec::with_capacity(count),
        failed: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        let (handles, latencies, failed, error) = joined.expect("load generator worker panicked");
        result.handles.extend(handles);
        result.latencies.extend(latencies);
        result.failed += failed;
        if result.first_error.is_none() {
            result.first_error = error;
        }
    }
    result.elapsed = start.elapsed();
    result.cpu = crate::process_cpu().saturating_sub(cpu_before);
    result
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

#[allow(clippy::too_many_arguments)]
fn measurement(
    set: &str,
    phase: Phase,
    concurrency: usize,
    system: System,
    round: usize,
    mut r: PhaseResult,
    events_per_fsync: Option<f64>,
    retries: u64,
) -> (Measurement, Vec<String>) {
    r.latencies.sort_unstable();
    let ops = (r.latencies.len() + r.failed).max(1);
    let m = Measurement {
        set: set.to_string(),
        phase,
        concurrency,
        system,
        round,
        ok: r.latencies.len(),
        failed: r.failed,
        seconds: r.elapsed.as_secs_f64(),
        p50_ms: percentile_ms(&r.latencies, 0.50),
        p99_ms: percentile_ms(&r.latencies, 0.99),
        max_ms: r.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        events_per_fsync,
        retries,
        cpu_us_per_op: r.cpu.as_secs_f64() * 1e6 / ops as f64,
        first_error: r.first_error,
    };
    (m, r.handles)
}

/// Log events and fsyncs so far.
fn log_counts(engine: &Engine) -> (u64, u64) {
    let stats = engine.log_stats();
    (stats.events_written.load(Ordering::Relaxed), stats.batches_synced.load(Ordering::Relaxed))
}

/// Runs the load generator. Blocks; starts its own runtime.
pub fn run(args: LoadgenArgs) -> Result<Report, String> {
    validate(&args)?;
    let load_before = load_average();
    let workers = args.concurrency.iter().copied().max().unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2.max(std::thread::available_parallelism().map_or(2, |n| n.get())))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let server = start_server(&args)?;
    let run_id = random_alnum(6, &mut Raw::fill).to_ascii_lowercase();
    let sets = args.statements.iter().map(|s| statement_set(s, args.tables)).collect::<Result<Vec<_>, _>>()?;
    let data_dir = match &args.data_dir {
        Some(dir) => Dir::Given(dir.clone()),
        None => Dir::Temp(tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?),
    };
    let outcome = rt.block_on(run_sets(&args, &server, &run_id, &sets, data_dir.path(), workers));
    // Cleanup runs whatever happened: every role of this run goes.
    let leftover = rt.block_on(cleanup(&server, &run_id));
    let (measurements, conditions) = outcome?;
    // Other work on the machine moves every figure: the record says how much there was.
    let conditions =
        format!("{conditions}; {}; load average {load_before} before, {} after", server.description, load_average());
    let leftover_roles = leftover?;
    let summaries = summarize(&measurements);
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let csv_path = args.out.join("loadgen.csv");
    let svg_path = args.out.join("loadgen.svg");
    std::fs::write(&csv_path, csv(&measurements)).map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;
    std::fs::write(&svg_path, svg(&summaries, &conditions))
        .map_err(|e| format!("cannot write {}: {e}", svg_path.display()))?;
    Ok(Report { measurements, summaries, conditions, leftover_roles, csv_path, svg_path })
}

/// The 1-minute load average, as /proc/loadavg gives it ("?" elsewhere).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

enum Dir {
    Given(PathBuf),
    Temp(tempfile::TempDir),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Dir::Given(p) => p,
            Dir::Temp(t) => t.path(),
        }
    }
}

fn validate(args: &LoadgenArgs) -> Result<(), String> {
    if args.concurrency.is_empty() || args.concurrency.iter().any(|&c| c == 0 || c > 256) {
        return Err("--concurrency: give 1 to 256 workers, e.g. 1,2,4,8".into());
    }
    if args.rounds == 0 || args.per_round == 0 {
        return Err("--rounds and --per-round must be at least 1".into());
    }
    if !matches!(args.password_authentication.as_str(), "password" | "scram-sha-256") {
        return Err("--password-authentication must be password or scram-sha-256".into());
    }
    if !matches!(args.grants.as_str(), "serialize" | "retry") {
        return Err("--grants must be serialize or retry".into());
    }
    if !matches!(args.intent_overlap.as_str(), "on" | "off") {
        return Err("--intent-overlap must be on or off".into());
    }
    if args.statements.is_empty() {
        return Err("--statements: give article, membership or a role's JSON file".into());
    }
    Ok(())
}

async fn run_sets(
    args: &LoadgenArgs,
    server: &Server,
    run_id: &str,
    sets: &[StatementSet],
    data_dir: &Path,
    workers: usize,
) -> Result<(Vec<Measurement>, String), String> {
    let admin = connect(&server.config).await?;
    let version = admin
        .query_one("SHOW server_version", &[])
        .await
        .map(|r| r.get::<_, String>(0))
        .map_err(|e| format!("SHOW server_version: {e}"))?;
    let fsync = admin.query_one("SHOW fsync", &[]).await.map(|r| r.get::<_, String>(0)).unwrap_or_else(|_| "?".into());
    let exists = admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&READERS_ROLE])
        .await
        .map_err(|e| format!("looking for role {READERS_ROLE}: {e}"))?;
    if exists.is_none() {
        admin
            .batch_execute(&format!("CREATE ROLE {READERS_ROLE} NOLOGIN"))
            .await
            .map_err(|e| format!("CREATE ROLE {READERS_ROLE}: {e}"))?;
    }
    for set in sets {
        for sql in &set.setup {
            admin.batch_execute(sql).await.map_err(|e| format!("setup of {}: {sql}: {e}", set.name))?;
        }
    }
    admin
        .batch_execute(&format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READERS_ROLE}"))
        .await
        .map_err(|e| format!("granting {READERS_ROLE}: {e}"))?;

    let mode = if args.password_authentication == "scram-sha-256" {
        PasswordAuthentication::ScramSha256
    } else {
        PasswordAuthentication::Password
    };
    let mut options = EngineOptions::default();
    if args.grants == "retry" || args.intent_overlap == "off" {
        options.plugin_factory = Some(plugin_factory(server, workers, mode, args));
    }
    let (engine, root) =
        Engine::init(data_dir, options).map_err(|e| format!("lessor init in {}: {e}", data_dir.display()))?;
    let engine = Arc::new(engine);
    let expirer = tokio::spawn(engine.clone().run_expirer());
    let root = root.expose().to_string();
    let result = async {
        let app_token = configure(&engine, &root, server, run_id, sets, workers, args).await?;
        let progress = progress_bar(args, sets.len());
        let mut measurements = Vec::new();
        for set in sets {
            let mut clients = Vec::with_capacity(workers);
            for _ in 0..workers {
                clients.push(tokio::sync::Mutex::new(connect(&server.config).await?));
            }
            let raw = Arc::new(Raw {
                clients,
                set: set.clone(),
                run_id: run_id.to_string(),
                policy: PasswordPolicy::default(),
                mode,
                scram_iterations: args.scram_iterations,
                shared_catalog: (args.grants == "serialize").then(|| tokio::sync::Mutex::new(())),
                retries: AtomicU64::new(0),
            });
            let lessor = Arc::new(Lessor {
                engine: engine.clone(),
                token: app_token.clone(),
                creds_path: format!("database/creds/{}", set.name),
            });
            for &c in &args.concurrency {
                // Warm-up, not measured: lessor's pool opens its connections, caches fill.
                for system in [System::Raw, System::Lessor] {
                    let n = 2 * c;
                    let issued = match system {
                        System::Raw => run_phase(&raw, Phase::Issue, c, n, Vec::new(), &progress).await,
                        System::Lessor => run_phase(&lessor, Phase::Issue, c, n, Vec::new(), &progress).await,
                    };
                    if let Some(e) = &issued.first_error {
                        return Err(format!("{} {} warm-up issue failed: {e}", set.name, system.name()));
                    }
                    let handles = issued.handles;
                    let revoked = match system {
                        System::Raw => run_phase(&raw, Phase::Revoke, c, handles.len(), handles, &progress).await,
                        System::Lessor => run_phase(&lessor, Phase::Revoke, c, handles.len(), handles, &progress).await,
                    };
                    if let Some(e) = &revoked.first_error {
                        return Err(format!("{} {} warm-up revoke failed: {e}", set.name, system.name()));
                    }
                }
                for round in 0..args.rounds {
                    // ABBA: raw first in even pairs of slots, lessor first in odd ones.
                    let order =
                        if round % 2 == 0 { [System::Raw, System::Lessor] } else { [System::Lessor, System::Raw] };
                    for system in order {
                        progress.set_message(format!("{} c={c} round {} {}", set.name, round + 1, system.name()));
                        let retries_before = raw.retries.load(Ordering::Relaxed);
                        let log_before = log_counts(&engine);
                        let issued = match system {
                            System::Raw => {
                                run_phase(&raw, Phase::Issue, c, args.per_round, Vec::new(), &progress).await
                            }
                            System::Lessor => {
                                run_phase(&lessor, Phase::Issue, c, args.per_round, Vec::new(), &progress).await
                            }
                        };
                        let log_mid = log_counts(&engine);
                        let retries_mid = raw.retries.load(Ordering::Relaxed);
                        let per_fsync = |(e0, s0): (u64, u64), (e1, s1): (u64, u64)| {
                            (system == System::Lessor && s1 > s0).then(|| (e1 - e0) as f64 / (s1 - s0) as f64)
                        };
                        let (m, handles) = measurement(
                            &set.name,
                            Phase::Issue,
                            c,
                            system,
                            round,
                            issued,
                            per_fsync(log_before, log_mid),
                            retries_mid - retries_before,
                        );
                        measurements.push(m);
                        let revoked = match system {
                            System::Raw => run_phase(&raw, Phase::Revoke, c, handles.len(), handles, &progress).await,
                            System::Lessor => {
                                run_phase(&lessor, Phase::Revoke, c, handles.len(), handles, &progress).await
                            }
                        };
                        let log_after = log_counts(&engine);
                        let retries_after = raw.retries.load(Ordering::Relaxed);
                        let (m, _) = measurement(
                            &set.name,
                            Phase::Revoke,
                            c,
                            system,
                            round,
                            revoked,
                            per_fsync(log_mid, log_after),
                            retries_after - retries_mid,
                        );
                        measurements.push(m);
                    }
                }
            }
        }
        progress.finish_and_clear();
        Ok(measurements)
    }
    .await;
    expirer.abort();
    let _ = expirer.await;
    match Arc::into_inner(engine) {
        Some(engine) => engine.close(),
        None => return Err("the engine is still in use after the run".into()),
    }
    let conditions = format!(
        "PostgreSQL {version} (fsync {fsync}); {} CPUs; {} per round, {} rounds per system (ABBA); password_authentication {}{}; grants: {}; intent overlap {}; lessor log in {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.per_round,
        args.rounds,
        args.password_authentication,
        if mode == PasswordAuthentication::ScramSha256 {
            format!(" ({} iterations)", args.scram_iterations)
        } else {
            String::new()
        },
        args.grants,
        args.intent_overlap,
        data_dir.display()
    );
    result.map(|m| (m, conditions))
}

fn progress_bar(args: &LoadgenArgs, sets: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if args.no_progress || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let warmup: usize = args.concurrency.iter().map(|c| 2 * 2 * 2 * c).sum();
    let total = sets * (warmup + args.concurrency.len() * args.rounds * 2 * 2 * args.per_round);
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} ops, {per_sec}, eta {eta}  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// Mount, connection, one role per set, a policy and an application token.
async fn configure(
    engine: &Engine,
    root: &str,
    server: &Server,
    run_id: &str,
    sets: &[StatementSet],
    workers: usize,
    args: &LoadgenArgs,
) -> Result<String, String> {
    let write = |path: String, data: Value| async move {
        engine.request(root, Operation::Update, &path, data).await.map_err(|e| format!("lessor: write {path}: {e}"))
    };
    write("sys/mounts/database".into(), json!({ "type": "database" })).await?;
    let mut connection = json!({
        "plugin_name": postgres::PLUGIN_NAME,
        "connection_url": server.url_template,
        "username": server.admin_user,
        "password": server.admin_password,
        "allowed_roles": "*",
        "max_open_connections": workers,
        "password_authentication": args.password_authentication,
        "username_template": format!("{ROLE_PREFIX}{run_id}-l-{{{{random 16}}}}"),
    });
    if args.password_authentication == "scram-sha-256" {
        connection["scram_iterations"] = json!(args.scram_iterations);
    }
    write("database/config/bench".into(), connection).await?;
    let mut policy = String::from("path \"sys/leases/revoke\" { capabilities = [\"update\"] }\n");
    for set in sets {
        write(
            format!("database/roles/{}", set.name),
            json!({
                "db_name": "bench",
                "creation_statements": set.creation,
                "revocation_statements": set.revocation,
                "default_ttl": "1h",
                "max_ttl": "24h",
            }),
        )
        .await?;
        let _ = writeln!(policy, "path \"database/creds/{}\" {{ capabilities = [\"read\"] }}", set.name);
    }
    write("sys/policies/acl/bench".into(), json!({ "policy": policy })).await?;
    let token = write("auth/token/create".into(), json!({ "policies": ["bench"], "ttl": "24h" })).await?;
    token.auth.map(|a| a.client_token).ok_or_else(|| "lessor: auth/token/create returned no token".to_string())
}

/// lessor's plugin built as the engine would, but retrying colliding GRANTs
/// instead of serializing them (`--grants retry`).
fn plugin_factory(
    server: &Server,
    workers: usize,
    mode: PasswordAuthentication,
    args: &LoadgenArgs,
) -> lessor_engine::plugin::PluginFactory {
    let url = server
        .url_template
        .replace("{{username}}", &lessor_pgtemp::percent_encode(&server.admin_user))
        .replace("{{password}}", &lessor_pgtemp::percent_encode(&server.admin_password));
    let (scram_iterations, serialize, overlap) =
        (args.scram_iterations, args.grants == "serialize", args.intent_overlap == "on");
    lessor_engine::plugin::PluginFactory(Arc::new(move |_connection| {
        let settings = postgres::PostgresSettings {
            connection_url: url.clone(),
            max_open_connections: workers as u32,
            password_authentication: mode,
            scram_iterations,
            serialize_shared_catalog_updates: serialize,
            ..postgres::PostgresSettings::default()
        };
        let plugin: Arc<dyn DatabasePlugin> = Arc::new(postgres::PostgresPlugin::new(&settings)?);
        Ok(if overlap { plugin } else { Arc::new(IntentFirst(plugin)) })
    }))
}

/// `--intent-overlap off`: the plugin waits for the intent to be durable before
/// it runs any creation SQL, as a write path without the overlap would.
#[derive(Debug)]
struct IntentFirst(Arc<dyn DatabasePlugin>);

impl DatabasePlugin for IntentFirst {
    fn verify(&self) -> PluginFuture<'_, ()> {
        self.0.verify()
    }

    fn create_user<'a>(&'a self, user: NewUser<'a>, gate: CommitGate<'a>) -> PluginFuture<'a, ()> {
        Box::pin(async move {
            gate.await.map_err(PluginError::Aborted)?;
            self.0.create_user(user, Box::pin(async { Ok(()) })).await
        })
    }

    fn renew_user<'a>(&'a self, username: &'a str, expiration: &'a str, s: &'a [String]) -> PluginFuture<'a, ()> {
        self.0.renew_user(username, expiration, s)
    }

    fn revoke_user<'a>(&'a self, username: &'a str, s: &'a [String], terminate: bool) -> PluginFuture<'a, ()> {
        self.0.revoke_user(username, s, terminate)
    }

    fn rotate_root<'a>(&'a self, username: &'a str, password: &'a str, s: &'a [String]) -> PluginFuture<'a, ()> {
        self.0.rotate_root(username, password, s)
    }

    fn user_exists<'a>(&'a self, username: &'a str) -> PluginFuture<'a, bool> {
        self.0.user_exists(username)
    }
}

/// Drops every role of this run; returns those still there afterwards.
async fn cleanup(server: &Server, run_id: &str) -> Result<Vec<String>, String> {
    let admin = connect(&server.config).await?;
    for role in run_roles(&admin, run_id).await? {
        let quoted = quote_identifier(&role);
        // As lessor's default revocation: whatever the role was granted goes with it.
        let sql = format!("BEGIN; GRANT {quoted} TO CURRENT_USER; {} COMMIT;", default_revocation_sql(&role));
        if admin.batch_execute(&sql).await.is_err() {
            let _ = admin.batch_execute("ROLLBACK").await;
        }
    }
    run_roles(&admin, run_id).await
}

/// Roles of this run that exist.
pub async fn run_roles(admin: &tokio_postgres::Client, run_id: &str) -> Result<Vec<String>, String> {
    let pattern = format!("{ROLE_PREFIX}{run_id}-%");
    admin
        .query("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1", &[&pattern])
        .await
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
        .map_err(|e| format!("listing the run's roles: {e}"))
}

fn summarize(measurements: &[Measurement]) -> Vec<Summary> {
    let mut groups: BTreeMap<(String, Phase, usize), Vec<&Measurement>> = BTreeMap::new();
    let mut order = Vec::new();
    for m in measurements {
        let key = (m.set.clone(), m.phase, m.concurrency);
        if !groups.contains_key(&key) {
            order.push(key.clone());
        }
        groups.entry(key).or_default().push(m);
    }
    order.sort_by(|a, b| (a.1, &a.0, a.2).cmp(&(b.1, &b.0, b.2)));
    order
        .into_iter()
        .map(|key| {
            let ms = &groups[&key];
            let of = |s: System| ms.iter().filter(move |m| m.system == s).copied().collect::<Vec<_>>();
            let (raw, les) = (of(System::Raw), of(System::Lessor));
            let ratios: Vec<f64> = raw
                .iter()
                .zip(&les)
                .filter(|(r, _)| r.throughput() > 0.0)
                .map(|(r, l)| l.throughput() / r.throughput())
                .collect();
            let med = |v: &[&Measurement], f: fn(&Measurement) -> f64| median(v.iter().map(|m| f(m)).collect());
            let max = |v: &[&Measurement]| v.iter().map(|m| m.max_ms).fold(0.0, f64::max);
            Summary {
                set: key.0.clone(),
                phase: key.1,
                concurrency: key.2,
                raw_per_s: med(&raw, Measurement::throughput),
                lessor_per_s: med(&les, Measurement::throughput),
                ratio: median(ratios.clone()),
                ratio_min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
                ratio_max: ratios.iter().copied().fold(0.0, f64::max),
                raw_p50_ms: med(&raw, |m| m.p50_ms),
                raw_p99_ms: med(&raw, |m| m.p99_ms),
                raw_max_ms: max(&raw),
                lessor_p50_ms: med(&les, |m| m.p50_ms),
                lessor_p99_ms: med(&les, |m| m.p99_ms),
                lessor_max_ms: max(&les),
                events_per_fsync: med(&les, |m| m.events_per_fsync.unwrap_or(0.0)),
                raw_cpu_us: med(&raw, |m| m.cpu_us_per_op),
                lessor_cpu_us: med(&les, |m| m.cpu_us_per_op),
                failed: ms.iter().map(|m| m.failed).sum(),
            }
        })
        .collect()
}

/// One line per measured phase.
pub fn csv(measurements: &[Measurement]) -> String {
    let mut out = String::from(
        "set,phase,concurrency,system,round,ok,failed,seconds,per_second,p50_ms,p99_ms,max_ms,events_per_fsync,retries,cpu_us_per_op\n",
    );
    for m in measurements {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{:.4},{:.2},{:.3},{:.3},{:.3},{},{},{:.1}",
            m.set,
            m.phase.name(),
            m.concurrency,
            m.system.name(),
            m.round,
            m.ok,
            m.failed,
            m.seconds,
            m.throughput(),
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            m.events_per_fsync.map_or(String::new(), |e| format!("{e:.2}")),
            m.retries,
            m.cpu_us_per_op
        );
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Throughput against concurrency: one panel per (statement set, phase), raw and
/// lessor as two lines of round medians, the median lessor/raw ratios written in.
pub fn svg(summaries: &[Summary], conditions: &str) -> String {
    let mut panels: Vec<(String, Phase)> = Vec::new();
    for s in summaries {
        if !panels.iter().any(|(set, phase)| *set == s.set && *phase == s.phase) {
            panels.push((s.set.clone(), s.phase));
        }
    }
    let (pw, ph, margin) = (360.0, 240.0, 50.0);
    let cols = 2usize;
    let rows = panels.len().div_ceil(cols).max(1);
    let width = cols as f64 * (pw + margin) + margin;
    let height = rows as f64 * (ph + margin + 20.0) + margin + 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{margin}" y="20" font-size="13">Credentials per second against concurrency: raw SQL (grey) and lessor (blue)</text>"#
    );
    // The conditions, wrapped at their `; ` separators to fit the width.
    let mut lines = vec![String::new()];
    for part in conditions.split("; ") {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.len() + part.len() > 120 {
            lines.push(part.to_string());
        } else {
            if !line.is_empty() {
                line.push_str("; ");
            }
            line.push_str(part);
        }
    }
    for (i, line) in lines.iter().take(3).enumerate() {
        let _ = writeln!(out, r##"<text x="{margin}" y="{}" fill="#555">{}</text>"##, 36 + 14 * i, xml_escape(line));
    }
    for (i, (set, phase)) in panels.iter().enumerate() {
        let x0 = margin + (i % cols) as f64 * (pw + margin);
        let y0 = 80.0 + margin + (i / cols) as f64 * (ph + margin + 20.0);
        let points: Vec<&Summary> = summaries.iter().filter(|s| s.set == *set && s.phase == *phase).collect();
        let cs: Vec<usize> = points.iter().map(|s| s.concurrency).collect();
        let ymax = points.iter().map(|s| s.raw_per_s.max(s.lessor_per_s)).fold(1.0, f64::max) * 1.15;
        let xmax = cs.len().max(2) - 1;
        let px = |k: usize| x0 + pw * k as f64 / xmax as f64;
        let py = |v: f64| y0 + ph - ph * v / ymax;
        let _ = writeln!(
            out,
            r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/><text x="{x0}" y="{}" font-size="12">{} — {}</text>"##,
            y0 - 6.0,
            xml_escape(set),
            phase.name()
        );
        for t in 0..=4 {
            let v = ymax * t as f64 / 4.0;
            let y = py(v);
            let _ = writeln!(
                out,
                r##"<line x1="{x0}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{v:.0}</text>"##,
                x0 + pw,
                x0 - 4.0,
                y + 4.0,
            );
        }
        for (k, c) in cs.iter().enumerate() {
            let _ = writeln!(out, r#"<text x="{}" y="{}" text-anchor="middle">c={c}</text>"#, px(k), y0 + ph + 14.0);
        }
        for (system, color) in [(System::Raw, "#888"), (System::Lessor, "#1f5fbf")] {
            let value = |s: &Summary| if system == System::Raw { s.raw_per_s } else { s.lessor_per_s };
            let path: Vec<String> =
                points.iter().enumerate().map(|(k, s)| format!("{:.1},{:.1}", px(k), py(value(s)))).collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                path.join(" ")
            );
            for (k, s) in points.iter().enumerate() {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{} c={}: {:.1}/s</title></circle>"#,
                    px(k),
                    py(value(s)),
                    system.name(),
                    s.concurrency,
                    value(s)
                );
            }
        }
        let ratios: Vec<String> = points.iter().map(|s| format!("{:.2}", s.ratio)).collect();
        let _ = writeln!(out, r#"<text x="{}" y="{}">lessor/raw: {}</text>"#, x0 + 6.0, y0 + 14.0, ratios.join(" · "));
    }
    out.push_str("</svg>\n");
    out
}
