//! Segments allocated at their full size ahead of time (issue 18, item 3): the
//! files the writer leaves, the next segment prepared on the spare thread,
//! what a crash leaves under a temporary name, a disk that cannot preallocate,
//! and writes torn through the storage seam into preallocated space.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use common::{data_len, ev, faulty, records, segment_names, zeros_from};
use lessor_engine::audit::{VerifyOptions, verify};
use lessor_engine::auth::keys::MasterKey;
use lessor_engine::clock::ManualClock;
use lessor_engine::event::Event;
use lessor_engine::log::format::{self, GENESIS_CHAIN, SEGMENT_HEADER_BYTES, SegmentHeader};
use lessor_engine::log::storage::{Faults, ReadOnlyDir};
use lessor_engine::log::{AppendError, LogOptions, ScanError, read_entries};
use lessor_engine::{Engine, EngineOptions, OpenError};

/// With a master key: segments are allocated ahead only in a log whose
/// batches end in proofs (`log/spare.rs`).
fn options(segment_bytes_max: u64) -> EngineOptions {
    EngineOptions {
        log: LogOptions { segment_bytes_max, checkpoint_interval_ms: 0, ..LogOptions::default() },
        master_key: Some(MasterKey::from_bytes([7; 32])),
        snapshot_every_events: 0,
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        create_if_missing: true,
        ..EngineOptions::default()
    }
}

/// A new data directory, initialized under `options`' master key, open.
fn init(dir: &Path, segment_bytes_max: u64) -> Engine {
    Engine::init(dir, options(segment_bytes_max)).unwrap().0
}

/// The events the tests appended in `dir`'s log (`ev`'s policies), without
/// what `init` wrote or the proofs and checkpoints the writer adds.
fn events_in(dir: &Path) -> Vec<Event> {
    common::events_in(dir).into_iter().filter(|e| matches!(e, Event::PolicyWritten(p) if p.name != "default")).collect()
}

/// The names in `dir` that are not segments, the lock, a head or the key.
fn other_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| format::parse_segment_name(n).is_none() && !["LOCK", "HEAD", "master.key"].contains(&n.as_str()))
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
    let engine = init(tmp.path(), SEGMENT);
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
    let engine = init(tmp.path(), 1 << 20);
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
    init(tmp.path(), SEGMENT).close();
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
    // The first segment is `init`'s, allocated before the faults.
    for name in &segment_names(tmp.path())[1..] {
        let bytes = std::fs::read(tmp.path().join(name)).unwrap();
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
        let engine = init(probe.path(), SEGMENT);
        let written = || engine.log_stats().bytes_written.load(Ordering::Relaxed) as usize;
        let before = written();
        engine.append_unchecked_blocking(vec![ev(3)]).unwrap();
        written() - before
    };
    for keep in 0..batch_len {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path(), SEGMENT).close();
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
        let durable_lsn = records(&before).last().unwrap().1;
        assert_eq!(ack.first_lsn, durable_lsn + 1, "keep {keep}: the failed batch's LSNs were not forgotten");
        engine.close();
        drop(storage);
        let bytes = std::fs::read(&seg).unwrap();
        let next = records(&bytes).into_iter().find(|r| r.1 == ack.first_lsn).unwrap();
        assert_eq!(next.0, durable, "keep {keep}: the next append did not go where the data ended");
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
    init(tmp.path(), 1 << 20).close();
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

/// Every file of `dir` but the lock, copied into a new directory: the disk as
/// a crash at this instant would leave it (everything in it acknowledged).
fn crash_image(dir: &Path) -> tempfile::TempDir {
    let image = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), image.path().join(entry.file_name())).unwrap();
        }
    }
    image
}

/// A policy of about 500 bytes: a few of them fill a page.
fn big(i: u64) -> Event {
    let mut e = ev(i);
    if let Event::PolicyWritten(p) = &mut e {
        p.text = format!("# {}\n{}", "x".repeat(440), p.text);
    }
    e
}

/// `image` copied, with segment `name`'s bytes replaced by `bytes`.
fn crashed_with(image: &Path, name: &str, bytes: &[u8]) -> tempfile::TempDir {
    let dir = crash_image(image);
    std::fs::write(dir.path().join(name), bytes).unwrap();
    dir
}

/// What one crashed image must recover to: exactly the acknowledged records
/// (`ev(1)`), the cut on the record when there was anything to cut, the
/// segment allocated at its full size again; and the log goes on.
fn assert_recovers_acknowledged(dir: &Path, name: &str, cut_expected: bool, case: &str) {
    let report = verify(dir, VerifyOptions::default()).unwrap_or_else(|e| panic!("{case}: verify: {e}"));
    assert_eq!(report.torn_tail.is_some() || report.unproven_records > 0, cut_expected, "{case}: {report:?}");
    let engine = Engine::open(dir, options(1 << 20)).unwrap_or_else(|e| panic!("{case}: open: {e}"));
    assert_eq!(engine.with_state(|s| s.counters.tail_truncations), u64::from(cut_expected), "{case}");
    engine.append_unchecked_blocking(vec![ev(2)]).unwrap();
    engine.close();
    assert_eq!(events_in(dir), vec![ev(1), ev(2)], "{case}");
    let bytes = std::fs::read(dir.join(name)).unwrap();
    assert_eq!(bytes.len(), 1 << 20, "{case}: not allocated again after the cut");
    let after = verify(dir, VerifyOptions::default()).unwrap_or_else(|e| panic!("{case}: verify after: {e}"));
    assert!(after.torn_tail.is_none() && after.unproven_records == 0, "{case}: {after:?}");
}

