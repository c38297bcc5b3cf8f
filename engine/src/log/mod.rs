//! The event log: segments of checksummed, hash-chained records, written by one
//! group-commit writer, read back through one recovery scan.
//!
//! Public here is what an embedder configures and sees: [`LogOptions`] and
//! [`FsyncPolicy`], the errors an open or an append can end in ([`ScanError`],
//! [`LogOpenError`], [`AppendError`]), the writer's counters ([`WriterStats`]),
//! [`storage`], the seam every byte goes through (a real directory, a
//! read-only one, in memory; a fault-injecting double with feature `testing`),
//! and [`postgres`], the log kept in PostgreSQL (so far its schema).
//!
//! The rest is the engine's (public to test code with feature `testing`):
//! `format.rs` (the bytes of segment headers and records), `handle.rs` (the
//! open log the engine appends through), `reader.rs` (the one streaming,
//! verifying reader: recovery and the auditor both read through it, in bounded
//! memory), `recovery.rs` (the scan and its decision table), `writer.rs` (group
//! commit), `spare.rs` (new segments, allocated at their full size ahead of
//! time), `proof.rs` (batch proofs), `head.rs` (the signed head file) and
//! `snapshot.rs` (state caches at an LSN). `docs/DESIGN.md` describes the format
//! and the recovery table.

internal! {
    mod format;
    mod handle;
    mod head;
    mod proof;
    mod reader;
    mod recovery;
    mod snapshot;
}
pub mod postgres;
mod spare;
pub mod storage;
internal! {
    mod writer;
}
#[cfg(any(test, feature = "testing"))]
mod faults;

// `Chain` is in public reports (the audit's, a checkpoint's), so it is named here.
pub use format::Chain;
pub use recovery::ScanError;
pub use writer::{AppendError, WriterStats};
internal! {
    use handle::{Log, Pending};
}
#[cfg(feature = "testing")]
pub use handle::read_entries;
internal! {
    use reader::{RECORD_BYTES_MAX, WINDOW_BYTES};
}
#[cfg(feature = "testing")]
pub use recovery::fuzz_recover;
internal! {
    use recovery::ScanSummary;
}
internal! {
    use writer::{Appended, Checkpointer, DurableSink};
}

/// Limits and sizes of a log. Every queue and batch is bounded (I7).
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// A segment is sealed once the next record would take it past this size.
    /// Every segment file is allocated at this size when it is made (the
    /// unused end reads as zeros), so appends never grow it.
    pub segment_bytes_max: u64,
    /// Append requests that may wait in the writer's queue; more block the appender.
    pub append_queue_depth_max: usize,
    /// Events the writer puts into one write + fsync.
    pub batch_events_max: usize,
    /// Events one append call may carry.
    pub request_events_max: usize,
    /// With a checkpoint signer (an engine holding the master key), a signed
    /// checkpoint is logged at every segment seal, once this much log time has
    /// passed since the last one (after the next batch, or at the expirer's next
    /// tick), and at a clean close that follows new records; 0 = only at seals.
    pub checkpoint_interval_ms: u64,
    /// With the master key, every batch ends with a proof (`docs/DESIGN.md`,
    /// §6.3): a batch MAC, or an Ed25519 signature auditors can check — on the
    /// first batch, at every checkpoint, once this much log time has passed since
    /// the last signature (at the next batch, or at the expirer's next tick when
    /// idle), and at a clean close. 0 = sign every batch.
    pub signature_interval_ms: u64,
    /// Whether an append waits for stable storage before it is acknowledged.
    pub fsync: FsyncPolicy,
    /// How long the writer holds a batch of only *riding* records — lease
    /// outcomes and request records whose caller already has its reply
    /// (docs/DESIGN.md, "The write path") — waiting for another append to share
    /// its fsync; any other append (or the queue closing) writes them at once.
    /// 0 = no wait. At most [`RIDE_DELAY_US_LIMIT`].
    pub ride_delay_us_max: u64,
}

/// The largest [`LogOptions::ride_delay_us_max`]: a second.
pub const RIDE_DELAY_US_LIMIT: u64 = 1_000_000;

/// When the writer forces appended records to stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// `fdatasync` after every batch (and the directory after a new segment)
    /// before any appender hears back: an acknowledged append survives power loss.
    #[default]
    Always,
    /// No fsync of records until the log is closed (a clean close syncs once): an
    /// acknowledged append is in the kernel's page cache.
    /// It survives the process crashing or being killed, not the machine: after a
    /// power loss or kernel crash, acknowledged operations can be missing (recovery
    /// cuts the torn tail as usual) and database users created for them are
    /// orphans the log does not know. For development, tests and throwaway
    /// engines; never for production.
    Never,
}

impl FsyncPolicy {
    /// Every policy with its name in options (`"always"`, `"never"`).
    pub const ALL: [(FsyncPolicy, &'static str); 2] = [(FsyncPolicy::Always, "always"), (FsyncPolicy::Never, "never")];

    /// The policy named `name` (as in [`FsyncPolicy::ALL`]).
    pub fn from_name(name: &str) -> Option<FsyncPolicy> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(p, _)| *p)
    }

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(p, _)| *p == self).map(|(_, n)| *n).expect("every policy is named")
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes_max: 64 << 20,
            append_queue_depth_max: 4096,
            batch_events_max: 8192,
            request_events_max: 1024,
            checkpoint_interval_ms: 10 * 60 * 1000,
            signature_interval_ms: 1000,
            fsync: FsyncPolicy::Always,
            ride_delay_us_max: 2_000,
        }
    }
}

/// The smallest allowed segment: a header and one record of a few hundred bytes.
pub const SEGMENT_BYTES_MIN: u64 = 1024;

/// Why a log could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogOpenError {
    #[error("cannot repair the log ({file}): {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid log option {field}: {message}")]
    InvalidOption { field: &'static str, message: String },
    #[error("cannot record the truncated tail: {0}")]
    Append(#[from] AppendError),
}
