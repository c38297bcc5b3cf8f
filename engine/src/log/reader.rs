//! The one streaming, verifying reader of a log. The engine's open (through
//! [`super::recovery`]) and the auditor (`audit verify`, timeline, state, diff,
//! who-had, through [`crate::audit::Reader`]) both read through it, so they check
//! the same things in the same order and decide the same way:
//!
//! - segment headers: the format, the file name, a dense LSN sequence and the
//!   carried chain (rows 7–10 of the recovery table in [`super::recovery`]);
//! - every record's crc and LSN, and its chain past an LSN the caller trusts
//!   (rows 1–3);
//! - a bad record: in the last segment with nothing valid anywhere after it
//!   (or, in a log with proofs, only the rest of one unfinished batch), a torn
//!   tail; anywhere else, damage (rows 4–6 and 14, [`super::recovery::classify`]);
//! - nothing but zero bytes from a record boundary to the end of the file: the
//!   segment's clean end, the unused part of a segment allocated at its full
//!   size ahead of time (row 13). A run of zeros followed by anything else is a
//!   bad record where the run starts, judged by rows 4–6 as any other.
//!
//! What it reports is facts ([`Step`], [`Damage`]); each caller words its own
//! errors, and recovery adds the batch-proof rows (11, 12) on top.
//!
//! # Memory
//! A segment is streamed through one window of [`WINDOW_BYTES`]: a read, plus the
//! largest record the format allows ([`RECORD_BYTES_MAX`]), so any record can be
//! verified whole and in place. Nothing is held per segment, so a 64 MiB segment
//! is read in the same memory as a 64 KiB one (I7). The offsets recovery needs to
//! cut a tail are counted as the bytes stream past; nothing seeks.

use std::io::{self, Read};
use std::ops::Deref;

use crate::event::Lsn;
use crate::log::format::{
    self, Chain, GENESIS_CHAIN, HeaderProblem, RECORD_HEADER_BYTES, RECORD_MAGIC, RECORD_OVERHEAD_BYTES,
    RECORD_PAYLOAD_BYTES_MAX, RecordProblem, RecordView, SEGMENT_HEADER_BYTES, SegmentHeader,
};
use crate::log::proof;
use crate::log::recovery::{self, Decision};
use crate::log::storage::Storage;

/// The largest framed record: a `len` above it is damage, not data.
pub const RECORD_BYTES_MAX: usize = RECORD_OVERHEAD_BYTES + RECORD_PAYLOAD_BYTES_MAX;

/// Bytes asked of a file per read: few enough syscalls that they do not show,
/// and few enough bytes that what was read is still in cache when it is
/// checked, hashed and decoded.
const READ_BYTES: usize = 256 << 10;

/// Bytes are kept in the window at the same offset modulo this as in the file:
/// the kernel copies from the page cache several times faster when source and
/// destination are aligned alike (measured: a quarter of a replay's reading time
/// went to misaligned copies).
const ALIGN: usize = 4096;

/// The reader's whole buffer: the largest record fits in it whole, with a read
/// behind it (and room to keep the alignment). This, not the size of a segment,
/// bounds the memory of a scan.
pub const WINDOW_BYTES: usize = ALIGN + RECORD_BYTES_MAX + READ_BYTES;

const _: () = assert!(SEGMENT_HEADER_BYTES < RECORD_BYTES_MAX);

/// A record verified in place: its fixed fields, and where its bytes are in the
/// window, where they stay until the stream moves on ([`SegmentStream::view`]).
/// Kept small, and the chain left in the window, because it is handed up
/// through the readers once per record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordMeta {
    pub(crate) lsn: Lsn,
    pub(crate) ts_ms: i64,
    pub(crate) kind: u16,
    /// Total framed size in bytes.
    pub(crate) size: usize,
    /// Where the record starts in the window.
    at: usize,
}

impl RecordMeta {
    fn payload(&self) -> std::ops::Range<usize> {
        self.at + RECORD_HEADER_BYTES..self.at + self.size - format::CHAIN_BYTES
    }

    fn chain(&self) -> std::ops::Range<usize> {
        self.at + self.size - format::CHAIN_BYTES..self.at + self.size
    }
}

/// Why the bytes at an offset are not a record, with what the auditor's wording
/// needs: whether even the fixed header was cut short, and the `len` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadRecord {
    pub(crate) problem: RecordProblem,
    /// Fewer than a record header's bytes were left in the file.
    pub(crate) header_short: bool,
    /// The record's `len` field, when there were bytes enough to hold it.
    pub(crate) len: Option<u32>,
}

/// One step of a [`SegmentStream`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Raw {
    Record(RecordMeta),
    Bad(BadRecord),
    /// The segment's data ends here, at a record boundary: the file ends, or
    /// holds nothing but zeros from here to its end (row 13).
    End,
}

/// Row 13: a run of zero bytes at a record boundary, which the stream has read
/// past. The stream's offset stays at the run's start, where the segment's
/// data ends (or a bad record starts); nothing more is consumed from it.
#[derive(Clone, Copy, Debug)]
struct ZeroRun {
    /// Where the run starts.
    from: u64,
    /// The bad record that starts at `from` when something other than zeros
    /// follows the run (the window stands at its first such byte); `None`: the
    /// run reaches the end of the file, the segment's clean end.
    bad: Option<BadRecord>,
}

