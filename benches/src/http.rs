//! The HTTP issuance benchmark (`lessor-bench http`): `lessor server` against
//! OpenBao's `bao server`, both durable (lessor's log on a file data directory
//! with fdatasync; OpenBao's raft storage), on the same PostgreSQL with the same
//! role, connection settings, policy and kind of token, written through the same
//! Vault API requests.
//!
//! For every concurrency `c`, `c` clients — each one keep-alive HTTP/1.1
//! connection on its own thread ([`client`]) — send `GET
//! /v1/database/creds/<role>` in a loop for a fixed time (or count). Rounds of
//! the two servers alternate in ABBA order (lessor, bao, bao, lessor, …), as the
//! in-process load generator's do, so a drift over the run (other load,
//! autovacuum, page cache) falls on both. After every round, unmeasured, the
//! bench checks that every username it was handed exists in `pg_roles`, then
//! revokes every lease of the round through `sys/leases/revoke` (sync) and checks
//! the users are gone: each round starts from the same database.
//!
//! Then, lessor only, the HTTP layer's CPU ([`overhead`]): the same requests
//! in-process and through the server.

pub mod args;
pub mod client;
mod drive;
pub mod overhead;
pub mod report;
pub mod servers;

use std::path::Path;
use std::time::Duration;

pub use args::{HttpArgs, Side};
use drive::{Expect, Stop, config_writes, configure, revoke_all, run_clients};
pub use overhead::OverheadMeasurement;
use overhead::{InProcess, measure};
pub use report::{HttpMeasurement, HttpReport, HttpSummary, OverheadSummary, SideSummary, csv, overhead_csv};
use report::{summarize, summarize_overhead};
use servers::{ServerProcess, start_bao, start_lessor};

use crate::loadgen::server::{Server, cleanup, connect, prepare, start_server};
use crate::loadgen::statements::{StatementSet, statement_set};
use crate::loadgen::stats::percentile_ms;
use crate::loadgen::{LoadgenArgs, load_average};
use lessor_engine::text::random::random_alnum;

/// Runs the benchmark. Blocks.
pub fn run(args: HttpArgs) -> Result<HttpReport, String> {
    args::validate(&args)?;
    let load_before = load_average();
    let lessor_bin = if args.sides.contains(&Side::Lessor) { Some(args::lessor_bin(&args)?) } else { None };
    let bao_bin = if args.sides.contains(&Side::Bao) { Some(args::bao_bin(&args)?) } else { None };
    let set = statement_set(&args.statements, args.tables)?;
    // Admin queries only: one thread is plenty.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let loadgen_args = LoadgenArgs { database_url: args.database_url.clone(), ..LoadgenArgs::default() };
    let database = start_server(&loadgen_args)?;
    let run_id = random_alnum(6, &mut fill).to_ascii_lowercase();
    let work = match &args.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            tempfile::Builder::new().prefix("lessor-bench-http-").tempdir_in(dir)
        }
        None => tempfile::Builder::new().prefix("lessor-bench-http-").tempdir(),
    }
    .map_err(|e| format!("cannot create a work directory: {e}"))?;
    let outcome = run_in(&args, &rt, &database, &run_id, &set, work.path(), lessor_bin.as_deref(), bao_bin.as_deref());
    // Whatever happened, every role of this run goes.
    let leftover = rt.block_on(cleanup(&database, &run_id));
    let (measurements, overhead, conditions) = outcome?;
    let leftover_roles = leftover?;
    let conditions = format!(
        "{conditions}; {}; work directory {}; load average {load_before} before, {} after",
        database.description,
        work.path().display(),
        load_average()
    );
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let csv_path = args.out.join("http.csv");
    let overhead_csv_path = args.out.join("http-overhead.csv");
    std::fs::write(&csv_path, csv(&measurements)).map_err(|e| format!("cannot write {}: {e}", csv_path.display()))?;
    std::fs::write(&overhead_csv_path, overhead_csv(&overhead))
        .map_err(|e| format!("cannot write {}: {e}", overhead_csv_path.display()))?;
    Ok(HttpReport {
        summaries: summarize(&measurements),
        overhead_summaries: summarize_overhead(&overhead),
        measurements,
        overhead,
        conditions,
        leftover_roles,
        csv_path,
        overhead_csv_path,
    })
}

fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random source");
}

type Outcome = (Vec<HttpMeasurement>, Vec<OverheadMeasurement>, String);

