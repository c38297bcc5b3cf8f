//! A streaming, verifying reader over a data directory's segments: one record in
//! memory at a time (a `BufReader` per segment and one reusable record buffer), so a
//! 10 GB log is read in the same memory as a 10 MB one.
//!
//! It checks what recovery checks — segment headers and their carried chain, every
//! record's crc, dense LSNs, the hash chain — and one more thing: timestamps never
//! go backwards (the writer guarantees it, and time filters rely on it). It opens
//! files read-only and takes no lock, so it runs beside a live engine; a partial
//! record at the very end of the last segment (a write in flight, or a torn write
//! recovery will cut) ends the scan and is reported, not treated as damage.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::event::{Event, Lsn};
use crate::log::format::{
    self, Chain, GENESIS_CHAIN, RECORD_HEADER_BYTES, RECORD_MAGIC, RECORD_PAYLOAD_BYTES_MAX, SEGMENT_HEADER_BYTES,
    SegmentHeader,
};
use crate::log::recovery::list_segments;
use crate::log::storage::{ReadOnlyDir, open_regular_file};

const READ_BUFFER_BYTES: usize = 1 << 20;

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
    pub offset: u64,
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

#[derive(Debug)]
struct SegmentFile {
    first_lsn: Lsn,
    path: String,
    len: u64,
}

#[derive(Debug)]
struct OpenSegment {
    file: BufReader<File>,
    offset: u64,
    last: bool,
}

/// Reads records in LSN order, verifying as it goes.
#[derive(Debug)]
pub struct Reader {
    segments: Vec<SegmentFile>,
    next_segment: usize,
    current: Option<OpenSegment>,
    expected_lsn: Lsn,
    chain: Chain,
    last_ts_ms: i64,
    buf: Vec<u8>,
    bytes_before: u64,
    total_bytes: u64,
    segments_read: u64,
    torn_tail: Option<TornTail>,
    /// The first segment's header chain is taken on trust (a read that starts
    /// mid-log); later ones must carry the chain the reader computed.
    trust_first_header: bool,
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
        let names = list_segments(&ReadOnlyDir::new(dir)).map_err(|e| ReadError::Io {
            file: dir.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if names.is_empty() {
            return Err(ReadError::NoLog { dir: dir.to_path_buf() });
        }
        let mut segments = Vec::with_capacity(names.len());
        for (first_lsn, name) in names {
            let path = dir.join(&name);
            let len = std::fs::metadata(&path)
                .map_err(|source| ReadError::Io { file: path.display().to_string(), source })?
                .len();
            segments.push(SegmentFile { first_lsn, path: path.display().to_string(), len });
        }
        let start = if lsn <= 1 { 0 } else { segments.iter().rposition(|s| s.first_lsn <= lsn).unwrap_or(0) };
        let bytes_before = segments[..start].iter().map(|s| s.len).sum();
        let total_bytes = segments.iter().map(|s| s.len).sum();
        Ok(Reader {
            expected_lsn: if start == 0 { 1 } else { segments[start].first_lsn },
            next_segment: start,
            segments,
            current: None,
            chain: GENESIS_CHAIN,
            last_ts_ms: i64::MIN,
            buf: Vec::with_capacity(4096),
            bytes_before,
            total_bytes,
            segments_read: 0,
            torn_tail: None,
            trust_first_header: start > 0,
        })
    }

    /// Bytes of the segment files as listed when the reader opened.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Bytes read so far (for progress).
    pub fn bytes_done(&self) -> u64 {
        self.bytes_before + self.current.as_ref().map_or(0, |c| c.offset)
    }

    pub fn segments_read(&self) -> u64 {
        self.segments_read
    }

    /// The chain after the last record returned.
    pub fn chain(&self) -> Chain {
        self.chain
    }

    /// The LSN the next record must have.
    pub fn next_lsn(&self) -> Lsn {
        self.expected_lsn
    }

    pub fn last_ts_ms(&self) -> i64 {
        self.last_ts_ms
    }

    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn_tail.as_ref()
    }

