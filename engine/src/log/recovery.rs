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
//! | 5 | last segment   | bad record, and a valid record at some later offset (not row 14)  | refuse: [`ScanError::Corrupt`] |
//! | 6 | last segment   | bad record, and nothing valid after it                           | torn tail: truncate there, log `TailTruncated { bytes }` |
//! | 7 | last segment   | header cut short or all zero, nothing but zeros past it           | torn creation: remove the file, log `TailTruncated` |
//! | 8 | any segment    | any other bad header, or header LSN ≠ file name                   | refuse: [`ScanError::Corrupt`] |
//! | 9 | segment list   | first LSN ≠ 1, or a segment does not start where the last ended   | refuse: [`ScanError::MissingSegment`] |
//! |10 | segment list   | a header's carried chain ≠ the previous segment's last chain      | refuse: [`ScanError::Corrupt`] |
//! |11 | newest segments| format 2, a public key: whole records after the log's newest proof | unproven tail: cut there (later segments removed), log `TailTruncated` |
//! |12 | last segment   | the newest proof, or the newest signature, does not verify        | refuse: [`ScanError::Corrupt`] |
//! |13 | any segment    | only zero bytes from a record boundary to the end of the file     | the segment's clean end: accept (nothing cut, nothing logged) |
//! |14 | last segment   | format 2, a public key: bad record, and after it only what can be the rest of one unfinished batch (LSNs past its own, rising; at most one proof, and nothing valid after it) | torn tail: cut there (row 11 cuts back to the newest proof), log `TailTruncated` |
//!
//! Row 13 is the unused end of a segment: every segment file is allocated at its
//! full size before a record goes into it (`log/spare.rs`), so a segment — the
//! last one, and a sealed one a record that did not fit left short — ends in
//! zeros after its last record; its data ends where the zeros start
//! ([`SegmentInfo::valid_bytes`]), and the writer goes on writing there. It
//! takes zeros *to the end of the file*: a run of zeros followed by anything
//! else (garbage, a torn record, a whole record) is a bad record where the run
//! starts, for rows 4–6 to judge as any other (no record can start inside the
//! run: its first byte is never zero). Row 7 likewise takes a header of zeros
//! only with nothing but zeros after it. A torn tail's `bytes` (rows 6, 7, 11)
//! count up to the last byte that is not zero, so a log reports the same
//! whether or not its segments were preallocated; the cut truncates the file
//! there, and the writer allocates the rest again.
//!
//! Row 14 is a crash during the `fdatasync` of a batch written into a segment
//! allocated ahead: an overwrite has no file size to order the data behind,
//! so a later page of the batch may reach the disk and an earlier one not,
//! leaving a hole (zeros, or a record cut off by it) with some of the batch's
//! records after it. The batch was not acknowledged, and every batch before it
//! was durable before it was written, so only its records can follow the
//! hole: LSNs past the ones the hole took, rising, and at most one proof, its
//! own, which ends it. A proof followed by another record means a later batch
//! was written after this one was synced — damage (row 5). Batch boundaries
//! are known only from proofs, so a log without a key keeps row 5, and its
//! segments are not allocated ahead (`log/spare.rs`). A damaged *last*
//! acknowledged batch with nothing after it looks the same and is cut, as row
//! 6 cuts a damaged last record: both are logged (`TailTruncated`).
//!
//! Rows 11 and 12 are the batch proofs of [`super::proof`]: a proof is a
//! `BatchSigned` (checked with the log's public key) or a `BatchMac` (checked
//! only when the scan holds the master key's [`proof::MacCheck`]; a keyless
//! scan takes the records a MAC covers as they are).
//!
//! Row 11 looks past the last segment: a batch may seal a segment half-way (its
//! first records end the old segment, its proof starts the new one), so a crash
//! between the seal and the rest of the batch leaves unproven records at the end
//! of a *sealed* segment and a new segment with none (or only unproven ones).
//! The same shape is what someone without the key gets by appending records and
//! then starting a segment that chains on to them. So the unproven tail starts
//! after the newest proof in the whole log, wherever it is; when that is in an
//! earlier segment, the cut removes every later segment (newest first, then the
//! directory is synced) before truncating that one — a crash half-way leaves a
//! log whose last segment ends in the same unproven tail, which the next open
//! cuts again.
//!
//! Row 3 at open: the engine's open trusts the chain of the records a valid
//! snapshot already covers ([`Scan::new`]'s `chain_trusted_through`): those records are crc- and
//! LSN-checked (rows 1, 2, 4–10) but not re-hashed, and the record at the
//! snapshot's LSN must carry the chain the snapshot recorded. The state comes from
//! the snapshot, so nothing read is trusted that was not verified when the snapshot
//! was taken; proving that no record *before* it was rewritten is `audit verify`'s
//! job, which walks the whole chain. (Re-hashing a million leases' records was the
//! largest avoidable cost of a restart.)
//!
//! Nothing is ever dropped silently: the only repairs (rows 6, 7, 11 and 14) remove bytes
//! that no acknowledged append could own — an append is acknowledged only after its
//! whole batch is fsync'd, and a batch is written after every earlier batch — and it
//! is recorded in the log itself. [`classify`] is the table in code; tests walk it
//! row by row.
//!
//! # One reader
//! Rows 1–10, 13 and 14 are applied by the log's one streaming reader
//! (`LogReader`, `log/reader.rs`), which `audit verify` and the other audit
//! queries read through as well, so an auditor and an opening engine judge
//! every byte alike; this module adds rows 11 and 12 on top ([`Scan`]) and words
//! the errors. The reader holds a bounded window, not a segment: rows 5 and 6
//! look past a bad record by streaming on, and a cut's offset and length are
//! counted as the bytes go by. Rows 11 and 12 must know where the newest
//! segment's newest proof ends before its first record is handed on, so that
//! segment is streamed twice: once for its proofs (crcs only), once to read it.
//! The zeros it ends in (row 13) are read once: the first pass checks them to
//! the end of the file, and the second stops where they start.