/// Row 14. A batch is written into preallocated space and synced once; a crash
/// during that `fdatasync` may persist a later page of it and not an earlier
/// one (an overwrite has no file size to order the data behind). The log then
/// ends in a hole and some of the unacknowledged batch's records after it,
/// perhaps its proof. For every subset of the batch's pages that reached the
/// disk, and for a hole of every 512-byte sector in it: `audit verify` reads
/// the log, and open recovers exactly what was acknowledged and logs the cut.
#[test]
fn a_batch_whose_later_pages_reached_the_disk_before_an_earlier_one_is_cut_whole() {
    const PAGE: usize = 4096;
    let tmp = tempfile::tempdir().unwrap();
    let engine = init(tmp.path(), 1 << 20);
    engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
    let image = crash_image(tmp.path());
    let name = segment_names(tmp.path())[0].clone();
    let acked = std::fs::read(image.path().join(&name)).unwrap();
    let durable = data_len(&acked);
    engine.append_unchecked_blocking((10..40).map(big).collect()).unwrap();
    let written = std::fs::read(tmp.path().join(&name)).unwrap();
    engine.close();
    let end = data_len(&written);
    // The batch's extent in pages as the page cache holds them.
    let mut pages = vec![durable];
    pages.extend((durable / PAGE + 1..).map(|p| p * PAGE).take_while(|&p| p < end));
    pages.push(end);
    let chunks: Vec<(usize, usize)> = pages.windows(2).map(|w| (w[0], w[1])).collect();
    assert!((3..=6).contains(&chunks.len()), "the batch spans {} pages", chunks.len());

    // Every page but all of them: the whole batch on disk is a batch that was
    // durable (its caller may have heard back), and is kept.
    for mask in 0u32..(1 << chunks.len()) - 1 {
        let mut bytes = acked.clone();
        for (i, &(from, to)) in chunks.iter().enumerate() {
            if mask & (1 << i) != 0 {
                bytes[from..to].copy_from_slice(&written[from..to]);
            }
        }
        let dir = crashed_with(image.path(), &name, &bytes);
        assert_recovers_acknowledged(dir.path(), &name, mask != 0, &format!("pages {mask:#b}"));
    }
    let mut holes = 0;
    for sector in (durable / 512..end.div_ceil(512)).map(|s| s * 512) {
        let mut bytes = written.clone();
        let hole = sector.max(durable)..(sector + 512).min(end);
        bytes[hole.clone()].fill(0);
        let dir = crashed_with(image.path(), &name, &bytes);
        assert_recovers_acknowledged(dir.path(), &name, true, &format!("hole {hole:?}"));
        holes += 1;
    }
    assert!(holes >= 20, "only {holes} sectors");
}

/// Row 14 stays narrow: what follows a hole must be able to be the rest of
/// one unfinished batch. A hole in an acknowledged batch with a later batch
/// after it (a proof, then more records), or a hole followed by a record from
/// before it, is damage: open refuses, naming where.
#[test]
fn a_hole_that_cannot_be_one_unfinished_batch_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = init(tmp.path(), 1 << 20);
    engine.append_unchecked_blocking(vec![ev(1)]).unwrap();
    let name = segment_names(tmp.path())[0].clone();
    let durable = data_len(&std::fs::read(tmp.path().join(&name)).unwrap());
    engine.append_unchecked_blocking((10..20).map(big).collect()).unwrap();
    engine.append_unchecked_blocking(vec![ev(2)]).unwrap();
    let image = crash_image(tmp.path());
    engine.close();
    let written = std::fs::read(image.path().join(&name)).unwrap();
    let refused = |bytes: &[u8], case: &str| {
        let dir = crashed_with(image.path(), &name, bytes);
        assert!(verify(dir.path(), VerifyOptions::default()).is_err(), "{case}: verify read it");
        match Engine::open(dir.path(), options(1 << 20)) {
            Err(OpenError::Scan(ScanError::Corrupt { offset, .. })) => assert!(offset >= durable as u64, "{case}"),
            Err(other) => panic!("{case}: {other}"),
            Ok(_) => panic!("{case}: open took a damaged log"),
        }
    };
    // A sector of the middle batch lost: the batch after it was acknowledged.
    let mut hole = written.clone();
    let at = (durable + 1000).next_multiple_of(512);
    hole[at..at + 512].fill(0);
    refused(&hole, "hole in an acknowledged batch");
    // A hole, then a copy of the log's first record (LSN 1) after it.
    let mut old = written[..durable].to_vec();
    old.resize(durable + 700, 0);
    let first = records(&written)[0];
    old.extend_from_slice(&written[first.0..first.0 + first.2]);
    old.resize(1 << 20, 0);
    refused(&old, "a record from before the hole after it");
}