/// What [`SegmentStream::valid_record_after`] found past a bad record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// A whole valid record starts somewhere after it (row 5: damage).
    ValidRecord,
    /// Nothing valid follows; the bad record and everything after it are this
    /// many bytes (row 6: a torn tail).
    Nothing { bytes: u64 },
    /// Only records of the one batch that was being written follow (row 14: a
    /// torn tail too); the bad record and everything after it are this many
    /// bytes.
    UnfinishedBatch { bytes: u64 },
}

/// Row 14: the records a crash during a batch's `fdatasync` may leave after a
/// hole. A batch is written into space allocated ahead (zeros) and synced
/// once, so a crash may persist a later page of it and not an earlier one
/// (an overwrite has no file size to order the data behind). Every batch
/// before it was durable before it was written, and it was not acknowledged.
/// What it leaves after the hole is some of its own records: LSNs past the
/// ones the hole took, rising, and at most one batch proof — its own, which
/// ends it. A proof followed by another record means a later batch was
/// written, so the earlier one had been synced: the hole is damage (row 5).
#[derive(Clone, Copy, Debug)]
struct UnfinishedBatch {
    /// The lowest LSN the next record found may have.
    lsn_min: Lsn,
    proof_seen: bool,
    records: u64,
}

impl UnfinishedBatch {
    /// Whether a record with `lsn` and `kind` can be one more of the batch.
    fn admits(&mut self, lsn: Lsn, kind: u16) -> bool {
        if self.proof_seen || lsn < self.lsn_min {
            return false;
        }
        self.lsn_min = lsn + 1;
        self.proof_seen = proof::is_proof(kind);
        self.records += 1;
        true
    }
}

/// One segment file, read front to back through a bounded window, records
/// parsed in place. The window's memory is kept from one file to the next.
pub(crate) struct SegmentStream {
    file: Option<Box<dyn Read + Send>>,
    buf: Vec<u8>,
    /// `buf[start..end]` holds the bytes read and not yet consumed.
    start: usize,
    end: usize,
    /// The file offset of `buf[start]`: bytes consumed so far.
    offset: u64,
    eof: bool,
    /// A run of zeros read past (row 13).
    zeros: Option<ZeroRun>,
    /// Where a run of zeros to the end of the file is known to start
    /// ([`SegmentStream::zeros_known_from`]).
    known_zeros_from: Option<u64>,
}

impl std::fmt::Debug for SegmentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentStream")
            .field("offset", &self.offset)
            .field("buffered", &(self.end - self.start))
            .field("eof", &self.eof)
            .field("zeros", &self.zeros)
            .finish_non_exhaustive()
    }
}

impl SegmentStream {
    pub(crate) fn new() -> SegmentStream {
        SegmentStream {
            file: None,
            buf: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
            eof: true,
            zeros: None,
            known_zeros_from: None,
        }
    }

    /// Starts reading `file` from its first byte.
    pub(crate) fn open(&mut self, file: Box<dyn Read + Send>) {
        if self.buf.is_empty() {
            self.buf = vec![0; WINDOW_BYTES];
        }
        self.file = Some(file);
        let at = self.aligned_index(0);
        (self.start, self.end, self.offset, self.eof) = (at, at, 0, false);
        (self.zeros, self.known_zeros_from) = (None, None);
    }

    /// The index in the window whose address is `offset` modulo [`ALIGN`]: where
    /// the byte at file offset `offset` is best kept.
    fn aligned_index(&self, offset: u64) -> usize {
        let base = self.buf.as_ptr() as usize % ALIGN;
        (offset as usize % ALIGN + ALIGN - base) % ALIGN
    }

