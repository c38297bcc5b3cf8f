//! The recovery decision table, row by row, on real files; plus torn writes at
//! every byte (into a file that ends with the write, and into a segment
//! allocated ahead, which ends in zeros), single-byte corruption everywhere, and
//! chain-only detection.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{data_len, events_in, record_offsets, segment_names, zeros_from};
use lessor_engine::clock::ManualClock;
use lessor_engine::event::{Event, EventKind};
use lessor_engine::log::LogOptions;
use lessor_engine::log::format::{self, RECORD_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES};
use lessor_engine::testing::{SplitMix64, generated_event, sample};
use lessor_engine::{Engine, EngineOptions, OpenError};

fn options(segment_bytes_max: u64) -> EngineOptions {
    EngineOptions {
        log: LogOptions { segment_bytes_max, ..LogOptions::default() },
        snapshot_every_events: 0,
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
        create_if_missing: true,
        ..EngineOptions::default()
    }
}

/// Writes `n` generated events (one per append, so one per fsync) and closes.
fn write_log(dir: &Path, n: usize, segment_bytes_max: u64, seed: u64) -> Vec<Event> {
    let engine = Engine::open(dir, options(segment_bytes_max)).unwrap();
    let mut rng = SplitMix64(seed);
    let events: Vec<Event> = (0..n).map(|_| generated_event(&mut rng, 20)).collect();
    for e in &events {
        engine.append_unchecked_blocking(vec![e.clone()]).unwrap();
    }
    engine.close();
    events
}

/// Every segment file in `dir` made `len` bytes long with zeros after its
/// data, as a writer that allocates segments ahead leaves them. (It does so
/// only in a log whose batches end in proofs, `log/spare.rs`; reading the
/// zeros, row 13, does not depend on a key, and these logs have none.)
fn allocate_ahead(dir: &Path, len: u64) {
    for name in segment_names(dir) {
        let file = std::fs::OpenOptions::new().write(true).open(dir.join(name)).unwrap();
        assert!(file.metadata().unwrap().len() <= len);
        file.set_len(len).unwrap();
    }
}

fn open_err(dir: &Path) -> String {
    match Engine::open(dir, options(1 << 20)) {
        Ok(_) => panic!("open succeeded on a damaged log"),
        Err(e) => e.to_string(),
    }
}

/// The bytes a torn tail from `from` to `to` counts: up to its last byte that
/// is not zero (zeros after it are a preallocated segment's unused space).
fn torn_bytes(bytes: &[u8], from: usize, to: usize) -> u64 {
    bytes[from..to].iter().rposition(|&b| b != 0).map_or(0, |i| i as u64 + 1)
}

#[test]
fn torn_write_at_every_byte_of_the_final_record_is_cut_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path(), 5, 1 << 20, 1);
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let pristine = std::fs::read(&seg).unwrap();
    let last = *record_offsets(&pristine).last().unwrap();
    // A file that ends where the write was torn (a file system that would not
    // preallocate). Every proper prefix of the final record: 0 bytes of it (=
    // clean end) excluded.
    for cut in last + 1..data_len(&pristine) {
        std::fs::write(&seg, &pristine[..cut]).unwrap();
        let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
        engine.close();
        let events = events_in(tmp.path());
        assert_eq!(events.len(), 5, "cut at {cut}");
        assert_eq!(&events[..4], &written[..4], "cut at {cut}: records before the torn one changed");
        match &events[4] {
            Event::TailTruncated(t) => {
                assert_eq!(t.offset, last as u64, "cut at {cut}");
                assert_eq!(t.bytes, torn_bytes(&pristine, last, cut), "cut at {cut}");
            }
            other => panic!("cut at {cut}: expected TailTruncated, got {other:?}"),
        }
    }
}

