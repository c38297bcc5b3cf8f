//! State = fold(events): arbitrary event sequences, appended through segment
//! rotations, reopen to the same digest and the same events — with snapshots and
//! without, and with snapshots deleted.

use std::path::Path;
use std::sync::Arc;

use lessor_engine::clock::ManualClock;
use lessor_engine::event::Event;
use lessor_engine::log::storage::ReadOnlyDir;
use lessor_engine::log::{LogOptions, read_entries, snapshot};
use lessor_engine::state::State;
use lessor_engine::testing::{SplitMix64, generated_event};
use lessor_engine::{Engine, EngineOptions};
use proptest::prelude::*;

fn options(segment_bytes_max: u64, snapshot_every_events: u64) -> EngineOptions {
    EngineOptions {
        log: LogOptions { segment_bytes_max, ..LogOptions::default() },
        snapshot_every_events,
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        create_if_missing: true,
        ..EngineOptions::default()
    }
}

fn snapshots(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| snapshot::parse_snapshot_name(n).is_some())
        .collect()
}

/// The fold done by hand over the events as read back: the reference digest.
fn folded_digest(dir: &Path) -> [u8; 32] {
    let (entries, _) = read_entries(&ReadOnlyDir::new(dir)).unwrap();
    let mut state = State::default();
    for e in &entries {
        state.apply(e);
    }
    state.digest()
}

fn run(seed: u64, count: usize, batch: usize, segment_bytes_max: u64, snapshot_every: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64(seed);
    let events: Vec<Event> = (0..count).map(|_| generated_event(&mut rng, 40)).collect();
    let engine = Engine::open(tmp.path(), options(segment_bytes_max, snapshot_every)).unwrap();
    for chunk in events.chunks(batch.max(1)) {
        engine.append_unchecked_blocking(chunk.to_vec()).unwrap();
    }
    if snapshot_every > 0 {
        // Also one at the very end, so the reopen replays nothing after it.
        engine.snapshot().unwrap();
    }
    let digest = engine.digest();
    engine.close();

    let (read, _) = read_entries(&ReadOnlyDir::new(tmp.path())).unwrap();
    let read: Vec<Event> = read.into_iter().map(|e| e.event).collect();
    assert_eq!(read, events, "seed {seed}: events differ after reopen");
    assert_eq!(folded_digest(tmp.path()), digest, "seed {seed}: the live state is not the fold of the log");

    let reopened = Engine::open(tmp.path(), options(segment_bytes_max, 0)).unwrap();
    assert_eq!(reopened.digest(), digest, "seed {seed}: digest after reopen");
    reopened.close();

    if snapshot_every > 0 {
        assert!(!snapshots(tmp.path()).is_empty(), "seed {seed}: no snapshot was written");
    }
    // Snapshots are caches: without any, the same state.
    for name in snapshots(tmp.path()) {
        std::fs::remove_file(tmp.path().join(name)).unwrap();
    }
    let replayed = Engine::open(tmp.path(), options(segment_bytes_max, 0)).unwrap();
    assert_eq!(replayed.digest(), digest, "seed {seed}: digest without snapshots");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn reopen_gives_the_same_events_and_digest_without_snapshots(
        seed in any::<u64>(), count in 1usize..400, batch in 1usize..40, seg in 2048u64..16_384,
    ) {
        run(seed, count, batch, seg, 0);
    }

    #[test]
    fn reopen_gives_the_same_events_and_digest_with_snapshots(
        seed in any::<u64>(), count in 1usize..400, batch in 1usize..40, seg in 2048u64..16_384, every in 1u64..100,
    ) {
        run(seed, count, batch, seg, every);
    }
}

#[test]
fn a_mid_log_snapshot_plus_tail_equals_full_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64(77);
    let engine = Engine::open(tmp.path(), options(8192, 0)).unwrap();
    for _ in 0..300 {
        engine.append_unchecked_blocking(vec![generated_event(&mut rng, 30)]).unwrap();
    }
    let snap = engine.snapshot().unwrap().unwrap();
    for _ in 0..300 {
        engine.append_unchecked_blocking(vec![generated_event(&mut rng, 30)]).unwrap();
    }
    let digest = engine.digest();
    engine.close();
    assert_eq!(snapshot::parse_snapshot_name(&snap), Some(300));
    assert_eq!(Engine::open(tmp.path(), options(8192, 0)).unwrap().digest(), digest);
    assert_eq!(folded_digest(tmp.path()), digest);
}

#[test]
fn a_damaged_snapshot_is_ignored_and_replay_takes_over() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64(78);
    let engine = Engine::open(tmp.path(), options(8192, 0)).unwrap();
    for _ in 0..50 {
        engine.append_unchecked_blocking(vec![generated_event(&mut rng, 30)]).unwrap();
    }
    let name = engine.snapshot().unwrap().unwrap();
    let digest = engine.digest();
    engine.close();
    let path = tmp.path().join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(Engine::open(tmp.path(), options(8192, 0)).unwrap().digest(), digest);
}

#[test]
fn a_snapshot_from_another_log_is_ignored() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (dir, seed) in [(a.path(), 1), (b.path(), 2)] {
        let mut rng = SplitMix64(seed);
        let engine = Engine::open(dir, options(8192, 0)).unwrap();
        for _ in 0..40 {
            engine.append_unchecked_blocking(vec![generated_event(&mut rng, 30)]).unwrap();
        }
        engine.snapshot().unwrap().unwrap();
        engine.close();
    }
    let digest_a = folded_digest(a.path());
    let name = snapshots(b.path()).pop().unwrap();
    std::fs::copy(b.path().join(&name), a.path().join(&name)).unwrap();
    assert_eq!(Engine::open(a.path(), options(8192, 0)).unwrap().digest(), digest_a);
}

#[test]
fn only_the_newest_snapshots_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64(79);
    let engine = Engine::open(tmp.path(), options(8192, 0)).unwrap();
    for _ in 0..5 {
        engine.append_unchecked_blocking(vec![generated_event(&mut rng, 30)]).unwrap();
        engine.snapshot().unwrap().unwrap();
    }
    let mut names = snapshots(tmp.path());
    names.sort();
    assert_eq!(names, vec![snapshot::snapshot_name(4), snapshot::snapshot_name(5)]);
}

#[test]
fn the_fold_reads_time_only_from_entries() {
    // Two replays of the same log at different wall-clock moments agree; a lease's
    // issue time is its entry's timestamp.
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let opts = EngineOptions { clock: clock.clone(), ..options(8192, 0) };
    let engine = Engine::open(tmp.path(), opts.clone()).unwrap();
    let issue = lessor_engine::testing::sample(lessor_engine::event::EventKind::IssueStarted);
    engine.append_unchecked_blocking(vec![issue]).unwrap();
    clock.advance_ms(5_000);
    let digest = engine.digest();
    engine.close();
    clock.advance_ms(1_000_000);
    let engine = Engine::open(tmp.path(), opts).unwrap();
    assert_eq!(engine.digest(), digest);
    engine.with_state(|s| {
        let lease = s.leases.values().next().unwrap();
        assert_eq!(lease.issue_time_ms, 1_000);
    });
}
