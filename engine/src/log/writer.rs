//! Group commit: one thread owns the active segment. Appenders enqueue a request
//! and wait; the writer takes everything queued (up to a limit), frames it, writes
//! it, calls `fdatasync` once (unless [`FsyncPolicy::Never`]), hands the entries
//! to the durable sink in LSN order, and only then wakes every waiter. The queue is bounded, so a burst becomes
//! backpressure on the appenders instead of memory growth (I7).
//!
//! Segment files are allocated at their full size when they are made
//! (`log/spare.rs`): a batch is written at the offset where the last one
//! ended (`pwrite`), inside the file, so its `fdatasync` writes the data and no
//! file size. The next segment is prepared on a thread of its own once the
//! active one is half full.
//!
//! After a write or sync error (disk full, EIO) the batch fails as a whole (I6):
//! before any of its appenders hears back, the writer cuts the log back to where
//! it stood after the last durable batch — removes segments the batch created,
//! truncates the active segment to its durable length (made durable itself) and
//! allocates its rest again — and forgets the batch's LSNs, so nothing of it
//! stays on disk or in the state. (Truncating, rather than writing zeros over
//! the failed bytes, frees blocks the kernel may hold dirty pages of that it
//! could not write; the reallocated rest is only reserved, not zeroed, which
//! costs that segment's appends a metadata write now and then until the seal.)
//! The next append is written afresh, so once the disk works again the log goes
//! on without a reopen. Bytes whose fsync failed are never synced "again": the
//! kernel may have dropped those dirty pages, so they are cut, not retried. If the
//! cut itself fails, every append gets [`AppendError::Failed`] until it succeeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::event::{Entry, Event, Lsn};
use crate::log::FsyncPolicy;
use crate::log::format::{self, Chain, RECORD_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES, SegmentHeader};
use crate::log::proof;
use crate::log::spare::Spares;
use crate::log::storage::{Storage, StorageFile};

/// Called on the writer thread with every durable batch, in LSN order, before any
/// appender of that batch is woken; `Chain` is the chain after the batch's last
/// record. The sink takes the entries (drains the vector).
pub type DurableSink = Box<dyn FnMut(&mut Vec<Entry>, &Chain) + Send>;

/// Where an append stands once it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub first_lsn: Lsn,
    pub last_lsn: Lsn,
    /// The timestamp the writer gave the records (never earlier than the previous
    /// record's, so the log's time is monotonic).
    pub(crate) ts_ms: i64,
}

/// Why an append did not become durable. No variant means "maybe durable": on any
/// error the caller must assume nothing was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    #[error("log write failed: {cause}; nothing of this append was kept (the log takes the next append afresh)")]
    Io { cause: String },
    #[error("the log cannot be cut back after a failed write ({cause}) and refuses writes until that succeeds")]
    Failed { cause: String },
    #[error("the log is closed")]
    Closed,
    #[error("event of {bytes} bytes exceeds the record limit of {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error("{events} events in one append exceed the limit of {max}")]
    TooMany { events: usize, max: usize },
}

/// Builds the signed `Checkpoint` event for the record `(lsn, chain, ts_ms)`.
pub(crate) type CheckpointSigner = Box<dyn FnMut(Lsn, &Chain, i64) -> Event + Send>;

/// Builds the `BatchSigned` proof of the record `(lsn, chain)` ([`super::proof`]).
pub(crate) type BatchSigner = Box<dyn FnMut(Lsn, &Chain) -> Event + Send>;

/// Builds the `BatchMac` proof of the record `(lsn, chain)` ([`super::proof`]).
pub(crate) type BatchMacer = Box<dyn FnMut(Lsn, &Chain) -> Event + Send>;

