//! The auditor's streaming, verifying reader over a data directory's segments. It
//! is the log's one reader (`log/reader.rs`, which the engine's recovery
//! reads through too), so it checks what recovery checks — segment headers and
//! their carried chain, every record's crc, dense LSNs, the hash chain — in the
//! same bounded memory (a 10 GB log is read in the same memory as a 10 MB one),
//! and one more thing: timestamps never go backwards (the writer guarantees it,
//! and time filters rely on it). It opens files read-only and takes no lock, so
//! it runs beside a live engine; a partial record at the very end of the last
//! segment (a write in flight, or a torn write recovery will cut) ends the scan
//! and is reported, not treated as damage, as recovery's table decides.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::event::{Event, Lsn};
use crate::fold;
use crate::log::format::{Chain, RecordProblem, RecordView};
use crate::log::reader::{Damage, LogReader, RecordMeta, Start, Step};
use crate::log::recovery::{Located, list_segments};
use crate::log::storage::{ReadOnlyDir, Storage};

/// Why reading the log stopped. Every variant that concerns a record names the
/// file, the byte offset in it and the LSN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("{dir} holds no log segments (<first LSN>.log): pass the data directory of a lessor engine (-d DIR)")]
    NoLog { dir: PathBuf },
    #[error("cannot read {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("log damaged in {file} at byte {offset} (LSN {lsn}): {what}")]
    Damaged { file: String, offset: u64, lsn: Lsn, what: String },
    #[error("{file} at byte {offset} (LSN {lsn}): cannot decode the event: {what}")]
    Undecodable { file: String, offset: u64, lsn: Lsn, what: String },
}

/// A partial or damaged record at the end of the last segment with nothing valid
/// after it: a write in flight, or a torn write the next open will cut.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TornTail {
    pub file: String,
    /// Where the log's data ends.
    pub offset: u64,
    /// Bytes after `offset` up to the last byte that is not zero (the zeros a
    /// preallocated segment ends in are not counted).
    pub bytes: u64,
}

/// One verified record, borrowed from the reader until the next call.
#[derive(Debug)]
pub struct Rec<'a> {
    pub file: &'a str,
    pub offset: u64,
    pub lsn: Lsn,
    pub ts_ms: i64,
    pub kind: u16,
    pub payload: &'a [u8],
    pub chain: Chain,
}

impl Rec<'_> {
    pub fn decode(&self) -> Result<Event, ReadError> {
        Event::decode(self.kind, self.payload).map_err(|e| ReadError::Undecodable {
            file: self.file.to_string(),
            offset: self.offset,
            lsn: self.lsn,
            what: e.to_string(),
        })
    }
}

/// Reads records in LSN order, verifying as it goes: the log's one reader
/// (`log/reader.rs`), which recovery reads through too, plus the check
/// that timestamps never go backwards.
#[derive(Debug)]
pub struct Reader {
    log: LogReader<Box<dyn Storage>>,
    /// Each segment's path, as errors and records name it.
    paths: Vec<String>,
    /// Each segment's length when the reader opened (for progress).
    lens: Vec<u64>,
    /// The segment being read.
    current: Option<usize>,
    last_ts_ms: i64,
    bytes_before: u64,
    /// Bytes of data (headers and whole records) in the segments read whole.
    data_before: u64,
    total_bytes: u64,
    segments_read: u64,
    torn_tail: Option<TornTail>,
}

impl Reader {
    /// A reader from LSN 1, verifying the chain from genesis.
    pub fn open(dir: &Path) -> Result<Reader, ReadError> {
        Reader::open_from(dir, 1)
    }