/// A crash in the middle of the last two batches' writes into a segment
/// allocated ahead: the bytes of the write up to the tear reached the disk, the
/// rest of the file reads as the zeros it was allocated with. At every byte of
/// the last two records, open recovers exactly the records written whole
/// before the tear (the acknowledged prefix: each was its own batch, so any
/// later one was not acknowledged), records the cut, allocates the segment
/// again, and the log goes on where its data ends; `audit verify` agrees.
#[test]
fn a_torn_write_into_a_preallocated_segment_at_every_byte_recovers_the_acknowledged_prefix() {
    const SEGMENT: u64 = 1 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path(), 6, SEGMENT, 14);
    allocate_ahead(tmp.path(), SEGMENT);
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let pristine = std::fs::read(&seg).unwrap();
    assert_eq!(pristine.len() as u64, SEGMENT, "the segment was not allocated at its full size");
    let offsets = record_offsets(&pristine);
    let data = data_len(&pristine);
    assert!(zeros_from(&pristine, data));
    let verify = |dir: &Path| lessor_engine::audit::verify(dir, Default::default()).map_err(|e| e.to_string());
    let mut cases = 0;
    for cut in offsets[offsets.len() - 2] + 1..data {
        if offsets.contains(&cut) {
            continue; // a clean end at a record boundary: the other test below
        }
        let mut torn = pristine.clone();
        torn[cut..data].fill(0);
        std::fs::write(&seg, &torn).unwrap();
        // Whole records before the tear, and where the torn one starts.
        let whole = offsets.iter().filter(|&&o| o < cut).count() - 1;
        let torn_at = offsets[whole];
        let report = verify(tmp.path()).unwrap_or_else(|e| panic!("cut at {cut}: verify: {e}"));
        let tail = report.torn_tail.as_ref().unwrap_or_else(|| panic!("cut at {cut}: no torn tail reported"));
        assert_eq!((tail.offset, tail.bytes), (torn_at as u64, torn_bytes(&torn, torn_at, cut)), "cut at {cut}");
        assert_eq!(report.records, whole as u64, "cut at {cut}");

        let engine = Engine::open(tmp.path(), options(SEGMENT)).unwrap();
        assert_eq!(engine.last_lsn(), whole as u64 + 1, "cut at {cut}: not the prefix and the cut's record");
        engine.append_unchecked_blocking(vec![written[5].clone()]).unwrap();
        engine.close();
        let events = events_in(tmp.path());
        assert_eq!(&events[..whole], &written[..whole], "cut at {cut}: records before the torn one changed");
        match &events[whole] {
            Event::TailTruncated(t) => {
                assert_eq!((t.offset, t.bytes), (torn_at as u64, torn_bytes(&torn, torn_at, cut)), "cut at {cut}");
            }
            other => panic!("cut at {cut}: expected TailTruncated, got {other:?}"),
        }
        assert_eq!(events[whole + 1], written[5], "cut at {cut}: the append after the cut");
        assert_eq!(events.len(), whole + 2, "cut at {cut}");
        // Cut, written where the data ends, and nothing after the new
        // records. (Not allocated ahead again: a log without proofs grows with
        // each append; `log_prealloc.rs` checks a log with a key.)
        let after = std::fs::read(&seg).unwrap();
        assert_eq!(after.len(), data_len(&after), "cut at {cut}: allocated ahead without proofs");
        assert_eq!(&after[..torn_at], &pristine[..torn_at], "cut at {cut}");
        assert_eq!(record_offsets(&after).len(), whole + 2, "cut at {cut}");
        assert!(zeros_from(&after, data_len(&after)), "cut at {cut}");
        let report = verify(tmp.path()).unwrap_or_else(|e| panic!("cut at {cut}: verify after: {e}"));
        assert!(report.torn_tail.is_none() && report.records == whole as u64 + 2, "cut at {cut}: {report:?}");
        cases += 1;
    }
    assert!(cases > 100, "only {cases} cuts");
}

