//! I/O faults through the storage seam, the directory lock, and group commit under
//! concurrency.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{ev, events_in, faulty};
use lessor_engine::clock::ManualClock;
use lessor_engine::event::Event;
use lessor_engine::log::storage::{Faults, ReadOnlyDir, Storage};
use lessor_engine::log::{AppendError, FsyncPolicy, LogOptions};
use lessor_engine::{Engine, EngineOptions, OpenError};

fn options() -> EngineOptions {
    EngineOptions {
        log: LogOptions::default(),
        snapshot_every_events: 0,
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        create_if_missing: true,
        ..EngineOptions::default()
    }
}

#[test]
fn fsync_failure_fails_the_append_cuts_it_off_and_the_log_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = faulty(tmp.path());
    let engine = Engine::open_with_storage(Arc::new(storage.clone()), options()).unwrap();
    engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
    let digest_before = engine.digest();

    storage.set_faults(Faults { fail_sync_in: Some(1), ..Faults::default() });
    let err = engine.append_unchecked_blocking(vec![ev(2)]).unwrap_err();
    assert!(matches!(&err, AppendError::Io { cause } if cause.contains("injected fsync")), "{err}");
    assert!(err.to_string().contains("nothing of this append was kept"), "{err}");
    // The failed event did not reach the state.
    assert_eq!(engine.digest(), digest_before);

    // The disk "recovered": the bytes whose fsync failed were cut (never synced
    // "again"), so the log goes on at the next LSN without a reopen
    // (log_io_recovery.rs: a fault at every write and sync of a workload).
    for i in 3..6 {
        assert_eq!(engine.append_unchecked_blocking(vec![ev(i)]).unwrap().first_lsn, i - 1);
    }
    assert!(storage.fired());
    engine.close();
    drop(storage);

    // Reopen: the acknowledged events, and not the failed one.
    let engine = Engine::open(tmp.path(), options()).unwrap();
    assert_eq!(events_in(tmp.path()), vec![ev(1), ev(3), ev(4), ev(5)]);
    engine.append_unchecked_blocking(vec![ev(7)]).unwrap();
}

/// With `fsync: never` the writer calls no fsync until close, even across
/// segment seals: a disk whose every fsync fails takes every append, what was
/// acknowledged is there after close, and the close does sync. With `always` the same disk fails
/// the first append.
#[test]
fn fsync_never_acknowledges_without_syncing_and_always_syncs_every_batch() {
    for (policy, acked) in [(FsyncPolicy::Never, true), (FsyncPolicy::Always, false)] {
        let tmp = tempfile::tempdir().unwrap();
        let storage = faulty(tmp.path());
        let opts = EngineOptions {
            log: LogOptions {
                fsync: policy,
                segment_bytes_max: 2048,
                checkpoint_interval_ms: 0,
                ..LogOptions::default()
            },
            ..options()
        };
        let engine = Engine::open_with_storage(Arc::new(storage.clone()), opts.clone()).unwrap();
        storage.set_faults(Faults { fail_sync_in: Some(1), sticky: true, ..Faults::default() });
        let results: Vec<_> = (1..=40).map(|i| engine.append_unchecked_blocking(vec![ev(i)])).collect();
        let synced_before_close = storage.fired();
        let segments = std::fs::read_dir(tmp.path()).unwrap().filter_map(Result::ok);
        let segments = segments.filter(|e| e.file_name().to_string_lossy().ends_with(".log")).count() as u64;
        // The close must sync every segment written since open (the sealed ones
        // and the active one) and the directory: the last of those syncs fails.
        storage.set_faults(Faults { fail_sync_in: Some(segments + 1), ..Faults::default() });
        engine.close();
        if acked {
            assert!(results.iter().all(Result::is_ok), "{policy:?}: {results:?}");
            assert!(!synced_before_close, "{policy:?} called fsync before close");
            assert!(storage.fired(), "{policy:?}: a clean close must sync all {segments} segments and the directory");
            let events = events_in(tmp.path());
            assert_eq!(events, (1..=40).map(ev).collect::<Vec<_>>());
            assert!(segments > 2, "{policy:?}: only {segments} segments; the test must cross seals");
        } else {
            assert!(results.iter().all(Result::is_err), "{policy:?}: {results:?}");
            assert!(synced_before_close);
        }
        assert_eq!(FsyncPolicy::from_name(policy.name()), Some(policy));
    }
}

#[test]
fn write_failure_is_reported_and_the_log_refuses_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = faulty(tmp.path());
    let engine = Engine::open_with_storage(Arc::new(storage.clone()), options()).unwrap();
    storage.set_faults(Faults { fail_write_in: Some(1), sticky: true, ..Faults::default() });
    let err = engine.append_unchecked_blocking(vec![ev(1)]).unwrap_err();
    assert!(matches!(&err, AppendError::Io { cause } if cause.contains("injected write")), "{err}");
    // The disk stays broken (sticky): every append fails.
    assert!(matches!(engine.append_unchecked_blocking(vec![ev(2)]), Err(AppendError::Io { .. })));
    assert_eq!(engine.last_lsn(), 0);
}