    /// The file offset of the next unconsumed byte; past a run of zeros
    /// (row 13), where the run starts.
    pub(crate) fn offset(&self) -> u64 {
        self.zeros.map_or(self.offset, |run| run.from)
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Moves past `n` bytes of whole records (or the header).
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n == 0 || self.zeros.is_none(), "consuming records past a run of zeros");
        self.advance(n);
    }

    fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        self.offset += n as u64;
    }

    /// Makes at least `want` bytes available, or every byte left in the file.
    fn fill(&mut self, want: usize) -> io::Result<()> {
        debug_assert!(want <= self.buf.len() - ALIGN);
        if self.end - self.start >= want || self.eof {
            return Ok(());
        }
        // What is left (at most one partial record) moves to the front, so the
        // window always has room for the largest record; aligned as in the file.
        let to = self.aligned_index(self.offset);
        self.buf.copy_within(self.start..self.end, to);
        (self.end, self.start) = (to + self.end - self.start, to);
        let file = self.file.as_mut().expect("fill on an open stream");
        while self.end - self.start < want {
            let to = (self.end + READ_BYTES).max(self.start + want).min(self.buf.len());
            match file.read(&mut self.buf[self.end..to]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The first `SEGMENT_HEADER_BYTES` of the file (fewer if it is shorter), and
    /// whether the file is no longer than a header (row 7 needs to know).
    pub(crate) fn header(&mut self) -> io::Result<(&[u8], bool)> {
        self.fill(SEGMENT_HEADER_BYTES + 1)?;
        let avail = self.available();
        Ok((&avail[..avail.len().min(SEGMENT_HEADER_BYTES)], avail.len() <= SEGMENT_HEADER_BYTES))
    }

    /// The record at the current offset, verified (crc), not consumed. Zeros
    /// there are read past (row 13): to the end of the file, they are the end;
    /// followed by anything else, the bad record where they start (and the
    /// stream takes no more records).
    #[inline]
    pub(crate) fn next_record(&mut self) -> io::Result<Raw> {
        if let Some(run) = self.zeros {
            return Ok(run.bad.map_or(Raw::End, Raw::Bad));
        }
        if self.known_zeros_from == Some(self.offset) {
            self.zeros = Some(ZeroRun { from: self.offset, bad: None });
            return Ok(Raw::End);
        }
        // Read until the whole record is in the window, as its header says, so
        // that `read_record` answers as it would over the whole file.
        loop {
            let avail = self.available();
            let need = match frame_size(avail) {
                Some(size) => size,
                None => break,
            };
            if avail.len() >= need || self.eof {
                break;
            }
            self.fill(need)?;
        }
        let avail = self.available();
        if avail.is_empty() {
            return Ok(Raw::End);
        }
        Ok(match format::read_record(avail) {
            Ok(view) => Raw::Record(RecordMeta {
                lsn: view.lsn,
                ts_ms: view.ts_ms,
                kind: view.kind,
                size: view.size,
                at: self.start,
            }),
            Err(problem) => {
                let bad = BadRecord {
                    problem,
                    header_short: avail.len() < RECORD_HEADER_BYTES,
                    len: avail.get(4..8).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))),
                };
                // A record starts with its magic, never with a zero.
                if avail[0] == 0 {
                    return self.read_past_zeros(bad);
                }
                Raw::Bad(bad)
            }
        })
    }

    /// Row 13: reads past the run of zeros at the current offset, where `bad`
    /// (the bytes there, judged as a record) starts. Up to the end of the file
    /// it is the segment's clean end; anything else after it leaves `bad` to
    /// rows 4-6, and the window at the first byte that is not zero (no record
    /// can start inside the run: a record's first byte is never zero).
    #[cold]
    fn read_past_zeros(&mut self, bad: BadRecord) -> io::Result<Raw> {
        debug_assert!(self.zeros.is_none());
        let from = self.offset;
        loop {
            let avail = self.available();
            if let Some(at) = first_nonzero(avail) {
                self.advance(at);
                self.zeros = Some(ZeroRun { from, bad: Some(bad) });
                // After: the window stands at a byte that is not zero.
                assert_ne!(self.buf[self.start], 0);
                return Ok(Raw::Bad(bad));
            }
            let n = avail.len();
            self.advance(n);
            if self.eof {
                self.zeros = Some(ZeroRun { from, bad: None });
                return Ok(Raw::End);
            }
            self.fill(1)?;
        }
    }

    /// The record `meta` describes, valid until the stream is consumed or read.
    #[inline]
    pub(crate) fn view(&self, meta: &RecordMeta) -> RecordView<'_> {
        RecordView {
            lsn: meta.lsn,
            ts_ms: meta.ts_ms,
            kind: meta.kind,
            payload: &self.buf[meta.payload()],
            chain: self.chain_of(meta),
            size: meta.size,
        }
    }

    /// The chain the record `meta` describes carries.
    #[inline]
    pub(crate) fn chain_of(&self, meta: &RecordMeta) -> Chain {
        self.buf[meta.chain()].try_into().expect("a chain's bytes")
    }

    /// The payload of the record `meta` describes.
    #[inline]
    pub(crate) fn payload_of(&self, meta: &RecordMeta) -> &[u8] {
        &self.buf[meta.payload()]
    }

    /// Rows 5, 6 and 14: is there a whole valid record at any offset after the
    /// bad one at the current offset? Reads the file to its end if not (to
    /// count the bytes a cut removes), holding no more than the window. With
    /// `unfinished_batch` (the LSN the bad record would have had, in a
    /// segment of a log with batch proofs), records that can all be the rest
    /// of one unfinished batch (see [`UnfinishedBatch`]) do not count. Leaves
    /// the stream at an arbitrary place: nothing is read from it afterwards.
    pub(crate) fn valid_record_after(&mut self, unfinished_batch: Option<Lsn>) -> io::Result<After> {
        let from = self.offset();
        let mut batch = unfinished_batch.map(|lsn_min| UnfinishedBatch { lsn_min, proof_seen: false, records: 0 });
        let magic = RECORD_MAGIC.to_le_bytes();
        // One past the last byte that is not zero, as a file offset.
        let mut data_end = from;
        // `at` is a candidate's index in the window; the first is one byte on
        // (past a run of zeros, the first byte after it: none can start in it).
        let mut at = if self.zeros.is_some() { self.start } else { self.start + 1 };
        loop {
            while at + magic.len() <= self.end {
                if self.buf[at..at + magic.len()] != magic {
                    // On to the next byte that could start a magic.
                    at = match self.buf[at + 1..self.end].iter().position(|&b| b == magic[0]) {
                        Some(i) => at + 1 + i,
                        None => self.end,
                    };
                    continue;
                }
                let need = frame_size(&self.buf[at..self.end]).unwrap_or(RECORD_HEADER_BYTES);
                if self.end - at < need && !self.eof {
                    // The candidate runs past the window: bring it to the front.
                    data_end = self.data_end_through(at, data_end);
                    self.advance(at - self.start);
                    self.fill(need)?;
                    at = self.start;
                    continue;
                }
                match format::read_record(&self.buf[at..self.end]).map(|rec| (rec.lsn, rec.kind, rec.size)) {
                    Ok((lsn, kind, size)) => {
                        if !batch.as_mut().is_some_and(|batch| batch.admits(lsn, kind)) {
                            return Ok(After::ValidRecord);
                        }
                        at += size;
                    }
                    Err(_) => at += 1,
                }
            }
            if self.eof {
                let bytes = self.data_end_through(self.end, data_end) - from;
                return Ok(match batch {
                    Some(batch) if batch.records > 0 => After::UnfinishedBatch { bytes },
                    _ => After::Nothing { bytes },
                });
            }
            // Keep the bytes a magic could still start in, read on.
            let keep_from = at.min(self.end);
            data_end = self.data_end_through(keep_from, data_end);
            self.advance(keep_from - self.start);
            let more = self.end - self.start + 1;
            self.fill(more)?;
            at = self.start;
        }
    }

    /// `data_end`, or one past the last byte that is not zero in the window
    /// up to index `to`, as a file offset.
    fn data_end_through(&self, to: usize, data_end: u64) -> u64 {
        match last_nonzero(&self.buf[self.start..to]) {
            Some(i) => self.offset + i as u64 + 1,
            None => data_end,
        }
    }

    /// Bytes from the current offset to the end of the file that hold data:
    /// up to the last byte that is not zero (trailing zeros are a preallocated
    /// segment's unused space). Read, not held.
    pub(crate) fn bytes_to_end(&mut self) -> io::Result<u64> {
        if self.zero_tail().is_some() {
            return Ok(0);
        }
        let from = self.offset();
        let mut data_end = from;
        loop {
            let n = self.end - self.start;
            data_end = self.data_end_through(self.end, data_end);
            self.advance(n);
            if self.eof {
                return Ok(data_end - from);
            }
            self.fill(1)?;
        }
    }

    /// Whether the segment's data ends at the current offset: the file ends
    /// there, or holds only zeros from there on (row 13).
    pub(crate) fn at_end(&mut self) -> io::Result<bool> {
        Ok(matches!(self.next_record()?, Raw::End))
    }

    /// Where the run of zeros that ends the file starts, once the stream has
    /// read it (row 13).
    pub(crate) fn zero_tail(&self) -> Option<u64> {
        self.zeros.filter(|run| run.bad.is_none()).map(|run| run.from)
    }

    /// Takes it as read that the file holds only zeros from `offset`, a record
    /// boundary, to its end (a pass over the same file just checked it): the
    /// stream ends there without reading them again.
    pub(crate) fn zeros_known_from(&mut self, offset: u64) {
        debug_assert!(self.zeros.is_none() && self.offset <= offset);
        self.known_zeros_from = Some(offset);
    }
}