use std::ops::ControlFlow;

use crate::event::Lsn;
use crate::log::format::{self, Chain, GENESIS_CHAIN, RecordProblem, RecordView, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::log::proof;
use crate::log::reader::{After, Damage, LogReader, SegmentStream, Start, Step};
use crate::log::storage::Storage;

/// A segment as the scan found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub name: String,
    /// The header's format version.
    pub(crate) version: u16,
    pub first_lsn: Lsn,
    /// Bytes of valid data (header + whole records; not the zeros after them
    /// in a segment allocated ahead, row 13).
    pub valid_bytes: u64,
}

/// A torn tail found at the end of the log (rows 6, 7, 11 and 14).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    pub(crate) segment: String,
    pub(crate) segment_first_lsn: Lsn,
    /// Where the valid data ends; the file is cut to this length.
    pub(crate) offset: u64,
    /// Bytes past `offset`, in this segment and in `later_segments`.
    pub(crate) bytes: u64,
    /// Row 7: the segment holds no valid header and is removed entirely.
    pub(crate) remove_segment: bool,
    /// Row 11: whole records that no batch proof covers (see [`super::proof`]).
    pub(crate) unproven: bool,
    /// Row 11 across a seal: the segments after `segment`, oldest first, removed
    /// whole (before `segment` is cut, newest first).
    pub(crate) later_segments: Vec<String>,
}

/// What a successful scan learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanSummary {
    /// Segments in LSN order; a segment removed by row 7 is not listed.
    pub segments: Vec<SegmentInfo>,
    pub next_lsn: Lsn,
    pub last_chain: Chain,
    pub(crate) last_ts_ms: i64,
    pub records: u64,
    pub torn_tail: Option<TornTail>,
    /// The checkpoint public key in the log's first record (`EngineInitialized`):
    /// batch proofs are checked against it.
    pub(crate) public_key: Option<[u8; 32]>,
    /// The newest segment's newest proof is a batch MAC: records after the
    /// newest signature wait for one (the writer signs them when idle).
    pub(crate) unsigned: bool,
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
    pub(crate) file: &'a str,
    pub(crate) offset: u64,
}

/// A damaged-record verdict from [`classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Row 6: cut the tail.
    TruncateTail,
    /// Rows 4 and 5.
    Refuse,
}

