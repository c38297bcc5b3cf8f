//! Reading a log back: every segment, every record, checked against its crc, its
//! LSN and the hash chain, with one documented decision for every kind of damage.
//!
//! # Recovery decision table
//!
//! | # | where          | what the scan finds                                              | decision |
//! |---|----------------|------------------------------------------------------------------|----------|
//! | 1 | any segment    | valid crc, LSN = expected, chain = recomputed                     | accept |
//! | 2 | any segment    | valid crc, LSN ≠ expected                                         | refuse: [`ScanError::Corrupt`] |
//! | 3 | any segment    | valid crc, chain ≠ recomputed (edit, deletion, reorder)           | refuse: [`ScanError::Corrupt`] |
//! | 4 | sealed segment | bad record (cut short, bad magic, len over limit, bad crc)        | refuse: [`ScanError::Corrupt`] |
//! | 5 | last segment   | bad record, and a valid record at some later offset               | refuse: [`ScanError::Corrupt`] |
//! | 6 | last segment   | bad record, and nothing valid after it                           | torn tail: truncate there, log `TailTruncated { bytes }` |
//! | 7 | last segment   | header cut short or all zero, nothing past the header's size      | torn creation: remove the file, log `TailTruncated` |
//! | 8 | any segment    | any other bad header, or header LSN ≠ file name                   | refuse: [`ScanError::Corrupt`] |
//! | 9 | segment list   | first LSN ≠ 1, or a segment does not start where the last ended   | refuse: [`ScanError::MissingSegment`] |
//! |10 | segment list   | a header's carried chain ≠ the previous segment's last chain      | refuse: [`ScanError::Corrupt`] |
//! |11 | last segment   | format 2, a public key: whole records after the newest proof       | unproven tail: cut there, log `TailTruncated` |
//! |12 | last segment   | the newest proof, or the newest signature, does not verify        | refuse: [`ScanError::Corrupt`] |
//!
//! Rows 11 and 12 are the batch proofs of [`super::proof`]: a proof is a
//! `BatchSigned` (checked with the log's public key) or a `BatchMac` (checked
//! only when the scan holds the master key's [`proof::MacCheck`]; a keyless
//! scan takes the records a MAC covers as they are).
//!
//! Row 3 at open: the engine's open trusts the chain of the records a valid
//! snapshot already covers ([`scan_trusting`]): those records are crc- and
//! LSN-checked (rows 1, 2, 4–10) but not re-hashed, and the record at the
//! snapshot's LSN must carry the chain the snapshot recorded. The state comes from
//! the snapshot, so nothing read is trusted that was not verified when the snapshot
//! was taken; proving that no record *before* it was rewritten is `audit verify`'s
//! job, which walks the whole chain. (Re-hashing a million leases' records was the
//! largest avoidable cost of a restart.)
//!
//! Nothing is ever dropped silently: the only repairs (rows 6, 7 and 11) remove bytes
//! that no acknowledged append could own — an append is acknowledged only after its
//! whole batch is fsync'd, and a batch is written after every earlier batch — and it
//! is recorded in the log itself. [`classify`] is the table in code; tests walk it
//! row by row.

use crate::event::{Event, Lsn};
use crate::log::format::{
    self, Chain, GENESIS_CHAIN, HeaderProblem, RecordProblem, RecordView, SEGMENT_HEADER_BYTES, SegmentHeader,
};
use crate::log::proof;
use crate::log::storage::{MemStorage, Storage};

/// A segment as the scan found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub name: String,
    /// The header's format version.
    pub version: u16,
    pub first_lsn: Lsn,
    /// Bytes of valid data (header + whole records).
    pub valid_bytes: u64,
}

/// A torn tail found at the end of the last segment (rows 6 and 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub segment: String,
    pub segment_first_lsn: Lsn,
    /// Where the valid data ends; the file is cut to this length.
    pub offset: u64,
    /// Bytes past `offset`.
    pub bytes: u64,
    /// Row 7: the segment holds no valid header and is removed entirely.
    pub remove_segment: bool,
    /// Row 11: whole records that no batch proof covers (see [`super::proof`]).
    pub unproven: bool,
}