/// The index of the first byte that is not zero. Blocks are tested whole first,
/// 16 bytes at a time: a preallocated segment's tail is megabytes of zeros.
fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    for block in bytes.chunks(ZERO_BLOCK_BYTES) {
        if !all_zero(block) {
            return block.iter().position(|&b| b != 0).map(|i| at + i);
        }
        at += block.len();
    }
    None
}

/// The index of the last byte that is not zero.
fn last_nonzero(bytes: &[u8]) -> Option<usize> {
    let mut end = bytes.len();
    for block in bytes.rchunks(ZERO_BLOCK_BYTES) {
        let start = end - block.len();
        if !all_zero(block) {
            return block.iter().rposition(|&b| b != 0).map(|i| start + i);
        }
        end = start;
    }
    None
}

fn all_zero(block: &[u8]) -> bool {
    let (words, rest) = block.as_chunks::<16>();
    words.iter().fold(0, |acc, w| acc | u128::from_ne_bytes(*w)) == 0 && rest.iter().all(|&b| b == 0)
}

/// The block [`first_nonzero`] and [`last_nonzero`] test at once.
const ZERO_BLOCK_BYTES: usize = 4096;

/// How many bytes the record starting at `bytes[0]` needs to be judged: its
/// fixed header, then its whole frame; `None` once its header already condemns it
/// (bad magic, `len` over the limit), which needs no more bytes.
fn frame_size(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < RECORD_HEADER_BYTES {
        return Some(RECORD_HEADER_BYTES);
    }
    let magic = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) as usize;
    (magic == RECORD_MAGIC && len <= RECORD_PAYLOAD_BYTES_MAX).then_some(RECORD_OVERHEAD_BYTES + len)
}

/// A torn tail the reader found (rows 6 and 7); nothing follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Torn {
    /// The segment's index in the reader's list.
    pub(crate) index: usize,
    /// Where the valid data ends.
    pub(crate) offset: u64,
    /// Bytes from `offset` up to the last byte of the file that is not zero
    /// (trailing zeros are a preallocated segment's unused space, not data).
    pub(crate) bytes: u64,
    /// Row 7: the segment has no valid header and goes whole.
    pub(crate) remove_segment: bool,
}

/// One step of a [`LogReader`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step {
    /// A segment whose header checked out; its records follow.
    Segment { index: usize, version: u16 },
    /// A verified record at `offset` of segment `index`
    /// ([`LogReader::view`] gives its bytes until the next step).
    Record { index: usize, offset: u64, meta: RecordMeta },
    /// Segment `index` ended cleanly after `len` bytes of data (header and
    /// whole records; zeros after them, row 13, are not counted).
    SegmentEnd { index: usize, len: u64 },
    /// The log ends in a torn tail.
    TornTail(Torn),
    /// The end of the log.
    End,
}

