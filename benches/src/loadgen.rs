//! The issuance load generator: how many credentials per second a PostgreSQL
//! server hands out through lessor, against the same SQL run straight at it.
//!
//! For every statement set and every concurrency, rounds alternate between the
//! two systems doing the same work:
//!
//! * **raw**: lessor's PostgreSQL plugin alone, with a commit gate that is always
//!   open and no engine around it (`loadgen/raw.rs`): each credential is the
//!   role's creation statements in one transaction, each revocation its revocation
//!   statements (or the default revocation) in one, with the password generation,
//!   SCRAM verifier, pool and handling of concurrent GRANTs (serialized per
//!   connection, bounded retry with jitter) lessor has, because they are lessor's;
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
//!
//! [`Engine::issue`]: lessor_engine::Engine::issue
//! [`Engine::revoke`]: lessor_engine::Engine::revoke

mod args;
mod chart;
mod lessor;
mod phase;
pub mod proxy;
mod raw;
pub(crate) mod report;
mod rounds;
pub(crate) mod server;
pub(crate) mod statements;
pub(crate) mod stats;

use std::path::{Path, PathBuf};

use lessor_engine::text::random::random_alnum;

pub use args::LoadgenArgs;
use args::validate;
pub use chart::svg;
use raw::Raw;
pub use report::{Measurement, Phase, Report, Summary, System, csv};
use rounds::run_sets;
pub use server::run_roles;
use server::{cleanup, start_server};
use statements::statement_set;
pub use statements::{
    ARTICLE_CREATION, ARTICLE_REVOCATION, MEMBERSHIP_CREATION, MEMBERSHIP_REVOCATION, READERS_ROLE, ROLE_PREFIX,
};
use stats::summarize;

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
pub(crate) fn load_average() -> String {
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
