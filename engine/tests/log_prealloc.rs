//! Segments allocated at their full size ahead of time (issue 18, item 3): the
//! files the writer leaves, the next segment prepared on the spare thread,
//! what a crash leaves under a temporary name, a disk that cannot preallocate,
//! and writes torn through the storage seam into preallocated space.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{data_len, ev, events_in, faulty, records, segment_names, zeros_from};
use lessor_engine::audit::{VerifyOptions, verify};
use lessor_engine::clock::ManualClock;
use lessor_engine::event::Event;
use lessor_engine::log::format::{self, GENESIS_CHAIN, SEGMENT_HEADER_BYTES, SegmentHeader};
use lessor_engine::log::storage::{Faults, ReadOnlyDir};
use lessor_engine::log::{AppendError, LogOptions, read_entries};
use lessor_engine::{Engine, EngineOptions};

fn options(segment_bytes_max: u64) -> EngineOptions {
    EngineOptions {
        log: LogOptions { segment_bytes_max, checkpoint_interval_ms: 0, ..LogOptions::default() },
        snapshot_every_events: 0,
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        create_if_missing: true,
        ..EngineOptions::default()
    }
}

/// The names in `dir` that are not segments, the lock or a head.
fn other_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| format::parse_segment_name(n).is_none() && n != "LOCK")
        .collect();
    names.sort();
    names
}

/// Every segment is its full size; its bytes are exactly the header and the
/// records framed as the format says (the golden framing, re-encoded from what
/// was read back), then zeros to the end; and the next segment was prepared on
/// the spare thread (zeros written and synced) for at least some seals.
#[test]
fn segments_are_header_records_and_zeros_at_their_full_size_and_the_next_is_prepared_ahead() {
    const SEGMENT: u64 = 16 << 10;
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(tmp.path(), options(SEGMENT)).unwrap();
    // One append per fsync: the spare thread has the time a half segment of
    // fsyncs takes to prepare the next file.
    for i in 0..2_000 {
        engine.append_unchecked_blocking(vec![ev(i)]).unwrap();
    }
    let stats = engine.log_stats();
    let (started, from_spares) =
        (stats.segments_started.load(Ordering::Relaxed), stats.segments_from_spares.load(Ordering::Relaxed));
    engine.close();
    let names = segment_names(tmp.path());
    assert_eq!(started, names.len() as u64 - 1);
    assert!(started >= 8, "only {started} seals");
    assert!(from_spares > 0, "no segment of {started} came from the spare thread");
    println!("{started} seals, {from_spares} of them into a segment prepared ahead");
    assert_eq!(other_files(tmp.path()), Vec::<String>::new(), "a spare was left behind after a clean close");

    let (entries, _) = read_entries(&ReadOnlyDir::new(tmp.path())).unwrap();
    let mut chain = GENESIS_CHAIN;
    let mut next = entries.iter().peekable();
    for name in &names {
        let bytes = std::fs::read(tmp.path().join(name)).unwrap();
        assert_eq!(bytes.len() as u64, SEGMENT, "{name} is not its full size");
        let header = SegmentHeader::decode(&bytes).unwrap();
        assert_eq!(header.prev_chain, chain, "{name}");
        let mut expected = header.encode().to_vec();
        for _ in records(&bytes) {
            let e = next.next().unwrap();
            chain = format::encode_record(
                &mut expected,
                &chain,
                e.lsn,
                e.ts_ms,
                e.event.kind().code(),
                &e.event.encode_payload(),
            );
        }
        assert_eq!(&bytes[..expected.len()], &expected[..], "{name}: not the format's bytes");
        assert!(zeros_from(&bytes, expected.len()), "{name}: not zeros after the records");
    }
    assert!(next.next().is_none());
    let report = verify(tmp.path(), VerifyOptions::default()).unwrap();
    assert_eq!(report.records, entries.len() as u64);
}

/// Files a crash left under a temporary name (`spare-<n>.tmp`) are no
/// segments: the next open removes them, and the log is what it was.
#[test]
fn spare_files_a_crash_left_are_removed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
    engine.close();
    // A spare being prepared, and one a seal had written its header into.
    let header = SegmentHeader { version: format::FORMAT_VERSION, first_lsn: 2, prev_chain: [9; 32] };
    let mut with_header = header.encode().to_vec();
    with_header.resize(1 << 20, 0);
    std::fs::write(tmp.path().join("spare-00000000000000000000.tmp"), vec![0u8; 4096]).unwrap();
    std::fs::write(tmp.path().join("spare-00000000000000000007.tmp"), with_header).unwrap();
    assert_eq!(events_in(tmp.path()), vec![ev(1)], "a spare was read as a segment");
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    assert_eq!(other_files(tmp.path()), Vec::<String>::new());
    engine.append_unchecked_blocking(vec![ev(2)]).unwrap();
    engine.close();
    assert_eq!(events_in(tmp.path()), vec![ev(1), ev(2)]);
}

