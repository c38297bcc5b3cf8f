//! Shared helpers for the benches: building data directories of a given size.
//!
//! Every bench links this crate and so runs on mimalloc, the allocator the
//! `lessor` binary uses: replay allocates a few short strings per event, and
//! glibc's malloc, freeing across the reader and folder threads, costs a third of
//! replay throughput (see the README's figures for both; feature `system-alloc`
//! measures without it).

#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::sync::Arc;

use lessor_engine::clock::ManualClock;
use lessor_engine::log::LogOptions;
use lessor_engine::testing::issuance_events;
use lessor_engine::{Engine, EngineOptions};

/// Engine options for benches: a fixed clock, no automatic snapshots.
pub fn bench_options() -> EngineOptions {
    EngineOptions {
        log: LogOptions::default(),
        snapshot_every_events: 0,
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        create_if_missing: true,
        ..EngineOptions::default()
    }
}

/// Fills `dir` with `count` issuance-stream events, appended in batches of 1024.
/// With `snapshot_tail = Some(t)`, a snapshot is taken `t` events before the end.
pub fn build_log(dir: &Path, count: usize, snapshot_tail: Option<usize>) {
    let engine = Engine::open(dir, bench_options()).expect("open bench dir");
    let events = issuance_events(count, 42);
    let snapshot_at = snapshot_tail.map_or(count, |t| count.saturating_sub(t));
    let (head, tail) = events.split_at(snapshot_at);
    for chunk in head.chunks(1024) {
        engine.append_unchecked_blocking(chunk.to_vec()).expect("append");
    }
    if snapshot_tail.is_some() {
        engine.snapshot().expect("snapshot");
    }
    for chunk in tail.chunks(1024) {
        engine.append_unchecked_blocking(chunk.to_vec()).expect("append");
    }
    engine.close();
}