/// Signs checkpoints on the writer thread, where the chain is known exactly: after
/// a batch that sealed a segment, or once `interval_ms` of log time passed since
/// the last checkpoint, the writer appends a `Checkpoint` event covering the last
/// record before it, in the same write and fsync as the batch.
pub struct Checkpointer {
    /// Set from [`super::LogOptions::checkpoint_interval_ms`]; 0 = only at seals.
    pub(crate) interval_ms: u64,
    /// The LSN the newest checkpoint covers (0: none yet).
    pub(crate) last_lsn: Lsn,
    /// Log time the interval counts from: the newest checkpoint's, else the log's
    /// first record seen.
    pub(crate) since_ts_ms: Option<i64>,
    /// Builds the signed `Checkpoint` event for `(lsn, chain, ts_ms)` of a record.
    pub(crate) sign: CheckpointSigner,
    /// Builds the signature that ends a batch when one is due.
    pub(crate) sign_batch: BatchSigner,
    /// Builds the MAC that ends every other batch.
    pub(crate) mac_batch: BatchMacer,
    /// Set from [`super::LogOptions::signature_interval_ms`]; 0 = sign every batch.
    pub(crate) signature_interval_ms: u64,
    /// Log time of the newest signature this writer made; `None`: the next
    /// batch is signed.
    pub(crate) last_signature_ts_ms: Option<i64>,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer")
            .field("interval_ms", &self.interval_ms)
            .field("last_lsn", &self.last_lsn)
            .field("since_ts_ms", &self.since_ts_ms)
            .field("signature_interval_ms", &self.signature_interval_ms)
            .field("last_signature_ts_ms", &self.last_signature_ts_ms)
            .finish_non_exhaustive()
    }
}

/// Where the log stood before a batch: a failed batch is rolled back to it.
struct Mark {
    segment_name: String,
    segment_bytes: u64,
    next_lsn: Lsn,
    last_chain: Chain,
    last_ts_ms: i64,
    sealed_since_checkpoint: bool,
    proof_pending: bool,
    unsigned: bool,
    records_since_checkpoint: bool,
    content_lsn: Lsn,
    /// The checkpointer's `(last_lsn, since_ts_ms, last_signature_ts_ms)`.
    checkpoint: Option<(Lsn, Option<i64>, Option<i64>)>,
}

/// The disk's part of rolling a failed batch back.
#[derive(Debug)]
pub(crate) struct CutBack {
    /// The segment that was active before the batch, and its durable length.
    segment_name: String,
    len: u64,
    /// Segments the failed batch(es) created.
    created: Vec<String>,
}

pub(crate) struct Request {
    pub(crate) ts_ms: i64,
    /// Events with their payloads, encoded by the appender (off the writer thread).
    pub(crate) events: Vec<(Event, Vec<u8>)>,
    /// No events: asks the writer to sign the MAC'd records if a signature is
    /// due at `ts_ms` ([`super::Log::sign_tick`]).
    pub(crate) sign_tick: bool,
    pub(crate) reply: oneshot::Sender<Result<Appended, AppendError>>,
    /// Nobody waits for these records ([`super::Log::submit_riding`]): a batch
    /// of only such requests waits up to `ride_delay` for company.
    pub(crate) riding: bool,
    /// Dropped with the request, after its reply: once durable and applied, or failed.
    pub(crate) hold: Option<Box<dyn Send>>,
}

/// Counters the writer keeps; read with relaxed loads.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub events_written: AtomicU64,
    /// Batches written (each one `fdatasync`ed under [`FsyncPolicy::Always`]).
    pub batches_synced: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Segments started by a seal.
    pub segments_started: AtomicU64,
    /// Of those, segments prepared ahead on the spare thread (zeros written
    /// and synced); the others were made at the seal, their blocks reserved.
    pub segments_from_spares: AtomicU64,
}