/// Where and why reading stopped: the facts, which each caller words (recovery's
/// [`recovery::ScanError`], the auditor's `audit::ReadError`). `index` is the
/// segment's index in the reader's list; `expected_lsn` the LSN due next.
#[derive(Debug)]
pub(crate) enum Damage {
    Io {
        index: usize,
        source: io::Error,
    },
    /// Row 8; with `torn_creation`, a header that would be a torn creation (row 7)
    /// but for its file name, which is not the LSN due next.
    BadHeader {
        index: usize,
        problem: HeaderProblem,
        torn_creation: bool,
        expected_lsn: Lsn,
    },
    /// Row 8: the header's first LSN is not its file name's.
    NameMismatch {
        index: usize,
        header_lsn: Lsn,
        name_lsn: Lsn,
        expected_lsn: Lsn,
    },
    /// Row 9: the segment does not start at the LSN due next.
    Gap {
        index: usize,
        first_lsn: Lsn,
        expected_lsn: Lsn,
    },
    /// Row 10: the header does not carry the previous segment's last chain.
    ChainNotCarried {
        index: usize,
        expected_lsn: Lsn,
    },
    /// Row 2.
    LsnOutOfOrder {
        index: usize,
        offset: u64,
        lsn: Lsn,
        expected_lsn: Lsn,
    },
    /// Row 3.
    ChainBroken {
        index: usize,
        offset: u64,
        lsn: Lsn,
    },
    /// Rows 4 and 5: `follows` is known only in the last segment.
    BadRecord {
        index: usize,
        offset: u64,
        expected_lsn: Lsn,
        bad: BadRecord,
        last: bool,
        follows: bool,
    },
}

/// Where a [`LogReader`] starts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Start {
    /// The index of the first segment to read; from any but the first, that
    /// segment's header chain is taken on trust (a read that starts mid-log).
    pub(crate) index: usize,
    /// Records up to this LSN keep the chain they carry instead of having it
    /// recomputed (row 3's note in [`super::recovery`]); 0 trusts nothing.
    pub(crate) chain_trusted_through: Lsn,
}

/// Reads a log's segments in order, verifying as it goes (rows 1–10, 13 and 14).
pub(crate) struct LogReader<St> {
    storage: St,
    /// `(first LSN, file name)` in LSN order, as listed.
    segments: Vec<(Lsn, String)>,
    next_segment: usize,
    /// The segment being read.
    current: Option<usize>,
    stream: SegmentStream,
    /// The size of the record last returned: consumed on the next step, so its
    /// bytes stay in the window while the caller looks at them.
    pending: usize,
    next_lsn: Lsn,
    chain: Chain,
    chain_trusted_through: Lsn,
    trust_first_header: bool,
    done: bool,
    /// `(segment index, offset)`: zeros to the end of that segment's file from
    /// there, already checked ([`LogReader::zeros_known_from`]).
    known_zeros: Vec<(usize, u64)>,
    /// The format version of the segment being read.
    version: u16,
    /// Whether the log's first record names a public key, so its batches end
    /// in proofs (row 14); looked up the first time a bad record needs it.
    batch_proofs: Option<bool>,
}

impl<St> std::fmt::Debug for LogReader<St> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("current", &self.current)
            .field("next_lsn", &self.next_lsn)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl<St> LogReader<St>
