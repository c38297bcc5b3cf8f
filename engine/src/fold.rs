//! State = fold(log), written once (I4): the newest snapshot the log agrees with,
//! then every record after it folded with [`State::apply_owned`], until the
//! records end or a stop predicate says so ([`fold_from_newest_agreeing`]).
//!
//! The engine's open (every record: the state it serves) and the auditor's
//! `audit state` and `audit diff` (every record up to an instant) both call it,
//! so the state an auditor rebuilds is the engine's by construction, not by two
//! copies kept alike. What differs is only what a [`FoldSource`] supplies:
//!
//! | | engine open | audit state / diff |
//! |---|---|---|
//! | snapshots tried | all, newest first | those at or before the instant |
//! | records from | recovery's scan of the whole log (cuts torn and unproven tails) | the auditor's read-only reader, from the segment holding the snapshot's LSN |
//! | log ends before the snapshot | refuse (`SnapshotBeyondLog`): acknowledged records are missing | try an older snapshot |
//! | stop | never | at the first record after the instant |
//! | records after the newest batch proof (recovery row 11) | cut, never folded | folded (`audit verify` reports them as unproven) |
//!
//! A snapshot is a cache: one the log does not agree with (the record at its LSN
//! carries another chain) is passed over for the next older one, and the last
//! resort is LSN 1 with the empty state, which nothing can disagree with.

use std::ops::ControlFlow;

use crate::event::{Entry, Event, Lsn};
use crate::log::format::{self, Chain, GENESIS_CHAIN, RecordView};
use crate::log::recovery::{Located, Scan, ScanError};
use crate::log::snapshot::{self, SnapshotProblem};
use crate::log::storage::Storage;
use crate::state::State;

/// Records in LSN order, verified: what a fold reads.
pub(crate) trait Records: Sized {
    type Error;

    /// Hands each record and where it is to `visit`, in order, until `visit`
    /// breaks (the record it broke at is consumed) or the records end. `visit`
    /// also sees the records themselves, for progress. Push, not pull: a record
    /// is looked at in place, never copied up through the readers.
    fn each<V>(&mut self, visit: V) -> Result<(), Self::Error>
    where
        V: FnMut(&Self, Located<'_>, &RecordView<'_>) -> ControlFlow<()>;

    /// The error for a record at `at` whose event does not decode.
    fn undecodable(at: Located<'_>, lsn: Lsn, what: String) -> Self::Error;
}

impl Records for Scan<'_> {
    type Error = ScanError;

    fn each<V>(&mut self, visit: V) -> Result<(), ScanError>
    where
        V: FnMut(&Self, Located<'_>, &RecordView<'_>) -> ControlFlow<()>,
    {
        Scan::each(self, visit)
    }

    fn undecodable(at: Located<'_>, lsn: Lsn, what: String) -> ScanError {
        ScanError::Rejected { file: at.file.to_string(), offset: at.offset, lsn, what }
    }
}

/// A snapshot's state, where it stands.
#[derive(Debug)]
pub(crate) struct Base {
    pub(crate) name: String,
    pub(crate) state: State,
    pub(crate) chain: Chain,
}

/// Why the log does not agree with a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Disagreement {
    /// The record at the snapshot's LSN carries another chain.
    ChainDiffers,
    /// The records end before the snapshot's LSN.
    LogEndsBefore,
}

/// What one kind of fold reads, and what a disagreement means to it.
pub(crate) trait FoldSource {
    type Records: Records;
    type Error: From<<Self::Records as Records>::Error>;

    /// Snapshot `name`'s state, or `None` if it is unusable (a cache: the next
    /// one is tried).
    fn load(&mut self, name: &str) -> Option<Base>;

    /// Records holding every one after `base_lsn` and, if `base_lsn > 0`, either
    /// the one at it or a segment start right after it (earlier ones may come
    /// too; they are skipped).
    fn records(&mut self, base_lsn: Lsn) -> Result<Self::Records, Self::Error>;

    /// The log does not agree with snapshot `name` at `base_lsn`: `Ok` passes
    /// over it for the next one, an error ends the fold.
    fn disagrees(
        &mut self,
        name: &str,
        base_lsn: Lsn,
        why: Disagreement,
        records: &Self::Records,
    ) -> Result<(), Self::Error>;

