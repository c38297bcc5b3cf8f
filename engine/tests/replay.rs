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

/// The streamed snapshot read (the body is decoded as it is read, never held
/// whole) still refuses every damaged file, naming what is wrong, and opens fall
/// back to replay with the same digest.
#[test]
fn a_streamed_snapshot_read_refuses_truncated_extended_and_damaged_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64(81);
    let engine = Engine::open(tmp.path(), options(8192, 0)).unwrap();
    for _ in 0..200 {
        engine.append_unchecked_blocking(vec![generated_event(&mut rng, 30)]).unwrap();
    }
    let name = engine.snapshot().unwrap().unwrap();
    let digest = engine.digest();
    engine.close();
    let path = tmp.path().join(&name);
    let intact = std::fs::read(&path).unwrap();
    let read = || {
        snapshot::read_decoded(&ReadOnlyDir::new(tmp.path()), &name, None, |body| {
            State::decode_from_reader(body).map_err(|e| e.to_string())
        })
        .map(|s| s.value.digest())
        .map_err(|p| p.what)
    };
    assert_eq!(read(), Ok(digest));
    let header = snapshot::SNAPSHOT_HEADER_BYTES;
    let mut flipped = intact.clone();
    flipped[header + (intact.len() - header) / 2] ^= 0x10;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated body", intact[..intact.len() - 7].to_vec(), "header says"),
        ("a byte after the body", [intact.clone(), vec![0]].concat(), "longer than"),
        ("a flipped byte mid-body", flipped, "checksum mismatch"),
        ("cut inside the header", intact[..header - 1].to_vec(), "shorter than its header"),
    ];
    for (what, bytes, expected) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let err = read().expect_err(what);
        assert!(err.contains(expected), "{what}: {err}");
        assert_eq!(Engine::open(tmp.path(), options(8192, 0)).unwrap().digest(), digest, "{what}");
    }
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

/// Writes one event and a snapshot `count` times; returns the snapshot LSNs left.
fn snapshot_lsns_after(count: usize, history_every_events: u64) -> Vec<u64> {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64(79);
    let opts = EngineOptions { snapshot_history_every_events: history_every_events, ..options(8192, 0) };
    let engine = Engine::open(tmp.path(), opts).unwrap();
    for _ in 0..count {
        engine.append_unchecked_blocking(vec![generated_event(&mut rng, 30)]).unwrap();
        engine.snapshot().unwrap().unwrap();
    }
    let mut lsns: Vec<u64> = snapshots(tmp.path()).iter().filter_map(|n| snapshot::parse_snapshot_name(n)).collect();
    lsns.sort();
    lsns
}

#[test]
fn without_history_only_the_two_newest_snapshots_are_kept() {
    assert_eq!(snapshot_lsns_after(5, 0), vec![4, 5]);
}

/// A crash mid-snapshot leaves `snap-<lsn>.bin.tmp`; the next snapshot written
/// removes such leftovers (at any LSN), so crashes do not pile them up.
#[test]
fn a_snapshot_write_removes_what_crashed_snapshot_writes_left() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(tmp.path(), options(8192, 0)).unwrap();
    let leftovers = ["snap-00000000000000000001.bin.tmp", "snap-00000000000000000777.bin.tmp"];
    for name in leftovers {
        std::fs::write(tmp.path().join(name), b"cut short").unwrap();
    }
    std::fs::write(tmp.path().join("notes.tmp"), b"not ours").unwrap();
    engine.append_unchecked_blocking(vec![generated_event(&mut SplitMix64(3), 30)]).unwrap();
    engine.snapshot().unwrap().unwrap();
    for name in leftovers {
        assert!(!tmp.path().join(name).exists(), "{name} is still there");
    }
    assert!(tmp.path().join("notes.tmp").exists(), "a file that is not a snapshot's was removed");
    engine.close();
}

#[test]
fn history_keeps_the_oldest_snapshot_of_every_stretch() {
    // Stretches of 3 LSNs: [0,2] [3,5] [6,8] [9,11]; 10 and 11 are the newest two.
    assert_eq!(snapshot_lsns_after(11, 3), vec![1, 3, 6, 9, 10, 11]);
}

