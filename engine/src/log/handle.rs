//! The handle to an open log: [`Log`] scans it, repairs a torn tail, starts the
//! writer thread and feeds it appends.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::spare::{self, Spares};
use super::storage::Storage;
use super::writer::{self, AppendError, Appended, Checkpointer, DurableSink, WriterStats};
use super::{FsyncPolicy, LogOpenError, LogOptions, SEGMENT_BYTES_MIN, ScanSummary, format};
use crate::event::{Event, TailTruncated};
#[cfg(any(test, feature = "testing"))]
use {
    super::{ScanError, recovery},
    crate::event::Entry,
};

/// An append on its way to the disk.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<Appended, AppendError>>);

impl Pending {
    /// Resolves once the events are durable and applied (or failed).
    pub(crate) async fn durable(self) -> Result<Appended, AppendError> {
        self.0.await.map_err(|_| AppendError::Closed)?
    }
}

/// A log open for appending. Dropping it (or [`Log::shutdown`]) drains the queue and
/// stops the writer thread.
#[derive(Debug)]
pub struct Log {
    tx: Option<mpsc::Sender<writer::Request>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<WriterStats>,
    request_events_max: usize,
}

impl Log {
    /// Scans the whole log, calling `visit` for every record in order. Read-only:
    /// a torn tail is reported in the summary and cut by [`Log::start`]. (The
    /// engine's open scans through the fold; tests measure this scan alone.)
    #[cfg(any(test, feature = "testing"))]
    pub fn recover(
        storage: &dyn Storage,
        visit: &mut dyn FnMut(recovery::Located<'_>, &format::RecordView<'_>) -> Result<(), String>,
    ) -> Result<ScanSummary, ScanError> {
        recovery::scan(storage, visit)
    }

