//! The load generator's arguments, their defaults and their validation.

use std::path::PathBuf;

use lessor_engine::plugin::scram::SCRAM_ITERATIONS_DEFAULT;

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
    /// the creation SQL, instead of during it (docs/DESIGN.md, "The write path"), to measure what
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
    Ok(())
}