/// Rows 4–6 (and 14): what to do with a bad record, given where it is and
/// whether any valid record follows it (records of one unfinished batch, row
/// 14, do not count).
pub(crate) fn classify(in_last_segment: bool, valid_record_follows: bool) -> Decision {
    if in_last_segment && !valid_record_follows { Decision::TruncateTail } else { Decision::Refuse }
}

/// Segment files in the storage, sorted by first LSN.
pub(crate) fn list_segments<S: Storage + ?Sized>(storage: &S) -> Result<Vec<(Lsn, String)>, ScanError> {
    let names = storage.list().map_err(|source| ScanError::Io { file: "data directory".into(), source })?;
    let mut segs: Vec<(Lsn, String)> =
        names.into_iter().filter_map(|n| format::parse_segment_name(&n).map(|lsn| (lsn, n))).collect();
    segs.sort();
    Ok(segs)
}

/// Walks every record of every segment in order, applying the decision table, and
/// calls `visit` for each accepted record. Never modifies storage: the caller acts on
/// [`ScanSummary::torn_tail`]. (The engine's open and the audit drive a [`Scan`]
/// through the fold; tests, `read_entries` and the fuzzer use this.)
#[cfg(any(test, feature = "testing"))]
pub(crate) fn scan(
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
#[cfg(any(test, feature = "testing"))]
pub(crate) fn scan_trusting(
    storage: &dyn Storage,
    chain_trusted_through: Lsn,
    mac_check: Option<proof::MacCheck<'_>>,
    visit: &mut dyn FnMut(Located<'_>, &RecordView<'_>) -> Result<(), String>,
) -> Result<ScanSummary, ScanError> {
    let mut scan = Scan::new(storage, chain_trusted_through, mac_check)?;
    let mut rejected = None;
    scan.each(|_, at, rec| match visit(at, rec) {
        Ok(()) => ControlFlow::Continue(()),
        Err(what) => {
            rejected = Some(ScanError::Rejected { file: at.file.to_string(), offset: at.offset, lsn: rec.lsn, what });
            ControlFlow::Break(())
        }
    })?;
    match rejected {
        Some(error) => Err(error),
        None => Ok(scan.into_summary()),
    }
}

/// The scan: the log's `LogReader` (rows 1–10, 13, 14) with the batch-proof rows (11,
/// 12) on top, handing on the records it accepts and summing up what it passes.
/// The engine's open and the audit fold from it; `scan_trusting` (tests)
/// visits it.
pub(crate) struct Scan<'a> {
    reader: LogReader<&'a dyn Storage>,
    mac_check: Option<proof::MacCheck<'a>>,
    summary: ScanSummary,
    /// The segment being read, as the summary will list it.
    segment: Option<SegmentInfo>,
    /// Rows 11 and 12: where the newest proof is, found before the first record
    /// is handed on (`None` inside: nothing to check, e.g. a log without proofs).
    newest: Option<Option<Proofs>>,
    /// `newest`, while the reader is in its segment.
    proofs: Option<Proofs>,
    finished: bool,
}

impl std::fmt::Debug for Scan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("reader", &self.reader)
            .field("checks_macs", &self.mac_check.is_some())
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// Where the log's newest proof is (rows 11 and 12).
#[derive(Clone, Copy, Debug)]
struct Proofs {
    /// The segment that holds it (or, with none, the first segment that could).
    segment: usize,
    /// Row 11: records from here on are an unproven tail.
    proven_end: u64,
    /// Row 12: the newest signature in that segment, checked too.
    signature_end: Option<u64>,
    /// Whole records in the segments after `segment`: all of them unproven, so
    /// the cut at `proven_end` is due even where `segment` ends right there.
    /// Their bytes (headers and records).
    later_bytes: Option<u64>,
}