/// What a successful scan learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanSummary {
    /// Segments in LSN order; a segment removed by row 7 is not listed.
    pub segments: Vec<SegmentInfo>,
    pub next_lsn: Lsn,
    pub last_chain: Chain,
    pub last_ts_ms: i64,
    pub records: u64,
    pub torn_tail: Option<TornTail>,
    /// The checkpoint public key in the log's first record (`EngineInitialized`):
    /// batch proofs are checked against it.
    pub public_key: Option<[u8; 32]>,
    /// The newest segment's newest proof is a batch MAC: records after the
    /// newest signature wait for one (the writer signs them when idle).
    pub unsigned: bool,
}

/// Where a scan stopped. Messages name the file, byte offset and LSN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "log corrupt in {file} at byte {offset} (expected LSN {lsn}): {what}; refusing to open — restore the file from a copy, or run `lessor audit verify` to inspect"
    )]
    Corrupt { file: String, offset: u64, lsn: Lsn, what: String },
    #[error(
        "log segment missing: expected a segment starting at LSN {expected_lsn}, found {found}; restore the missing segment"
    )]
    MissingSegment { expected_lsn: Lsn, found: String },
    /// The visitor refused a record (e.g. it could not be decoded).
    #[error("{file} at byte {offset} (LSN {lsn}): {what}")]
    Rejected { file: String, offset: u64, lsn: Lsn, what: String },
}

/// Location of a record, handed to the visitor with the record.
#[derive(Clone, Copy, Debug)]
pub struct Located<'a> {
    pub file: &'a str,
    pub offset: u64,
}

/// A damaged-record verdict from [`classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Row 6: cut the tail.
    TruncateTail,
    /// Rows 4 and 5.
    Refuse,
}

/// Rows 4–6: what to do with a bad record, given where it is and whether any valid
/// record follows it.
pub fn classify(in_last_segment: bool, valid_record_follows: bool) -> Decision {
    if in_last_segment && !valid_record_follows { Decision::TruncateTail } else { Decision::Refuse }
}

/// Segment files in the storage, sorted by first LSN.
pub fn list_segments(storage: &dyn Storage) -> Result<Vec<(Lsn, String)>, ScanError> {
    let names = storage.list().map_err(|source| ScanError::Io { file: "data directory".into(), source })?;
    let mut segs: Vec<(Lsn, String)> =
        names.into_iter().filter_map(|n| format::parse_segment_name(&n).map(|lsn| (lsn, n))).collect();
    segs.sort();
    Ok(segs)
}

/// Walks every record of every segment in order, applying the decision table, and
/// calls `visit` for each accepted record. Never modifies storage: the caller acts on
/// [`ScanSummary::torn_tail`].
pub fn scan(
    storage: &dyn Storage,
    visit: &mut dyn FnMut(Located<'_>, &RecordView<'_>) -> Result<(), String>,
) -> Result<ScanSummary, ScanError> {
    scan_trusting(storage, 0, None, visit)
}

