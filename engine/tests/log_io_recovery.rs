//! The log after a failed write or fsync (disk full, EIO), without a restart: the
//! failed batch's appenders get an error, nothing of that batch stays on disk or
//! in the state, and the next append — once the disk works again — succeeds at
//! the LSN the failed batch would have taken. Through the storage seam
//! (`FaultInjectingStorage`), at every write and every sync of a workload that
//! seals segments and logs signed checkpoints.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{ev, faulty};
use lessor_engine::audit::{VerifyOptions, verify};
use lessor_engine::auth::keys::MasterKey;
use lessor_engine::clock::ManualClock;
use lessor_engine::event::Event;
use lessor_engine::log::storage::{Faults, ReadOnlyDir};
use lessor_engine::log::{AppendError, LogOptions, read_entries};
use lessor_engine::{Engine, EngineOptions};

fn options(signed: bool) -> EngineOptions {
    EngineOptions {
        // Small segments: the workload seals several, so faults hit rotations too.
        log: LogOptions { segment_bytes_max: 1024, checkpoint_interval_ms: 0, ..LogOptions::default() },
        snapshot_every_events: 0,
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        create_if_missing: true,
        // With the key the writer signs a checkpoint at every seal.
        master_key: signed.then(|| MasterKey::from_bytes([7; 32])),
        ..EngineOptions::default()
    }
}

/// A temporary directory, on tmpfs when there is one: the faults come through the
/// seam, so real fsyncs would only slow the sweep down.
fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}

/// The events on disk that are not the writer's own (checkpoints).
fn durable_events(dir: &Path) -> Vec<Event> {
    let (entries, summary) = read_entries(&ReadOnlyDir::new(dir)).unwrap();
    assert!(summary.torn_tail.is_none(), "a torn tail was left on disk: {:?}", summary.torn_tail);
    entries
        .into_iter()
        .map(|e| e.event)
        .filter(|e| !matches!(e, Event::Checkpoint(_) | Event::BatchSigned(_) | Event::BatchMac(_)))
        .collect()
}

#[test]
fn a_failed_write_leaves_nothing_and_the_next_append_succeeds_without_reopening() {
    for keep in [None, Some(0), Some(1), Some(20), Some(60)] {
        let tmp = tempdir();
        let storage = faulty(tmp.path());
        let engine = Engine::open_with_storage(Arc::new(storage.clone()), options(false)).unwrap();
        engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
        let digest = engine.digest();
        storage.set_faults(Faults { fail_write_in: Some(1), tear_keep_bytes: keep, ..Faults::default() });
        let err = engine.append_unchecked_blocking(vec![ev(2), ev(3)]).unwrap_err();
        assert!(matches!(&err, AppendError::Io { cause } if cause.contains("injected write")), "keep {keep:?}: {err}");
        assert!(storage.fired());
        assert_eq!(engine.digest(), digest, "keep {keep:?}: the failed batch reached the state");
        assert_eq!(durable_events(tmp.path()), vec![ev(1)], "keep {keep:?}: the failed batch stayed on disk");
        // The disk works again: no reopen needed, and the LSNs stay dense.
        let ack = engine.append_unchecked_blocking(vec![ev(4)]).unwrap();
        assert_eq!((ack.first_lsn, ack.last_lsn), (2, 2), "keep {keep:?}");
        let live = engine.digest();
        engine.close();
        drop(storage);
        assert_eq!(durable_events(tmp.path()), vec![ev(1), ev(4)], "keep {keep:?}");
        let reopened = Engine::open(tmp.path(), options(false)).unwrap();
        assert_eq!(reopened.digest(), live, "keep {keep:?}: the live state and the replayed one differ");
    }
}

#[test]
fn a_failed_fsync_leaves_nothing_and_the_next_append_succeeds_without_reopening() {
    let tmp = tempdir();
    let storage = faulty(tmp.path());
    let engine = Engine::open_with_storage(Arc::new(storage.clone()), options(false)).unwrap();
    engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
    storage.set_faults(Faults { fail_sync_in: Some(1), ..Faults::default() });
    let err = engine.append_unchecked_blocking(vec![ev(2)]).unwrap_err();
    assert!(matches!(&err, AppendError::Io { cause } if cause.contains("injected fsync")), "{err}");
    assert!(!err.to_string().contains("until the engine is reopened"), "the error promises the wrong thing: {err}");
    // The bytes whose fsync failed are cut, not left for a later fsync to "succeed" on.
    assert_eq!(durable_events(tmp.path()), vec![ev(1)]);
    assert_eq!(engine.append_unchecked_blocking(vec![ev(3)]).unwrap().first_lsn, 2);
    let live = engine.digest();
    engine.close();
    drop(storage);
    assert_eq!(durable_events(tmp.path()), vec![ev(1), ev(3)]);
    assert_eq!(Engine::open(tmp.path(), options(false)).unwrap().digest(), live);
}

