//! Forensics over a large log: `verify`, timeline scans, and `state_at` with and
//! without snapshots.
//!
//! Run: `cargo bench -p lessor-benches --bench audit` (2,000,000 events by
//! default; `LESSOR_AUDIT_BENCH_EVENTS=N` for another size). The log is the
//! issuance stream of the other benches, one batch of 1,024 events per second of
//! log time, snapshotted and pruned as the engine does by default (a snapshot
//! every 100,000 events; the two newest kept plus one per 1,000,000 as history).
//! `state_at` is timed at the end, at the worst instant (just before the kept
//! snapshot that ends the longest stretch without one) and before the first.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lessor_benches::bench_options;
use lessor_engine::audit::{self, Filter, ReplayOptions, VerifyOptions};
use lessor_engine::clock::ManualClock;
use lessor_engine::log::snapshot;
use lessor_engine::log::storage::ReadOnlyDir;
use lessor_engine::testing::issuance_events;
use lessor_engine::{Engine, EngineOptions};

const T0: i64 = 1_700_000_000_000;
const BATCH: usize = 1024;

fn events() -> usize {
    std::env::var("LESSOR_AUDIT_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000)
}

/// A snapshot the engine kept: its LSN and timestamp.
#[derive(Clone, Copy, Debug)]
struct Kept {
    lsn: u64,
    ts_ms: i64,
}

/// Writes `count` events, one batch per second of log time, with the engine's
/// default snapshot cadence and retention. Returns the snapshots left, oldest
/// first.
fn build(dir: &Path, count: usize) -> Vec<Kept> {
    let clock = Arc::new(ManualClock::new(T0));
    let defaults = EngineOptions::default();
    let options = EngineOptions {
        clock: clock.clone(),
        snapshot_every_events: defaults.snapshot_every_events,
        snapshot_history_every_events: defaults.snapshot_history_every_events,
        ..bench_options()
    };
    let engine = Engine::open(dir, options).expect("open bench dir");
    for chunk in issuance_events(count, 42).chunks(BATCH) {
        clock.advance_ms(1000);
        engine.append_unchecked_blocking(chunk.to_vec()).expect("append");
    }
    engine.close();
    let storage = ReadOnlyDir::new(dir);
    let mut kept: Vec<Kept> = snapshot::list_newest_first(&storage)
        .expect("list snapshots")
        .iter()
        .map(|name| {
            let s = snapshot::read_header(&storage, name).expect("snapshot header reads back");
            Kept { lsn: s.lsn, ts_ms: s.ts_ms }
        })
        .collect();
    kept.reverse();
    assert!(kept.len() >= 2, "the engine kept {} snapshots of {count} events", kept.len());
    kept
}

/// One more pass of `f` outside criterion, printing events per wall second and
/// per CPU second.
fn report_cpu(name: &str, events: usize, mut f: impl FnMut()) {
    let (wall, cpu) = (Instant::now(), lessor_benches::process_cpu());
    f();
    let (wall, cpu) = (wall.elapsed(), lessor_benches::process_cpu().saturating_sub(cpu));
    let per = |d: Duration| events as f64 / d.as_secs_f64() / 1e6;
    println!(
        "  {name}: {:.2} s wall ({:.2} M events/s), {:.2} s CPU ({:.2} M events per CPU-second)",
        wall.as_secs_f64(),
        per(wall),
        cpu.as_secs_f64(),
        per(cpu)
    );
}

fn timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let n = events();
    let tmp = tempfile::tempdir().unwrap();
    let kept = build(tmp.path(), n);
    let dir = tmp.path();
    let end = T0 + 1000 * n.div_ceil(BATCH) as i64;
    // The longest stretch between kept snapshots; the latest of equals, whose
    // starting state is the largest.
    let (from, to) =
        kept.windows(2).map(|w| (w[0], w[1])).max_by_key(|(a, b)| (b.lsn - a.lsn, b.lsn)).expect("two snapshots");
    let first = kept[0];
    println!(
        "  {} snapshots kept at LSNs {:?}; worst instant: just before LSN {} (from the one at {})",
        kept.len(),
        kept.iter().map(|k| k.lsn).collect::<Vec<_>>(),
        to.lsn,
        from.lsn
    );

    let mut g = c.benchmark_group("audit");
    g.sample_size(10).throughput(Throughput::Elements(n as u64));
    g.bench_function(BenchmarkId::new("verify", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let report = audit::verify(dir, VerifyOptions::default()).unwrap();
                assert_eq!(report.records, n as u64);
            })
        })
    });
    // A filter that matches one lease: the scan (read, verify, decode, match)
    // without the cost of printing.
    let one_user =
        Filter { username: Some(format!("v-token-app-read-{:020}-1700000000", 12_344)), ..Filter::default() };
    g.bench_function(BenchmarkId::new("timeline_scan_username", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let stats = audit::timeline(dir, &one_user, None, &mut |_, _| ControlFlow::Continue(())).unwrap();
                assert_eq!((stats.scanned, stats.matched), (n as u64, 2));
            })
        })
    });
    // Every event rendered as a JSON line into a sink: what `audit log --jsonl`
    // costs when nothing is filtered out.
    g.bench_function(BenchmarkId::new("timeline_jsonl_all", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let mut sink = std::io::sink();
                audit::timeline(dir, &Filter::default(), None, &mut |entry, chain| {
                    let _ = writeln!(sink, "{}", audit::event_json_line(entry, chain));
                    ControlFlow::Continue(())
                })
                .unwrap();
            })
        })
    });
    g.bench_function(BenchmarkId::new("state_at_end_full_replay", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let s = audit::state_at(dir, end, ReplayOptions { use_snapshots: false }, None).unwrap();
                assert_eq!(s.lsn, n as u64);
            })
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("state_at_end_from_newest_snapshot", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let s = audit::state_at(dir, end, ReplayOptions::default(), None).unwrap();
                assert!(s.snapshot.is_some() && s.lsn == n as u64);
            })
        })
    });
    g.bench_function(BenchmarkId::new("state_at_worst_instant", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let s = audit::state_at(dir, to.ts_ms - 1, ReplayOptions::default(), None).unwrap();
                assert_eq!(s.snapshot, Some(snapshot::snapshot_name(from.lsn)));
                assert!(s.lsn < to.lsn);
            })
        })
    });
    g.bench_function(BenchmarkId::new("state_at_before_first_snapshot", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let s = audit::state_at(dir, first.ts_ms - 1, ReplayOptions::default(), None).unwrap();
                assert!(s.snapshot.is_none());
            })
        })
    });
    g.finish();

    report_cpu("verify", n, || drop(audit::verify(dir, VerifyOptions::default()).unwrap()));
    report_cpu("timeline_scan_username", n, || {
        audit::timeline(dir, &one_user, None, &mut |_, _| ControlFlow::Continue(())).unwrap();
    });
    report_cpu("timeline_jsonl_all", n, || {
        let mut sink = std::io::sink();
        audit::timeline(dir, &Filter::default(), None, &mut |entry, chain| {
            let _ = writeln!(sink, "{}", audit::event_json_line(entry, chain));
            ControlFlow::Continue(())
        })
        .unwrap();
    });
    report_cpu("state_at_end_full_replay", n, || {
        drop(audit::state_at(dir, end, ReplayOptions { use_snapshots: false }, None).unwrap())
    });
}

criterion_group!(audit_benches, benches);
criterion_main!(audit_benches);