#[allow(clippy::too_many_arguments)]
fn run_in(
    args: &HttpArgs,
    rt: &tokio::runtime::Runtime,
    database: &Server,
    run_id: &str,
    set: &StatementSet,
    work: &Path,
    lessor_bin: Option<&Path>,
    bao_bin: Option<&Path>,
) -> Result<Outcome, String> {
    let admin = rt.block_on(connect(&database.config))?;
    rt.block_on(prepare(&admin, std::slice::from_ref(set)))?;
    let pg = rt.block_on(async {
        let one = |sql: &'static str| {
            let admin = &admin;
            async move { admin.query_one(sql, &[]).await.map(|r| r.get::<_, String>(0)).unwrap_or_else(|_| "?".into()) }
        };
        format!("PostgreSQL {} (fsync {})", one("SHOW server_version").await, one("SHOW fsync").await)
    });
    let workers = args.clients.iter().copied().max().unwrap_or(1);
    let mut servers: Vec<ServerProcess> = Vec::new();
    let mut tokens = Vec::new();
    for &side in &args.sides {
        let dir = work.join(side.name());
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let server = match side {
            Side::Lessor => start_lessor(lessor_bin.expect("resolved"), &dir, args.access_log == "file")?,
            Side::Bao => start_bao(bao_bin.expect("resolved"), &dir)?,
        };
        let tag = &side.name()[..1];
        let mut writes = config_writes(database, run_id, tag, set, workers, &args.password_authentication);
        if side == Side::Bao && args.bao_audit {
            let file = dir.join("audit.log").display().to_string();
            writes.insert(
                0,
                ("sys/audit/file".into(), serde_json::json!({ "type": "file", "options": { "file_path": file } })),
            );
        }
        tokens.push(configure(&server, &writes)?);
        servers.push(server);
    }
    let stop = match args.count {
        Some(n) => Stop::Count(n),
        None => Stop::After(Duration::from_secs_f64(args.duration)),
    };
    let creds = format!("database/creds/{}", set.name);
    let mut measurements = Vec::new();
    for &c in &args.clients {
        // Warm-up, not measured: pools open their connections, caches fill.
        for (server, token) in servers.iter().zip(&tokens) {
            let warm = run_clients(server, token, &creds, Expect::Credential, c, Stop::Count(4 * c))?;
            if let Some(e) = warm.first_error {
                return Err(format!("{} c={c} warm-up: {e}", server.side.name()));
            }
            revoke_all(server, warm.issued.into_iter().map(|(l, _)| l).collect(), c)?;
        }
        for round in 0..args.rounds {
            // ABBA: the first side first in even rounds, last in odd ones.
            let mut order: Vec<usize> = (0..servers.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (server, token) = (&servers[i], &tokens[i]);
                let mut r = run_clients(server, token, &creds, Expect::Credential, c, stop)?;
                let users: Vec<String> = r.issued.iter().map(|(_, u)| u.clone()).collect();
                let present = rt.block_on(count_roles(&admin, &users))?;
                let leases = r.issued.iter().map(|(l, _)| l.clone()).collect();
                let revoke_failed = revoke_all(server, leases, c)?;
                let users_left = rt.block_on(count_roles(&admin, &users))?;
                r.latencies.sort_unstable();
                let ok = r.latencies.len();
                measurements.push(HttpMeasurement {
                    side: server.side,
                    clients: c,
                    round,
                    ok,
                    failed: r.failed,
                    seconds: r.elapsed.as_secs_f64(),
                    p50_ms: percentile_ms(&r.latencies, 0.50),
                    p99_ms: percentile_ms(&r.latencies, 0.99),
                    max_ms: r.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
                    server_cpu_us: r.server_cpu.as_secs_f64() * 1e6 / ok.max(1) as f64,
                    missing_users: users.len() - present,
                    revoke_failed,
                    users_left,
                    reconnects: r.reconnects,
                    first_error: r.first_error,
                });
            }
        }
    }
    let mut overhead = Vec::new();
    let lessor = servers.iter().position(|s| s.side == Side::Lessor);
    if let Some(i) = lessor.filter(|_| args.overhead_requests > 0 || args.overhead_issues > 0) {
        let dir = work.join("in-process");
        let writes = config_writes(database, run_id, "i", set, workers, &args.password_authentication);
        let inproc = InProcess::start(&dir, &writes)?;
        let mut measured = || -> Result<(), String> {
            if args.overhead_requests > 0 {
                let path = "auth/token/lookup-self";
                let (clients, rounds, n) = (&args.overhead_clients, args.rounds, args.overhead_requests);
                measure(&inproc, &servers[i], &tokens[i], path, Expect::Ok, clients, rounds, n, &mut overhead)?;
            }
            if args.overhead_issues > 0 {
                let (clients, rounds, n) = (&args.overhead_clients, args.rounds, args.overhead_issues);
                let e = Expect::Credential;
                measure(&inproc, &servers[i], &tokens[i], &creds, e, clients, rounds, n, &mut overhead)?;
            }
            Ok(())
        };
        let result = measured();
        inproc.close()?;
        result?;
    }
    let versions: Vec<String> = servers.iter().map(|s| format!("{}: {}", s.side.name(), s.version)).collect();
    for server in servers {
        server.stop(Duration::from_secs(30));
    }
    let conditions = format!(
        "{}; {pg}; {} CPUs; role {} ({} statement(s)); {} per round, {} rounds per side (ABBA); pool {workers}; \
         password_authentication {}; lessor access log {}; OpenBao audit device {}",
        versions.join("; "),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        set.name,
        set.creation.len(),
        match args.count {
            Some(n) => format!("{n} issues"),
            None => format!("{} s", args.duration),
        },
        args.rounds,
        args.password_authentication,
        args.access_log,
        if args.bao_audit { "file" } else { "none" },
    );
    Ok((measurements, overhead, conditions))
}

/// How many of `users` exist.
async fn count_roles(admin: &tokio_postgres::Client, users: &[String]) -> Result<usize, String> {
    let users = users.to_vec();
    admin
        .query_one("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", &[&users])
        .await
        .map(|r| r.get::<_, i64>(0) as usize)
        .map_err(|e| format!("counting the round's users: {e}"))
}
