//! Shared helpers for the benches: building data directories of a given size.
//!
//! Every bench links this crate and so runs on mimalloc, the allocator the
//! `lessor` binary uses: replay allocates a few short strings per event, and
//! glibc's malloc, freeing across the reader and folder threads, costs a third of
//! replay throughput (see the README's figures for both; feature `system-alloc`
//! measures without it).

pub mod http;
pub mod loadgen;

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

/// Fills `dir` with `leases` live leases (an `IssueStarted` and `IssueCompleted`
/// each, expiring a day after the bench clock's now), with a snapshot taken
/// `tail_leases` leases before the end.
pub fn build_live_leases(dir: &Path, leases: usize, tail_leases: usize) {
    use lessor_engine::event::{Event, EventKind, IssueCompleted};
    let engine = Engine::open(dir, bench_options()).expect("open bench dir");
    let template = match lessor_engine::testing::sample(EventKind::IssueStarted) {
        Event::IssueStarted(e) => e,
        _ => unreachable!("sample returns its kind"),
    };
    let mut batch = Vec::with_capacity(1024);
    for i in 0..leases {
        if i == leases - tail_leases.min(leases) {
            engine.append_unchecked_blocking(std::mem::take(&mut batch)).expect("append");
            engine.snapshot().expect("snapshot");
        }
        let mut started = template.clone();
        started.lease_id = format!("database/creds/app-readonly/{i:024}");
        started.username = format!("v-token-app-read-{i:020}-1700000000");
        started.expire_time_ms = 1_700_000_000_000 + 86_400_000 + (i as i64 % 3_600_000);
        let id = started.lease_id.clone();
        batch.push(Event::IssueStarted(started));
        batch.push(IssueCompleted { lease_id: id }.into());
        if batch.len() >= 1024 {
            engine.append_unchecked_blocking(std::mem::take(&mut batch)).expect("append");
        }
    }
    if !batch.is_empty() {
        engine.append_unchecked_blocking(batch).expect("append");
    }
    engine.close();
}

/// CPU this process has used so far (user + system, all threads): on a shared
/// machine, wall time says more about the neighbours than about the code.
pub fn process_cpu() -> std::time::Duration {
    use std::time::Duration;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given, which
    // points at a zeroed, properly sized and aligned value we own.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