#[test]
fn one_corrupt_byte_in_any_earlier_record_refuses_to_open_naming_file_offset_and_lsn() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 4, 1 << 20, 2);
    let name = segment_names(tmp.path())[0].clone();
    let seg = tmp.path().join(&name);
    let pristine = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&pristine);
    let last = *offsets.last().unwrap();
    // Every byte of every record but the last (whose damage is a torn tail).
    for at in SEGMENT_HEADER_BYTES..last {
        let mut bad = pristine.clone();
        bad[at] ^= 0x40;
        std::fs::write(&seg, &bad).unwrap();
        let rec_index = offsets.iter().rposition(|&o| o <= at).unwrap();
        let err = open_err(tmp.path());
        assert!(err.contains(&name), "byte {at}: error does not name the file: {err}");
        assert!(err.contains(&format!("byte {}", offsets[rec_index])), "byte {at}: no offset: {err}");
        assert!(err.contains(&format!("LSN {}", rec_index + 1)), "byte {at}: no LSN: {err}");
    }
    // Nothing was modified by the refused opens.
    std::fs::write(&seg, &pristine).unwrap();
    assert_eq!(events_in(tmp.path()).len(), 4);
}

#[test]
fn damage_in_a_sealed_segment_refuses_even_at_its_last_record() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 40, 2048, 3);
    let names = segment_names(tmp.path());
    assert!(names.len() >= 2, "expected a rotation, got {names:?}");
    let sealed = tmp.path().join(&names[0]);
    let mut bytes = std::fs::read(&sealed).unwrap();
    let last = *record_offsets(&bytes).last().unwrap();
    // Row 4: damaging the *last* record of a sealed segment is not a torn tail.
    let end = data_len(&bytes);
    bytes[end - 1] ^= 1;
    std::fs::write(&sealed, &bytes).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains(&names[0]) && err.contains(&format!("byte {last}")), "{err}");
    assert!(err.contains("sealed segment"), "{err}");
}

#[test]
fn a_cut_sealed_segment_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 40, 2048, 4);
    let names = segment_names(tmp.path());
    let sealed = tmp.path().join(&names[0]);
    let bytes = std::fs::read(&sealed).unwrap();
    let data = data_len(&bytes);
    std::fs::write(&sealed, &bytes[..data - 5]).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains(&names[0]) && err.contains("cut short"), "{err}");
    // The same 5 bytes zeroed in place, the file keeping its preallocated size:
    // the zeros do not make the cut record a clean end.
    let mut zeroed = bytes.clone();
    zeroed[data - 5..data].fill(0);
    std::fs::write(&sealed, &zeroed).unwrap();
    let err = open_err(tmp.path());
    let last = *record_offsets(&bytes).last().unwrap();
    assert!(err.contains(&names[0]) && err.contains(&format!("byte {last}")), "{err}");
    assert!(err.contains("sealed segment"), "{err}");
}

#[test]
fn bad_record_followed_by_a_valid_one_in_the_last_segment_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 6, 1 << 20, 5);
    let name = segment_names(tmp.path())[0].clone();
    let seg = tmp.path().join(&name);
    let mut bytes = std::fs::read(&seg).unwrap();
    let offsets = record_offsets(&bytes);
    bytes[offsets[2] + 20] ^= 0xff; // inside the third record's header
    std::fs::write(&seg, &bytes).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains("valid records follow"), "{err}");
    assert!(err.contains(&format!("byte {}", offsets[2])) && err.contains("LSN 3"), "{err}");
}

#[test]
fn missing_segment_in_the_middle_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 60, 2048, 6);
    let names = segment_names(tmp.path());
    assert!(names.len() >= 3);
    std::fs::remove_file(tmp.path().join(&names[1])).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains("segment missing") && err.contains(&names[2]), "{err}");
    // And the first one missing.
    let tmp2 = tempfile::tempdir().unwrap();
    write_log(tmp2.path(), 60, 2048, 6);
    std::fs::remove_file(tmp2.path().join(&segment_names(tmp2.path())[0])).unwrap();
    assert!(open_err(tmp2.path()).contains("expected a segment starting at LSN 1"));
}

#[test]
fn torn_segment_creation_is_removed_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path(), 3, 1 << 20, 7);
    let before = events_in(tmp.path());
    let next_lsn = before.len() as u64 + 1;
    // A crash after creating the next segment, mid-header.
    let next = format::segment_name(next_lsn);
    std::fs::write(tmp.path().join(&next), [0x4c, 0x53, 0x52]).unwrap();
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    engine.close();
    let events = events_in(tmp.path());
    assert_eq!(before, written);
    assert!(matches!(&events[before.len()], Event::TailTruncated(t)
        if t.bytes == 3 && t.offset == 0 && t.segment_first_lsn == next_lsn));
}

