//! The log in PostgreSQL as a [`Storage`] (`docs/DESIGN.md` §11): the engine's
//! log machinery — group commit, proofs, checkpoints, the recovery scan, every
//! audit reader — runs over it unchanged.
//!
//! A stream is one virtual segment, `00000000000000000001.log`: a synthesized
//! header (format 2, first LSN 1, the genesis chain) followed by the stream's
//! rows, framed byte for byte as the file format frames a record, with the crc
//! and chain *as stored* — so a row edited in the database fails the reader's
//! crc or chain check exactly as an edited file would. Reading streams rows a
//! chunk at a time. Writing: the writer's `write_all_at` at the segment's end
//! buffers a batch's framed bytes, and its `sync_data` parses them back into
//! rows and runs the fenced append ([`super::stream::append`]) — the commit is
//! the fsync. A new segment's temporary file (`spare-<n>.tmp`) lives in memory;
//! `allocate` does nothing; a truncation below what is committed and a second
//! segment are refused (the log is append-only and has no seals). Every other
//! file (snapshots and their temporary files) goes to `cache`, a local
//! directory, as snapshots are caches.
//!
//! The database is reached from a thread of this storage's own (a
//! current-thread runtime holding the connection), so the `Storage` calls, which
//! are blocking, may come from any thread. With an owner, that thread also
//! renews the stream's lease; once a renewal fails, or the lease's local
//! deadline (its monotonic clock, a margin inside the database's) has passed
//! without one, every append is refused: a fenced engine acknowledges nothing.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::connect::connect;
use super::stream::{self, RecordRow, StreamError};
use crate::log::format::{
    self, FORMAT_VERSION, GENESIS_CHAIN, RECORD_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES, SegmentHeader,
};
use crate::log::storage::{Allocation, Storage, StorageFile};

/// The one segment a stream is.
const SEGMENT_FIRST_LSN: u64 = 1;
/// Rows fetched per read while streaming the segment.
const READ_ROWS_PER_FETCH: usize = 1024;
/// A stream's segment never fills: the writer must never seal it.
pub const PG_SEGMENT_BYTES_MAX: u64 = 1 << 62;

/// Who appends, and how the lease is kept.
#[derive(Clone, Debug)]
pub struct Ownership {
    /// This run's owner id: unique per process run (`<host>/<pid>/<random>`).
    pub owner: String,
    /// Where this engine serves, for "standby; active is X".
    pub api_addr: String,
    pub lease: Duration,
    pub renew_every: Duration,
}