    /// The folding thread could not be started.
    fn thread_failed(source: std::io::Error) -> Self::Error;
}

/// A fold that ended.
#[derive(Debug)]
pub(crate) struct Folded<R> {
    pub(crate) state: State,
    /// The last record folded in (the snapshot's LSN if none; 0: none at all).
    pub(crate) lsn: Lsn,
    /// The chain after it.
    pub(crate) chain: Chain,
    /// The snapshot the fold started from.
    pub(crate) snapshot: Option<String>,
    /// Records decoded and folded after the snapshot.
    pub(crate) events: u64,
    /// The record the stop predicate stopped at, decoded, with its chain.
    pub(crate) next: Option<(Entry, Chain)>,
    /// The records, positioned after `next` (or at their end).
    pub(crate) records: R,
}

/// Entries per chunk handed from the reading stage to the folding one.
const FOLD_CHUNK_ENTRIES: usize = 128;
/// Chunks that may wait for the folder (I7: the memory in flight is bounded).
const FOLD_CHUNKS_IN_FLIGHT: usize = 128;
/// Records between two calls of the progress callback.
const PROGRESS_EVERY_RECORDS: u64 = 1 << 14;

/// Snapshot `name` from `storage`, if it is sound, signed under `public_key`
/// (when there is one) and at the LSN its header names.
pub(crate) fn load_snapshot(
    storage: &dyn Storage,
    name: &str,
    public_key: Option<&[u8; 32]>,
) -> Result<Base, SnapshotProblem> {
    let loaded = snapshot::read_decoded(storage, name, public_key, |body| {
        State::decode_from_reader(body).map_err(|e| format!("cannot decode state: {e}"))
    })?;
    let state = loaded.value;
    if state.applied_lsn != loaded.lsn {
        return Err(SnapshotProblem {
            name: name.to_string(),
            what: format!("state is at LSN {} but the header says {}", state.applied_lsn, loaded.lsn),
        });
    }
    Ok(Base { name: loaded.name, state, chain: loaded.chain })
}

/// The fold: from the newest of `snapshots` (newest first) the log agrees with,
/// or from LSN 1, every record folded until the records end or `stop` is true of
/// one (that record is not folded; it is returned in [`Folded::next`]).
/// `progress` hears of the records every so often.
pub(crate) fn fold_from_newest_agreeing<F: FoldSource>(
    source: &mut F,
    snapshots: &[String],
    mut stop: impl FnMut(&Entry) -> bool,
    progress: &mut dyn FnMut(&F::Records),
) -> Result<Folded<F::Records>, F::Error> {
    for name in snapshots.iter().map(Some).chain([None]) {
        let base = match name {
            Some(name) => match source.load(name) {
                Some(base) => Some(base),
                None => continue,
            },
            None => None,
        };
        let base_lsn = base.as_ref().map_or(0, |b| b.state.applied_lsn);
        let records = source.records(base_lsn)?;
        match fold_from::<F>(records, base, &mut stop, progress)? {
            Attempt::Folded(folded) => return Ok(*folded),
            Attempt::Disagrees { name, why, records } => source.disagrees(&name, base_lsn, why, &records)?,
        }
    }
    unreachable!("a fold from LSN 1 has no snapshot to disagree with")
}

enum Attempt<R> {
    Folded(Box<Folded<R>>),
    Disagrees { name: String, why: Disagreement, records: R },
}