/// A disk that cannot preallocate (full, or a file system without fallocate):
/// nothing fails, segments grow with their appends as before, and the log reads
/// back whole.
#[test]
fn a_disk_that_cannot_preallocate_loses_nothing_and_segments_grow() {
    const SEGMENT: u64 = 4096;
    let tmp = tempfile::tempdir().unwrap();
    let storage = faulty(tmp.path());
    storage.set_faults(Faults { fail_allocate: true, ..Faults::default() });
    let engine = Engine::open_with_storage(Arc::new(storage.clone()), options(SEGMENT)).unwrap();
    let expected: Vec<Event> = (0..200).map(ev).collect();
    for e in &expected {
        engine.append_unchecked_blocking(vec![e.clone()]).unwrap();
    }
    let stats = engine.log_stats();
    assert!(stats.segments_started.load(Ordering::Relaxed) > 3);
    assert_eq!(stats.segments_from_spares.load(Ordering::Relaxed), 0);
    engine.close();
    assert!(!storage.fired(), "an allocation failure counted as a fault that fired");
    drop(storage);
    for name in segment_names(tmp.path()) {
        let bytes = std::fs::read(tmp.path().join(&name)).unwrap();
        assert_eq!(bytes.len(), data_len(&bytes), "{name}: allocated although allocation fails");
    }
    assert_eq!(events_in(tmp.path()), expected);
    assert_eq!(other_files(tmp.path()), Vec::<String>::new());
}

/// The seam tears a write into preallocated space: the bytes before the tear
/// land where the batch was to go, inside the file. The writer cuts them off
/// (truncates to the durable length and allocates the rest again): on disk,
/// the acknowledged records and zeros; the next append goes right after them;
/// a reopen finds no torn tail. At every byte of the torn batch.
#[test]
fn a_write_torn_into_preallocated_space_at_every_byte_is_cut_and_the_log_goes_on() {
    const SEGMENT: u64 = 1 << 20;
    let probe = tempfile::tempdir().unwrap();
    let batch_len = {
        let engine = Engine::open(probe.path(), options(SEGMENT)).unwrap();
        engine.append_unchecked_blocking(vec![ev(3)]).unwrap();
        engine.log_stats().bytes_written.load(Ordering::Relaxed) as usize
    };
    for keep in 0..batch_len {
        let tmp = tempfile::tempdir().unwrap();
        let storage = faulty(tmp.path());
        let engine = Engine::open_with_storage(Arc::new(storage.clone()), options(SEGMENT)).unwrap();
        engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
        engine.append_unchecked_blocking(vec![ev(2)]).unwrap();
        let seg = tmp.path().join(&segment_names(tmp.path())[0]);
        let before = std::fs::read(&seg).unwrap();
        let durable = data_len(&before);
        storage.set_faults(Faults { fail_write_in: Some(1), tear_keep_bytes: Some(keep), ..Faults::default() });
        let err = engine.append_unchecked_blocking(vec![ev(3)]).unwrap_err();
        assert!(matches!(&err, AppendError::Io { cause } if cause.contains("injected write")), "keep {keep}: {err}");
        let after = std::fs::read(&seg).unwrap();
        assert_eq!(after.len() as u64, SEGMENT, "keep {keep}: not allocated again after the cut");
        assert_eq!(&after[..durable], &before[..durable], "keep {keep}: the durable records changed");
        assert!(zeros_from(&after, durable), "keep {keep}: torn bytes left after the durable records");
        let ack = engine.append_unchecked_blocking(vec![ev(4)]).unwrap();
        assert_eq!(ack.first_lsn, 3, "keep {keep}");
        engine.close();
        drop(storage);
        let bytes = std::fs::read(&seg).unwrap();
        assert_eq!(records(&bytes)[2].0, durable, "keep {keep}: the next append did not go where the data ended");
        let report = verify(tmp.path(), VerifyOptions::default()).unwrap();
        assert!(report.torn_tail.is_none(), "keep {keep}");
        let engine = Engine::open(tmp.path(), options(SEGMENT)).unwrap();
        engine.close();
        assert_eq!(events_in(tmp.path()), vec![ev(1), ev(2), ev(4)], "keep {keep}");
    }
}

/// Without preallocation (a failing allocate) a torn write is cut the same way.
#[test]
fn a_torn_write_with_allocation_failing_is_cut_too() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = faulty(tmp.path());
    storage.set_faults(Faults { fail_allocate: true, ..Faults::default() });
    let engine = Engine::open_with_storage(Arc::new(storage.clone()), options(1 << 20)).unwrap();
    engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
    storage.set_faults(Faults {
        fail_allocate: true,
        fail_write_in: Some(1),
        tear_keep_bytes: Some(40),
        ..Faults::default()
    });
    engine.append_unchecked_blocking(vec![ev(2)]).unwrap_err();
    storage.set_faults(Faults { fail_allocate: true, ..Faults::default() });
    engine.append_unchecked_blocking(vec![ev(3)]).unwrap();
    engine.close();
    drop(storage);
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let bytes = std::fs::read(&seg).unwrap();
    assert_eq!(bytes.len(), data_len(&bytes));
    assert_eq!(events_in(tmp.path()), vec![ev(1), ev(3)]);
    assert!(bytes.len() > SEGMENT_HEADER_BYTES);
}