    /// A reader that starts in the segment holding `lsn` (records before `lsn` in
    /// that segment are still returned). From any LSN but 1 the chain is verified
    /// from that segment's header on, which is taken on trust.
    pub fn open_from(dir: &Path, lsn: Lsn) -> Result<Reader, ReadError> {
        let storage = ReadOnlyDir::new(dir);
        let names = list_segments(&storage).map_err(|e| ReadError::Io {
            file: dir.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if names.is_empty() {
            return Err(ReadError::NoLog { dir: dir.to_path_buf() });
        }
        let mut paths = Vec::with_capacity(names.len());
        let mut lens = Vec::with_capacity(names.len());
        for (_, name) in &names {
            let path = dir.join(name);
            let len = std::fs::metadata(&path)
                .map_err(|source| ReadError::Io { file: path.display().to_string(), source })?
                .len();
            paths.push(path.display().to_string());
            lens.push(len);
        }
        let start = if lsn <= 1 { 0 } else { names.iter().rposition(|&(first, _)| first <= lsn).unwrap_or(0) };
        let bytes_before = lens[..start].iter().sum();
        let total_bytes = lens.iter().sum();
        // Auditors trust no chain: every record's is recomputed.
        let log = LogReader::new(
            Box::new(storage) as Box<dyn Storage>,
            names,
            Start { index: start, chain_trusted_through: 0 },
        );
        Ok(Reader::new(log, paths, lens, bytes_before, total_bytes))
    }

    fn new(
        log: LogReader<Box<dyn Storage>>,
        paths: Vec<String>,
        lens: Vec<u64>,
        bytes_before: u64,
        total_bytes: u64,
    ) -> Reader {
        Reader {
            log,
            paths,
            lens,
            current: None,
            last_ts_ms: i64::MIN,
            bytes_before,
            data_before: 0,
            total_bytes,
            segments_read: 0,
            torn_tail: None,
        }
    }

    /// A reader from LSN 1 over any [`Storage`] — the log in PostgreSQL read
    /// without its stream's ownership — named `label` in errors and records.
    /// Nothing is known of its size ahead (progress counts no total).
    pub fn open_storage(storage: Box<dyn Storage>, label: &str) -> Result<Reader, ReadError> {
        let names = list_segments(storage.as_ref())
            .map_err(|e| ReadError::Io { file: label.to_string(), source: std::io::Error::other(e.to_string()) })?;
        if names.is_empty() {
            return Err(ReadError::NoLog { dir: label.into() });
        }
        let paths = names.iter().map(|(_, name)| format!("{label}/{name}")).collect();
        let lens = vec![0; names.len()];
        let log = LogReader::new(storage, names, Start { index: 0, chain_trusted_through: 0 });
        Ok(Reader::new(log, paths, lens, 0, 0))
    }

    /// Bytes of the segment files as listed when the reader opened.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Bytes read so far (for progress): whole files, with the zeros a
    /// preallocated segment ends in.
    pub fn bytes_done(&self) -> u64 {
        self.bytes_before + self.current.map_or(0, |_| self.log.position())
    }

    /// Bytes of log data read so far: segment headers and whole records, not
    /// the zeros after them in a segment allocated ahead (so a log reports the
    /// same whether or not its segments were preallocated).
    pub fn data_bytes(&self) -> u64 {
        self.data_before + self.current.map_or(0, |_| self.log.position())
    }

    pub fn segments_read(&self) -> u64 {
        self.segments_read
    }

    /// The chain after the last record returned.
    pub fn chain(&self) -> Chain {
        self.log.chain()
    }

    /// The LSN the next record must have.
    pub fn next_lsn(&self) -> Lsn {
        self.log.next_lsn()
    }

    pub fn last_ts_ms(&self) -> i64 {
        self.last_ts_ms
    }

    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    /// The next verified record, or `None` at the end of the log.
    pub fn next_record(&mut self) -> Result<Option<Rec<'_>>, ReadError> {
        let Some((index, offset, meta)) = self.advance()? else { return Ok(None) };
        let rec = self.log.view(&meta);
        let (lsn, ts_ms, kind, payload, chain) = (rec.lsn, rec.ts_ms, rec.kind, rec.payload, rec.chain);
        Ok(Some(Rec { file: &self.paths[index], offset, lsn, ts_ms, kind, payload, chain }))
    }

    /// Steps the log's reader to its next record. A partial or damaged record at
    /// the very end of the last segment with nothing valid after it ends the scan
    /// as a torn tail (reported, not damage: a write in flight, or a torn write
    /// the next open cuts).
    fn advance(&mut self) -> Result<Option<(usize, u64, RecordMeta)>, ReadError> {
        loop {
            match self.log.step().map_err(|damage| self.damaged(damage))? {
                Step::Segment { index, .. } => {
                    self.current = Some(index);
                    self.segments_read += 1;
                }
                Step::Record { index, offset, meta } => {
                    if meta.ts_ms < self.last_ts_ms {
                        return Err(ReadError::Damaged {
                            file: self.paths[index].clone(),
                            offset,
                            lsn: meta.lsn,
                            what: format!(
                                "timestamp {} is earlier than the previous record's {}",
                                meta.ts_ms, self.last_ts_ms
                            ),
                        });
                    }
                    self.last_ts_ms = meta.ts_ms;
                    return Ok(Some((index, offset, meta)));
                }
                Step::SegmentEnd { index, len } => {
                    self.bytes_before += self.lens[index].max(len);
                    self.data_before += len;
                    self.current = None;
                }
                Step::TornTail(torn) => {
                    self.torn_tail =
                        Some(TornTail { file: self.paths[torn.index].clone(), offset: torn.offset, bytes: torn.bytes });
                    if !torn.remove_segment {
                        self.bytes_before += torn.offset;
                        self.data_before += torn.offset;
                    }
                    self.current = None;
                    return Ok(None);
                }
                Step::End => return Ok(None),
            }
        }
    }

    /// The reader's facts in an auditor's words.
    fn damaged(&self, damage: Damage) -> ReadError {
        let at = |index: usize, offset: u64, lsn: Lsn, what: String| ReadError::Damaged {
            file: self.paths[index].clone(),
            offset,
            lsn,
            what,
        };
        match damage {
            Damage::Io { index, source } => ReadError::Io { file: self.paths[index].clone(), source },
            Damage::BadHeader { index, problem, expected_lsn, .. } => {
                at(index, 0, expected_lsn, format!("bad segment header ({problem:?})"))
            }
            Damage::NameMismatch { index, header_lsn, name_lsn, expected_lsn } => at(
                index,
                0,
                expected_lsn,
                format!(
                    "the header says the segment starts at LSN {header_lsn} but its file name says {name_lsn}: \
                     segment files were renamed or swapped"
                ),
            ),
            Damage::Gap { index: 0, first_lsn, expected_lsn } => at(
                0,
                0,
                expected_lsn,
                format!("the first segment starts at LSN {first_lsn} instead of 1: earlier segments are missing"),
            ),
            Damage::Gap { index, first_lsn, expected_lsn } => at(
                index,
                0,
                expected_lsn,
                format!(
                    "the segment starts at LSN {first_lsn} but {} ends at LSN {}: records {expected_lsn}..={} are \
                     missing (a segment was truncated or removed)",
                    self.paths[index - 1],
                    expected_lsn - 1,
                    first_lsn.saturating_sub(1)
                ),
            ),
            Damage::ChainNotCarried { index, expected_lsn } => at(
                index,
                0,
                expected_lsn,
                "the segment header does not carry the previous segment's chain: segments were reordered, replaced \
                 or rewritten"
                    .into(),
            ),
            Damage::LsnOutOfOrder { index, offset, lsn, expected_lsn } => at(
                index,
                offset,
                expected_lsn,
                format!("the record has LSN {lsn} where LSN {expected_lsn} belongs: records were removed or reordered"),
            ),
            Damage::ChainBroken { index, offset, lsn } => at(
                index,
                offset,
                lsn,
                "hash chain broken: this record or one before it was edited, removed or reordered".into(),
            ),
            Damage::BadRecord { index, offset, expected_lsn, bad, last, .. } => {
                let what = match bad.problem {
                    RecordProblem::Short if bad.header_short => "record header cut short".to_string(),
                    RecordProblem::LenTooLarge => {
                        format!("record length {} over the limit", bad.len.expect("a length was read"))
                    }
                    problem => problem.describe().to_string(),
                };
                // In the last segment, a bad record is refused only when valid
                // records follow it (else it is a torn tail).
                let what = if last {
                    format!("{what}; valid records follow it, so this is damage, not a torn write")
                } else {
                    format!("{what} in a sealed segment")
                };
                at(index, offset, expected_lsn, what)
            }
        }
    }
}

impl fold::Records for Reader {
    type Error = ReadError;

    fn each<V>(&mut self, mut visit: V) -> Result<(), ReadError>
    where
        V: FnMut(&Self, Located<'_>, &RecordView<'_>) -> ControlFlow<()>,
    {
        while let Some((index, offset, meta)) = self.advance()? {
            let rec = self.log.view(&meta);
            if visit(self, Located { file: &self.paths[index], offset }, &rec).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn undecodable(at: Located<'_>, lsn: Lsn, what: String) -> ReadError {
        ReadError::Undecodable { file: at.file.to_string(), offset: at.offset, lsn, what }
    }
}