impl Ownership {
    /// The defaults: a 15 s lease renewed every 5 s.
    pub fn new(owner: impl Into<String>) -> Ownership {
        Ownership {
            owner: owner.into(),
            api_addr: String::new(),
            lease: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

enum Job {
    ReadAfter { after: u64, limit: usize, reply: std::sync::mpsc::SyncSender<Result<Vec<RecordRow>, StreamError>> },
    Append { rows: Vec<RecordRow>, reply: std::sync::mpsc::SyncSender<Result<(), StreamError>> },
    Size { reply: std::sync::mpsc::SyncSender<Result<(u64, u64), StreamError>> },
    Release { reply: std::sync::mpsc::SyncSender<()> },
}

/// How long a drop waits for the stream's release to reach the database.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The fence as this process sees it.
#[derive(Debug)]
struct Fence {
    epoch: i64,
    /// Set once a renewal failed: nothing more is appended.
    lost: AtomicBool,
    /// The lease's end on this process's monotonic clock: the instant the last
    /// successful renewal was *sent*, plus the lease, less a margin.
    deadline: Mutex<Instant>,
    why: Mutex<String>,
}

impl Fence {
    fn check(&self) -> io::Result<()> {
        let lapsed = Instant::now() >= *self.deadline.lock().expect("fence lock");
        if self.lost.load(Ordering::Acquire) || lapsed {
            let why = self.why.lock().expect("fence lock").clone();
            let why = if why.is_empty() { "the stream's lease lapsed before it could be renewed".into() } else { why };
            return Err(io::Error::other(format!("fenced: {why}; this engine acknowledges nothing more")));
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Segment {
    /// The stream has its segment: rows, or a header the writer just made.
    exists: bool,
    /// Bytes of the segment committed: the header and every row, framed.
    committed_len: u64,
    /// Framed bytes written past `committed_len`, not yet synced (the batch).
    pending: Vec<u8>,
}

/// The log in PostgreSQL, as a [`Storage`]. See the module's documentation.
pub struct PgStorage {
    stream: String,
    jobs: mpsc::UnboundedSender<Job>,
    fence: Option<Arc<Fence>>,
    segment: Arc<Mutex<Segment>>,
    /// `spare-<n>.tmp` files, in memory.
    spares: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    /// The spare that became the segment (its handle now writes the segment).
    renamed: Arc<Mutex<Option<String>>>,
    cache: Arc<dyn Storage>,
}

impl std::fmt::Debug for PgStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStorage").field("stream", &self.stream).field("owner", &self.fence.is_some()).finish()
    }
}

/// Why the log in PostgreSQL could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgOpenError {
    #[error("{0}")]
    Connect(String),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("cannot start the log's database thread: {0}")]
    Thread(io::Error),
}

impl PgStorage {
    /// Opens `stream` in the database `url` names. With `ownership`, claims the
    /// stream first (a live owner elsewhere: [`StreamError::Held`]) and keeps
    /// its lease; without, the storage only reads (forensics, a standby).
    /// `cache` holds the snapshots.
    pub fn open(
        url: &str,
        stream: &str,
        ownership: Option<Ownership>,
        cache: Arc<dyn Storage>,
    ) -> Result<PgStorage, PgOpenError> {
        let (jobs, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (url, stream_name) = (url.to_string(), stream.to_string());
        let application_name = match &ownership {
            Some(o) => format!("lessor/{}", o.owner),
            None => "lessor/reader".to_string(),
        };
        std::thread::Builder::new()
            .name("lessor-log-pg".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(PgOpenError::Thread(e)));
                        return;
                    }
                };
                runtime.block_on(serve(url, stream_name, application_name, ownership, rx, ready_tx));
            })
            .map_err(PgOpenError::Thread)?;
        let fence = ready_rx.recv().map_err(|_| PgOpenError::Connect("the log's database thread ended".into()))??;
        let storage = PgStorage {
            stream: stream.to_string(),
            jobs,
            fence,
            segment: Arc::default(),
            spares: Arc::default(),
            renamed: Arc::default(),
            cache,
        };
        let (rows, payload_bytes) = storage.size()?;
        let mut segment = storage.segment.lock().expect("segment lock");
        segment.exists = rows > 0;
        segment.committed_len = SEGMENT_HEADER_BYTES as u64 + rows * RECORD_OVERHEAD_BYTES as u64 + payload_bytes;
        drop(segment);
        Ok(storage)
    }

    fn call<T>(&self, make: impl FnOnce(std::sync::mpsc::SyncSender<T>) -> Job) -> io::Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.jobs.send(make(tx)).map_err(|_| io::Error::other("the log's database thread has stopped"))?;
        rx.recv().map_err(|_| io::Error::other("the log's database thread has stopped"))
    }

    fn size(&self) -> Result<(u64, u64), PgOpenError> {
        self.call(|reply| Job::Size { reply })
            .map_err(|e| PgOpenError::Connect(e.to_string()))?
            .map_err(PgOpenError::Stream)
    }

    fn segment_name() -> String {
        format::segment_name(SEGMENT_FIRST_LSN)
    }

    fn is_spare(name: &str) -> bool {
        name.starts_with("spare-") && name.ends_with(".tmp")
    }

    fn segment_file(&self) -> SegmentFile {
        SegmentFile { jobs: self.jobs.clone(), fence: self.fence.clone(), segment: self.segment.clone() }
    }

    fn spare_file(&self, name: &str) -> SpareFile {
        SpareFile {
            name: name.to_string(),
            spares: self.spares.clone(),
            renamed: self.renamed.clone(),
            segment: self.segment_file(),
        }
    }

    fn header() -> [u8; SEGMENT_HEADER_BYTES] {
        SegmentHeader { version: FORMAT_VERSION, first_lsn: SEGMENT_FIRST_LSN, prev_chain: GENESIS_CHAIN }.encode()
    }
}

impl Drop for PgStorage {
    fn drop(&mut self) {
        // A clean close gives the stream up, so a standby takes it at once;
        // waited for (bounded), so the next owner finds it released.
        let (reply, done) = std::sync::mpsc::sync_channel(1);
        if self.jobs.send(Job::Release { reply }).is_ok() {
            let _ = done.recv_timeout(RELEASE_WAIT);
        }
    }
}