/// [`scan`], taking the stored chain of records up to `chain_trusted_through` as
/// given instead of recomputing it (see row 3's note above); every other check
/// still runs on every record. `0` trusts nothing. With `mac_check` (the master
/// key's), a newest proof that is a batch MAC is checked too (row 12); without,
/// the records a MAC covers are accepted unchecked (read-only use).
pub fn scan_trusting(
    storage: &dyn Storage,
    chain_trusted_through: Lsn,
    mac_check: Option<proof::MacCheck<'_>>,
    visit: &mut dyn FnMut(Located<'_>, &RecordView<'_>) -> Result<(), String>,
) -> Result<ScanSummary, ScanError> {
    let segs = list_segments(storage)?;
    let mut summary = ScanSummary {
        segments: Vec::with_capacity(segs.len()),
        next_lsn: 1,
        last_chain: GENESIS_CHAIN,
        last_ts_ms: i64::MIN,
        records: 0,
        torn_tail: None,
        public_key: None,
        unsigned: false,
    };
    let mut bytes = Vec::new();
    for (i, (name_lsn, name)) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        storage.read_into(name, &mut bytes).map_err(|source| ScanError::Io { file: name.clone(), source })?;
        let corrupt = |offset: usize, lsn: Lsn, what: String| ScanError::Corrupt {
            file: name.clone(),
            offset: offset as u64,
            lsn,
            what,
        };

        let header = match SegmentHeader::decode(&bytes) {
            Ok(h) => h,
            Err(problem) => {
                let torn_creation = last
                    && bytes.len() <= SEGMENT_HEADER_BYTES
                    && (problem == HeaderProblem::Short || bytes.iter().all(|&b| b == 0));
                if torn_creation {
                    // Row 7.
                    if *name_lsn != summary.next_lsn {
                        return Err(ScanError::MissingSegment { expected_lsn: summary.next_lsn, found: name.clone() });
                    }
                    summary.torn_tail = Some(TornTail {
                        segment: name.clone(),
                        segment_first_lsn: *name_lsn,
                        offset: 0,
                        bytes: bytes.len() as u64,
                        remove_segment: true,
                        unproven: false,
                    });
                    break;
                }
                // Row 8.
                return Err(corrupt(0, summary.next_lsn, format!("bad segment header: {problem:?}")));
            }
        };
        if header.first_lsn != *name_lsn {
            return Err(corrupt(
                0,
                summary.next_lsn,
                format!("header says first LSN {} but the file name says {name_lsn}", header.first_lsn),
            ));
        }
        if header.first_lsn != summary.next_lsn {
            // Row 9.
            return Err(ScanError::MissingSegment { expected_lsn: summary.next_lsn, found: name.clone() });
        }
        if header.prev_chain != summary.last_chain {
            // Row 10.
            return Err(corrupt(
                0,
                summary.next_lsn,
                "segment header does not carry the previous segment's chain".into(),
            ));
        }

        // Row 11: in the newest segment, only what the newest proof covers counts.
        // (Damage followed by valid records is left to rows 4-6, which refuse.)
        let proofs = (last && header.version >= 2)
            .then(|| proof::last_proof_end(&bytes, SEGMENT_HEADER_BYTES))
            .filter(|scan| scan.first_bad.is_none_or(|bad| !valid_record_after(&bytes, bad)));
        summary.unsigned = proofs.is_some_and(|scan| scan.proof_end.is_some() && scan.proof_end != scan.signature_end);
        let records = Records {
            name,
            bytes: &bytes,
            segment_first_lsn: header.first_lsn,
            last,
            proven_end: proofs.map(|scan| scan.proof_end.unwrap_or(SEGMENT_HEADER_BYTES)),
            signature_end: proofs.and_then(|scan| scan.signature_end),
            mac_check,
        };
        scan_records(&records, chain_trusted_through, &mut summary, visit)?;
        let valid_bytes = summary.torn_tail.as_ref().map_or(bytes.len() as u64, |t| t.offset);
        summary.segments.push(SegmentInfo {
            name: name.clone(),
            version: header.version,
            first_lsn: header.first_lsn,
            valid_bytes,
        });
    }
    Ok(summary)
}

/// One segment's bytes as [`scan_records`] walks them.
struct Records<'a> {
    name: &'a str,
    bytes: &'a [u8],
    segment_first_lsn: Lsn,
    last: bool,
    /// Row 11: where the newest batch proof ends, for the newest segment of a
    /// log with proofs.
    proven_end: Option<usize>,
    /// Row 12: where the newest signature ends, in the same segment.
    signature_end: Option<usize>,
    mac_check: Option<proof::MacCheck<'a>>,
}

impl Records<'_> {
    /// The cut that removes everything from `offset` on (rows 6 and 11).
    fn tail_from(&self, offset: usize, unproven: bool) -> TornTail {
        TornTail {
            segment: self.name.to_string(),
            segment_first_lsn: self.segment_first_lsn,
            offset: offset as u64,
            bytes: (self.bytes.len() - offset) as u64,
            remove_segment: false,
            unproven,
        }
    }
}