    fn damaged(&self, seg: usize, offset: u64, lsn: Lsn, what: String) -> ReadError {
        ReadError::Damaged { file: self.segments[seg].path.clone(), offset, lsn, what }
    }

    fn io(&self, seg: usize) -> impl FnOnce(std::io::Error) -> ReadError + use<> {
        let file = self.segments[seg].path.clone();
        move |source| ReadError::Io { file, source }
    }

    /// Opens the next segment; `false` when there is none (or the last one is a
    /// torn creation).
    fn open_next_segment(&mut self) -> Result<bool, ReadError> {
        let seg = self.next_segment;
        let Some(info) = self.segments.get(seg) else { return Ok(false) };
        let last = seg + 1 == self.segments.len();
        let mut file = BufReader::with_capacity(
            READ_BUFFER_BYTES,
            open_regular_file(Path::new(&info.path)).map_err(self.io(seg))?,
        );
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        let got = read_up_to(&mut file, &mut header).map_err(self.io(seg))?;
        let decoded = SegmentHeader::decode(&header[..got]);
        let header = match decoded {
            Ok(h) => h,
            Err(problem) => {
                let torn_creation = last
                    && info.len <= SEGMENT_HEADER_BYTES as u64
                    && (got < SEGMENT_HEADER_BYTES || header.iter().all(|&b| b == 0));
                if torn_creation && info.first_lsn == self.expected_lsn {
                    self.torn_tail = Some(TornTail { file: info.path.clone(), offset: 0, bytes: got as u64 });
                    self.next_segment += 1;
                    return Ok(false);
                }
                return Err(self.damaged(seg, 0, self.expected_lsn, format!("bad segment header ({problem:?})")));
            }
        };
        if header.first_lsn != info.first_lsn {
            return Err(self.damaged(
                seg,
                0,
                self.expected_lsn,
                format!(
                    "the header says the segment starts at LSN {} but its file name says {}: segment files were \
                     renamed or swapped",
                    header.first_lsn, info.first_lsn
                ),
            ));
        }
        if header.first_lsn != self.expected_lsn {
            let what = if seg == 0 {
                format!(
                    "the first segment starts at LSN {} instead of 1: earlier segments are missing",
                    header.first_lsn
                )
            } else {
                format!(
                    "the segment starts at LSN {} but {} ends at LSN {}: records {}..={} are missing (a segment was \
                     truncated or removed)",
                    header.first_lsn,
                    self.segments[seg - 1].path,
                    self.expected_lsn - 1,
                    self.expected_lsn,
                    header.first_lsn.saturating_sub(1)
                )
            };
            return Err(self.damaged(seg, 0, self.expected_lsn, what));
        }
        if self.trust_first_header && self.segments_read == 0 {
            self.chain = header.prev_chain;
        } else if header.prev_chain != self.chain {
            return Err(self.damaged(
                seg,
                0,
                self.expected_lsn,
                "the segment header does not carry the previous segment's chain: segments were reordered, replaced \
                 or rewritten"
                    .into(),
            ));
        }
        self.current = Some(OpenSegment { file, offset: SEGMENT_HEADER_BYTES as u64, last });
        self.next_segment += 1;
        self.segments_read += 1;
        Ok(true)
    }