/// The database thread: connects, claims the stream if it is to own it, then
/// answers jobs and renews the lease until the storage is dropped.
async fn serve(
    url: String,
    stream_name: String,
    application_name: String,
    ownership: Option<Ownership>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    ready: std::sync::mpsc::SyncSender<Result<Option<Arc<Fence>>, PgOpenError>>,
) {
    let mut client = match connect(&url, &application_name).await {
        Ok(client) => client,
        Err(e) => {
            let _ = ready.send(Err(PgOpenError::Connect(e)));
            return;
        }
    };
    let fence = match &ownership {
        None => None,
        Some(o) => {
            let sent = Instant::now();
            match stream::claim(&client, &stream_name, &o.owner, &o.api_addr, o.lease).await {
                Ok(epoch) => Some(Arc::new(Fence {
                    epoch,
                    lost: AtomicBool::new(false),
                    deadline: Mutex::new(sent + local_lease(o.lease)),
                    why: Mutex::new(String::new()),
                })),
                Err(e) => {
                    let _ = ready.send(Err(PgOpenError::Stream(e)));
                    return;
                }
            }
        }
    };
    let _ = ready.send(Ok(fence.clone()));
    let renew_every = ownership.as_ref().map_or(Duration::from_secs(3600), |o| o.renew_every);
    let mut ticks = tokio::time::interval(renew_every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                match job {
                    Job::ReadAfter { after, limit, reply } => {
                        let _ = reply.send(stream::read_after(&client, &stream_name, after, limit).await);
                    }
                    Job::Append { rows, reply } => {
                        let (Some(o), Some(f)) = (&ownership, &fence) else {
                            let _ = reply.send(Err(StreamError::Invalid {
                                stream: stream_name.clone(),
                                reason: "opened for reading only".into(),
                            }));
                            continue;
                        };
                        let result = stream::append(&mut client, &stream_name, &o.owner, f.epoch, &rows).await;
                        match &result {
                            Err(StreamError::Fenced { .. }) => f.lost.store(true, Ordering::Release),
                            // The connection is gone: whether the batch committed is
                            // unknown, so this storage writes nothing more (a host
                            // opens the engine again, which reads what is there).
                            Err(e) if client.is_closed() => {
                                *f.why.lock().expect("fence lock") = format!("the log's connection was lost ({e})");
                                f.lost.store(true, Ordering::Release);
                            }
                            _ => {}
                        }
                        let _ = reply.send(result);
                    }
                    Job::Size { reply } => {
                        let size = client
                            .query_one(
                                "SELECT count(*), coalesce(sum(length(payload)), 0)::bigint FROM lessor_log WHERE stream = $1",
                                &[&stream_name],
                            )
                            .await
                            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
                            .map_err(|e| StreamError::Database(super::connect::error_text(e)));
                        let _ = reply.send(size);
                    }
                    Job::Release { reply } => {
                        if let (Some(o), Some(f)) = (&ownership, &fence) {
                            let _ = stream::release(&client, &stream_name, &o.owner, f.epoch).await;
                        }
                        let _ = reply.send(());
                        break;
                    }
                }
            }
            _ = ticks.tick(), if fence.is_some() => {
                let (Some(o), Some(f)) = (&ownership, &fence) else { continue };
                if f.lost.load(Ordering::Acquire) {
                    continue;
                }
                let sent = Instant::now();
                match stream::renew(&client, &stream_name, &o.owner, f.epoch, o.lease).await {
                    Ok(()) => *f.deadline.lock().expect("fence lock") = sent + local_lease(o.lease),
                    Err(e) => {
                        tracing::error!(stream = %stream_name, error = %e, "the log's stream lease is lost");
                        *f.why.lock().expect("fence lock") = e.to_string();
                        f.lost.store(true, Ordering::Release);
                    }
                }
            }
        }
    }
}

/// The lease as this process counts it: a tenth (at least 50 ms) less than
/// the database's, so this engine stops acknowledging before a standby may
/// judge the lease lapsed, whatever the two clocks' rates.
fn local_lease(lease: Duration) -> Duration {
    lease.saturating_sub((lease / 10).max(Duration::from_millis(50)))
}

/// The virtual segment, streamed: the header, then every row framed.
struct SegmentReader {
    jobs: mpsc::UnboundedSender<Job>,
    buf: Vec<u8>,
    at: usize,
    next_lsn: u64,
    done: bool,
}