pub(crate) struct Writer {
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) file: Box<dyn StorageFile>,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_bytes_max: u64,
    pub(crate) next_lsn: Lsn,
    pub(crate) last_chain: Chain,
    pub(crate) last_ts_ms: i64,
    pub(crate) batch_events_max: usize,
    /// [`super::LogOptions::ride_delay_us_max`].
    pub(crate) ride_delay: std::time::Duration,
    pub(crate) fsync: FsyncPolicy,
    /// Under [`FsyncPolicy::Never`], segments sealed since open: synced at close.
    pub(crate) unsynced_sealed: Vec<String>,
    pub(crate) sink: DurableSink,
    pub(crate) stats: Arc<WriterStats>,
    /// The active segment's file name.
    pub(crate) segment_name: String,
    /// Segments the batch being written created (removed if it fails).
    pub(crate) batch_segments: Vec<String>,
    /// A failed batch not yet cut off the disk: done before anything else is written.
    pub(crate) cut_back: Option<CutBack>,
    /// The next segment's file, prepared ahead.
    pub(crate) spares: Spares,
    pub(crate) checkpointer: Option<Checkpointer>,
    /// A segment was sealed and no checkpoint has been written since.
    pub(crate) sealed_since_checkpoint: bool,
    /// Records were framed since the last proof.
    pub(crate) proof_pending: bool,
    /// The newest proof is a MAC: records after the newest signature exist, and
    /// the writer signs them once idle ([`super::proof`]).
    pub(crate) unsigned: bool,
    /// Appenders' records were framed since the newest checkpoint (its own
    /// record and the proof after it do not count): a clean close checkpoints.
    pub(crate) records_since_checkpoint: bool,
    /// The newest record an appender asked for (not a checkpoint or proof the
    /// writer added; at open, the log's last record): a checkpoint on the
    /// interval is due only once one covers less than this, so an idle log is
    /// not checkpointed again at every tick.
    pub(crate) content_lsn: Lsn,
}

impl Writer {
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut batch: Vec<Request> = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        // Only for the riding records' timed wait: a timer, never a task.
        let timer = tokio::runtime::Builder::new_current_thread().enable_time().build();
        while let Some(first) = rx.blocking_recv() {
            let mut events = first.events.len();
            batch.push(first);
            let take_queued = |rx: &mut mpsc::Receiver<Request>, batch: &mut Vec<Request>, events: &mut usize| {
                while *events < self.batch_events_max {
                    match rx.try_recv() {
                        Ok(req) => {
                            *events += req.events.len();
                            batch.push(req);
                        }
                        Err(_) => break,
                    }
                }
            };
            take_queued(&mut rx, &mut batch, &mut events);
            // Records whose callers already have their replies (lease outcomes,
            // request records) wait a moment for an append that someone waits
            // for, and share its fsync instead of taking one of their own.
            if let Ok(timer) = &timer
                && !self.ride_delay.is_zero()
                && batch.iter().all(|req| req.riding)
            {
                let deadline = tokio::time::Instant::now() + self.ride_delay;
                while events < self.batch_events_max && batch.iter().all(|req| req.riding) {
                    match timer.block_on(async { tokio::time::timeout_at(deadline, rx.recv()).await }) {
                        Ok(Some(req)) => {
                            events += req.events.len();
                            batch.push(req);
                            take_queued(&mut rx, &mut batch, &mut events);
                        }
                        // Closing, or the wait is over: write what there is.
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            if let Err(e) = self.finish_cut_back() {
                let cause = e.to_string();
                tracing::error!(error = %cause, "cannot cut the log back after a failed write; refusing this batch");
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(AppendError::Failed { cause: cause.clone() }));
                }
                continue;
            }
            self.commit(&mut batch, &mut buf, &mut entries, false);
        }
        // A clean close leaves nothing only the key holder can check, and (with
        // checkpoints on an interval) a checkpoint of the head to export.
        let head = self.next_lsn - 1;
        let checkpoint_due = self.records_since_checkpoint
            && self.checkpointer.as_ref().is_some_and(|cp| cp.interval_ms > 0 && head > cp.last_lsn);
        if (self.unsigned || checkpoint_due) && self.finish_cut_back().is_ok() {
            self.commit(&mut Vec::new(), &mut buf, &mut entries, true);
        }
        if self.fsync == FsyncPolicy::Never && self.cut_back.is_none() {
            // A clean close leaves the log durable whatever the policy.
            if let Err(e) = self.sync_at_close() {
                tracing::error!(error = %e, "cannot sync the log at close; the last appends may not survive a power loss");
            }
        }
    }