#[test]
fn while_the_disk_stays_broken_every_append_fails_and_the_log_keeps_the_acknowledged_prefix() {
    let tmp = tempdir();
    let storage = faulty(tmp.path());
    let engine = Engine::open_with_storage(Arc::new(storage.clone()), options(false)).unwrap();
    for i in 1..=3 {
        engine.append_unchecked_blocking(vec![ev(i)]).unwrap();
    }
    storage.set_faults(Faults { fail_write_in: Some(1), tear_keep_bytes: Some(7), sticky: true, ..Faults::default() });
    for i in 4..10 {
        let err = engine.append_unchecked_blocking(vec![ev(i)]).unwrap_err();
        assert!(matches!(err, AppendError::Io { .. }), "append {i}: {err}");
        assert_eq!(durable_events(tmp.path()), vec![ev(1), ev(2), ev(3)], "append {i}");
    }
    assert_eq!(engine.last_lsn(), 3);
    storage.set_faults(Faults::default());
    assert_eq!(engine.append_unchecked_blocking(vec![ev(10)]).unwrap().first_lsn, 4);
}

/// One run of the sweep: appends `rounds` batches of `per_batch` events with a
/// fault armed at the `n`-th write or sync from the start; stops the fault after
/// `fault_lasts` more batches; checks everything acknowledged — and nothing else —
/// is in the live state, on disk, and in the reopened state.
fn sweep_case(n: u64, on_sync: bool, sticky: bool, signed: bool) -> usize {
    let case = format!("fault at {} #{n} (sticky {sticky}, signed {signed})", if on_sync { "sync" } else { "write" });
    let tmp = tempdir();
    if signed {
        // A signed log starts with the key's EngineInitialized record, which
        // checkpoints are verified against.
        Engine::init(tmp.path(), options(true)).unwrap().0.close();
    }
    let baseline = durable_events(tmp.path());
    let storage = faulty(tmp.path());
    let engine = Engine::open_with_storage(Arc::new(storage.clone()), options(signed)).unwrap();
    let policies_before = engine.with_state(|s| s.policies.len());
    let mut faults = Faults { sticky, ..Faults::default() };
    if on_sync {
        faults.fail_sync_in = Some(n);
    } else {
        faults.fail_write_in = Some(n);
        faults.tear_keep_bytes = Some((n as usize * 37) % 300);
    }
    storage.set_faults(faults);
    let mut acked = Vec::new();
    let mut failures = 0;
    let mut next = 0u64;
    let mut failed_batches = 0;
    for round in 0..24 {
        if storage.fired() && failed_batches >= 2 {
            storage.set_faults(Faults::default());
        }
        let events: Vec<Event> = (0..3)
            .map(|_| {
                next += 1;
                ev(next)
            })
            .collect();
        match engine.append_unchecked_blocking(events.clone()) {
            Ok(ack) => {
                assert_eq!(ack.last_lsn - ack.first_lsn, 2, "{case}, round {round}: not contiguous");
                acked.extend(events);
            }
            Err(e) => {
                // `Failed`: a dead disk also refused the directory fsync that
                // makes removing the batch's new segment durable.
                let expected =
                    matches!(e, AppendError::Io { .. }) || (sticky && matches!(e, AppendError::Failed { .. }));
                assert!(expected, "{case}, round {round}: {e}");
                failures += 1;
                failed_batches += 1;
            }
        }
    }
    storage.set_faults(Faults::default());
    // Whatever happened, the disk works now: so does the log.
    engine.append_unchecked_blocking(vec![ev(999_999)]).unwrap_or_else(|e| panic!("{case}: after the fault: {e}"));
    acked.push(ev(999_999));
    let live = engine.digest();
    let policies = engine.with_state(|s| s.policies.len());
    assert_eq!(
        policies,
        policies_before + acked.len(),
        "{case}: the live state has unacknowledged events or lacks acknowledged ones"
    );
    engine.close();
    drop(storage);
    let expected: Vec<Event> = baseline.into_iter().chain(acked).collect();
    assert_eq!(durable_events(tmp.path()), expected, "{case}: the log does not hold exactly the acknowledged events");
    let report = verify(tmp.path(), VerifyOptions::default()).unwrap_or_else(|e| panic!("{case}: verify: {e}"));
    assert!(report.torn_tail.is_none(), "{case}");
    if signed {
        assert!(report.checkpoints > 0, "{case}: no segment was sealed");
    }
    let reopened = Engine::open(tmp.path(), options(signed)).unwrap();
    assert_eq!(reopened.digest(), live, "{case}: replay differs from the live state");
    failures
}

#[test]
fn a_fault_at_every_write_and_every_sync_of_a_workload_that_seals_segments_loses_nothing_acknowledged() {
    let mut cases = 0;
    let mut failed_appends = 0;
    for signed in [false, true] {
        for on_sync in [false, true] {
            for sticky in [false, true] {
                // The workload does ~24 writes and ~30 syncs (rotations add some).
                for n in 1..=40 {
                    failed_appends += sweep_case(n, on_sync, sticky, signed);
                    cases += 1;
                }
            }
        }
    }
    println!("{cases} fault cases, {failed_appends} failed appends, nothing acknowledged lost, nothing else kept");
    assert!(failed_appends >= cases / 2, "the faults rarely fired: {failed_appends} failures in {cases} cases");
}