impl Read for SegmentReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() && !self.done {
            self.buf.clear();
            self.at = 0;
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let after = self.next_lsn - 1;
            self.jobs
                .send(Job::ReadAfter { after, limit: READ_ROWS_PER_FETCH, reply: tx })
                .map_err(|_| io::Error::other("the log's database thread has stopped"))?;
            let rows = rx
                .recv()
                .map_err(|_| io::Error::other("the log's database thread has stopped"))?
                .map_err(io::Error::other)?;
            self.done = rows.len() < READ_ROWS_PER_FETCH;
            for row in &rows {
                frame_stored(&mut self.buf, row);
            }
            if let Some(last) = rows.last() {
                self.next_lsn = last.lsn + 1;
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A row framed as the file format frames a record, its crc and chain as stored
/// (not recomputed: the reader checks them).
fn frame_stored(out: &mut Vec<u8>, row: &RecordRow) {
    out.extend_from_slice(&format::RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&(row.payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&row.crc.to_le_bytes());
    out.extend_from_slice(&row.lsn.to_le_bytes());
    out.extend_from_slice(&row.ts_ms.to_le_bytes());
    out.extend_from_slice(&row.kind.to_le_bytes());
    out.extend_from_slice(&row.payload);
    out.extend_from_slice(&row.chain);
}

/// The writer's framed bytes back into rows; each must be a whole, valid record.
fn rows_of(mut bytes: &[u8]) -> io::Result<Vec<RecordRow>> {
    let mut rows = Vec::new();
    while !bytes.is_empty() {
        let view = format::read_record(bytes)
            .map_err(|p| io::Error::other(format!("a batch for the log in PostgreSQL holds a bad record: {p:?}")))?;
        let crc = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        rows.push(RecordRow {
            lsn: view.lsn,
            ts_ms: view.ts_ms,
            kind: view.kind,
            payload: view.payload.to_vec(),
            chain: view.chain,
            crc,
        });
        bytes = &bytes[view.size..];
    }
    Ok(rows)
}

fn append_only(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("the log in PostgreSQL is append-only: {what} refused"))
}

#[derive(Debug)]
struct SegmentFile {
    jobs: mpsc::UnboundedSender<Job>,
    fence: Option<Arc<Fence>>,
    segment: Arc<Mutex<Segment>>,
}

impl StorageFile for SegmentFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut segment = self.segment.lock().expect("segment lock");
        let start = offset
            .checked_sub(segment.committed_len)
            .ok_or_else(|| append_only("a write before the committed end"))? as usize;
        if start > segment.pending.len() {
            return Err(io::Error::other("a write past the end of the log in PostgreSQL would leave a gap"));
        }
        segment.pending.truncate(start);
        segment.pending.extend_from_slice(buf);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let pending = std::mem::take(&mut self.segment.lock().expect("segment lock").pending);
        if pending.is_empty() {
            return Ok(());
        }
        let result = (|| {
            let fence = self.fence.as_ref().ok_or_else(|| io::Error::other("the log was opened for reading only"))?;
            fence.check()?;
            let rows = rows_of(&pending)?;
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            self.jobs
                .send(Job::Append { rows, reply: tx })
                .map_err(|_| io::Error::other("the log's database thread has stopped"))?;
            rx.recv().map_err(|_| io::Error::other("the log's database thread has stopped"))?.map_err(io::Error::other)
        })();
        let mut segment = self.segment.lock().expect("segment lock");
        match result {
            Ok(()) => {
                segment.committed_len += pending.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Kept, as a failed fsync keeps its bytes in the file: the
                // writer cuts them off (`truncate`) before writing afresh.
                segment.pending = pending;
                Err(e)
            }
        }
    }

    fn allocate(&mut self, _: Range<u64>, _: Allocation) -> io::Result<()> {
        Ok(())
    }
}

/// A new segment's file under its temporary name — and, once renamed, the
/// segment itself (a file handle outlives its name's change, and the writer
/// goes on writing through it).
#[derive(Debug)]
struct SpareFile {
    name: String,
    spares: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    /// The spare that became the segment.
    renamed: Arc<Mutex<Option<String>>>,
    segment: SegmentFile,
}

impl SpareFile {
    fn is_segment(&self) -> bool {
        self.renamed.lock().expect("renamed lock").as_deref() == Some(self.name.as_str())
    }
}