/// Row 13: a segment allocated ahead ends in zeros after its last record — in
/// the last segment and in sealed ones. That is its clean end: nothing is cut
/// or logged, and appends after a reopen go where the data ends.
#[test]
fn a_zero_filled_tail_is_the_segments_clean_end_and_appends_go_on_after_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path(), 3, 1 << 20, 8);
    allocate_ahead(tmp.path(), 1 << 20);
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let bytes = std::fs::read(&seg).unwrap();
    assert_eq!(bytes.len(), 1 << 20, "the segment was not allocated at its full size");
    let data = data_len(&bytes);
    assert!(zeros_from(&bytes, data));
    // Also a tail of zeros after a file system's own end of file (one that
    // would not preallocate, zeros left by a crash).
    for (case, file) in [
        ("preallocated", bytes.clone()),
        ("zeros appended", {
            let mut b = bytes[..data].to_vec();
            b.extend_from_slice(&[0u8; 4096]);
            b
        }),
    ] {
        std::fs::write(&seg, &file).unwrap();
        let report = lessor_engine::audit::verify(tmp.path(), Default::default()).unwrap();
        assert!(report.torn_tail.is_none(), "{case}: {report:?}");
        assert_eq!((report.records, report.bytes), (3, data as u64), "{case}");
        let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
        assert_eq!(engine.last_lsn(), 3, "{case}: something was cut or logged");
        engine.append_unchecked_blocking(vec![written[0].clone()]).unwrap();
        engine.close();
        let mut expected = written.clone();
        expected.push(written[0].clone());
        assert_eq!(events_in(tmp.path()), expected, "{case}");
        let after = std::fs::read(&seg).unwrap();
        assert_eq!(record_offsets(&after)[3], data, "{case}: the append did not go where the data ended");
        assert_eq!(after.len(), file.len(), "{case}: the append did not go over the zeros");
        std::fs::write(&seg, &bytes).unwrap();
    }
    // Sealed segments end in zeros too (a record that did not fit is in the
    // next one): the whole log reads and verifies.
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path(), 60, 2048, 8);
    allocate_ahead(tmp.path(), 2048);
    let names = segment_names(tmp.path());
    assert!(names.len() > 3);
    for name in &names[..names.len() - 1] {
        let bytes = std::fs::read(tmp.path().join(name)).unwrap();
        assert_eq!(bytes.len(), 2048, "{name} was not allocated at its full size");
    }
    assert_eq!(events_in(tmp.path()), written);
}

/// Rows 4-6 still judge what follows a run of zeros: garbage after it is a torn
/// tail cut where the zeros start (only in the last segment), a whole record
/// after it is damage.
#[test]
fn zeros_followed_by_anything_else_are_judged_by_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path(), 4, 1 << 20, 15);
    allocate_ahead(tmp.path(), 1 << 20);
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let pristine = std::fs::read(&seg).unwrap();
    let data = data_len(&pristine);
    let offsets = record_offsets(&pristine);
    // Garbage at the very end of the file, after megabytes of zeros: row 6,
    // cut where the data ends, the bytes up to the garbage counted.
    let mut garbage = pristine.clone();
    let end = garbage.len();
    garbage[end - 3..].copy_from_slice(b"\x01\x02\x03");
    std::fs::write(&seg, &garbage).unwrap();
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    engine.close();
    let events = events_in(tmp.path());
    assert_eq!(&events[..4], &written[..]);
    assert!(matches!(&events[4], Event::TailTruncated(t) if t.offset == data as u64 && t.bytes == (end - data) as u64));
    assert!(zeros_from(&std::fs::read(&seg).unwrap(), data_len(&std::fs::read(&seg).unwrap())));
    // A whole record of the log after zeros: row 5, damage.
    let mut record_after = pristine.clone();
    let first = offsets[1] - offsets[0];
    record_after[data + 1000..data + 1000 + first].copy_from_slice(&pristine[offsets[0]..offsets[1]]);
    std::fs::write(&seg, &record_after).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains("valid records follow") && err.contains(&format!("byte {data}")), "{err}");
}