#[test]
fn torn_write_through_the_seam_at_every_byte_recovers_to_the_acknowledged_prefix() {
    // Each event is written in its own batch; tear the third batch after k bytes.
    let probe = tempfile::tempdir().unwrap();
    let record_len = {
        let engine = Engine::open(probe.path(), options()).unwrap();
        engine.append_unchecked_blocking(vec![ev(3)]).unwrap();
        engine.log_stats().bytes_written.load(std::sync::atomic::Ordering::Relaxed) as usize
    };
    for keep in 0..record_len {
        let tmp = tempfile::tempdir().unwrap();
        {
            let storage = faulty(tmp.path());
            let engine = Engine::open_with_storage(Arc::new(storage.clone()), options()).unwrap();
            engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
            engine.append_unchecked_blocking(vec![ev(2)]).unwrap();
            storage.set_faults(Faults { fail_write_in: Some(1), tear_keep_bytes: Some(keep), ..Faults::default() });
            assert!(engine.append_unchecked_blocking(vec![ev(3)]).is_err(), "keep {keep}");
            // The writer cut the torn bytes off itself: nothing is left for
            // recovery to cut (a torn tail left by a crash: log_recovery.rs).
            assert_eq!(events_in(tmp.path()), vec![ev(1), ev(2)], "keep {keep}");
        }
        let engine = Engine::open(tmp.path(), options()).unwrap();
        engine.close();
        assert_eq!(events_in(tmp.path()), vec![ev(1), ev(2)], "keep {keep}");
    }
}

#[test]
fn second_opener_in_the_same_process_gets_the_lock_error() {
    let tmp = tempfile::tempdir().unwrap();
    let _engine = Engine::open(tmp.path(), options()).unwrap();
    match Engine::open(tmp.path(), options()) {
        Err(OpenError::Lock(e)) => {
            let msg = e.to_string();
            assert!(msg.contains(&std::process::id().to_string()), "{msg}");
            assert!(msg.contains("in use by process"), "{msg}");
        }
        other => panic!("expected a lock error, got {other:?}"),
    }
}

const HOLDER_ENV: &str = "LESSOR_TEST_LOCK_HOLDER_DIR";

/// Not a test by itself: the child process of the two-process lock test.
#[test]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(HOLDER_ENV) else { return };
    let _engine = Engine::open(Path::new(&dir), options()).unwrap();
    println!("LOCKED");
    // Hold the lock until the parent closes our stdin.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn two_processes_opening_one_directory_the_second_gets_the_lock_error_naming_the_first() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_holder_child", "--nocapture", "--test-threads=1"])
        .env(HOLDER_ENV, tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("LOCKED") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child exited before locking");
    }
    let err = Engine::open(tmp.path(), options()).unwrap_err().to_string();
    assert!(err.contains(&format!("in use by process {}", child.id())), "{err}");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // Released with the process: now it opens.
    Engine::open(tmp.path(), options()).unwrap();
}

#[test]
fn concurrent_appenders_get_dense_unique_lsns_in_their_own_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.log.append_queue_depth_max = 2; // backpressure: most appenders wait to enqueue
    let engine = Arc::new(Engine::open(tmp.path(), opts).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let per_task = 50u64;
    let lsns: Vec<Vec<u64>> = rt.block_on(async {
        let tasks: Vec<_> = (0..64u64)
            .map(|t| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0..per_task {
                        let ack = engine.append_unchecked(vec![ev(t * 1000 + i)]).await.unwrap();
                        mine.push(ack.first_lsn);
                    }
                    mine
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        all
    });
    let mut flat: Vec<u64> = lsns.iter().flatten().copied().collect();
    for mine in &lsns {
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "an appender's events out of order");
    }
    flat.sort_unstable();
    assert_eq!(flat, (1..=64 * per_task).collect::<Vec<_>>());
    let stats = engine.log_stats();
    assert_eq!(stats.events_written.load(std::sync::atomic::Ordering::Relaxed), 64 * per_task);
    let engine = Arc::into_inner(engine).unwrap();
    let digest = engine.digest();
    engine.close();
    assert_eq!(Engine::open(tmp.path(), options()).unwrap().digest(), digest);
}

#[test]
fn invalid_log_options_are_refused_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = options();
    opts.log.segment_bytes_max = 10;
    let err = Engine::open(tmp.path(), opts).unwrap_err().to_string();
    assert!(err.contains("segment_bytes_max") && err.contains("at least"), "{err}");
    // Nothing was created besides the lock.
    let storage = ReadOnlyDir::new(tmp.path());
    assert_eq!(storage.list().unwrap(), vec!["LOCK".to_string()]);
}

#[test]
fn a_bit_flipped_by_a_lying_disk_in_an_earlier_record_refuses_to_open() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let storage = faulty(tmp.path());
        let engine = Engine::open_with_storage(Arc::new(storage.clone()), options()).unwrap();
        // The 2nd write from now is record 2; flip a bit inside its payload.
        storage.set_faults(Faults { flip_bit_in: Some((2, 40, 3)), ..Faults::default() });
        for i in 1..=4 {
            engine.append_unchecked_blocking(vec![ev(i)]).unwrap();
        }
        assert!(storage.fired());
    }
    let err = Engine::open(tmp.path(), options()).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch") && err.contains("LSN 2"), "{err}");
}

#[test]
fn a_bit_flipped_in_the_last_record_is_indistinguishable_from_a_torn_write_and_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let storage = faulty(tmp.path());
        let engine = Engine::open_with_storage(Arc::new(storage.clone()), options()).unwrap();
        engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
        storage.set_faults(Faults { flip_bit_in: Some((1, 40, 0)), ..Faults::default() });
        engine.append_unchecked_blocking(vec![ev(2)]).unwrap();
    }
    let engine = Engine::open(tmp.path(), options()).unwrap();
    engine.close();
    let events = events_in(tmp.path());
    assert_eq!(events[0], ev(1));
    assert!(matches!(&events[1], Event::TailTruncated(t) if t.bytes > 0), "{events:?}");
}
