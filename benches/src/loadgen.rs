//! The issuance load generator: how many credentials per second a PostgreSQL
//! server hands out through lessor, against the same SQL run straight at it and,
//! when asked, through OpenBao (or any Vault) and through `lessor server`.
//!
//! For every statement set and every concurrency, rounds alternate between the
//! selected systems (`--systems`) doing the same work:
//!
//! * **raw**: the statements alone (`--raw-client`): by default lessor's PostgreSQL
//!   plugin with a commit gate that is always open and no engine around it
//!   (`loadgen/raw.rs`): each credential is the role's creation statements in one
//!   transaction, each revocation its revocation statements (or the default
//!   revocation) in one, with the password generation, SCRAM verifier, pool and
//!   handling of concurrent GRANTs (serialized per connection, bounded retry with
//!   jitter) lessor has, because they are lessor's; or (`naive`, `loadgen/naive.rs`)
//!   plain tokio-postgres, BEGIN, each statement and COMMIT each awaited;
//! * **lessor**: the full engine — token authentication and ACL, the durable log
//!   with group commit (intent, outcome and audit record), the creation SQL through
//!   the PostgreSQL plugin, the state fold, the expirer's wheel — through
//!   [`Engine::issue`] and [`Engine::revoke`] with an application token;
//! * **openbao**: `bao server` with raft storage started beside the PostgreSQL
//!   (`--openbao`), or an already running Vault or OpenBao (`--vault-addr`), through
//!   its HTTP API with an application token (`loadgen/api.rs`);
//! * **lessor-http**: `lessor server -config`, started here, through the same API.
//!
//! A round of one system issues `per_round` credentials with `c` workers, then
//! revokes them the same way, so every measured phase starts from the same database
//! (no live users of the bench): the article's GRANTs get slower with every live
//! user (each table's ACL grows), and a baseline measured on an emptier database
//! would flatter the raw side. Rounds go A B C, C B A, A B C, … (ABBA): a drift
//! over the run (autovacuum, page cache, other load) then falls on every system
//! alike. With `--rtt-ms`, every system's database connections go through a
//! latency-injecting proxy (`loadgen/proxy.rs`). Every role the run created is
//! dropped at the end, also on error.
//!
//! [`Engine::issue`]: lessor_engine::Engine::issue
//! [`Engine::revoke`]: lessor_engine::Engine::revoke

pub(crate) mod api;
mod args;
mod chart;
mod lessor;
mod naive;
mod phase;
pub mod proxy;
mod raw;
pub(crate) mod report;
mod rounds;
pub(crate) mod server;
pub(crate) mod statements;
pub(crate) mod stats;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lessor_engine::text::random::random_alnum;

use crate::http::args::{find_bao_bin, find_lessor_bin};
use api::ApiServer;
use args::validate;
pub use args::{LoadgenArgs, systems};
pub use chart::svg;
use proxy::{LatencyProxy, ProxyLimits};
use raw::Raw;
pub use report::{Measurement, Phase, RATIOS, RatioSummary, Report, Summary, System, SystemSummary, csv, summary_csv};
use rounds::run_sets;
pub use server::run_roles;
use server::{Server, cleanup, start_server};
use statements::statement_set;
pub use statements::{
    ARTICLE_CREATION, ARTICLE_REVOCATION, MEMBERSHIP_CREATION, MEMBERSHIP_REVOCATION, READERS_ROLE, ROLE_PREFIX,
};
use stats::summarize;