/// Row 7 for a segment allocated ahead: its header never reached the disk, and
/// nothing but zeros follow (a crash between allocating the file and writing
/// the header, where the file already had its name): removed like a torn
/// creation. Anything after the zero header is not that: row 8.
#[test]
fn a_preallocated_segment_without_its_header_is_a_torn_creation() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path(), 3, 1 << 20, 16);
    let next_lsn = written.len() as u64 + 1;
    let next = tmp.path().join(format::segment_name(next_lsn));
    std::fs::write(&next, vec![0u8; 1 << 20]).unwrap();
    let report = lessor_engine::audit::verify(tmp.path(), Default::default()).unwrap();
    assert!(matches!(&report.torn_tail, Some(t) if t.offset == 0 && t.bytes == 0), "{report:?}");
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    engine.close();
    let events = events_in(tmp.path());
    assert_eq!(&events[..3], &written[..]);
    assert!(
        matches!(&events[3], Event::TailTruncated(t)
        if t.bytes == 0 && t.offset == 0 && t.segment_first_lsn == next_lsn),
        "{events:?}"
    );
    assert!(!next.exists(), "the torn creation is still there");

    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 3, 1 << 20, 16);
    let mut zero_header_then_data = vec![0u8; 1 << 20];
    zero_header_then_data[SEGMENT_HEADER_BYTES + 100] = 1;
    std::fs::write(tmp.path().join(format::segment_name(next_lsn)), zero_header_then_data).unwrap();
    assert!(open_err(tmp.path()).contains("bad segment header"));
}

/// Rewrites a segment's records with fresh crcs (but the old chain values), as a
/// careless forger would.
/// A record's fields: lsn, ts, kind, payload, stored chain.
type RawRecord = (u64, i64, u16, Vec<u8>, [u8; 32]);

fn rewrite_with_valid_crcs(records: &[RawRecord], header: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    for (lsn, ts, kind, payload, chain) in records {
        let start = out.len();
        format::encode_record(&mut out, &[0; 32], *lsn, *ts, *kind, payload);
        // Put the original chain back, then fix the crc over it.
        let end = out.len();
        out[end - 32..].copy_from_slice(chain);
        let crc = crc32fast::hash(&out[start + 12..end]);
        out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    }
    out
}

fn parse_records(bytes: &[u8]) -> Vec<RawRecord> {
    record_offsets(bytes)
        .into_iter()
        .map(|at| {
            let r = format::read_record(&bytes[at..]).unwrap();
            (r.lsn, r.ts_ms, r.kind, r.payload.to_vec(), r.chain)
        })
        .collect()
}

#[test]
fn reordered_or_deleted_records_are_caught_by_the_chain_even_with_valid_crcs() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 6, 1 << 20, 9);
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let pristine = std::fs::read(&seg).unwrap();
    let header = &pristine[..SEGMENT_HEADER_BYTES];
    let records = parse_records(&pristine);

    // Deleted: drop record 3 and renumber the LSNs after it, crcs all valid.
    let mut deleted = records.clone();
    deleted.remove(2);
    for (i, r) in deleted.iter_mut().enumerate() {
        r.0 = i as u64 + 1;
    }
    std::fs::write(&seg, rewrite_with_valid_crcs(&deleted, header)).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains("hash chain broken") && err.contains("LSN 3"), "deleted: {err}");

    // Reordered: swap records 2 and 3 (payloads and times), LSNs kept in order.
    let mut swapped = records.clone();
    let (a, b) = (swapped[1].clone(), swapped[2].clone());
    swapped[1] = (a.0, b.1, b.2, b.3.clone(), b.4);
    swapped[2] = (b.0, a.1, a.2, a.3.clone(), a.4);
    std::fs::write(&seg, rewrite_with_valid_crcs(&swapped, header)).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains("hash chain broken") && err.contains("LSN 2"), "reordered: {err}");

    // Edited payload, crc recomputed.
    let mut edited = records.clone();
    let last = edited[3].3.len() - 1;
    edited[3].3[last] ^= 1;
    std::fs::write(&seg, rewrite_with_valid_crcs(&edited, header)).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains("hash chain broken") && err.contains("LSN 4"), "edited: {err}");

    // Control: the untouched records rewritten the same way still open.
    std::fs::write(&seg, rewrite_with_valid_crcs(&records, header)).unwrap();
    assert_eq!(events_in(tmp.path()).len(), 6);
}