/// Rows 1–6 and 11–12 for the records of one segment, in one pass (crc, LSN,
/// chain, proof and the visitor while the record is in cache): advances
/// `summary` over every valid record and calls `visit` for each.
fn scan_records(
    records: &Records<'_>,
    chain_trusted_through: Lsn,
    summary: &mut ScanSummary,
    visit: &mut dyn FnMut(Located<'_>, &RecordView<'_>) -> Result<(), String>,
) -> Result<(), ScanError> {
    let &Records { name, bytes, last, proven_end, signature_end, mac_check, .. } = records;
    let corrupt = |offset: usize, lsn: Lsn, what: String| ScanError::Corrupt {
        file: name.to_string(),
        offset: offset as u64,
        lsn,
        what,
    };
    let mut offset = SEGMENT_HEADER_BYTES;
    while offset < bytes.len() {
        if let Some(end) = proven_end
            && offset >= end
            && summary.public_key.is_some()
        {
            // Row 11: never applied; cut like a torn tail (and logged).
            summary.torn_tail = Some(records.tail_from(offset, true));
            return Ok(());
        }
        match format::read_record(&bytes[offset..]) {
            Ok(rec) => {
                if rec.lsn != summary.next_lsn {
                    // Row 2.
                    return Err(corrupt(offset, summary.next_lsn, format!("record has LSN {} out of order", rec.lsn)));
                }
                let verify_chain = rec.lsn > chain_trusted_through;
                if verify_chain
                    && format::chain_next(&summary.last_chain, rec.lsn, rec.ts_ms, rec.kind, rec.payload) != rec.chain
                {
                    // Row 3.
                    return Err(corrupt(
                        offset,
                        rec.lsn,
                        "hash chain broken: a record was edited, removed or reordered".into(),
                    ));
                }
                if rec.lsn == 1 {
                    summary.public_key = proof::public_key_of_first(&rec);
                }
                let end = Some(offset + rec.size);
                if let Some(key) = &summary.public_key
                    && (end == proven_end || end == signature_end)
                {
                    // Row 12: the newest proof covers every record before it; the
                    // newest signature is checked too, so a forger cannot hide
                    // behind a MAC a keyless reader takes on trust.
                    let covered = (rec.lsn - 1, &summary.last_chain);
                    let valid = match (proof::signature_of(&rec), proof::mac_of(&rec)) {
                        (Some(signature), _) => proof::verify(key, covered.0, covered.1, &signature),
                        (None, Some(mac)) => {
                            mac_check.is_none_or(|check| check(&proof::mac_message(covered.0, covered.1), &mac))
                        }
                        (None, None) => false,
                    };
                    if !valid {
                        return Err(corrupt(
                            offset,
                            rec.lsn,
                            "the batch proof does not verify under the log's key: records were written \
                             without the master key"
                                .into(),
                        ));
                    }
                }
                visit(Located { file: name, offset: offset as u64 }, &rec).map_err(|what| ScanError::Rejected {
                    file: name.to_string(),
                    offset: offset as u64,
                    lsn: rec.lsn,
                    what,
                })?;
                summary.last_chain = rec.chain;
                summary.last_ts_ms = rec.ts_ms;
                summary.next_lsn += 1;
                summary.records += 1;
                offset += rec.size;
            }
            Err(problem) => {
                let follows = valid_record_after(bytes, offset);
                return match classify(last, follows) {
                    Decision::Refuse => Err(corrupt(offset, summary.next_lsn, bad_record_what(problem, last, follows))),
                    Decision::TruncateTail => {
                        summary.torn_tail = Some(records.tail_from(offset, false));
                        Ok(())
                    }
                };
            }
        }
    }
    Ok(())
}

fn bad_record_what(problem: RecordProblem, last: bool, follows: bool) -> String {
    let place = match (last, follows) {
        (true, true) => "; valid records follow it, so this is damage, not a torn write",
        _ => " in a sealed segment",
    };
    format!("{}{place}", problem.describe())
}

/// Row 5 vs 6: is there any valid record at any offset after `from`?
fn valid_record_after(bytes: &[u8], from: usize) -> bool {
    let magic = format::RECORD_MAGIC.to_le_bytes();
    (from + 1..bytes.len().saturating_sub(3))
        .any(|at| bytes[at..at + 4] == magic && format::read_record(&bytes[at..]).is_ok())
}

/// The public key named by the log's first record (`EngineInitialized`), read
/// from the start of the first segment alone; `None` if there is none.
pub fn first_public_key(storage: &dyn Storage) -> Option<[u8; 32]> {
    use std::io::Read;
    let (_, first) = list_segments(storage).ok()?.into_iter().next()?;
    let mut bytes = Vec::new();
    let limit = (SEGMENT_HEADER_BYTES + format::RECORD_OVERHEAD_BYTES + format::RECORD_PAYLOAD_BYTES_MAX) as u64;
    storage.open_read(&first).ok()?.take(limit).read_to_end(&mut bytes).ok()?;
    SegmentHeader::decode(&bytes).ok()?;
    let rec = format::read_record(bytes.get(SEGMENT_HEADER_BYTES..)?).ok()?;
    proof::public_key_of_first(&rec)
}

/// Fuzzing entry point: `bytes` as the only segment of a log; recovery and event
/// decoding must return `Ok` or a clean error, never panic.
pub fn fuzz_recover(bytes: &[u8]) -> Result<(), String> {
    let storage = MemStorage::default();
    storage.put(&format::segment_name(1), bytes.to_vec());
    scan(&storage, &mut |_, rec| Event::decode(rec.kind, rec.payload).map(|_| ()).map_err(|e| e.to_string()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}