    /// Under [`FsyncPolicy::Never`]: every segment written since open (sealed
    /// ones, then the active one), then the directory.
    fn sync_at_close(&mut self) -> std::io::Result<()> {
        for name in std::mem::take(&mut self.unsynced_sealed) {
            match self.storage.open_write(&name) {
                Ok(mut file) => file.sync_data()?,
                // Removed since: a failed batch's segment, cut back.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.file.sync_data()?;
        self.storage.sync_dir()
    }

    /// Writes one batch durably and answers every request in it; `closing` (the
    /// last batch of a clean close) forces a checkpoint of the head when
    /// checkpoints run on an interval, and a signature as its proof.
    fn commit(&mut self, batch: &mut Vec<Request>, buf: &mut Vec<u8>, entries: &mut Vec<Entry>, closing: bool) {
        buf.clear();
        entries.clear();
        let mark = self.mark();
        self.batch_segments.clear();
        let mut acks = Vec::with_capacity(batch.len());
        let result = (|| -> std::io::Result<()> {
            // The time the batch's proof decisions are made at: a tick brings the
            // engine's clock without a record, so it never moves `last_ts_ms`,
            // which stays the newest record's time (checkpoints sign it).
            let mut now_ms = self.last_ts_ms;
            for req in batch.iter_mut() {
                let ts_ms = req.ts_ms.max(self.last_ts_ms);
                let first_lsn = self.next_lsn;
                now_ms = now_ms.max(ts_ms);
                if req.sign_tick {
                    debug_assert!(req.events.is_empty(), "a sign tick carries no events");
                    acks.push(Appended { first_lsn, last_lsn: first_lsn - 1, ts_ms });
                    continue;
                }
                for (event, payload) in req.events.drain(..) {
                    let size = (RECORD_OVERHEAD_BYTES + payload.len()) as u64;
                    self.rotate_if_full(buf, size)?;
                    let lsn = self.next_lsn;
                    self.last_chain =
                        format::encode_record(buf, &self.last_chain, lsn, ts_ms, event.kind().code(), &payload);
                    entries.push(Entry { lsn, ts_ms, event });
                    self.next_lsn += 1;
                    self.proof_pending = true;
                    self.records_since_checkpoint = true;
                    self.content_lsn = lsn;
                }
                self.last_ts_ms = ts_ms;
                acks.push(Appended { first_lsn, last_lsn: self.next_lsn - 1, ts_ms });
            }
            let checkpointed = self.checkpoint_if_due(buf, entries, now_ms, closing)?;
            let tick = batch.iter().any(|req| req.sign_tick);
            self.prove(buf, entries, closing || checkpointed, tick, now_ms)?;
            self.write_and_sync(buf)
        })();
        match result {
            Ok(()) => {
                if !entries.is_empty() {
                    // (A tick that found nothing to sign wrote nothing.)
                    self.stats.events_written.fetch_add(entries.len() as u64, Ordering::Relaxed);
                    self.stats.batches_synced.fetch_add(1, Ordering::Relaxed);
                }
                // I1: state changes only after the bytes are durable, and before
                // anyone learns of the append.
                (self.sink)(entries, &self.last_chain);
                entries.clear();
                for (req, ack) in batch.drain(..).zip(acks) {
                    let _ = req.reply.send(Ok(ack));
                }
            }
            Err(e) => {
                let cause = e.to_string();
                tracing::error!(error = %cause, "log write failed; cutting the batch back off the log");
                buf.clear();
                entries.clear();
                self.roll_back(mark);
                if let Err(e) = self.finish_cut_back() {
                    tracing::error!(error = %e, "cannot cut the log back yet; retrying before the next write");
                }
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(AppendError::Io { cause: cause.clone() }));
                }
            }
        }
    }