/// Runs the load generator. Blocks; starts its own runtime.
pub fn run(args: LoadgenArgs) -> Result<Report, String> {
    validate(&args)?;
    let systems = systems(&args);
    let load_before = load_average();
    let workers = args.concurrency.iter().copied().max().unwrap_or(1);
    // The binaries first: a missing one fails before anything starts.
    let bao_bin = if systems.contains(&System::OpenBao) && args.vault_addr.is_none() {
        Some(find_bao_bin(args.bao_bin.as_deref())?)
    } else {
        None
    };
    let lessor_bin =
        if systems.contains(&System::LessorHttp) { Some(find_lessor_bin(args.lessor_bin.as_deref())?) } else { None };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2.max(std::thread::available_parallelism().map_or(2, |n| n.get())))
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let mut server = start_server(&args)?;
    let run_id = random_alnum(6, &mut Raw::fill).to_ascii_lowercase();
    let sets = args.statements.iter().map(|s| statement_set(s, args.tables)).collect::<Result<Vec<_>, _>>()?;
    let data_dir = match &args.data_dir {
        Some(dir) => Dir::Given(dir.clone()),
        None => Dir::Temp(tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?),
    };
    let work = if bao_bin.is_some() || lessor_bin.is_some() {
        let dir = match &args.work_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                tempfile::Builder::new().prefix("lessor-bench-").tempdir_in(dir)
            }
            None => tempfile::Builder::new().prefix("lessor-bench-").tempdir(),
        };
        Some(dir.map_err(|e| format!("cannot create a work directory for the servers: {e}"))?)
    } else {
        None
    };
    // Every system's connections to PostgreSQL through the proxy; the admin's not.
    let (proxy, proxy_note) = if args.rtt_ms > 0.0 {
        let upstream = server.socket_addr()?;
        let rtt = Duration::from_secs_f64(args.rtt_ms / 1000.0);
        let proxy = rt
            .block_on(LatencyProxy::start(upstream, rtt, ProxyLimits::default()))
            .map_err(|e| format!("cannot start the latency proxy: {e}"))?;
        server.route_through(proxy.addr())?;
        let note = rt.block_on(measure_proxy(&server, &proxy))?;
        (Some(proxy), note)
    } else {
        (None, "no latency proxy".to_string())
    };
    let mut api: Vec<Arc<ApiServer>> = Vec::new();
    let outcome = (|| {
        for &system in systems.iter().filter(|s| s.over_http()) {
            let mut started = match (system, &args.vault_addr) {
                (System::OpenBao, Some(url)) => {
                    ApiServer::external(url, args.vault_token.as_deref().unwrap_or_default(), &run_id)?
                }
                (System::OpenBao, None) => ApiServer::start_openbao(
                    bao_bin.as_deref().expect("resolved"),
                    &work.as_ref().expect("made").path().join("openbao"),
                )?,
                _ => {
                    let dir = work.as_ref().expect("made").path().join("lessor-http");
                    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    ApiServer::start_lessor(lessor_bin.as_deref().expect("resolved"), &dir)?
                }
            };
            let configured = started.configure(&server, &run_id, &sets, workers, &args);
            // Kept (and so stopped or cleaned up below) even when its configuration failed.
            api.push(Arc::new(started));
            configured?;
        }
        rt.block_on(run_sets(&args, &systems, &server, &run_id, &sets, data_dir.path(), workers, &api))
    })();
    let servers: Vec<String> = api.iter().map(|s| format!("{}: {}", s.system.name(), s.description)).collect();
    // The servers go (an external one loses the run's mount, policy and token),
    // then every role of this run, whatever happened.
    let mut finish_errors = Vec::new();
    for server in api {
        match Arc::into_inner(server) {
            Some(server) => finish_errors.extend(server.finish().err()),
            None => finish_errors.push("a server is still in use after the run".to_string()),
        }
    }
    let leftover = rt.block_on(cleanup(&server, &run_id));
    let proxy_stats = proxy.as_ref().map(|p| {
        let s = p.stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        format!(
            "; proxy relayed {} connections ({} refused, {} upstream failures), {} bytes",
            load(&s.accepted),
            load(&s.refused),
            load(&s.upstream_failures),
            load(&s.bytes)
        )
    });
    drop(proxy);
    let (measurements, conditions) = outcome?;
    if !finish_errors.is_empty() {
        return Err(finish_errors.join("; "));
    }
    // Other work on the machine moves every figure: the record says how much there was.
    let systems_text = systems.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ");
    let conditions = format!(
        "systems {systems_text}; {}{conditions}; {}; {proxy_note}{}; load average {load_before} before, {} after",
        servers.iter().map(|s| format!("{s}; ")).collect::<String>(),
        server.description,
        proxy_stats.unwrap_or_default(),
        load_average()
    );
    let leftover_roles = leftover?;
    let summaries = summarize(&measurements);
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let csv_path = args.out.join("loadgen.csv");
    let summary_csv_path = args.out.join("loadgen-summary.csv");
    let svg_path = args.out.join("loadgen.svg");
    let write = |path: &Path, text: String| {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(&csv_path, csv(&measurements))?;
    write(&summary_csv_path, summary_csv(&summaries))?;
    write(&svg_path, svg(&summaries, &conditions))?;
    Ok(Report { measurements, summaries, conditions, leftover_roles, csv_path, summary_csv_path, svg_path })
}

/// What the proxy adds, measured: `SELECT 1` round trips through it and
/// straight to the server, on connections like the systems' (TLS when offered).
async fn measure_proxy(server: &Server, proxy: &LatencyProxy) -> Result<String, String> {
    async fn median_round_trip(url: &str, what: &str) -> Result<f64, String> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| format!("the {what} connection URL: {e}"))?;
        let (client, connection) = config
            .connect(lessor_pgtemp::tls_connector_no_verify())
            .await
            .map_err(|e| format!("connecting to PostgreSQL {what}: {e}"))?;
        let task = tokio::spawn(connection);
        let mut times = Vec::new();
        for i in 0..35 {
            let start = Instant::now();
            client.simple_query("SELECT 1").await.map_err(|e| format!("SELECT 1 {what}: {e}"))?;
            if i >= 5 {
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        drop(client);
        let _ = task.await;
        Ok(stats::median(times))
    }
    let direct_url = lessor_engine::text::template::render_connection_url(
        &server.direct_url_template,
        &server.admin_user,
        &server.admin_password,
    )
    .map_err(|e| format!("the server's connection URL: {e}"))?;
    let direct = median_round_trip(&direct_url, "directly").await?;
    let via = median_round_trip(&server.admin_connection_url()?, "through the proxy").await?;
    Ok(format!(
        "latency proxy {} -> {} adding {:.2} ms per round trip: SELECT 1 took {via:.3} ms through it, {direct:.3} ms \
         directly (medians of 30)",
        proxy.addr(),
        proxy.upstream(),
        proxy.rtt().as_secs_f64() * 1000.0
    ))
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
