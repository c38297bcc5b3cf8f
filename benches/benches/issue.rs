//! The engine's own cost per issue, renew and revoke: the full request path
//! (token authentication, ACL, planning, the durable log with group commit and
//! real fdatasync, the fold, the expirer's bookkeeping) with a database plugin that
//! runs no SQL ([`NoSqlPlugin`]), driven by 64 concurrent callers.
//!
//! Run: `cargo bench -p lessor-benches --bench issue`
//!
//! Besides criterion's time, each measurement prints the CPU this process used
//! per operation (getrusage, user + system, all threads) and how many log events
//! each fdatasync carried.

// Links the bench support crate for its global allocator (mimalloc, as the
// `lessor` binary uses): nothing else of it is needed here.
use lessor_benches as _;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lessor_engine::plugin::{CommitGate, DatabasePlugin, NewUser, PluginError, PluginFactory, PluginFuture};
use lessor_engine::request::Operation;
use lessor_engine::{Engine, EngineOptions};
use serde_json::json;

const CALLERS: usize = 64;
const OPS_PER_CALLER: usize = 100;

/// **Runs no SQL.** A database plugin whose every operation succeeds at once
/// (creation still waits for its commit gate, as a real transaction does before
/// COMMIT), so what is measured is lessor alone.
#[derive(Debug)]
struct NoSqlPlugin;

impl DatabasePlugin for NoSqlPlugin {
    fn verify(&self) -> PluginFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn create_user<'a>(&'a self, _user: NewUser<'a>, gate: CommitGate<'a>) -> PluginFuture<'a, ()> {
        Box::pin(async move { gate.await.map_err(PluginError::Aborted) })
    }

    fn renew_user<'a>(&'a self, _: &'a str, _: &'a str, _: &'a [String]) -> PluginFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn revoke_user<'a>(&'a self, _: &'a str, _: &'a [String], _: bool, gate: CommitGate<'a>) -> PluginFuture<'a, ()> {
        Box::pin(async move { gate.await.map_err(PluginError::Aborted) })
    }

    fn rotate_root<'a>(&'a self, _: &'a str, _: &'a str, _: &'a [String]) -> PluginFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn user_exists<'a>(&'a self, _: &'a str) -> PluginFuture<'a, bool> {
        Box::pin(async { Ok(true) })
    }
}

/// An initialized engine on a real directory with a mount, connection and role,
/// and an application token allowed to issue, renew and revoke.
struct Setup {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
    token: String,
}

fn setup(rt: &tokio::runtime::Runtime) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        plugin_factory: Some(PluginFactory(Arc::new(|_| Ok(Arc::new(NoSqlPlugin) as Arc<dyn DatabasePlugin>)))),
        // Snapshots would run on their own thread whenever 100,000 events pass:
        // off, so every sample measures the request path alone.
        snapshot_every_events: 0,
        ..EngineOptions::default()
    };
    let (engine, root) = Engine::init(dir.path(), options).unwrap();
    let engine = Arc::new(engine);
    let root = root.expose().to_string();
    let token = rt.block_on(async {
        let write = |path: &'static str, data: serde_json::Value| {
            let (engine, root) = (engine.clone(), root.clone());
            async move { engine.request(&root, Operation::Update, path, data).await.unwrap() }
        };
        write("sys/mounts/database", json!({ "type": "database" })).await;
        write(
            "database/config/nosql",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/none",
                "username": "admin", "password": "unused", "allowed_roles": "*",
            }),
        )
        .await;
        write(
            "database/roles/app",
            json!({
                "db_name": "nosql",
                "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                "default_ttl": "1h", "max_ttl": "24h",
            }),
        )
        .await;
        write(
            "sys/policies/acl/app",
            json!({ "policy": "path \"database/creds/app\" { capabilities = [\"read\"] }\n\
                               path \"sys/leases/renew\" { capabilities = [\"update\"] }\n\
                               path \"sys/leases/revoke\" { capabilities = [\"update\"] }" }),
        )
        .await;
        write("auth/token/create", json!({ "policies": ["app"], "ttl": "768h" })).await.auth.unwrap().client_token
    });
    Setup { _dir: dir, engine, token }
}