#[test]
fn reordered_segments_refuse() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 60, 2048, 10);
    let names = segment_names(tmp.path());
    let (a, b) = (tmp.path().join(&names[1]), tmp.path().join(&names[2]));
    let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    std::fs::write(&a, bb).unwrap();
    std::fs::write(&b, ba).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains(&names[1]) && err.contains("file name says"), "{err}");
}

#[test]
fn chain_carries_across_segments_and_rotation_happens_at_the_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let written = write_log(tmp.path(), 80, 4096, 11);
    let names = segment_names(tmp.path());
    assert!(names.len() > 2);
    for name in &names[..names.len() - 1] {
        let len = std::fs::metadata(tmp.path().join(name)).unwrap().len();
        assert!(len <= 4096, "{name} is {len} bytes, over the limit");
    }
    let mut prev_last_chain = [0u8; 32];
    for name in &names {
        let bytes = std::fs::read(tmp.path().join(name)).unwrap();
        let header = format::SegmentHeader::decode(&bytes).unwrap();
        assert_eq!(header.prev_chain, prev_last_chain, "{name} does not carry the chain");
        prev_last_chain = parse_records(&bytes).last().unwrap().4;
    }
    assert_eq!(events_in(tmp.path()), written);
}

#[test]
fn a_bad_header_that_is_not_a_torn_creation_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    write_log(tmp.path(), 3, 1 << 20, 12);
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[10] ^= 1; // first_lsn in the header
    std::fs::write(&seg, &bytes).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains("bad segment header") && err.contains("byte 0"), "{err}");
}

#[test]
fn every_sample_event_survives_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    // Not the sample EngineInitialized: as the log's first record its public key
    // (not this engine's) would make the writer's batch proof fail to verify.
    let all: Vec<Event> =
        EventKind::ALL.iter().filter(|&&k| k != EventKind::EngineInitialized).map(|&k| sample(k)).collect();
    engine.append_unchecked_blocking(all.clone()).unwrap();
    let digest = engine.digest();
    engine.close();
    // Without a master key the writer adds no proof of its own.
    assert_eq!(events_in(tmp.path()), all);
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    assert_eq!(engine.digest(), digest);
    assert_eq!(engine.last_lsn(), all.len() as u64);
}

#[test]
fn snapshot_beyond_the_log_end_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    let mut rng = SplitMix64(13);
    for _ in 0..10 {
        engine.append_unchecked_blocking(vec![generated_event(&mut rng, 10)]).unwrap();
    }
    engine.snapshot().unwrap().unwrap();
    engine.close();
    // Lose the last 3 records from the log (not a torn tail: whole records gone).
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let bytes = std::fs::read(&seg).unwrap();
    let cut = record_offsets(&bytes)[7];
    std::fs::write(&seg, &bytes[..cut]).unwrap();
    match Engine::open(tmp.path(), options(1 << 20)) {
        Err(e @ OpenError::SnapshotBeyondLog { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("LSN 10") && msg.contains("LSN 7"), "{msg}");
        }
        other => panic!("expected SnapshotBeyondLog, got {other:?}"),
    }
}

#[test]
fn record_overhead_is_what_the_format_says() {
    let mut out = Vec::new();
    format::encode_record(&mut out, &[0; 32], 1, 0, 1, &[0; 10]);
    assert_eq!(out.len(), RECORD_OVERHEAD_BYTES + 10);
}

