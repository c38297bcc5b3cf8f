//! The load generator's arguments, their defaults and their validation.

use std::path::PathBuf;

use lessor_engine::plugin::scram::SCRAM_ITERATIONS_DEFAULT;

use super::report::System;

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
    /// Systems to measure, comma-separated, from `raw` (the statements run straight
    /// at PostgreSQL), `lessor` (the engine in this process), `openbao` (`bao
    /// server` with raft storage, started here; or the server of `--vault-addr`)
    /// and `lessor-http` (`lessor server`, started here). Every system issues and
    /// revokes the same role on the same PostgreSQL; rounds alternate them.
    #[arg(long, value_delimiter = ',', default_value = "raw,lessor")]
    pub systems: Vec<System>,
    /// Add `openbao` to --systems: start `bao server` (OpenBao) with raft storage
    /// beside the PostgreSQL and issue and revoke through its HTTP API.
    #[arg(long)]
    pub openbao: bool,
    /// Add `lessor-http` to --systems: start `lessor server -config` and issue and
    /// revoke through its HTTP API, as OpenBao is.
    #[arg(long)]
    pub lessor_http: bool,
    /// An already running Vault or OpenBao to measure as `openbao` instead of
    /// starting one: `http://host:port` (plain HTTP). The run mounts a database
    /// secrets engine at `lessor-bench-<run>` pointing at the benchmark's
    /// PostgreSQL (which that server must be able to reach), and removes the
    /// mount, its policy and token afterwards. Needs --vault-token.
    #[arg(long, env = "LESSOR_BENCH_VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// A token of the --vault-addr server allowed to mount secrets engines, write
    /// policies and create tokens (a root token, typically).
    #[arg(long, env = "LESSOR_BENCH_VAULT_TOKEN", hide_env_values = true)]
    pub vault_token: Option<String>,
    /// Put a latency-injecting proxy (on 127.0.0.1) between every system's
    /// database client and PostgreSQL, adding this many milliseconds per round
    /// trip (half each way): raw's connections, lessor's plugin, OpenBao's and
    /// `lessor server`'s connection URLs. 0: no proxy.
    #[arg(long, default_value_t = 0.0)]
    pub rtt_ms: f64,
    /// The raw baseline's client: `plugin` (lessor's PostgreSQL plugin with an
    /// always-open commit gate, no engine) or `naive` (plain tokio-postgres:
    /// BEGIN, each statement, COMMIT, each awaited before the next; stays one round
    /// trip per statement whatever the plugin learns).
    #[arg(long, default_value = "plugin")]
    pub raw_client: String,
    /// The `bao` binary for `openbao` (default: $LESSOR_BENCH_BAO,
    /// $LESSOR_TEST_BAO, target/vault-clients/bin/bao as `scripts/setup` and
    /// `scripts/bench-openbao` install it, then PATH).
    #[arg(long)]
    pub bao_bin: Option<PathBuf>,
    /// The `lessor` binary for `lessor-http` (default: beside this one, then
    /// PATH; build it with `cargo build --release -p lessor-cli`).
    #[arg(long)]
    pub lessor_bin: Option<PathBuf>,
    /// Where the servers this run starts keep their data (OpenBao's raft, `lessor
    /// server`'s log and access log); default a temporary directory on TMPDIR.
    /// Keep it on a disk: both fsync.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
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
    /// the creation SQL, instead of during it (docs/DESIGN.md, "The write path"), to measure what
    /// the overlap buys; builds lessor's plugin through a plugin factory.
    #[arg(long, default_value = "on")]
    pub intent_overlap: String,
    /// Where lessor's data directory (its log) lives; default a temporary directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory for `loadgen.csv`, `loadgen-summary.csv` and `loadgen.svg`.
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
            systems: vec![System::Raw, System::Lessor],
            openbao: false,
            lessor_http: false,
            vault_addr: None,
            vault_token: None,
            rtt_ms: 0.0,
            raw_client: "plugin".into(),
            bao_bin: None,
            lessor_bin: None,
            work_dir: None,
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

pub(crate) fn validate(args: &LoadgenArgs) -> Result<(), String> {
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
    if systems(args).is_empty() {
        return Err("--systems: name at least one of raw, lessor, openbao, lessor-http".into());
    }
    if !matches!(args.raw_client.as_str(), "plugin" | "naive") {
        return Err("--raw-client must be plugin or naive".into());
    }
    if !(args.rtt_ms.is_finite() && (0.0..=1000.0).contains(&args.rtt_ms)) {
        return Err("--rtt-ms must be between 0 (no proxy) and 1000 milliseconds".into());
    }
    match (&args.vault_addr, &args.vault_token) {
        (Some(_), None) => return Err("--vault-addr needs --vault-token (a token that may mount engines)".into()),
        (None, Some(_)) => return Err("--vault-token is for --vault-addr, which is missing".into()),
        (Some(addr), Some(_)) if !addr.starts_with("http://") => {
            return Err(format!(
                "--vault-addr {addr}: give http://host:port; the bench's HTTP client speaks plain HTTP only (no \
                 TLS), so use a listener with tls_disable on this host"
            ));
        }
        _ => {}
    }
    Ok(())
}

/// The systems to measure: --systems with what --openbao, --vault-addr and
/// --lessor-http add, each once, in [`System`] order.
pub fn systems(args: &LoadgenArgs) -> Vec<System> {
    let mut systems = args.systems.clone();
    if args.openbao || args.vault_addr.is_some() {
        systems.push(System::OpenBao);
    }
    if args.lessor_http {
        systems.push(System::LessorHttp);
    }
    systems.sort_unstable();
    systems.dedup();
    systems
}