    /// Repairs a torn tail as the decision table says, starts the writer after the
    /// scanned end, and — if a tail was cut — appends `TailTruncated` (stamped
    /// `now_ms`) so the repair is itself on the record. With a `checkpointer` the
    /// writer logs signed checkpoints (see [`LogOptions::checkpoint_interval_ms`]).
    pub(crate) fn start(
        storage: Arc<dyn Storage>,
        options: &LogOptions,
        summary: &ScanSummary,
        now_ms: i64,
        sink: DurableSink,
        mut checkpointer: Option<Checkpointer>,
    ) -> Result<Log, LogOpenError> {
        validate(options)?;
        let io = |file: &str| {
            let file = file.to_string();
            move |source| LogOpenError::Io { file, source }
        };
        if let Some(torn) = &summary.torn_tail {
            if torn.unproven {
                tracing::warn!(
                    segment = %torn.segment, offset = torn.offset, bytes = torn.bytes,
                    "cutting log records no batch proof covers: a write a crash cut short, or records appended \
                     without the master key; they were never applied"
                );
            } else {
                tracing::warn!(segment = %torn.segment, offset = torn.offset, bytes = torn.bytes, "cutting torn log tail");
            }
            // Row 11 across a seal: the later segments go first, newest first, and
            // that is made durable before the cut, so a crash half-way leaves the
            // same unproven tail at the end of the last segment (cut again then).
            for later in torn.later_segments.iter().rev() {
                match storage.remove(later) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(later)(e)),
                    _ => {}
                }
            }
            if !torn.later_segments.is_empty() {
                storage.sync_dir().map_err(io(&torn.segment))?;
            }
            if torn.remove_segment {
                storage.remove(&torn.segment).map_err(io(&torn.segment))?;
            } else {
                storage.truncate(&torn.segment, torn.offset).map_err(io(&torn.segment))?;
            }
            storage.sync_dir().map_err(io(&torn.segment))?;
        }
        // A log from before batch proofs goes on in a new segment of today's
        // version, so that every record this writer appends is in a segment whose
        // newest proof open checks (an empty old segment is replaced).
        let upgrade =
            summary.segments.last().filter(|seg| seg.version < format::FORMAT_VERSION && checkpointer.is_some());
        if let Some(old) = upgrade
            && old.valid_bytes <= format::SEGMENT_HEADER_BYTES as u64
        {
            storage.remove(&old.name).map_err(io(&old.name))?;
        }
        // Segment files an earlier run was preparing (`spare-<n>.tmp`): never
        // named as segments, so nothing of the log.
        spare::remove_leftovers(storage.as_ref()).map_err(io("spare segment files"))?;
        // Preallocated only where batches end in proofs that recovery looks
        // for (`log/spare.rs`): a writer with a key, on a log that names one
        // (or a new log, which `EngineInitialized` will).
        let preallocate = checkpointer.is_some() && (summary.public_key.is_some() || summary.records == 0);
        let spares = Spares::new(storage.clone(), options.segment_bytes_max, options.fsync, preallocate);
        let active = summary.segments.last().filter(|_| upgrade.is_none());
        let (file, segment_bytes, segment_name) = match active {
            Some(seg) => {
                // Appends go on where the data ends, over the zeros after it
                // (row 13), inside the file allocated at its full size — again,
                // if a cut above truncated it, or a build that did not
                // preallocate wrote it.
                let mut file = storage.open_write(&seg.name).map_err(io(&seg.name))?;
                spares.reallocate(file.as_mut(), seg.valid_bytes);
                (file, seg.valid_bytes, seg.name.clone())
            }
            None => {
                let name = format::segment_name(summary.next_lsn);
                let header = format::SegmentHeader {
                    version: format::FORMAT_VERSION,
                    first_lsn: summary.next_lsn,
                    prev_chain: summary.last_chain,
                };
                let mut segment = spares.create_now().map_err(io(&name))?;
                segment.write_header(&header, FsyncPolicy::Always).map_err(io(&name))?;
                if let Err(e) = segment.rename(storage.as_ref(), &name) {
                    let _ = storage.remove(&segment.temp_name);
                    return Err(io(&name)(e));
                }
                storage.sync_dir().map_err(io(&name))?;
                (segment.file, format::SEGMENT_HEADER_BYTES as u64, name)
            }
        };
        if let Some(cp) = &mut checkpointer {
            cp.interval_ms = options.checkpoint_interval_ms;
            cp.signature_interval_ms = options.signature_interval_ms;
            if cp.since_ts_ms.is_none() && summary.records > 0 {
                cp.since_ts_ms = Some(summary.last_ts_ms);
            }
        }
        let stats = Arc::new(WriterStats::default());
        let unsigned = summary.unsigned && checkpointer.is_some();
        let writer = writer::Writer {
            storage,
            file,
            segment_bytes,
            segment_bytes_max: options.segment_bytes_max,
            next_lsn: summary.next_lsn,
            last_chain: summary.last_chain,
            last_ts_ms: summary.last_ts_ms,
            batch_events_max: options.batch_events_max,
            ride_delay: std::time::Duration::from_micros(options.ride_delay_us_max),
            fsync: options.fsync,
            unsynced_sealed: Vec::new(),
            sink,
            stats: stats.clone(),
            segment_name,
            batch_segments: Vec::new(),
            cut_back: None,
            spares,
            checkpointer,
            sealed_since_checkpoint: false,
            proof_pending: false,
            unsigned,
            // Unknown for what an earlier run left: the first close checkpoints
            // only what this one appends.
            records_since_checkpoint: false,
            // What an earlier run left is taken as content: the first interval
            // checkpoint covers it, if no checkpoint does yet.
            content_lsn: summary.next_lsn - 1,
        };
        let (tx, rx) = mpsc::channel(options.append_queue_depth_max);
        let thread = std::thread::Builder::new()
            .name("lessor-log-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| LogOpenError::Io { file: "writer thread".into(), source })?;
        let log = Log { tx: Some(tx), thread: Some(thread), stats, request_events_max: options.request_events_max };
        if let Some(torn) = &summary.torn_tail {
            let event = Event::TailTruncated(TailTruncated {
                segment_first_lsn: torn.segment_first_lsn,
                offset: torn.offset,
                bytes: torn.bytes,
            });
            log.append_blocking(now_ms, vec![event])?;
        }
        Ok(log)
    }

    fn prepare(
        &self,
        ts_ms: i64,
        events: Vec<Event>,
    ) -> Result<(writer::Request, oneshot::Receiver<Result<Appended, AppendError>>), AppendError> {
        if events.len() > self.request_events_max {
            return Err(AppendError::TooMany { events: events.len(), max: self.request_events_max });
        }
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            let payload = event.encode_payload();
            if payload.len() > format::RECORD_PAYLOAD_BYTES_MAX {
                return Err(AppendError::TooLarge { bytes: payload.len(), max: format::RECORD_PAYLOAD_BYTES_MAX });
            }
            encoded.push((event, payload));
        }
        let (reply, rx) = oneshot::channel();
        Ok((writer::Request { ts_ms, events: encoded, sign_tick: false, reply, riding: false, hold: None }, rx))
    }

    /// Appends `events` as consecutive records stamped `ts_ms` (raised to the last
    /// record's time if earlier) and returns once they are durable and applied.
    pub(crate) async fn append(&self, ts_ms: i64, events: Vec<Event>) -> Result<Appended, AppendError> {
        self.submit(ts_ms, events).await?.durable().await
    }

    /// Enqueues `events` and returns at once (after waiting for queue space), so
    /// the caller can work while the writer makes them durable — the issue path
    /// runs its SQL during the fsync and commits only after [`Pending::durable`].
    pub(crate) async fn submit(&self, ts_ms: i64, events: Vec<Event>) -> Result<Pending, AppendError> {
        let (req, rx) = self.prepare(ts_ms, events)?;
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        tx.send(req).await.map_err(|_| AppendError::Closed)?;
        Ok(Pending(rx))
    }

    /// Enqueues `events` to *ride* the next batch: records nobody waits for
    /// (an outcome whose caller has its reply). The writer holds a batch of
    /// only such records up to [`super::LogOptions::ride_delay_us_max`] for an
    /// append to share its fsync with. `hold` is dropped on the writer thread
    /// once they are durable and applied, or failed — what it guards (a lease's
    /// claim) lasts exactly that long.
    pub(crate) async fn submit_riding(
        &self,
        ts_ms: i64,
        events: Vec<Event>,
        hold: Box<dyn Send>,
    ) -> Result<Pending, AppendError> {
        let (mut req, rx) = self.prepare(ts_ms, events)?;
        req.riding = true;
        req.hold = Some(hold);
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        tx.send(req).await.map_err(|_| AppendError::Closed)?;
        Ok(Pending(rx))
    }

    /// Tells the writer the time is `ts_ms`: if batch MACs cover records after
    /// the newest signature and `signature_interval_ms` has passed since it, the
    /// writer signs them now (in a batch of its own); otherwise nothing is
    /// written. The engine's expirer calls it every tick, so an idle engine's
    /// log is signed within the interval on the engine's own clock.
    pub(crate) async fn sign_tick(&self, ts_ms: i64) -> Result<(), AppendError> {
        let (reply, rx) = oneshot::channel();
        let req = writer::Request { ts_ms, events: Vec::new(), sign_tick: true, reply, riding: false, hold: None };
        let tx = self.tx.as_ref().ok_or(AppendError::Closed)?;
        tx.send(req).await.map_err(|_| AppendError::Closed)?;
        Pending(rx).durable().await.map(drop)
    }

    /// [`Log::append`], blocking the calling thread until durable. Usable from any
    /// thread, also one that runs an async runtime (which it then blocks: the
    /// writer is a thread of its own, so this cannot deadlock).
    pub(crate) fn append_blocking(&self, ts_ms: i64, events: Vec<Event>) -> Result<Appended, AppendError> {
        block_on(self.append(ts_ms, events))
    }

    pub(crate) fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Waits for everything queued to be written, then stops the writer;
    /// idempotent (dropping the log does it too). Later appends get [`AppendError::Closed`].
    pub(crate) fn shutdown(&mut self) {
        // Dropping the sender ends the writer's loop once the queue is drained.
        self.tx.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("log writer thread panicked");
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs a future to completion on this thread, parking between polls. tokio's own
/// blocking helpers refuse to run inside a runtime; the log's futures only wait on
/// the writer thread, so parking here is always safe.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

fn validate(options: &LogOptions) -> Result<(), LogOpenError> {
    let bad = |field, message: String| Err(LogOpenError::InvalidOption { field, message });
    if options.segment_bytes_max < SEGMENT_BYTES_MIN {
        return bad("segment_bytes_max", format!("must be at least {SEGMENT_BYTES_MIN}"));
    }
    if options.append_queue_depth_max == 0 {
        return bad("append_queue_depth_max", "must be at least 1".into());
    }
    if options.batch_events_max == 0 {
        return bad("batch_events_max", "must be at least 1".into());
    }
    if options.request_events_max == 0 {
        return bad("request_events_max", "must be at least 1".into());
    }
    if options.ride_delay_us_max > super::RIDE_DELAY_US_LIMIT {
        return bad("ride_delay_us_max", format!("must be at most {} (a second)", super::RIDE_DELAY_US_LIMIT));
    }
    Ok(())
}

/// Reads every event of a log in order, fully verified, without taking the lock and
/// without modifying anything (a torn tail is reported, not cut). For tests; tools
/// read through [`crate::audit`].
#[cfg(any(test, feature = "testing"))]
pub fn read_entries(storage: &dyn Storage) -> Result<(Vec<Entry>, ScanSummary), ScanError> {
    let mut entries = Vec::new();
    let summary = recovery::scan(storage, &mut |_, rec| {
        let event = Event::decode(rec.kind, rec.payload).map_err(|e| e.to_string())?;
        entries.push(Entry { lsn: rec.lsn, ts_ms: rec.ts_ms, event });
        Ok(())
    })?;
    Ok((entries, summary))
}