impl StorageFile for SpareFile {
    fn write_all_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.is_segment() {
            return self.segment.write_all_at(buf, offset);
        }
        let mut spares = self.spares.lock().expect("spares lock");
        let bytes = spares.get_mut(&self.name).ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let end = offset as usize + buf.len();
        if end > SEGMENT_HEADER_BYTES {
            return Err(io::Error::other("the log in PostgreSQL has one segment and writes records only into it"));
        }
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[offset as usize..end].copy_from_slice(buf);
        Ok(())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if self.is_segment() {
            return self.segment.sync_data();
        }
        Ok(())
    }
    fn allocate(&mut self, _: Range<u64>, _: Allocation) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for PgStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names: Vec<String> =
            self.cache.list()?.into_iter().filter(|n| format::parse_segment_name(n).is_none()).collect();
        if self.segment.lock().expect("segment lock").exists {
            names.push(PgStorage::segment_name());
        }
        names.extend(self.spares.lock().expect("spares lock").keys().cloned());
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        if name == PgStorage::segment_name() || PgStorage::is_spare(name) {
            let mut bytes = Vec::new();
            self.open_read(name)?.read_to_end(&mut bytes)?;
            return Ok(bytes);
        }
        self.cache.read(name)
    }

    fn open_read(&self, name: &str) -> io::Result<Box<dyn Read + Send>> {
        if PgStorage::is_spare(name) {
            let spares = self.spares.lock().expect("spares lock");
            let bytes = spares.get(name).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            return Ok(Box::new(io::Cursor::new(bytes)));
        }
        if name != PgStorage::segment_name() {
            return self.cache.open_read(name);
        }
        if !self.segment.lock().expect("segment lock").exists {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{name}: the stream has no records")));
        }
        Ok(Box::new(SegmentReader {
            jobs: self.jobs.clone(),
            buf: PgStorage::header().to_vec(),
            at: 0,
            next_lsn: SEGMENT_FIRST_LSN,
            done: false,
        }))
    }

    fn create_new(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        if PgStorage::is_spare(name) {
            let mut spares = self.spares.lock().expect("spares lock");
            if spares.contains_key(name) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name} exists")));
            }
            spares.insert(name.to_string(), Vec::new());
            return Ok(Box::new(self.spare_file(name)));
        }
        if format::parse_segment_name(name).is_some() {
            return Err(io::Error::other("segments of the log in PostgreSQL are made only by renaming a spare"));
        }
        self.cache.create_new(name)
    }

    fn open_write(&self, name: &str) -> io::Result<Box<dyn StorageFile>> {
        if name == PgStorage::segment_name() && self.segment.lock().expect("segment lock").exists {
            return Ok(Box::new(self.segment_file()));
        }
        if PgStorage::is_spare(name) && self.spares.lock().expect("spares lock").contains_key(name) {
            return Ok(Box::new(self.spare_file(name)));
        }
        if format::parse_segment_name(name).is_some() {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such segment")));
        }
        self.cache.open_write(name)
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        if name == PgStorage::segment_name() {
            let mut segment = self.segment.lock().expect("segment lock");
            let keep = len.checked_sub(segment.committed_len).ok_or_else(|| append_only("a truncation"))?;
            segment.pending.truncate(keep as usize);
            return Ok(());
        }
        if PgStorage::is_spare(name) {
            if let Some(bytes) = self.spares.lock().expect("spares lock").get_mut(name) {
                bytes.truncate(len as usize);
            }
            return Ok(());
        }
        self.cache.truncate(name, len)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        if format::parse_segment_name(to).is_some() || PgStorage::is_spare(from) {
            return self.rename_new(from, to);
        }
        self.cache.rename(from, to)
    }

    fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
        if !PgStorage::is_spare(from) {
            return self.cache.rename_new(from, to);
        }
        let header = self.spares.lock().expect("spares lock").remove(from).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{from}: no such file"))
        })?;
        if to != PgStorage::segment_name() || header[..] != PgStorage::header()[..] {
            return Err(io::Error::other(format!(
                "the log in PostgreSQL has one segment, {}, of format {FORMAT_VERSION}: {to} refused",
                PgStorage::segment_name()
            )));
        }
        let mut segment = self.segment.lock().expect("segment lock");
        if segment.exists {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{to} exists")));
        }
        segment.exists = true;
        segment.committed_len = SEGMENT_HEADER_BYTES as u64;
        *self.renamed.lock().expect("renamed lock") = Some(from.to_string());
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        if PgStorage::is_spare(name) {
            self.spares.lock().expect("spares lock").remove(name);
            return Ok(());
        }
        if format::parse_segment_name(name).is_some() {
            let mut segment = self.segment.lock().expect("segment lock");
            // A segment made by this run that holds no record yet (an init cut
            // short) may go; one with rows may not.
            if segment.committed_len == SEGMENT_HEADER_BYTES as u64 && segment.pending.is_empty() {
                segment.exists = false;
                return Ok(());
            }
            return Err(append_only("removing the segment"));
        }
        self.cache.remove(name)
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.cache.sync_dir()
    }

    fn unavailable(&self) -> Option<String> {
        self.fence.as_ref().and_then(|fence| fence.check().err()).map(|e| e.to_string())
    }
}