proptest! {
    /// Pruning after every write (as the engine does) loses at most one stretch of
    /// replay: every snapshot ever written has a kept one at or before it less than
    /// a stretch away, and the two newest are always kept.
    #[test]
    fn pruning_keeps_a_snapshot_within_a_stretch_of_every_written_one(
        gaps in proptest::collection::vec(1u64..500, 1..200),
        history_every_events in 0u64..2_000,
    ) {
        let mut written = Vec::new();
        let mut kept: Vec<u64> = Vec::new();
        let mut lsn = 0;
        for gap in gaps {
            lsn += gap;
            written.push(lsn);
            kept.push(lsn);
            let prune = snapshot::to_prune(&kept, history_every_events);
            prop_assert!(!prune.contains(&lsn), "the snapshot just written was pruned");
            kept.retain(|l| !prune.contains(l));
        }
        let newest: Vec<u64> = written.iter().rev().take(snapshot::SNAPSHOTS_KEPT).copied().collect();
        prop_assert!(newest.iter().all(|l| kept.contains(l)), "newest {newest:?} not all in {kept:?}");
        if history_every_events == 0 {
            prop_assert_eq!(kept.len(), written.len().min(snapshot::SNAPSHOTS_KEPT));
        } else {
            for s in &written {
                prop_assert!(
                    kept.iter().any(|k| k <= s && s - k < history_every_events),
                    "written {s}: no kept snapshot within {history_every_events} before it in {kept:?}"
                );
            }
            // One per stretch at most, besides the newest two.
            let stretches: std::collections::BTreeSet<u64> =
                written.iter().map(|l| l / history_every_events).collect();
            prop_assert!(kept.len() <= stretches.len() + snapshot::SNAPSHOTS_KEPT);
        }
    }
}

/// A deleted connection is kept (retired) while leases still need it for their
/// revocation, and goes with the last of them — whether that lease is revoked,
/// forced, or its issue failed — the same way after a snapshot round trip.
#[test]
fn a_retired_connection_goes_with_its_last_lease_also_after_a_snapshot() {
    use lessor_engine::event::{Entry, EventKind, IssueFailed, IssueStarted, RevokeCompleted, RevokeForced};
    use lessor_engine::testing::sample;
    let issue = |id: &str| match sample(EventKind::IssueStarted) {
        Event::IssueStarted(e) => Event::IssueStarted(IssueStarted { lease_id: id.into(), ..e }),
        _ => unreachable!(),
    };
    let mut lsn = 0;
    let mut apply = |state: &mut State, event: Event| {
        lsn += 1;
        state.apply(&Entry { lsn, ts_ms: 1_700_000_000_000 + lsn as i64, event });
    };
    let key = ("database/".to_string(), "pg".to_string());
    let mut state = State::default();
    apply(&mut state, sample(EventKind::ConnectionWritten));
    for id in ["a", "b", "c"] {
        apply(&mut state, issue(id));
    }
    apply(&mut state, sample(EventKind::ConnectionDeleted));
    assert!(state.connections.is_empty() && state.retired_connections.contains_key(&key));
    apply(&mut state, RevokeCompleted { lease_id: "a".into() }.into());
    assert!(state.retired_connections.contains_key(&key), "two leases still need it");

    let mut decoded = State::decode(&state.encode()).unwrap();
    let step = |s: &mut State, lsn: u64, event: Event| {
        s.apply(&Entry { lsn, ts_ms: 1_700_000_000_000 + lsn as i64, event });
    };
    for s in [&mut state, &mut decoded] {
        step(s, lsn + 1, RevokeForced { lease_id: "b".into(), error: "refused".into() }.into());
        assert!(s.retired_connections.contains_key(&key), "lease c still needs it");
        step(s, lsn + 2, IssueFailed { lease_id: "c".into(), error: "x".into() }.into());
        assert!(s.retired_connections.is_empty(), "the last lease is gone: {:?}", s.retired_connections.keys());
    }
    assert_eq!(state.digest(), decoded.digest());
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
