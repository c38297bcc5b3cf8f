//! The expiry timing wheel: arming and disarming a lease against a wheel holding a
//! million (budget: ≤ 100 ns per insert and per cancel), memory per armed entry at
//! a million entries (budget: ≤ 64 bytes, printed), and firing a million due
//! entries through `advance` (budget: ≤ 0.5 s in total).
//!
//! Run: `cargo bench -p lessor-benches --bench wheel`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lessor_benches as _; // the allocator every bench runs on
use lessor_engine::expiry::{Expired, Wheel};

const NOW: i64 = 1_700_000_000_000;
const DAY_MS: u64 = 24 * 3600 * 1000;
const ENTRIES: usize = 1_000_000;
/// The engine's resolution for leases.
const TICK_MS: u64 = 1000;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` deadlines uniformly within `span_ms` after `NOW`. Deterministic.
fn deadlines(n: usize, span_ms: u64, seed: u64) -> Vec<i64> {
    let mut s = seed;
    (0..n).map(|_| NOW + (splitmix(&mut s) % span_ms) as i64).collect()
}

fn filled(deadlines: &[i64], capacity: usize) -> Wheel<u32> {
    let mut w = Wheel::with_capacity(NOW, TICK_MS, capacity);
    for (i, &d) in deadlines.iter().enumerate() {
        w.insert(d, i as u32);
    }
    w
}

/// One insert and one cancel, against an empty wheel and one holding a million
/// leases with TTLs up to 30 days.
fn insert_cancel(c: &mut Criterion) {
    let ttls = deadlines(4096, 30 * DAY_MS, 1);
    let mut g = c.benchmark_group("wheel/insert+cancel");
    g.throughput(Throughput::Elements(1));
    for armed in [0, ENTRIES] {
        let mut w = filled(&deadlines(armed, 30 * DAY_MS, 2), armed + 1);
        let mut i = 0usize;
        g.bench_function(BenchmarkId::from_parameter(armed), |b| {
            b.iter(|| {
                let k = w.insert(black_box(ttls[i & 4095]), i as u32);
                i = i.wrapping_add(1);
                black_box(w.cancel(black_box(k)))
            })
        });
        assert_eq!(w.len(), armed);
    }
    g.finish();
}

/// Arming a million leases (30-day spread), and the memory they take.
fn memory(c: &mut Criterion) {
    let ds = deadlines(ENTRIES, 30 * DAY_MS, 3);
    let grown = filled(&ds, 0);
    let sized = filled(&ds, ENTRIES);
    println!(
        "wheel memory, {ENTRIES} armed entries (V = u32): slab entry {} B; heap {:.1} MB = {:.1} B/entry \
         (slab grown by pushes), {:.1} MB = {:.1} B/entry (with_capacity)",
        Wheel::<u32>::ENTRY_BYTES,
        grown.heap_bytes() as f64 / 1e6,
        grown.heap_bytes() as f64 / ENTRIES as f64,
        sized.heap_bytes() as f64 / 1e6,
        sized.heap_bytes() as f64 / ENTRIES as f64,
    );
    drop((grown, sized));
    let mut g = c.benchmark_group("wheel/insert");
    g.sample_size(10).throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function(BenchmarkId::from_parameter(ENTRIES), |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let w = filled(&ds, ENTRIES);
                elapsed += start.elapsed();
                drop(black_box(w));
            }
            elapsed
        })
    });
    g.finish();
}

/// Times `fire` over a fresh wheel of a million entries due within `span_ms`;
/// building and dropping the wheel is not timed. `issue_order`: deadlines rise
/// with the slab index, as for leases of one TTL issued over time; otherwise
/// random, so every list walk misses the cache.
fn timed_fires(
    iters: u64,
    span_ms: u64,
    issue_order: bool,
    fire: impl Fn(&mut Wheel<u32>, &mut Vec<Expired<u32>>),
) -> Duration {
    let mut ds = deadlines(ENTRIES, span_ms, 4);
    if issue_order {
        ds.sort_unstable();
    }
    let mut elapsed = Duration::ZERO;
    for _ in 0..iters {
        let mut w = filled(&ds, ENTRIES);
        let mut out = Vec::with_capacity(ENTRIES);
        let start = Instant::now();
        fire(&mut w, &mut out);
        elapsed += start.elapsed();
        assert!(w.is_empty());
        drop(black_box((w, out)));
    }
    elapsed
}

/// Firing a million due entries: in one jump (everything due at once: recovery
/// after downtime), in batches of 4096 (a bounded revocation queue), and driven
/// second by second through the hour they fall due in (the live engine).
fn fire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wheel/fire");
    g.sample_size(10).throughput(Throughput::Elements(ENTRIES as u64)).measurement_time(Duration::from_secs(10));
    let span = 30 * DAY_MS;
    for (name, issue_order) in [("one_advance_30d_spread", false), ("one_advance_30d_spread_issue_order", true)] {
        g.bench_function(BenchmarkId::new(name, ENTRIES), |b| {
            b.iter_custom(|iters| {
                timed_fires(iters, span, issue_order, |w, out| {
                    w.advance(NOW + span as i64, out, usize::MAX);
                })
            })
        });
    }
    g.bench_function(BenchmarkId::new("batches_of_4096_30d_spread", ENTRIES), |b| {
        b.iter_custom(|iters| {
            timed_fires(iters, span, false, |w, out| {
                let mut batch = Vec::with_capacity(4096);
                while w.needs_advance(NOW + span as i64) {
                    w.advance(NOW + span as i64, &mut batch, 4096);
                    out.append(&mut batch);
                }
            })
        })
    });
    let hour = 3600 * 1000;
    g.bench_function(BenchmarkId::new("every_second_for_1h", ENTRIES), |b| {
        b.iter_custom(|iters| {
            timed_fires(iters, hour, false, |w, out| {
                for s in 0..=3600 {
                    w.advance(NOW + s * 1000, out, usize::MAX);
                }
            })
        })
    });
    g.finish();
}

criterion_group!(benches, insert_cancel, memory, fire);
criterion_main!(benches);
