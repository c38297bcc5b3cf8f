//! Forensics over a large log: `verify`, timeline scans, and `state_at` with and
//! without snapshots.
//!
//! Run: `cargo bench -p lessor-benches --bench audit` (2,000,000 events by
//! default; `LESSOR_AUDIT_BENCH_EVENTS=N` for another size). The log is the
//! issuance stream of the other benches, one batch of 1,024 events per second of
//! log time, with snapshots taken at 50% and 90% of it.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lessor_benches::bench_options;
use lessor_engine::Engine;
use lessor_engine::audit::{self, Filter, ReplayOptions, VerifyOptions};
use lessor_engine::clock::ManualClock;
use lessor_engine::testing::issuance_events;

const T0: i64 = 1_700_000_000_000;
const BATCH: usize = 1024;

fn events() -> usize {
    std::env::var("LESSOR_AUDIT_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000_000)
}

/// Writes `count` events, one batch per second of log time, snapshotting at 50%
/// and 90%. Returns the timestamps of the two snapshots.
fn build(dir: &Path, count: usize) -> (i64, i64) {
    let clock = Arc::new(ManualClock::new(T0));
    let options = lessor_engine::EngineOptions { clock: clock.clone(), ..bench_options() };
    let engine = Engine::open(dir, options).expect("open bench dir");
    let events = issuance_events(count, 42);
    let mut snapshots = Vec::new();
    for (i, chunk) in events.chunks(BATCH).enumerate() {
        clock.advance_ms(1000);
        engine.append_unchecked_blocking(chunk.to_vec()).expect("append");
        let done = (i + 1) * BATCH;
        if snapshots.len() < 2 && done >= count * [5, 9][snapshots.len()] / 10 {
            engine.snapshot().expect("snapshot");
            snapshots.push(engine.with_state(|s| s.applied_ts_ms));
        }
    }
    engine.close();
    (snapshots[0], snapshots[1])
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
    let (snap_mid, snap_late) = build(tmp.path(), n);
    let dir = tmp.path();
    let end = T0 + 1000 * n.div_ceil(BATCH) as i64;

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
    g.bench_function(BenchmarkId::new("state_at_end_from_snapshot_90pct", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let s = audit::state_at(dir, end, ReplayOptions::default(), None).unwrap();
                assert!(s.snapshot.is_some() && s.lsn == n as u64);
            })
        })
    });
    g.bench_function(BenchmarkId::new("state_at_90pct_from_snapshot_50pct", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let s = audit::state_at(dir, snap_late - 1, ReplayOptions::default(), None).unwrap();
                assert!(s.snapshot.is_some());
            })
        })
    });
    g.bench_function(BenchmarkId::new("state_at_50pct_no_snapshot_before", n), |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let s = audit::state_at(dir, snap_mid - 1, ReplayOptions::default(), None).unwrap();
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