    /// Where the log stands now, between batches.
    fn mark(&self) -> Mark {
        Mark {
            segment_name: self.segment_name.clone(),
            segment_bytes: self.segment_bytes,
            next_lsn: self.next_lsn,
            last_chain: self.last_chain,
            last_ts_ms: self.last_ts_ms,
            sealed_since_checkpoint: self.sealed_since_checkpoint,
            proof_pending: self.proof_pending,
            unsigned: self.unsigned,
            records_since_checkpoint: self.records_since_checkpoint,
            content_lsn: self.content_lsn,
            checkpoint: self.checkpointer.as_ref().map(|cp| (cp.last_lsn, cp.since_ts_ms, cp.last_signature_ts_ms)),
        }
    }

    /// Forgets a failed batch: back to `mark` in memory, and the disk's part
    /// queued for [`Writer::finish_cut_back`].
    fn roll_back(&mut self, mark: Mark) {
        let created = std::mem::take(&mut self.batch_segments);
        let cut = match self.cut_back.take() {
            // An earlier cut still pending goes back further; this batch's own
            // segments go too.
            Some(mut pending) => {
                pending.created.extend(created);
                pending
            }
            None => CutBack { segment_name: mark.segment_name.clone(), len: mark.segment_bytes, created },
        };
        self.cut_back = Some(cut);
        self.segment_name = mark.segment_name;
        self.segment_bytes = mark.segment_bytes;
        self.next_lsn = mark.next_lsn;
        self.last_chain = mark.last_chain;
        self.last_ts_ms = mark.last_ts_ms;
        self.sealed_since_checkpoint = mark.sealed_since_checkpoint;
        self.proof_pending = mark.proof_pending;
        self.unsigned = mark.unsigned;
        self.records_since_checkpoint = mark.records_since_checkpoint;
        self.content_lsn = mark.content_lsn;
        if let (Some(cp), Some((last_lsn, since_ts_ms, signed_ts_ms))) = (&mut self.checkpointer, mark.checkpoint) {
            cp.last_lsn = last_lsn;
            cp.since_ts_ms = since_ts_ms;
            cp.last_signature_ts_ms = signed_ts_ms;
        }
    }