#[derive(Clone, Copy)]
enum Op {
    Issue,
    Renew,
    Revoke,
}

/// Issues `CALLERS * OPS_PER_CALLER` leases with `CALLERS` callers; their ids by caller.
async fn issue_all(s: &Setup) -> Vec<Vec<String>> {
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (engine, token) = (s.engine.clone(), s.token.clone());
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(OPS_PER_CALLER);
                for _ in 0..OPS_PER_CALLER {
                    ids.push(engine.issue(&token, "database/creds/app").await.unwrap().lease_id);
                }
                ids
            })
        })
        .collect();
    let mut out = Vec::with_capacity(CALLERS);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// One timed batch of `op` over `CALLERS * OPS_PER_CALLER` operations.
fn timed_batch(rt: &tokio::runtime::Runtime, s: &Setup, op: Op) -> (Duration, Duration, (u64, u64)) {
    // Renew and revoke need leases; issuing them is not part of the timing.
    let leases = match op {
        Op::Issue => Vec::new(),
        Op::Renew | Op::Revoke => rt.block_on(issue_all(s)),
    };
    let stats = s.engine.log_stats();
    let before = (stats.events_written.load(Ordering::Relaxed), stats.batches_synced.load(Ordering::Relaxed));
    let cpu = lessor_benches::process_cpu();
    let start = Instant::now();
    let leftover = rt.block_on(async {
        match op {
            Op::Issue => issue_all(s).await,
            Op::Renew | Op::Revoke => {
                run_on_all(s, &leases, op).await;
                match op {
                    Op::Renew => leases,
                    _ => Vec::new(),
                }
            }
        }
    });
    let elapsed = start.elapsed();
    let cpu = lessor_benches::process_cpu().saturating_sub(cpu);
    let after = (stats.events_written.load(Ordering::Relaxed), stats.batches_synced.load(Ordering::Relaxed));
    // Untimed: the leases an issue or renew batch leaves live are revoked, so the
    // live count stays bounded however many batches a fast disk lets criterion run
    // (otherwise the engine's lease_count_max ends the bench).
    rt.block_on(run_on_all(s, &leftover, Op::Revoke));
    (elapsed, cpu, (after.0 - before.0, after.1 - before.1))
}

/// Renews or revokes every lease in `leases`, one caller per inner list.
async fn run_on_all(s: &Setup, leases: &[Vec<String>], op: Op) {
    let tasks: Vec<_> = leases
        .iter()
        .cloned()
        .map(|ids| {
            let (engine, token) = (s.engine.clone(), s.token.clone());
            tokio::spawn(async move {
                for id in ids {
                    match op {
                        Op::Renew => drop(engine.renew(&token, &id, 3600).await.unwrap()),
                        _ => engine.revoke(&token, &id).await.unwrap(),
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn bench_op(c: &mut Criterion, name: &str, op: Op) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s = setup(&rt);
    let total = (CALLERS * OPS_PER_CALLER) as u64;
    let mut g = c.benchmark_group("engine_nosql");
    g.sample_size(10).throughput(Throughput::Elements(total)).measurement_time(Duration::from_secs(8));
    g.bench_function(BenchmarkId::new(name, format!("{CALLERS}_callers")), |b| {
        b.iter_custom(|iters| {
            let (mut wall, mut cpu, mut events, mut syncs) = (Duration::ZERO, Duration::ZERO, 0, 0);
            for _ in 0..iters {
                let (w, c, (e, f)) = timed_batch(&rt, &s, op);
                wall += w;
                cpu += c;
                events += e;
                syncs += f;
            }
            let ops = (iters * total) as f64;
            println!(
                "  {name}: {:.0}/s, {:.1} µs CPU per {name}, {:.1} events per fsync",
                ops / wall.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / ops,
                events as f64 / syncs.max(1) as f64
            );
            wall
        })
    });
    g.finish();
}

fn issue(c: &mut Criterion) {
    bench_op(c, "issue", Op::Issue);
}

fn renew(c: &mut Criterion) {
    bench_op(c, "renew", Op::Renew);
}

fn revoke(c: &mut Criterion) {
    bench_op(c, "revoke", Op::Revoke);
}

criterion_group!(benches, issue, renew, revoke);
criterion_main!(benches);