where
    St: Deref,
    St::Target: Storage,
{
    /// A reader over `segments` (as [`recovery::list_segments`] lists them).
    pub(crate) fn new(storage: St, segments: Vec<(Lsn, String)>, from: Start) -> LogReader<St> {
        let (next_lsn, trust_first_header) = match segments.get(from.index) {
            Some(&(first_lsn, _)) if from.index > 0 => (first_lsn, true),
            _ => (1, false),
        };
        LogReader {
            storage,
            segments,
            next_segment: from.index,
            current: None,
            stream: SegmentStream::new(),
            pending: 0,
            next_lsn,
            chain: GENESIS_CHAIN,
            chain_trusted_through: from.chain_trusted_through,
            trust_first_header,
            done: false,
            known_zeros: Vec::new(),
            version: 0,
            batch_proofs: None,
        }
    }

    /// Row 14's condition: the LSN a bad record in the last segment would have
    /// had, when that segment is of a format whose batches end in a proof and
    /// the log has a key to make them (else batch boundaries are unknown).
    fn unfinished_batch_lsn(&mut self) -> Option<Lsn> {
        if self.version < format::FORMAT_VERSION_PROOFS {
            return None;
        }
        let storage = &self.storage;
        let proofs = *self.batch_proofs.get_or_insert_with(|| recovery::first_public_key(&**storage).is_some());
        proofs.then_some(self.next_lsn)
    }

    /// Takes it as read that segment `index` holds only zeros from `offset`
    /// to its end (row 13): the engine's open checks that in the pass that
    /// looks for the newest proof, and need not read megabytes of a
    /// preallocated segment's zeros twice.
    pub(crate) fn zeros_known_from(&mut self, index: usize, offset: u64) {
        self.known_zeros.push((index, offset));
    }

    pub(crate) fn storage(&self) -> &St::Target {
        &self.storage
    }

    pub(crate) fn segments(&self) -> &[(Lsn, String)] {
        &self.segments
    }

    /// The file name of segment `index`.
    pub(crate) fn name(&self, index: usize) -> &str {
        &self.segments[index].1
    }

    /// The LSN the next record must have.
    pub(crate) fn next_lsn(&self) -> Lsn {
        self.next_lsn
    }

    /// The chain after the last record returned.
    pub(crate) fn chain(&self) -> Chain {
        self.chain
    }

    /// The offset in the current segment after the last record returned.
    pub(crate) fn position(&self) -> u64 {
        self.stream.offset() + self.pending as u64
    }

    /// The bytes of the record a [`Step::Record`] described, until the next step.
    #[inline]
    pub(crate) fn view(&self, meta: &RecordMeta) -> RecordView<'_> {
        self.stream.view(meta)
    }

    /// Whether the current segment has bytes past [`LogReader::position`].
    pub(crate) fn segment_has_more(&mut self) -> Result<bool, Damage> {
        let Some(index) = self.current else { return Ok(false) };
        self.stream.consume(std::mem::take(&mut self.pending));
        self.stream.at_end().map(|end| !end).map_err(|source| Damage::Io { index, source })
    }

    /// Ends the read at [`LogReader::position`], returning the bytes from there to
    /// the end of the current segment (what a cut there removes).
    pub(crate) fn stop_here(&mut self) -> Result<u64, Damage> {
        self.done = true;
        let Some(index) = self.current.take() else { return Ok(0) };
        self.stream.consume(std::mem::take(&mut self.pending));
        self.stream.bytes_to_end().map_err(|source| Damage::Io { index, source })
    }

    #[inline]
    pub(crate) fn step(&mut self) -> Result<Step, Damage> {
        if self.done {
            return Ok(Step::End);
        }
        let Some(index) = self.current else { return self.open_next() };
        self.stream.consume(std::mem::take(&mut self.pending));
        let io = |source| Damage::Io { index, source };
        let offset = self.stream.offset();
        let last = index + 1 == self.segments.len();
        match self.stream.next_record().map_err(io)? {
            Raw::End => {
                self.current = None;
                Ok(Step::SegmentEnd { index, len: offset })
            }
            Raw::Bad(bad) => {
                // Rows 4-6 and 14. Whether anything valid follows matters only
                // in the last segment: elsewhere any bad record is damage.
                let after = if last {
                    let batch = self.unfinished_batch_lsn();
                    self.stream.valid_record_after(batch).map_err(io)?
                } else {
                    After::ValidRecord
                };
                let follows = after == After::ValidRecord;
                match (recovery::classify(last, follows), after) {
                    (Decision::TruncateTail, After::Nothing { bytes } | After::UnfinishedBatch { bytes }) => {
                        self.done = true;
                        self.current = None;
                        Ok(Step::TornTail(Torn { index, offset, bytes, remove_segment: false }))
                    }
                    _ => Err(Damage::BadRecord {
                        index,
                        offset,
                        expected_lsn: self.next_lsn,
                        bad,
                        last,
                        follows: last && follows,
                    }),
                }
            }
            Raw::Record(meta) => {
                if meta.lsn != self.next_lsn {
                    // Row 2.
                    return Err(Damage::LsnOutOfOrder { index, offset, lsn: meta.lsn, expected_lsn: self.next_lsn });
                }
                let chain = self.stream.chain_of(&meta);
                if meta.lsn > self.chain_trusted_through {
                    let payload = self.stream.payload_of(&meta);
                    if format::chain_next(&self.chain, meta.lsn, meta.ts_ms, meta.kind, payload) != chain {
                        // Row 3.
                        return Err(Damage::ChainBroken { index, offset, lsn: meta.lsn });
                    }
                }
                self.chain = chain;
                self.next_lsn += 1;
                self.pending = meta.size;
                Ok(Step::Record { index, offset, meta })
            }
        }
    }

    /// Opens the next segment and checks its header (rows 7-10).
    fn open_next(&mut self) -> Result<Step, Damage> {
        let index = self.next_segment;
        let Some((name_lsn, name)) = self.segments.get(index) else {
            self.done = true;
            return Ok(Step::End);
        };
        let name_lsn = *name_lsn;
        let last = index + 1 == self.segments.len();
        let io = |source| Damage::Io { index, source };
        let file = self.storage.open_read(name).map_err(io)?;
        self.stream.open(file);
        let (bytes, whole_file) = self.stream.header().map_err(io)?;
        let header = match SegmentHeader::decode(bytes) {
            Ok(header) => header,
            Err(problem) => {
                // Row 7: a crash while the segment's header was being written,
                // or before it was (the file allocated ahead, all zeros).
                let shape = last && (problem == HeaderProblem::Short || bytes.iter().all(|&b| b == 0));
                let data = last_nonzero(bytes).map_or(0, |i| i as u64 + 1);
                let torn_creation = shape
                    && (whole_file || {
                        self.stream.consume(SEGMENT_HEADER_BYTES);
                        self.stream.at_end().map_err(io)?
                    });
                if torn_creation && name_lsn == self.next_lsn {
                    self.done = true;
                    return Ok(Step::TornTail(Torn { index, offset: 0, bytes: data, remove_segment: true }));
                }
                // Row 8.
                return Err(Damage::BadHeader { index, problem, torn_creation, expected_lsn: self.next_lsn });
            }
        };
        if header.first_lsn != name_lsn {
            return Err(Damage::NameMismatch {
                index,
                header_lsn: header.first_lsn,
                name_lsn,
                expected_lsn: self.next_lsn,
            });
        }
        if header.first_lsn != self.next_lsn {
            // Row 9.
            return Err(Damage::Gap { index, first_lsn: header.first_lsn, expected_lsn: self.next_lsn });
        }
        if std::mem::take(&mut self.trust_first_header) {
            self.chain = header.prev_chain;
        } else if header.prev_chain != self.chain {
            // Row 10.
            return Err(Damage::ChainNotCarried { index, expected_lsn: self.next_lsn });
        }
        self.stream.consume(SEGMENT_HEADER_BYTES);
        if let Some(&(_, offset)) = self.known_zeros.iter().find(|(i, _)| *i == index) {
            self.stream.zeros_known_from(offset);
        }
        self.current = Some(index);
        self.version = header.version;
        self.next_segment += 1;
        Ok(Step::Segment { index, version: header.version })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::log::format::{FORMAT_VERSION, encode_record};
    use crate::log::storage::{MemStorage, StorageFile};
    use crate::testing::SplitMix64;

    /// A segment starting at LSN 1 holding records of these kinds and payloads.
    fn segment(records: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let header = SegmentHeader { version: FORMAT_VERSION, first_lsn: 1, prev_chain: GENESIS_CHAIN };
        let mut out = header.encode().to_vec();
        let mut chain = GENESIS_CHAIN;
        for (i, (kind, payload)) in records.iter().enumerate() {
            chain = encode_record(&mut out, &chain, i as u64 + 1, 1_000 + i as i64, *kind, payload);
        }
        out
    }

    /// Records of many sizes, the largest the format allows among them, so that
    /// records straddle every kind of read boundary.
    fn mixed_records() -> Vec<(u16, Vec<u8>)> {
        let mut rng = SplitMix64(11);
        let mut records: Vec<(u16, Vec<u8>)> = (0..60)
            .map(|i| {
                let len = match i % 4 {
                    0 => rng.below(16) as usize,
                    1 => rng.below(4096) as usize,
                    2 => READ_BYTES - 40 + rng.below(80) as usize,
                    _ => rng.below(200_000) as usize,
                };
                (90, (0..len).map(|_| rng.below(256) as u8).collect())
            })
            .collect();
        records.insert(7, (90, vec![0xab; RECORD_PAYLOAD_BYTES_MAX]));
        records.push((90, vec![0xcd; RECORD_PAYLOAD_BYTES_MAX]));
        records
    }

    /// Serves files in reads of random sizes up to `max` bytes, whatever was asked.
    #[derive(Debug)]
    struct Trickle {
        files: MemStorage,
        max: u64,
        seed: u64,
    }

    struct Chunks {
        bytes: Vec<u8>,
        at: usize,
        max: u64,
        rng: SplitMix64,
    }

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (1 + self.rng.below(self.max) as usize).min(buf.len()).min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    impl Storage for Trickle {
        fn list(&self) -> io::Result<Vec<String>> {
            self.files.list()
        }
        fn read(&self, _: &str) -> io::Result<Vec<u8>> {
            panic!("a segment was read whole")
        }
        fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
            let bytes = self.files.read(name)?;
            Ok(Box::new(Chunks { bytes, at: 0, max: self.max, rng: SplitMix64(self.seed) }))
        }
        fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
            self.files.create_new(name)
        }
        fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
            self.files.open_write(name)
        }
        fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
            self.files.truncate(name, len)
        }
        fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            self.files.rename(from, to)
        }
        fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
            self.files.rename_new(from, to)
        }
        fn remove(&self, name: &str) -> io::Result<()> {
            self.files.remove(name)
        }
        fn sync_dir(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// How a read of a one-segment log ended, as comparable values.
    #[derive(Debug, PartialEq, Eq)]
    enum Ending {
        End,
        Torn { offset: u64, bytes: u64 },
        Refused { offset: u64, follows: bool },
    }

    /// The log's records `(lsn, payload, chain)` and how the read ended.
    type ReadOut = (Vec<(Lsn, Vec<u8>, Chain)>, Ending);

    /// Reads `bytes` as the only segment of a log through the reader, served in
    /// reads of at most `max` bytes.
    fn read_through_reader(bytes: &[u8], max: u64, seed: u64) -> ReadOut {
        let storage = Trickle { files: MemStorage::default(), max, seed };
        storage.files.put(&format::segment_name(1), bytes.to_vec());
        let storage: Arc<dyn Storage> = Arc::new(storage);
        let segments = recovery::list_segments(storage.as_ref()).unwrap();
        let mut reader = LogReader::new(storage.as_ref(), segments, Start { index: 0, chain_trusted_through: 0 });
        let mut records = Vec::new();
        loop {
            match reader.step() {
                Ok(Step::Segment { .. } | Step::SegmentEnd { .. }) => {}
                Ok(Step::Record { meta, .. }) => {
                    let rec = reader.view(&meta);
                    records.push((rec.lsn, rec.payload.to_vec(), rec.chain));
                }
                Ok(Step::TornTail(torn)) => return (records, Ending::Torn { offset: torn.offset, bytes: torn.bytes }),
                Ok(Step::End) => return (records, Ending::End),
                Err(Damage::BadRecord { offset, follows, .. }) => {
                    return (records, Ending::Refused { offset, follows });
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The same decisions made over the whole file in memory, as recovery did
    /// before it streamed: the oracle for rows 1, 4-6 and 13 in a last segment.
    fn read_in_memory(bytes: &[u8]) -> ReadOut {
        let mut records = Vec::new();
        let mut at = SEGMENT_HEADER_BYTES;
        while at < bytes.len() {
            match format::read_record(&bytes[at..]) {
                Ok(rec) => {
                    records.push((rec.lsn, rec.payload.to_vec(), rec.chain));
                    at += rec.size;
                }
                Err(_) if bytes[at..].iter().all(|&b| b == 0) => break,
                Err(_) => {
                    let magic = RECORD_MAGIC.to_le_bytes();
                    let follows = (at + 1..bytes.len().saturating_sub(3))
                        .any(|p| bytes[p..p + 4] == magic && format::read_record(&bytes[p..]).is_ok());
                    // A torn tail's bytes: up to the last one that is not zero.
                    let data_end = bytes.iter().rposition(|&b| b != 0).expect("not all zeros") + 1;
                    let ending = if follows {
                        Ending::Refused { offset: at as u64, follows: true }
                    } else {
                        Ending::Torn { offset: at as u64, bytes: (data_end - at) as u64 }
                    };
                    return (records, ending);
                }
            }
        }
        (records, Ending::End)
    }

    #[test]
    fn records_across_every_read_boundary_read_as_from_one_buffer() {
        let bytes = segment(&mixed_records());
        let whole = read_in_memory(&bytes);
        assert_eq!(whole.0.len(), 62);
        assert_eq!(whole.1, Ending::End);
        for (max, seed) in [(1 << 30, 1), (1, 2), (7, 3), (4096, 4), (READ_BYTES as u64 + 3, 5)] {
            // One-byte reads of megabytes take a while; a prefix shows the same.
            let bytes = if max == 1 { &bytes[..400_000] } else { &bytes[..] };
            assert_eq!(read_through_reader(bytes, max, seed), read_in_memory(bytes), "reads of at most {max} bytes");
        }
    }

    #[test]
    fn damage_and_torn_tails_are_judged_as_over_the_whole_file() {
        let pristine = segment(&mixed_records());
        let mut rng = SplitMix64(12);
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for _ in 0..40 {
            // Cut anywhere: a torn tail (or a clean end at a record boundary).
            let cut = SEGMENT_HEADER_BYTES + rng.below((pristine.len() - SEGMENT_HEADER_BYTES) as u64) as usize;
            cases.push(pristine[..cut].to_vec());
            // One byte flipped anywhere: damage, unless it is in the last record.
            let mut flipped = pristine.clone();
            let at = SEGMENT_HEADER_BYTES + rng.below((pristine.len() - SEGMENT_HEADER_BYTES) as u64) as usize;
            flipped[at] ^= 1 << rng.below(8);
            cases.push(flipped);
        }
        // A tail of zeros longer than the window (a preallocated segment's
        // unused end: row 13), and garbage that looks like a record's start
        // but is not one.
        let mut zeros = pristine.clone();
        zeros.extend(std::iter::repeat_n(0, 3 * WINDOW_BYTES));
        cases.push(zeros.clone());
        // Row 13 does not hide what follows a run of zeros: a torn record, a
        // byte of garbage at the very end, a whole record of the log.
        let at_rng = |rng: &mut SplitMix64| pristine.len() + rng.below(3 * WINDOW_BYTES as u64) as usize;
        for _ in 0..6 {
            let mut torn = zeros.clone();
            let at = at_rng(&mut rng);
            let piece = b"LSRE\x05\x00\x00\x00 torn\x00\x00";
            let end = (at + piece.len()).min(torn.len());
            torn[at..end].copy_from_slice(&piece[..end - at]);
            cases.push(torn);
            let mut garbage = zeros.clone();
            *garbage.last_mut().unwrap() = 1;
            cases.push(garbage);
            let mut record_after = zeros.clone();
            let first = format::read_record(&pristine[SEGMENT_HEADER_BYTES..]).unwrap().size;
            let at = at_rng(&mut rng).min(record_after.len() - first);
            record_after[at..at + first].copy_from_slice(&pristine[SEGMENT_HEADER_BYTES..SEGMENT_HEADER_BYTES + first]);
            cases.push(record_after);
            // Cut anywhere, then zeros: a torn write into a preallocated file.
            let cut = SEGMENT_HEADER_BYTES + rng.below((pristine.len() - SEGMENT_HEADER_BYTES) as u64) as usize;
            let mut cut_zeroed = zeros.clone();
            cut_zeroed[cut..pristine.len()].fill(0);
            cases.push(cut_zeroed);
        }
        let mut lookalikes = pristine.clone();
        for _ in 0..2_000 {
            lookalikes.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
            lookalikes.extend_from_slice(&(RECORD_PAYLOAD_BYTES_MAX as u32).to_le_bytes());
            lookalikes.extend_from_slice(&[7; 100]);
        }
        cases.push(lookalikes);
        for (i, bytes) in cases.iter().enumerate() {
            let expected = read_in_memory(bytes);
            for (max, seed) in [(1 << 30, i as u64), (3_000, i as u64 + 100)] {
                assert_eq!(read_through_reader(bytes, max, seed), expected, "case {i}, reads of at most {max} bytes");
            }
        }
    }

    /// Row 5 against row 6 when the valid record is further past the bad one than
    /// the window holds: the look-ahead streams on to find it.
    #[test]
    fn a_valid_record_far_past_a_bad_one_is_found_and_its_absence_is_a_torn_tail() {
        let records: Vec<(u16, Vec<u8>)> = (0..3).map(|i| (90, vec![i; 100])).collect();
        let good = segment(&records);
        let last_record = format::read_record(&good[SEGMENT_HEADER_BYTES..]).unwrap().size;
        let tail_start = good.len();
        let mut bytes = good.clone();
        bytes.extend_from_slice(b"LSRE\x05\x00\x00\x00 torn");
        bytes.extend(std::iter::repeat_n(0xee, 2 * WINDOW_BYTES + 17));
        let torn_len = (bytes.len() - tail_start) as u64;
        assert_eq!(
            read_through_reader(&bytes, 1 << 30, 1).1,
            Ending::Torn { offset: tail_start as u64, bytes: torn_len }
        );
        // A whole record of the log after it: damage, not a torn write. One-byte
        // reads put every byte of it at the edge of what the window holds.
        bytes.extend_from_slice(&good[SEGMENT_HEADER_BYTES..SEGMENT_HEADER_BYTES + last_record]);
        for max in [1 << 30, 5_000, 1] {
            let (read, ending) = read_through_reader(&bytes, max, 2);
            assert_eq!(read.len(), 3);
            assert_eq!(ending, Ending::Refused { offset: tail_start as u64, follows: true });
        }
    }
}