    /// The next verified record, or `None` at the end of the log.
    pub fn next_record(&mut self) -> Result<Option<Rec<'_>>, ReadError> {
        loop {
            if self.current.is_none() && !self.open_next_segment()? {
                return Ok(None);
            }
            let seg = self.next_segment - 1;
            let path = &self.segments[seg].path;
            let io = |source| ReadError::Io { file: path.clone(), source };
            let cur = self.current.as_mut().expect("a segment is open");
            let offset = cur.offset;
            self.buf.resize(RECORD_HEADER_BYTES, 0);
            let got = read_up_to(&mut cur.file, &mut self.buf[..RECORD_HEADER_BYTES]).map_err(io)?;
            if got == 0 {
                // A clean end of the segment.
                self.bytes_before += self.segments[seg].len.max(offset);
                self.current = None;
                continue;
            }
            let problem = if got < RECORD_HEADER_BYTES {
                Some("record header cut short".to_string())
            } else {
                let magic = u32::from_le_bytes(self.buf[0..4].try_into().expect("4 bytes"));
                let len = u32::from_le_bytes(self.buf[4..8].try_into().expect("4 bytes")) as usize;
                if magic != RECORD_MAGIC {
                    Some("bad record magic".to_string())
                } else if len > RECORD_PAYLOAD_BYTES_MAX {
                    Some(format!("record length {len} over the limit"))
                } else {
                    let rest = len + format::CHAIN_BYTES;
                    self.buf.resize(RECORD_HEADER_BYTES + rest, 0);
                    let got = read_up_to(&mut cur.file, &mut self.buf[RECORD_HEADER_BYTES..]).map_err(io)?;
                    if got < rest { Some("record cut short".to_string()) } else { None }
                }
            };
            let parsed = match problem {
                Some(p) => Err(p),
                None => format::read_record(&self.buf)
                    .map(|r| (r.lsn, r.ts_ms, r.kind, r.chain, r.size, r.payload.len()))
                    .map_err(|p| p.describe().to_string()),
            };
            let (lsn, ts_ms, kind, chain, size, len) = match parsed {
                Ok(fields) => fields,
                Err(what) => return self.bad_record(seg, offset, what).map(|()| None),
            };
            let payload = &self.buf[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len];
            if lsn != self.expected_lsn {
                return Err(self.damaged(
                    seg,
                    offset,
                    self.expected_lsn,
                    format!(
                        "the record has LSN {lsn} where LSN {} belongs: records were removed or reordered",
                        self.expected_lsn
                    ),
                ));
            }
            if format::chain_next(&self.chain, lsn, ts_ms, kind, payload) != chain {
                return Err(self.damaged(
                    seg,
                    offset,
                    lsn,
                    "hash chain broken: this record or one before it was edited, removed or reordered".into(),
                ));
            }
            if ts_ms < self.last_ts_ms {
                return Err(self.damaged(
                    seg,
                    offset,
                    lsn,
                    format!("timestamp {ts_ms} is earlier than the previous record's {}", self.last_ts_ms),
                ));
            }
            self.chain = chain;
            self.last_ts_ms = ts_ms;
            self.expected_lsn += 1;
            self.current.as_mut().expect("a segment is open").offset += size as u64;
            return Ok(Some(Rec { file: &self.segments[seg].path, offset, lsn, ts_ms, kind, payload, chain }));
        }
    }

    /// A record that does not read: a torn tail at the very end of the last
    /// segment (`Ok`, the scan ends), damage anywhere else.
    fn bad_record(&mut self, seg: usize, offset: u64, what: String) -> Result<(), ReadError> {
        let last = self.current.as_ref().is_some_and(|c| c.last);
        if !last {
            return Err(self.damaged(seg, offset, self.expected_lsn, format!("{what} in a sealed segment")));
        }
        let mut rest = Vec::new();
        let mut file = open_regular_file(Path::new(&self.segments[seg].path)).map_err(self.io(seg))?;
        file.seek(SeekFrom::Start(offset)).map_err(self.io(seg))?;
        file.read_to_end(&mut rest).map_err(self.io(seg))?;
        if valid_record_after(&rest) {
            return Err(self.damaged(
                seg,
                offset,
                self.expected_lsn,
                format!("{what}; valid records follow it, so this is damage, not a torn write"),
            ));
        }
        self.torn_tail = Some(TornTail { file: self.segments[seg].path.clone(), offset, bytes: rest.len() as u64 });
        self.bytes_before += offset;
        self.current = None;
        self.next_segment = self.segments.len();
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Is there a whole valid record at any offset after the first byte of `bytes`?
fn valid_record_after(bytes: &[u8]) -> bool {
    let magic = RECORD_MAGIC.to_le_bytes();
    (1..bytes.len().saturating_sub(3)).any(|at| bytes[at..at + 4] == magic && format::read_record(&bytes[at..]).is_ok())
}