impl<'a> Scan<'a> {
    /// A scan of the whole log, trusting the chain up to `chain_trusted_through`
    /// (see row 3's note in the module documentation; `0` trusts nothing). With
    /// `mac_check` (the master key's), a newest proof that is a batch MAC is
    /// checked too (row 12).
    pub(crate) fn new(
        storage: &'a dyn Storage,
        chain_trusted_through: Lsn,
        mac_check: Option<proof::MacCheck<'a>>,
    ) -> Result<Scan<'a>, ScanError> {
        let segments = list_segments(storage)?;
        let summary = ScanSummary {
            segments: Vec::with_capacity(segments.len()),
            next_lsn: 1,
            last_chain: GENESIS_CHAIN,
            last_ts_ms: i64::MIN,
            records: 0,
            torn_tail: None,
            public_key: None,
            unsigned: false,
        };
        let reader = LogReader::new(storage, segments, Start { index: 0, chain_trusted_through });
        Ok(Scan { reader, mac_check, summary, segment: None, newest: None, proofs: None, finished: false })
    }

    /// What the scan has learned so far; all of it once [`Scan::each`] has
    /// passed the end of the log.
    pub(crate) fn summary(&self) -> &ScanSummary {
        &self.summary
    }

    pub(crate) fn into_summary(self) -> ScanSummary {
        self.summary
    }

    /// Hands each accepted record and where it is to `visit`, in order, until
    /// `visit` breaks (that record is taken) or the log ends: at its end, or at
    /// a torn or unproven tail, which the summary records and nothing visits.
    /// `visit` also sees the scan (its summary so far).
    pub(crate) fn each<V>(&mut self, mut visit: V) -> Result<(), ScanError>
    where
        V: FnMut(&Self, Located<'_>, &RecordView<'_>) -> ControlFlow<()>,
    {
        while !self.finished {
            if let Some(proofs) = self.proofs
                && self.summary.public_key.is_some()
                && self.reader.position() >= proofs.proven_end
                && (proofs.later_bytes.is_some() || self.reader.segment_has_more().map_err(|d| self.error(d))?)
            {
                // Row 11: never applied; cut like a torn tail (and logged), with
                // every later segment.
                let offset = self.reader.position();
                let bytes = self.reader.stop_here().map_err(|d| self.error(d))?;
                let later = self.reader.segments()[proofs.segment + 1..].iter().map(|(_, n)| n.clone()).collect();
                self.end_in_tail(offset, bytes + proofs.later_bytes.unwrap_or(0), true);
                if let Some(torn) = &mut self.summary.torn_tail {
                    torn.later_segments = later;
                }
                continue;
            }
            match self.reader.step().map_err(|d| self.error(d))? {
                Step::Segment { index, version } => {
                    let (first_lsn, name) = &self.reader.segments()[index];
                    self.segment =
                        Some(SegmentInfo { name: name.clone(), version, first_lsn: *first_lsn, valid_bytes: 0 });
                    if self.newest.is_none() {
                        self.newest = Some(self.newest_proofs()?);
                    }
                    self.proofs = self.newest.flatten().filter(|p| p.segment == index);
                }
                Step::Record { index, offset, meta } => {
                    let rec = self.reader.view(&meta);
                    if rec.lsn == 1 {
                        self.summary.public_key = proof::public_key_of_first(&rec);
                    }
                    if let Some(key) = &self.summary.public_key
                        && let Some(proofs) = self.proofs
                        && let end = offset + rec.size as u64
                        && (end == proofs.proven_end || Some(end) == proofs.signature_end)
                    {
                        // Row 12: the newest proof covers every record before it; the
                        // newest signature is checked too, so a forger cannot hide
                        // behind a MAC a keyless reader takes on trust.
                        let covered = (rec.lsn - 1, &self.summary.last_chain);
                        let valid = match (proof::signature_of(&rec), proof::mac_of(&rec)) {
                            (Some(signature), _) => proof::verify(key, covered.0, covered.1, &signature),
                            (None, Some(mac)) => self
                                .mac_check
                                .is_none_or(|check| check(&proof::mac_message(covered.0, covered.1), &mac)),
                            (None, None) => false,
                        };
                        if !valid {
                            return Err(ScanError::Corrupt {
                                file: self.reader.name(index).to_string(),
                                offset,
                                lsn: rec.lsn,
                                what: "the batch proof does not verify under the log's key: records were written \
                                       without the master key"
                                    .into(),
                            });
                        }
                    }
                    self.summary.last_chain = rec.chain;
                    self.summary.last_ts_ms = rec.ts_ms;
                    self.summary.next_lsn += 1;
                    self.summary.records += 1;
                    let at = Located { file: self.reader.name(index), offset };
                    if visit(self, at, &rec).is_break() {
                        return Ok(());
                    }
                }
                Step::SegmentEnd { len, .. } => {
                    if let Some(mut segment) = self.segment.take() {
                        segment.valid_bytes = len;
                        self.summary.segments.push(segment);
                    }
                }
                Step::TornTail(torn) if torn.remove_segment => {
                    // Row 7: the file goes whole, and is not listed.
                    let (first_lsn, name) = &self.reader.segments()[torn.index];
                    self.summary.torn_tail = Some(TornTail {
                        segment: name.clone(),
                        segment_first_lsn: *first_lsn,
                        offset: 0,
                        bytes: torn.bytes,
                        remove_segment: true,
                        unproven: false,
                        later_segments: Vec::new(),
                    });
                    self.finished = true;
                }
                Step::TornTail(torn) => self.end_in_tail(torn.offset, torn.bytes, false),
                Step::End => self.finished = true,
            }
        }
        Ok(())
    }

    /// Rows 6 and 11: the current segment is cut at `offset`, and the scan ends.
    fn end_in_tail(&mut self, offset: u64, bytes: u64, unproven: bool) {
        if let Some(mut segment) = self.segment.take() {
            self.summary.torn_tail = Some(TornTail {
                segment: segment.name.clone(),
                segment_first_lsn: segment.first_lsn,
                offset,
                bytes,
                remove_segment: false,
                unproven,
                later_segments: Vec::new(),
            });
            segment.valid_bytes = offset;
            self.summary.segments.push(segment);
        }
        self.finished = true;
    }

    /// Rows 11 and 12 need to know, before the first record is handed on, where
    /// the log's newest proof ends: a streaming pass (crcs only; bytes read
    /// twice, never held) over the newest segment, and over older ones while the
    /// newer hold no proof — a batch that sealed a segment half-way, cut short by
    /// a crash. It stops at a segment from before proofs (format 1: its end
    /// counts as proven). Damage followed by valid records (other than row
    /// 14's), or a bad header before the last segment, is left to rows 4-10,
    /// which refuse.
    fn newest_proofs(&mut self) -> Result<Option<Proofs>, ScanError> {
        let count = self.reader.segments().len();
        let mut stream = SegmentStream::new();
        // The segments passed over, newest first: how many bytes of whole
        // records each holds (0: none).
        let mut passed: Vec<u64> = Vec::new();
        // What a proof point in segment `at` leaves in the segments after it.
        let after = |passed: &[u64], at: usize| {
            let later = &passed[..count - 1 - at];
            later.iter().any(|&b| b > 0).then(|| later.iter().sum::<u64>())
        };
        for index in (0..count).rev() {
            let name = self.reader.name(index).to_string();
            let io = |source| ScanError::Io { file: name.clone(), source };
            stream.open(self.reader.storage().open_read(&name).map_err(io)?);
            let (version, first_lsn) = match SegmentHeader::decode(stream.header().map_err(io)?.0) {
                Ok(header) => (header.version, header.first_lsn),
                // Row 7 (a torn creation) or 8: nothing in it to prove.
                Err(_) if index + 1 == count => {
                    passed.push(0);
                    continue;
                }
                Err(_) => return Ok(None),
            };
            if version < format::FORMAT_VERSION_PROOFS {
                // Proofs start in the segment after it, if there is one.
                return Ok((index + 1 < count).then(|| Proofs {
                    segment: index + 1,
                    proven_end: SEGMENT_HEADER_BYTES as u64,
                    signature_end: None,
                    later_bytes: after(&passed, index + 1),
                }));
            }
            stream.consume(SEGMENT_HEADER_BYTES);
            let scan = proof::last_proof_end(&mut stream).map_err(io)?;
            let valid_end = scan.first_bad.unwrap_or(stream.offset());
            if let Some(zeros) = stream.zero_tail() {
                // Row 13, checked: the read that follows stops there.
                self.reader.zeros_known_from(index, zeros);
            }
            if scan.first_bad.is_some() {
                // Row 14 in the last segment of a log with proofs: records of
                // one unfinished batch after the bad one are a torn tail too.
                let key = || first_public_key(self.reader.storage()).is_some();
                let batch = (index + 1 == count && key()).then(|| scan.next_lsn.unwrap_or(first_lsn));
                if stream.valid_record_after(batch).map_err(io)? == After::ValidRecord {
                    return Ok(None);
                }
            }
            if scan.proof_end.is_some() || index == 0 {
                self.summary.unsigned = scan.proof_end.is_some() && scan.proof_end != scan.signature_end;
                return Ok(Some(Proofs {
                    segment: index,
                    proven_end: scan.proof_end.unwrap_or(SEGMENT_HEADER_BYTES as u64),
                    signature_end: scan.signature_end,
                    later_bytes: after(&passed, index),
                }));
            }
            passed.push(if valid_end > SEGMENT_HEADER_BYTES as u64 { valid_end } else { 0 });
        }
        Ok(None)
    }

    /// The reader's facts in the words of this table.
    fn error(&self, damage: Damage) -> ScanError {
        let file = |index: usize| self.reader.name(index).to_string();
        let corrupt = |index: usize, offset: u64, lsn: Lsn, what: String| ScanError::Corrupt {
            file: file(index),
            offset,
            lsn,
            what,
        };
        match damage {
            Damage::Io { index, source } => ScanError::Io { file: file(index), source },
            Damage::BadHeader { index, expected_lsn, torn_creation: true, .. } => {
                // A torn creation in all but its name: a segment is missing before it.
                ScanError::MissingSegment { expected_lsn, found: file(index) }
            }
            Damage::BadHeader { index, problem, expected_lsn, .. } => {
                corrupt(index, 0, expected_lsn, format!("bad segment header: {problem:?}"))
            }
            Damage::NameMismatch { index, header_lsn, name_lsn, expected_lsn } => corrupt(
                index,
                0,
                expected_lsn,
                format!("header says first LSN {header_lsn} but the file name says {name_lsn}"),
            ),
            Damage::Gap { index, expected_lsn, .. } => ScanError::MissingSegment { expected_lsn, found: file(index) },
            Damage::ChainNotCarried { index, expected_lsn } => {
                corrupt(index, 0, expected_lsn, "segment header does not carry the previous segment's chain".into())
            }
            Damage::LsnOutOfOrder { index, offset, lsn, expected_lsn } => {
                corrupt(index, offset, expected_lsn, format!("record has LSN {lsn} out of order"))
            }
            Damage::ChainBroken { index, offset, lsn } => {
                corrupt(index, offset, lsn, "hash chain broken: a record was edited, removed or reordered".into())
            }
            Damage::BadRecord { index, offset, expected_lsn, bad, last, follows } => {
                corrupt(index, offset, expected_lsn, bad_record_what(bad.problem, last, follows))
            }
        }
    }
}

fn bad_record_what(problem: RecordProblem, last: bool, follows: bool) -> String {
    let place = match (last, follows) {
        (true, true) => "; valid records follow it, so this is damage, not a torn write",
        _ => " in a sealed segment",
    };
    format!("{}{place}", problem.describe())
}

/// The public key named by the log's first record (`EngineInitialized`), read
/// from the start of the first segment alone; `None` if there is none.
pub(crate) fn first_public_key<S: Storage + ?Sized>(storage: &S) -> Option<[u8; 32]> {
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
#[cfg(any(test, feature = "testing"))]
pub fn fuzz_recover(bytes: &[u8]) -> Result<(), String> {
    use crate::event::Event;
    use crate::log::storage::MemStorage;
    let storage = MemStorage::default();
    storage.put(&format::segment_name(1), bytes.to_vec());
    scan(&storage, &mut |_, rec| Event::decode(rec.kind, rec.payload).map(|_| ()).map_err(|e| e.to_string()))
        .map(|_| ())
        .map_err(|e| e.to_string())
}