/// One attempt: from `base` (or LSN 1), in two stages on two threads. This one
/// reads, verifies and decodes; the folder applies, so the two overlap.
fn fold_from<F: FoldSource>(
    mut records: F::Records,
    base: Option<Base>,
    stop: &mut impl FnMut(&Entry) -> bool,
    progress: &mut dyn FnMut(&F::Records),
) -> Result<Attempt<F::Records>, F::Error> {
    let (name, state, base_chain) = match base {
        Some(b) => (Some(b.name), b.state, b.chain),
        None => (None, State::default(), GENESIS_CHAIN),
    };
    let base_lsn = state.applied_lsn;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Entry>>(FOLD_CHUNKS_IN_FLIGHT);
    std::thread::scope(|scope| {
        let folder = std::thread::Builder::new()
            .name("lessor-replay-fold".into())
            .spawn_scoped(scope, move || {
                let mut state = state;
                for chunk in rx {
                    for entry in chunk {
                        state.apply_owned(entry);
                    }
                }
                state
            })
            .map_err(F::thread_failed)?;
        let read = read_stage::<F::Records>(&mut records, base_lsn, base_chain, stop, progress, &tx);
        drop(tx);
        let state = folder.join().expect("the replay folder panicked");
        let (lsn, chain, events, next) = match read.map_err(F::Error::from)? {
            Ok(read) => read,
            Err(why) => return Ok(Attempt::Disagrees { name: name.unwrap_or_default(), why, records }),
        };
        let folded = Folded { state, lsn, chain, snapshot: name, events, next, records };
        Ok(Attempt::Folded(Box::new(folded)))
    })
}

/// Where a reading stage ended: the last record folded, its chain, how many were
/// folded, and the record it stopped at.
type ReadEnd = (Lsn, Chain, u64, Option<(Entry, Chain)>);

/// The reading stage of [`fold_from`]: `Ok(Err(_))` when the log does not agree
/// with the snapshot at `base_lsn`.
fn read_stage<R: Records>(
    records: &mut R,
    base_lsn: Lsn,
    base_chain: Chain,
    stop: &mut impl FnMut(&Entry) -> bool,
    progress: &mut dyn FnMut(&R),
    tx: &std::sync::mpsc::SyncSender<Vec<Entry>>,
) -> Result<Result<ReadEnd, Disagreement>, R::Error> {
    let (mut lsn, mut chain) = (base_lsn, base_chain);
    let mut anchored = base_lsn == 0;
    let mut disagrees = false;
    let mut undecodable = None;
    let mut events = 0u64;
    let mut next = None;
    let mut chunk = Vec::with_capacity(FOLD_CHUNK_ENTRIES);
    let mut seen = 0u64;
    progress(records);
    records.each(|records, at, rec| {
        seen += 1;
        if seen.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            progress(records);
        }
        if rec.lsn <= base_lsn {
            // Covered by the snapshot: only the record at its LSN matters, which
            // must carry the chain the snapshot recorded.
            if rec.lsn == base_lsn {
                if rec.chain != base_chain {
                    disagrees = true;
                    return ControlFlow::Break(());
                }
                anchored = true;
            }
            return ControlFlow::Continue(());
        }
        if !anchored {
            // The records start at a segment boundary right after the snapshot.
            if rec.lsn != base_lsn + 1
                || format::chain_next(&base_chain, rec.lsn, rec.ts_ms, rec.kind, rec.payload) != rec.chain
            {
                disagrees = true;
                return ControlFlow::Break(());
            }
            anchored = true;
        }
        let event = match Event::decode(rec.kind, rec.payload) {
            Ok(event) => event,
            Err(e) => {
                undecodable = Some(R::undecodable(at, rec.lsn, e.to_string()));
                return ControlFlow::Break(());
            }
        };
        let entry = Entry { lsn: rec.lsn, ts_ms: rec.ts_ms, event };
        if stop(&entry) {
            next = Some((entry, rec.chain));
            return ControlFlow::Break(());
        }
        (lsn, chain) = (rec.lsn, rec.chain);
        chunk.push(entry);
        events += 1;
        if chunk.len() == FOLD_CHUNK_ENTRIES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(FOLD_CHUNK_ENTRIES));
            if tx.send(full).is_err() {
                // The folder is gone, which only a panic does: joining it says so.
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(error) = undecodable {
        return Err(error);
    }
    if disagrees {
        return Ok(Err(Disagreement::ChainDiffers));
    }
    if !anchored {
        return Ok(Err(Disagreement::LogEndsBefore));
    }
    if !chunk.is_empty() {
        let _ = tx.send(chunk);
    }
    progress(records);
    Ok(Ok((lsn, chain, events, next)))
}
