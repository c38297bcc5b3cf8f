//! The log's hot paths: replay, durable group-commit appends, and open.
//!
//! Run: `cargo bench -p lessor-benches --bench log`

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lessor_benches::{bench_options, build_log};
use lessor_engine::log::{FsyncPolicy, LogOptions};
use lessor_engine::testing::issuance_events;
use lessor_engine::{Engine, EngineOptions};

const REPLAY_EVENTS: usize = 500_000;
const OPEN_EVENTS: usize = 1_000_000;
const OPEN_TAIL_EVENTS: usize = 10_000;
const APPENDERS: usize = 64;
const APPENDS_PER_APPENDER: usize = 500;

/// Times `iters` opens of `dir`; closing each engine (freeing its state) happens
/// outside the timed part: it is not part of replay. Opens must not overlap, as the
/// directory is locked.
fn timed_opens(dir: &std::path::Path, iters: u64, events: usize) -> Duration {
    let mut elapsed = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let engine = Engine::open(dir, bench_options()).unwrap();
        elapsed += start.elapsed();
        assert_eq!(engine.last_lsn(), events as u64);
        engine.close();
    }
    elapsed
}

/// Full replay (no snapshot) of a log in the page cache: scan, verify crc and
/// chain, decode, fold.
fn replay(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    build_log(tmp.path(), REPLAY_EVENTS, None);
    let mut g = c.benchmark_group("replay");
    g.sample_size(10).throughput(Throughput::Elements(REPLAY_EVENTS as u64));
    g.bench_function(BenchmarkId::new("full", REPLAY_EVENTS), |b| {
        b.iter_custom(|iters| timed_opens(tmp.path(), iters, REPLAY_EVENTS))
    });
    g.finish();
}

/// Open = newest snapshot + a short tail, over a log of a million events.
fn open_with_snapshot(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    build_log(tmp.path(), OPEN_EVENTS, Some(OPEN_TAIL_EVENTS));
    let mut g = c.benchmark_group("open");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("snapshot+tail", OPEN_EVENTS), |b| {
        b.iter_custom(|iters| timed_opens(tmp.path(), iters, OPEN_EVENTS))
    });
    g.finish();
}

/// 64 concurrent appenders, each awaiting durability of every append (real
/// fdatasync); prints how many events each fsync carried. Then the same with
/// `fsync: never`, to show what the policy saves. Each iteration starts a new
/// log, whose 32,000 events stay in its first segment; the third case uses
/// 1 MiB segments, so that most of its appends go into segments sealed ones
/// were followed by (prepared ahead, zero-filled: the steady state of a log
/// that has run for a while).
fn durable_appends(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let events = Arc::new(issuance_events(APPENDERS * APPENDS_PER_APPENDER, 7));
    let total = (APPENDERS * APPENDS_PER_APPENDER) as u64;
    let mut g = c.benchmark_group("append");
    g.sample_size(10).throughput(Throughput::Elements(total)).measurement_time(Duration::from_secs(10));
    let default_segment = LogOptions::default().segment_bytes_max;
    for (name, fsync, segment_bytes_max) in [
        ("durable_64_appenders", FsyncPolicy::Always, default_segment),
        ("fsync_never_64_appenders", FsyncPolicy::Never, default_segment),
        ("durable_64_appenders_1mib_segments", FsyncPolicy::Always, 1 << 20),
    ] {
        let options =
            EngineOptions { log: LogOptions { fsync, segment_bytes_max, ..LogOptions::default() }, ..bench_options() };
        g.bench_function(BenchmarkId::new(name, total), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let tmp = tempfile::tempdir().unwrap();
                    let engine = Arc::new(Engine::open(tmp.path(), options.clone()).unwrap());
                    let start = Instant::now();
                    rt.block_on(async {
                        let tasks: Vec<_> = (0..APPENDERS)
                            .map(|a| {
                                let engine = engine.clone();
                                let events = events.clone();
                                tokio::spawn(async move {
                                    for i in 0..APPENDS_PER_APPENDER {
                                        let e = events[a * APPENDS_PER_APPENDER + i].clone();
                                        engine.append_unchecked(vec![e]).await.unwrap();
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.unwrap();
                        }
                    });
                    elapsed += start.elapsed();
                    let stats = engine.log_stats();
                    let (ev, batches) =
                        (stats.events_written.load(Ordering::Relaxed), stats.batches_synced.load(Ordering::Relaxed));
                    println!("  {ev} events in {batches} batches: {:.1} events per batch", ev as f64 / batches as f64);
                }
                elapsed
            })
        });
    }
    g.finish();
}

const RESTART_LEASES: usize = 1_000_000;

/// Restart with a million live leases: open (snapshot + a 10,000-lease tail) and
/// re-arm every lease in the expirer's wheel.
fn restart_with_live_leases(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    lessor_benches::build_live_leases(tmp.path(), RESTART_LEASES, 10_000);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut g = c.benchmark_group("restart");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("live_leases_rearmed", RESTART_LEASES), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let engine = Arc::new(Engine::open(tmp.path(), bench_options()).unwrap());
                let report = rt.block_on(engine.expire_due()).unwrap();
                elapsed += start.elapsed();
                assert_eq!(report.revoked, 0);
                assert_eq!(engine.with_state(|s| s.leases.len()), RESTART_LEASES);
                Arc::into_inner(engine).unwrap().close();
            }
            elapsed
        })
    });
    g.finish();
}

criterion_group!(benches, replay, durable_appends, open_with_snapshot, restart_with_live_leases);
criterion_main!(benches);