    /// Cuts a failed batch off the disk: its new segments removed (and that made
    /// durable first, so a crash cannot leave a segment after a gap), then the
    /// active segment truncated to its durable length, reopened, and its rest
    /// allocated again (best-effort). Idempotent; on error it stays pending.
    fn finish_cut_back(&mut self) -> std::io::Result<()> {
        let Some(cut) = self.cut_back.take() else { return Ok(()) };
        let result = (|| {
            for name in cut.created.iter().rev() {
                match self.storage.remove(name) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            if !cut.created.is_empty() {
                self.storage.sync_dir()?;
            }
            self.storage.truncate(&cut.segment_name, cut.len)?;
            let mut file = self.storage.open_write(&cut.segment_name)?;
            // After: the durable records end the file; what follows is allocated
            // again, zeros, for the next batch to be written into.
            assert!(cut.len >= SEGMENT_HEADER_BYTES as u64, "cut into the segment header");
            self.spares.reallocate(file.as_mut(), cut.len);
            self.file = file;
            Ok(())
        })();
        if result.is_err() {
            self.cut_back = Some(cut);
        }
        result
    }

    /// Appends a signed checkpoint of the current head to the batch when a segment
    /// was sealed or the interval has passed. After the batch's requests, so every
    /// request's records stay contiguous. Returns whether it logged one.
    /// `now_ms`: the batch's time (see [`Writer::commit`]); the checkpoint
    /// covers the newest record, at that record's time. `closing` counts as the
    /// interval having passed.
    fn checkpoint_if_due(
        &mut self,
        buf: &mut Vec<u8>,
        entries: &mut Vec<Entry>,
        now_ms: i64,
        closing: bool,
    ) -> std::io::Result<bool> {
        let head = self.next_lsn - 1;
        let Some(cp) = &mut self.checkpointer else { return Ok(false) };
        let since = *cp.since_ts_ms.get_or_insert(self.last_ts_ms);
        // Only for records the newest checkpoint does not cover yet that are
        // not its own record and proof: else every tick of an idle engine
        // would checkpoint the previous checkpoint.
        let interval_passed = cp.interval_ms > 0
            && self.content_lsn > cp.last_lsn
            && (closing || now_ms.saturating_sub(since) >= cp.interval_ms as i64);
        if head == 0 || head <= cp.last_lsn || !(self.sealed_since_checkpoint || interval_passed) {
            return Ok(false);
        }
        let ts_ms = self.last_ts_ms;
        let event = (cp.sign)(head, &self.last_chain, ts_ms);
        let payload = event.encode_payload();
        self.rotate_if_full(buf, (RECORD_OVERHEAD_BYTES + payload.len()) as u64)?;
        self.last_chain =
            format::encode_record(buf, &self.last_chain, self.next_lsn, ts_ms, event.kind().code(), &payload);
        entries.push(Entry { lsn: self.next_lsn, ts_ms, event });
        self.next_lsn += 1;
        self.proof_pending = true;
        let cp = self.checkpointer.as_mut().expect("checked above");
        cp.last_lsn = head;
        cp.since_ts_ms = Some(ts_ms);
        self.sealed_since_checkpoint = false;
        self.records_since_checkpoint = false;
        Ok(true)
    }

    /// Seals the active segment first if a record of `size` bytes would not fit.
    fn rotate_if_full(&mut self, buf: &mut Vec<u8>, size: u64) -> std::io::Result<()> {
        let used = self.segment_bytes + buf.len() as u64;
        if used > SEGMENT_HEADER_BYTES as u64 && used + size > self.segment_bytes_max {
            self.rotate(buf)?;
        }
        Ok(())
    }

    /// Ends the batch with a proof of its last record, if the writer holds the
    /// key: a signature when `sign` says so or one is due (the first batch, or
    /// `signature_interval_ms` of log time since the last), else a MAC. A batch
    /// with nothing new but a `tick` ([`super::Log::sign_tick`]) signs the
    /// MAC'd records when a signature is due and is otherwise left unwritten.
    /// After every request's records (and the checkpoint), so each request's
    /// records stay contiguous; it may open a new segment.
    fn prove(
        &mut self,
        buf: &mut Vec<u8>,
        entries: &mut Vec<Entry>,
        sign: bool,
        tick: bool,
        now_ms: i64,
    ) -> std::io::Result<()> {
        let Some(cp) = &mut self.checkpointer else { return Ok(()) };
        let interval_ms = cp.signature_interval_ms as i64;
        let signed =
            sign || interval_ms == 0 || cp.last_signature_ts_ms.is_none_or(|t| now_ms.saturating_sub(t) >= interval_ms);
        if !(self.proof_pending || ((sign || tick) && signed && self.unsigned)) {
            return Ok(());
        }
        let covered = self.next_lsn - 1;
        let (event, size) = if signed {
            ((cp.sign_batch)(covered, &self.last_chain), proof::PROOF_RECORD_BYTES)
        } else {
            ((cp.mac_batch)(covered, &self.last_chain), proof::MAC_RECORD_BYTES)
        };
        debug_assert!(match &event {
            Event::BatchSigned(b) => signed && b.signature.len() == proof::SIGNATURE_BYTES,
            Event::BatchMac(b) => !signed && b.mac.len() == proof::MAC_BYTES,
            _ => false,
        });
        let payload = event.encode_payload();
        assert_eq!(RECORD_OVERHEAD_BYTES + payload.len(), size, "proof record size changed");
        if signed {
            cp.last_signature_ts_ms = Some(now_ms);
        }
        self.rotate_if_full(buf, size as u64)?;
        let ts_ms = self.last_ts_ms;
        self.last_chain =
            format::encode_record(buf, &self.last_chain, self.next_lsn, ts_ms, event.kind().code(), &payload);
        entries.push(Entry { lsn: self.next_lsn, ts_ms, event });
        self.next_lsn += 1;
        self.proof_pending = false;
        self.unsigned = !signed;
        Ok(())
    }

    fn write_and_sync(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        // Before: the buffer starts with a whole record, the next LSN on disk,
        // and goes right after the last durable record, never over the header.
        let first = format::read_record(buf).expect("batch does not start with a valid record");
        let records_in_buf = self.next_lsn - first.lsn;
        assert!(records_in_buf >= 1, "batch LSNs run past the writer's next LSN");
        let offset = self.segment_bytes;
        assert!(offset >= SEGMENT_HEADER_BYTES as u64, "a batch written over the segment header");
        assert!(
            offset == SEGMENT_HEADER_BYTES as u64
                || offset + buf.len() as u64 <= self.segment_bytes_max
                || records_in_buf == 1,
            "batch would overflow the segment"
        );
        // Inside the allocated file (unless one record is larger than a
        // segment): the write does not grow it, so the fdatasync writes no size.
        self.file.write_all_at(buf, offset)?;
        if self.fsync == FsyncPolicy::Always {
            self.file.sync_data()?;
        }
        // After: what the file holds is what we account for.
        self.segment_bytes = offset + buf.len() as u64;
        assert!(self.segment_bytes >= (SEGMENT_HEADER_BYTES + RECORD_OVERHEAD_BYTES) as u64);
        self.stats.bytes_written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        buf.clear();
        if self.segment_bytes > self.segment_bytes_max / 2 {
            // Half full: time to prepare the next one.
            self.spares.request();
        }
        Ok(())
    }

    /// Seals the active segment (everything buffered so far goes into it) and starts
    /// the next one, whose header carries the chain across: the spare prepared
    /// ahead if one is ready, else a file made now (`log/spare.rs`).
    fn rotate(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        self.write_and_sync(buf)?;
        assert!(self.segment_bytes > SEGMENT_HEADER_BYTES as u64, "sealing an empty segment");
        let header =
            SegmentHeader { version: format::FORMAT_VERSION, first_lsn: self.next_lsn, prev_chain: self.last_chain };
        let name = format::segment_name(self.next_lsn);
        let mut segment = match self.spares.take() {
            Some(spare) => spare,
            None => self.spares.create_now()?,
        };
        let placed = segment.write_header(&header, self.fsync).and_then(|()| segment.rename(self.storage.as_ref(), &name));
        if let Err(e) = placed {
            // Still under its temporary name, so no segment: gone now, or at the next open.
            let _ = self.storage.remove(&segment.temp_name);
            return Err(e);
        }
        self.batch_segments.push(name.clone());
        if self.fsync == FsyncPolicy::Always {
            // The new file's name must be durable before records in it are acknowledged.
            self.storage.sync_dir()?;
        } else {
            self.unsynced_sealed.push(self.segment_name.clone());
        }
        self.stats.segments_started.fetch_add(1, Ordering::Relaxed);
        if segment.zeroed {
            self.stats.segments_from_spares.fetch_add(1, Ordering::Relaxed);
        }
        self.file = segment.file;
        self.segment_bytes = SEGMENT_HEADER_BYTES as u64;
        self.segment_name = name.clone();
        self.sealed_since_checkpoint = true;
        tracing::debug!(segment = %name, allocated = segment.allocated, zeroed = segment.zeroed, "log segment started");
        Ok(())
    }
}