/// Row 3 at open, with a snapshot: records the snapshot covers are not re-hashed
/// (their edit goes unnoticed by open, which starts from the snapshot, but
/// `audit verify` names it); an edit after the snapshot still refuses the open,
/// and so does the same edit once the snapshot is gone.
#[test]
fn open_trusts_the_chain_the_snapshot_covers_and_audit_verify_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    let mut rng = SplitMix64(17);
    // No checkpoint among them: this keyless log has no key to check one with,
    // and verify would stop there instead of at the edited record.
    let mut event = || {
        std::iter::repeat_with(|| generated_event(&mut rng, 20)).find(|e| !matches!(e, Event::Checkpoint(_))).unwrap()
    };
    for _ in 0..6 {
        engine.append_unchecked_blocking(vec![event()]).unwrap();
    }
    engine.snapshot().unwrap().expect("a snapshot at LSN 6");
    for _ in 0..2 {
        engine.append_unchecked_blocking(vec![event()]).unwrap();
    }
    let digest = engine.digest();
    engine.close();
    let seg = tmp.path().join(&segment_names(tmp.path())[0]);
    let pristine = std::fs::read(&seg).unwrap();
    let header = &pristine[..SEGMENT_HEADER_BYTES];
    let records = parse_records(&pristine);
    let verify = |dir: &Path| {
        let options = lessor_engine::audit::VerifyOptions::default();
        lessor_engine::audit::verify(dir, options).map(|_| ()).map_err(|e| e.to_string())
    };

    // Before the snapshot (LSN 3): open starts from the snapshot, same state.
    let mut edited = records.clone();
    let last = edited[2].3.len() - 1;
    edited[2].3[last] ^= 1;
    std::fs::write(&seg, rewrite_with_valid_crcs(&edited, header)).unwrap();
    let reopened = Engine::open(tmp.path(), options(1 << 20)).expect("the snapshot's records are trusted");
    assert_eq!(reopened.digest(), digest);
    reopened.close();
    let err = verify(tmp.path()).unwrap_err();
    assert!(err.contains("LSN 3") && err.contains(&segment_names(tmp.path())[0]), "audit verify names it: {err}");

    // After the snapshot (LSN 7): refused, naming the record.
    let mut edited = records.clone();
    let last = edited[6].3.len() - 1;
    edited[6].3[last] ^= 1;
    std::fs::write(&seg, rewrite_with_valid_crcs(&edited, header)).unwrap();
    let err = open_err(tmp.path());
    assert!(err.contains("hash chain broken") && err.contains("LSN 7"), "{err}");

    // The first edit again, without the snapshot: the whole chain is checked.
    let mut edited = records.clone();
    let last = edited[2].3.len() - 1;
    edited[2].3[last] ^= 1;
    std::fs::write(&seg, rewrite_with_valid_crcs(&edited, header)).unwrap();
    for entry in std::fs::read_dir(tmp.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap().to_string_lossy().starts_with("snap-") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let err = open_err(tmp.path());
    assert!(err.contains("hash chain broken") && err.contains("LSN 3"), "{err}");
}

/// A snapshot written by a build with another state layout is a stale cache: it
/// is skipped and the state is replayed from the log, with the same result.
#[test]
fn a_snapshot_of_another_version_is_skipped_and_the_log_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = Engine::open(tmp.path(), options(1 << 20)).unwrap();
    let mut rng = SplitMix64(23);
    for _ in 0..8 {
        engine.append_unchecked_blocking(vec![generated_event(&mut rng, 20)]).unwrap();
    }
    let snapshot = engine.snapshot().unwrap().expect("a snapshot");
    let digest = engine.digest();
    engine.close();
    let path = tmp.path().join(&snapshot);
    let mut bytes = std::fs::read(&path).unwrap();
    let old = lessor_engine::log::snapshot::SNAPSHOT_VERSION - 1;
    bytes[4..6].copy_from_slice(&old.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let reopened = Engine::open(tmp.path(), options(1 << 20)).expect("an old snapshot never blocks the open");
    assert_eq!(reopened.digest(), digest);
}
