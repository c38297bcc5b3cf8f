//! Forensics over real data directories: `verify` catches every kind of tampering
//! and names the place; signed checkpoints are logged at seals and on an interval
//! and verify (a forged one does not); `state_at` and `diff` agree with a small
//! reference model over a simulated history of 100,000 events; `who_had`, the
//! timeline filters and the keyed hash, over a history made through real requests.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{data_len, records, segment_names};
use lessor_engine::audit::{
    self, CheckpointError, Filter, KeyLoadError, QueryError, ReadError, ReplayOptions, SignedCheckpoint, VerifyError,
    VerifyOptions,
};
use lessor_engine::auth::keys::{Keys, MasterKey};
use lessor_engine::clock::{Clock, ManualClock};
use lessor_engine::event::*;
use lessor_engine::log::format::{self, GENESIS_CHAIN, SEGMENT_HEADER_BYTES, SegmentHeader};
use lessor_engine::log::storage::ReadOnlyDir;
use lessor_engine::log::{LogOptions, read_entries};
use lessor_engine::request::Operation;
use lessor_engine::testing::{FaultInjectingPlugin, SplitMix64, generated_event};
use lessor_engine::{Engine, EngineOptions};
use serde_json::{Value, json};

const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

fn master() -> MasterKey {
    MasterKey::from_bytes([9; 32])
}

fn keys() -> Keys {
    Keys::derive(&master())
}

/// Logs built with thousands of fsyncs go to tmpfs where the machine has one.
fn test_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() }
}

fn options(clock: &Arc<ManualClock>, segment_bytes_max: u64) -> EngineOptions {
    EngineOptions {
        log: LogOptions { segment_bytes_max, ..LogOptions::default() },
        snapshot_every_events: 0,
        clock: clock.clone(),
        master_key: Some(master()),
        ..EngineOptions::default()
    }
}

/// Random events that keep a log verifiable (no forged keys or checkpoints).
fn noise(rng: &mut SplitMix64) -> Event {
    loop {
        let e = generated_event(rng, 500);
        if !matches!(e.kind(), EventKind::EngineInitialized | EventKind::Checkpoint | EventKind::TailTruncated) {
            return e;
        }
    }
}

/// An initialized directory with `batches` batches of three events, a second
/// apart, over 8 KiB segments (so there are many, each sealed with a checkpoint).
fn small_log(batches: usize) -> tempfile::TempDir {
    let dir = test_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let (engine, _root) = Engine::init(dir.path(), options(&clock, 8 * 1024)).unwrap();
    let mut rng = SplitMix64(7);
    for _ in 0..batches {
        clock.advance_ms(1000);
        engine.append_unchecked_blocking((0..3).map(|_| noise(&mut rng)).collect()).unwrap();
    }
    engine.close();
    dir
}

fn verify(dir: &Path) -> Result<audit::VerifyReport, VerifyError> {
    audit::verify(dir, VerifyOptions::default())
}

/// The place a verification failed: `(file name, offset, lsn)`.
fn place(err: &VerifyError) -> (String, u64, Lsn) {
    let (file, offset, lsn) = match err {
        VerifyError::Read(ReadError::Damaged { file, offset, lsn, .. }) => (file, offset, lsn),
        VerifyError::Invalid { file, offset, lsn, .. } => (file, offset, lsn),
        VerifyError::ExportedMismatch { file, offset, lsn, .. } => (file, offset, lsn),
        other => panic!("verification failed without a place: {other}"),
    };
    let name = Path::new(file).file_name().unwrap().to_string_lossy().into_owned();
    let text = err.to_string();
    assert!(text.contains(&name) && text.contains(&format!("byte {offset}")) && text.contains(&format!("LSN {lsn}")));
    (name, *offset, *lsn)
}

fn recrc(record: &mut [u8]) {
    let crc = crc32fast::hash(&record[12..]);
    record[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Rewrites the whole log with `edit` applied to its entries, recomputing every
/// crc and chain and keeping the segment boundaries; with `keys`, logged
/// checkpoints are re-signed too (an attacker holding the master key).
fn rewrite(dir: &Path, keys: Option<&Keys>, mut edit: impl FnMut(&mut Vec<Entry>)) {
    let (mut entries, summary) = read_entries(&ReadOnlyDir::new(dir)).unwrap();
    let firsts: Vec<Lsn> = summary.segments.iter().map(|s| s.first_lsn).collect();
    edit(&mut entries);
    for name in segment_names(dir) {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    let mut chain = GENESIS_CHAIN;
    let mut prev = (0, GENESIS_CHAIN, 0);
    for (i, &first) in firsts.iter().enumerate() {
        let end = firsts.get(i + 1).copied().unwrap_or(Lsn::MAX);
        let mut bytes =
            SegmentHeader { version: format::FORMAT_VERSION, first_lsn: first, prev_chain: chain }.encode().to_vec();
        for (lsn, entry) in (1..).zip(entries.iter_mut()).filter(|(lsn, _)| *lsn >= first && *lsn < end) {
            if let (Some(keys), Event::Checkpoint(cp)) = (keys, &mut entry.event) {
                *cp = SignedCheckpoint::sign(keys, prev.0, &prev.1, prev.2).to_event();
            }
            if let (Some(keys), Event::BatchSigned(proof)) = (keys, &mut entry.event) {
                proof.signature = keys.sign_checkpoint(&lessor_engine::log::proof::message(prev.0, &prev.1)).to_vec();
            }
            chain = format::encode_record(
                &mut bytes,
                &chain,
                lsn,
                entry.ts_ms,
                entry.event.kind().code(),
                &entry.event.encode_payload(),
            );
            prev = (lsn, chain, entry.ts_ms);
        }
        if bytes.len() > SEGMENT_HEADER_BYTES || i == 0 {
            std::fs::write(dir.join(format::segment_name(first)), bytes).unwrap();
        }
    }
}

/// `(file name, offset)` of the record with `lsn`.
fn locate(dir: &Path, lsn: Lsn) -> (String, u64) {
    for name in segment_names(dir) {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        if let Some((offset, _, _)) = records(&bytes).into_iter().find(|r| r.1 == lsn) {
            return (name, offset as u64);
        }
    }
    panic!("LSN {lsn} not in the log")
}

#[test]
fn an_untouched_log_verifies_with_its_counts() {
    let dir = small_log(300);
    let report = verify(dir.path()).unwrap();
    let (entries, summary) = read_entries(&ReadOnlyDir::new(dir.path())).unwrap();
    assert_eq!(report.records, entries.len() as u64);
    assert_eq!(report.last_lsn, entries.len() as u64);
    assert_eq!(report.segments, summary.segments.len() as u64);
    assert!(report.segments >= 5, "want several segments, got {}", report.segments);
    // The bytes of headers and records: not the zeros each segment, allocated
    // at its full size, ends in.
    let data: u64 =
        segment_names(dir.path()).iter().map(|n| data_len(&std::fs::read(dir.path().join(n)).unwrap()) as u64).sum();
    assert_eq!(report.bytes, data);
    let on_disk: u64 =
        segment_names(dir.path()).iter().map(|n| std::fs::metadata(dir.path().join(n)).unwrap().len()).sum();
    assert!(on_disk > data, "the segments were not preallocated");
    let logged = entries.iter().filter(|e| matches!(e.event, Event::Checkpoint(_))).count() as u64;
    assert_eq!(report.checkpoints, logged);
    assert_eq!(report.public_key, Some(keys().checkpoint_public_key()));
    assert!(report.torn_tail.is_none());
}

#[test]
fn a_flipped_byte_is_named_by_file_offset_and_lsn() {
    let dir = small_log(300);
    let name = segment_names(dir.path())[1].clone();
    let path = dir.path().join(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    let (offset, lsn, size) = records(&bytes)[5];
    bytes[offset + size / 2] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert_eq!(place(&err), (name, offset as u64, lsn), "{err}");
    assert!(err.to_string().contains("sealed segment"), "{err}");
}

#[test]
fn a_deleted_record_with_recomputed_crcs_is_named() {
    let dir = small_log(300);
    let name = segment_names(dir.path())[2].clone();
    let path = dir.path().join(&name);
    let bytes = std::fs::read(&path).unwrap();
    let recs = records(&bytes);
    let (gone_at, gone_lsn, gone_size) = recs[4];
    // Cut the record out, renumber the ones after it and fix their crcs: only
    // the hash chain can tell.
    let mut out = bytes[..gone_at].to_vec();
    for &(at, lsn, size) in &recs[5..] {
        let mut rec = bytes[at..at + size].to_vec();
        rec[12..20].copy_from_slice(&(lsn - 1).to_le_bytes());
        recrc(&mut rec);
        out.extend_from_slice(&rec);
    }
    assert_eq!(out.len(), data_len(&bytes) - gone_size);
    // The file keeps its preallocated size: zeros after the records.
    out.resize(bytes.len(), 0);
    std::fs::write(&path, out).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert_eq!(place(&err), (name, gone_at as u64, gone_lsn), "{err}");
    assert!(err.to_string().contains("hash chain"), "{err}");
}

#[test]
fn reordered_segments_are_named() {
    let dir = small_log(300);
    let names = segment_names(dir.path());
    let (a, b) = (dir.path().join(&names[1]), dir.path().join(&names[2]));
    let (bytes_a, bytes_b) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let first_lsn_a = format::parse_segment_name(&names[1]).unwrap();
    // Swapped contents: each header contradicts its file name.
    std::fs::write(&a, &bytes_b).unwrap();
    std::fs::write(&b, &bytes_a).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert_eq!(place(&err), (names[1].clone(), 0, first_lsn_a), "{err}");
    assert!(err.to_string().contains("swapped"), "{err}");
    // Swapped again with headers rewritten to match the names: the records' own
    // LSNs give it away, at the first record.
    let mut moved = bytes_b.clone();
    let header = SegmentHeader::decode(&bytes_a).unwrap();
    moved[..SEGMENT_HEADER_BYTES].copy_from_slice(&header.encode());
    std::fs::write(&a, &moved).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert_eq!(place(&err), (names[1].clone(), SEGMENT_HEADER_BYTES as u64, first_lsn_a), "{err}");
}

#[test]
fn a_truncated_middle_segment_is_named() {
    let dir = small_log(300);
    let names = segment_names(dir.path());
    let path = dir.path().join(&names[1]);
    let bytes = std::fs::read(&path).unwrap();
    let recs = records(&bytes);
    // Cut inside a record: damage in a sealed segment, at that record.
    let (at, lsn, size) = recs[recs.len() - 3];
    std::fs::write(&path, &bytes[..at + size / 2]).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert_eq!(place(&err), (names[1].clone(), at as u64, lsn), "{err}");
    assert!(err.to_string().contains("cut short"), "{err}");
    // Cut at a record boundary: the next segment starts after a gap.
    std::fs::write(&path, &bytes[..at]).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert_eq!(place(&err), (names[2].clone(), 0, lsn), "{err}");
    let text = err.to_string();
    assert!(text.contains("missing") && text.contains(&names[1]), "{text}");
}

#[test]
fn a_consistent_rewrite_after_an_exported_checkpoint_is_caught() {
    let dir = small_log(300);
    // The auditor keeps the latest logged checkpoint off the host.
    let report = verify(dir.path()).unwrap();
    let exported_text = report.latest_checkpoint.expect("seals logged checkpoints").to_text();
    let exported = SignedCheckpoint::parse(&exported_text).unwrap();
    let ok = audit::verify(dir.path(), VerifyOptions { exported: Some(&exported), ..Default::default() }).unwrap();
    assert_eq!(ok.exported.as_ref().map(|m| m.lsn), Some(exported.lsn));

    // Someone with the master key edits a record before the checkpoint and
    // rewrites everything after it: crcs, chains, and re-signed checkpoints.
    let target = exported.lsn / 2;
    rewrite(dir.path(), Some(&keys()), |entries| {
        let e = &mut entries[target as usize - 1];
        e.event = RequestRecorded {
            request_id: "forged".into(),
            accessor: "nobody".into(),
            display_name: String::new(),
            operation: lessor_engine::event::Operation::Read,
            path: "sys/nothing".into(),
            outcome: Outcome::Ok,
            error: None,
        }
        .into();
    });
    // On its own, the rewritten log is flawless...
    let alone = verify(dir.path()).unwrap();
    assert_eq!(alone.records, report.records);
    assert_eq!(alone.checkpoints, report.checkpoints);
    // ...but not against the checkpoint kept elsewhere.
    let err = audit::verify(dir.path(), VerifyOptions { exported: Some(&exported), ..Default::default() }).unwrap_err();
    let (file, offset) = locate(dir.path(), exported.lsn);
    assert_eq!(place(&err), (file, offset, exported.lsn), "{err}");
    assert!(err.to_string().contains("rewritten"), "{err}");

    // Cutting the log back before the checkpoint is caught as well.
    rewrite(dir.path(), Some(&keys()), |entries| entries.truncate(exported.lsn as usize - 10));
    let err = audit::verify(dir.path(), VerifyOptions { exported: Some(&exported), ..Default::default() }).unwrap_err();
    assert!(matches!(err, VerifyError::ExportedBeyondLog { lsn, .. } if lsn == exported.lsn), "{err}");
}

#[test]
fn logged_checkpoints_verify_and_a_forged_one_is_named() {
    let dir = small_log(300);
    let report = verify(dir.path()).unwrap();
    let latest = report.latest_checkpoint.clone().unwrap();
    latest.verify(&keys().checkpoint_public_key()).unwrap();
    // Forge a signature without the key; chains are recomputed so only the
    // signature is wrong.
    let (entries, _) = read_entries(&ReadOnlyDir::new(dir.path())).unwrap();
    let forged_lsn = entries.iter().find(|e| matches!(e.event, Event::Checkpoint(_))).unwrap().lsn;
    rewrite(dir.path(), None, |entries| {
        if let Event::Checkpoint(cp) = &mut entries[forged_lsn as usize - 1].event {
            cp.signature[10] ^= 1;
        }
    });
    let err = verify(dir.path()).unwrap_err();
    let (file, offset) = locate(dir.path(), forged_lsn);
    assert_eq!(place(&err), (file, offset, forged_lsn), "{err}");
    assert!(err.to_string().contains("forged"), "{err}");
}

#[test]
fn an_exported_checkpoint_must_be_this_logs_and_genuine() {
    let dir = small_log(50);
    let report = verify(dir.path()).unwrap();
    let head = SignedCheckpoint::sign(&keys(), report.last_lsn, &report.last_chain, report.last_ts_ms.unwrap());
    let check =
        |cp: &SignedCheckpoint| audit::verify(dir.path(), VerifyOptions { exported: Some(cp), ..Default::default() });
    assert_eq!(check(&head).unwrap().exported.unwrap().lsn, report.last_lsn);
    let other = Keys::derive(&MasterKey::from_bytes([1; 32]));
    let foreign = SignedCheckpoint::sign(&other, report.last_lsn, &report.last_chain, report.last_ts_ms.unwrap());
    assert!(matches!(check(&foreign), Err(VerifyError::Exported(CheckpointError::OtherLog { .. }))));
    let edited_text = head.to_text().replacen(&format!("\n{}\n", head.lsn), &format!("\n{}\n", head.lsn - 1), 1);
    let edited = SignedCheckpoint::parse(&edited_text).unwrap();
    assert!(matches!(check(&edited), Err(VerifyError::Exported(CheckpointError::BadSignature))));
    let beyond = SignedCheckpoint::sign(&keys(), report.last_lsn + 5, &report.last_chain, 0);
    assert!(matches!(check(&beyond), Err(VerifyError::ExportedBeyondLog { .. })));
}

#[test]
fn a_torn_tail_is_reported_not_failed() {
    let dir = small_log(20);
    let last = segment_names(dir.path()).pop().unwrap();
    let path = dir.path().join(&last);
    let pristine = std::fs::read(&path).unwrap();
    let data = data_len(&pristine);
    let torn = [0x4c, 0x53, 0x52, 0x45, 9, 0];
    // Written where the data ends, into the zeros of the preallocated segment
    // (as a torn write leaves it), and appended to a file that ends with the
    // data (as on a file system that would not preallocate). Either way the
    // tail is 5 bytes: the zero after them is not data.
    let mut in_place = pristine.clone();
    in_place[data..data + torn.len()].copy_from_slice(&torn);
    let mut appended = pristine[..data].to_vec();
    appended.extend_from_slice(&torn);
    for bytes in [in_place, appended] {
        std::fs::write(&path, bytes).unwrap();
        let report = verify(dir.path()).unwrap();
        let torn = report.torn_tail.unwrap();
        assert_eq!((torn.offset, torn.bytes), (data as u64, 5));
    }
}

#[test]
fn checkpoints_at_every_seal() {
    let dir = small_log(300);
    let (entries, summary) = read_entries(&ReadOnlyDir::new(dir.path())).unwrap();
    let checkpoint_lsns: Vec<(Lsn, Lsn)> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Checkpoint(cp) => Some((e.lsn, cp.lsn)),
            _ => None,
        })
        .collect();
    for seg in &summary.segments[1..] {
        // The batch that sealed the segment ends with a checkpoint of its last
        // record: at most a batch (3 events) into the new segment, or one more
        // when the previous batch's proof is what opened it.
        assert!(
            checkpoint_lsns
                .iter()
                .any(|&(at, covers)| at >= seg.first_lsn && at <= seg.first_lsn + 4 && covers + 1 == at),
            "no checkpoint after the seal before {} ({checkpoint_lsns:?})",
            seg.name
        );
    }
}

/// Checkpoint record timestamps of a directory.
fn checkpoint_times(dir: &Path) -> Vec<i64> {
    let (entries, _) = read_entries(&ReadOnlyDir::new(dir)).unwrap();
    entries.iter().filter(|e| matches!(e.event, Event::Checkpoint(_))).map(|e| e.ts_ms).collect()
}

#[test]
fn checkpoints_on_the_interval_across_reopens_and_none_without_the_key() {
    let dir = test_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let big = 64 << 20;
    let (mut engine, _root) = Engine::init(dir.path(), options(&clock, big)).unwrap();
    let mut rng = SplitMix64(3);
    for minute in 1..=60 {
        if minute == 31 {
            engine.close();
            engine = Engine::open(dir.path(), options(&clock, big)).unwrap();
        }
        clock.advance_ms(MINUTE);
        engine.append_unchecked_blocking(vec![noise(&mut rng)]).unwrap();
    }
    engine.close();
    let times = checkpoint_times(dir.path());
    assert!((5..=6).contains(&times.len()), "one checkpoint per 10 minutes of log time: {times:?}");
    assert!(times.windows(2).all(|w| w[1] - w[0] >= 10 * MINUTE), "{times:?}");
    verify(dir.path()).unwrap();

    // Interval 0: only seals, and a big segment never seals here.
    let off = test_dir();
    let mut opts = options(&clock, big);
    opts.log.checkpoint_interval_ms = 0;
    let (engine, _root) = Engine::init(off.path(), opts).unwrap();
    for _ in 0..30 {
        clock.advance_ms(MINUTE);
        engine.append_unchecked_blocking(vec![noise(&mut rng)]).unwrap();
    }
    engine.close();
    assert!(checkpoint_times(off.path()).is_empty());

    // No master key: a read-only engine signs nothing, seals or not.
    let keyless = test_dir();
    let opts = EngineOptions { master_key: None, create_if_missing: true, ..options(&clock, 2048) };
    let engine = Engine::open(keyless.path(), opts).unwrap();
    for _ in 0..200 {
        clock.advance_ms(MINUTE);
        engine.append_unchecked_blocking(vec![noise(&mut rng)]).unwrap();
    }
    engine.close();
    assert!(segment_names(keyless.path()).len() > 3);
    assert!(checkpoint_times(keyless.path()).is_empty());
    assert_eq!(verify(keyless.path()).unwrap().checkpoints, 0);
}

// ---------------------------------------------------------------------------
// state_at and diff against a reference model, on a simulated history.

const SIM_EVENTS: u64 = 100_000;
const MOUNTS: [&str; 2] = ["database/", "db2/"];

/// A lease lifecycle simulator: issues (some failing or left mid-way), renewals,
/// explicit and prefix revocations, expiries revoked late or failing, token, role,
/// policy and mount changes, audit records, and random noise events.
struct Sim {
    rng: SplitMix64,
    clock: Arc<ManualClock>,
    next: u64,
    /// Lease id → (expiry, issued) as the simulator believes; only picks targets.
    leases: BTreeMap<String, (i64, bool)>,
    tokens: Vec<String>,
}

impl Sim {
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn pick(&mut self) -> Option<String> {
        if self.leases.is_empty() {
            return None;
        }
        let i = self.rng.below(self.leases.len() as u64) as usize;
        self.leases.keys().nth(i).cloned()
    }

    fn step(&mut self) -> Vec<Event> {
        let s = |v: &str| v.to_string();
        let now = self.now();
        self.next += 1;
        let n = self.next;
        match self.rng.below(105) {
            100.. => {
                // The expirer right on time: at exactly a lease's expiry, it is
                // revoked (or, racing it, renewed) — the boundary of "expired".
                let next =
                    self.leases.iter().filter(|(_, (e, issued))| *e > now && *issued).min_by_key(|(_, (e, _))| *e);
                let Some((id, &(expire, _))) = next.map(|(id, v)| (id.clone(), v)) else { return vec![] };
                self.clock.advance_ms(expire - now);
                if self.rng.below(4) == 0 {
                    let later = expire + 10 * MINUTE;
                    self.leases.get_mut(&id).unwrap().0 = later;
                    return vec![RenewCompleted { lease_id: id, expire_time_ms: later }.into()];
                }
                self.leases.remove(&id);
                vec![
                    RevokeStarted::by_engine(id.clone(), RevokeReason::Expired).into(),
                    RevokeCompleted { lease_id: id }.into(),
                ]
            }
            0..=29 => {
                let mount = MOUNTS[self.rng.below(2) as usize];
                let role = format!("r{}", self.rng.below(6));
                let lease_id = format!("{mount}creds/{role}/{n:08}");
                let accessor = self.tokens[self.rng.below(self.tokens.len() as u64) as usize].clone();
                let expire = now + MINUTE * (1 + self.rng.below(60) as i64);
                let started = IssueStarted {
                    lease_id: lease_id.clone(),
                    mount: s(mount),
                    role,
                    connection: s("pg"),
                    username: format!("v-user-{n}"),
                    accessor,
                    expire_time_ms: expire,
                    expire_time_max_ms: now + 120 * MINUTE,
                    renewable: true,
                    revocation_statements: vec![],
                    request_id: format!("req-{n}"),
                    path: format!("{mount}creds/r"),
                };
                let outcome = self.rng.below(20);
                let mut out = vec![started.into()];
                match outcome {
                    0 => out.push(IssueFailed { lease_id, error: s("boom") }.into()),
                    1 => {
                        self.leases.insert(lease_id, (expire, false));
                    }
                    _ => {
                        out.push(IssueCompleted { lease_id: lease_id.clone() }.into());
                        self.leases.insert(lease_id, (expire, true));
                    }
                }
                out
            }
            30..=44 => {
                let Some(id) = self.pick() else { return vec![] };
                let expire = now + MINUTE * (1 + self.rng.below(60) as i64);
                let mut out = vec![
                    RenewStarted {
                        lease_id: id.clone(),
                        expire_time_ms: expire,
                        accessor: s("acc"),
                        request_id: s("req"),
                        path: s("sys/leases/renew"),
                    }
                    .into(),
                ];
                if self.rng.below(10) == 0 {
                    out.push(RenewFailed { lease_id: id, error: s("timeout") }.into());
                } else {
                    out.push(RenewCompleted { lease_id: id.clone(), expire_time_ms: expire }.into());
                    self.leases.get_mut(&id).unwrap().0 = expire;
                }
                out
            }
            45..=54 => {
                let Some(id) = self.pick() else { return vec![] };
                let reason = if self.rng.below(3) == 0 { RevokeReason::Prefix } else { RevokeReason::Explicit };
                let mut out = vec![RevokeStarted::by_engine(id.clone(), reason).into()];
                match self.rng.below(20) {
                    0 => out.push(RevokeForced { lease_id: id.clone(), error: s("refused") }.into()),
                    1 | 2 => {
                        out.push(
                            RevokeFailed { lease_id: id, attempt: 1, error: s("down"), next_attempt_time_ms: now }
                                .into(),
                        );
                        return out;
                    }
                    _ => out.push(RevokeCompleted { lease_id: id.clone() }.into()),
                }
                self.leases.remove(&id);
                out
            }
            55..=69 => {
                // The expirer, running late: revoke what is due.
                let due: Vec<String> =
                    self.leases.iter().filter(|(_, (e, _))| *e <= now).map(|(id, _)| id.clone()).take(20).collect();
                let mut out = Vec::new();
                for id in due {
                    out.push(RevokeStarted::by_engine(id.clone(), RevokeReason::Expired).into());
                    if self.rng.below(15) == 0 {
                        out.push(LeaseIrrevocable { lease_id: id.clone(), attempts: 3, error: s("down") }.into());
                    } else {
                        out.push(RevokeCompleted { lease_id: id.clone() }.into());
                    }
                    self.leases.remove(&id);
                }
                out
            }
            70..=74 => {
                let pending = self.leases.iter().find(|(_, (_, issued))| !issued).map(|(id, _)| id.clone());
                let Some(id) = pending else { return vec![] };
                self.leases.get_mut(&id).unwrap().1 = true;
                vec![IssueCompleted { lease_id: id }.into()]
            }
            75..=79 => {
                if self.rng.below(3) == 0 && self.tokens.len() > 2 {
                    let accessor = self.tokens.remove(1 + self.rng.below(self.tokens.len() as u64 - 1) as usize);
                    vec![TokenRevoked { accessor, orphan_children: false }.into()]
                } else {
                    let accessor = format!("acc-{n}");
                    self.tokens.push(accessor.clone());
                    vec![
                        TokenCreated {
                            accessor,
                            token_hash: [(n % 251) as u8; 32],
                            parent_accessor: None,
                            policies: vec![s("app")],
                            display_name: format!("token-app-{n}"),
                            ttl_ms: 3_600_000,
                            explicit_max_ttl_ms: 0,
                            expire_time_ms: None,
                            renewable: true,
                            num_uses: 0,
                        }
                        .into(),
                    ]
                }
            }
            80..=84 => {
                let mount = s(MOUNTS[self.rng.below(2) as usize]);
                let name = format!("r{}", self.rng.below(6));
                match self.rng.below(10) {
                    0..=3 => {
                        let mut role = match lessor_engine::testing::sample(EventKind::RoleWritten) {
                            Event::RoleWritten(r) => r,
                            _ => unreachable!(),
                        };
                        role.mount = mount;
                        role.name = name;
                        role.default_ttl_ms = self.rng.below(1000);
                        vec![role.into()]
                    }
                    4 | 5 => vec![RoleDeleted { mount, name }.into()],
                    6 | 7 => {
                        vec![PolicyWritten { name: format!("p{}", self.rng.below(4)), text: s("path \"x\" {}") }.into()]
                    }
                    8 => vec![PolicyDeleted { name: format!("p{}", self.rng.below(4)) }.into()],
                    _ => vec![
                        MountDisabled { path: mount.clone() }.into(),
                        MountEnabled {
                            path: mount,
                            mount_type: s("database"),
                            description: String::new(),
                            default_lease_ttl_ms: 0,
                            max_lease_ttl_ms: 0,
                        }
                        .into(),
                    ],
                }
            }
            85..=94 => {
                let outcome =
                    [Outcome::Ok, Outcome::Denied, Outcome::Invalid, Outcome::Error][self.rng.below(4) as usize];
                vec![
                    RequestRecorded {
                        request_id: format!("req-{n}"),
                        accessor: self.tokens[0].clone(),
                        display_name: s("root"),
                        operation: lessor_engine::event::Operation::Read,
                        path: format!("database/creds/r{}", self.rng.below(6)),
                        outcome,
                        error: None,
                    }
                    .into(),
                ]
            }
            _ => (0..1 + self.rng.below(3)).map(|_| noise(&mut self.rng)).collect(),
        }
    }
}

const SIM_SNAPSHOT_EVERY_EVENTS: u64 = 10_000;
/// Smaller than the history, so most snapshots are pruned and old instants must
/// start from the history ones.
const SIM_SNAPSHOT_HISTORY_EVERY_EVENTS: u64 = 25_000;

/// A directory holding a simulated history of `SIM_EVENTS` records over many
/// segments, with snapshots and logged checkpoints.
fn simulated_history(seed: u64) -> tempfile::TempDir {
    let dir = test_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let opts = EngineOptions {
        snapshot_every_events: SIM_SNAPSHOT_EVERY_EVENTS,
        snapshot_history_every_events: SIM_SNAPSHOT_HISTORY_EVERY_EVENTS,
        ..options(&clock, 256 * 1024)
    };
    let (engine, _root) = Engine::init(dir.path(), opts).unwrap();
    let mut sim = Sim {
        rng: SplitMix64(seed),
        clock: clock.clone(),
        next: 0,
        leases: BTreeMap::new(),
        tokens: vec!["acc-root".into()],
    };
    while engine.last_lsn() < SIM_EVENTS {
        // Often the same millisecond as the last batch: equal timestamps matter.
        if sim.rng.below(4) != 0 {
            clock.advance_ms(sim.rng.below(60_000) as i64);
        }
        let mut batch = sim.step();
        batch.truncate((SIM_EVENTS - engine.last_lsn()) as usize);
        if !batch.is_empty() {
            engine.append_unchecked_blocking(batch).unwrap();
        }
    }
    engine.close();
    dir
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefStatus {
    Issuing,
    Active,
    Revoking(RevokeReason),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RefLease {
    mount: String,
    role: String,
    username: String,
    accessor: String,
    issued: i64,
    expires: i64,
    status: RefStatus,
    irrevocable: bool,
}

/// The reference: the lease, role and policy rules as the design states them,
/// written out independently of the engine's fold.
#[derive(Clone, Debug, Default)]
struct Reference {
    leases: BTreeMap<String, RefLease>,
    roles: BTreeSet<(String, String)>,
    policies: BTreeSet<String>,
}

impl Reference {
    fn apply(&mut self, e: &Entry) {
        match &e.event {
            Event::IssueStarted(i) => {
                let lease = RefLease {
                    mount: i.mount.clone(),
                    role: i.role.clone(),
                    username: i.username.clone(),
                    accessor: i.accessor.clone(),
                    issued: e.ts_ms,
                    expires: i.expire_time_ms,
                    status: RefStatus::Issuing,
                    irrevocable: false,
                };
                self.leases.insert(i.lease_id.clone(), lease);
            }
            Event::IssueCompleted(i) => {
                if let Some(l) = self.leases.get_mut(&i.lease_id).filter(|l| l.status == RefStatus::Issuing) {
                    l.status = RefStatus::Active;
                }
            }
            Event::IssueFailed(i) if self.leases.get(&i.lease_id).is_some_and(|l| l.status == RefStatus::Issuing) => {
                self.leases.remove(&i.lease_id);
            }
            Event::RenewCompleted(r) => {
                if let Some(l) = self.leases.get_mut(&r.lease_id) {
                    l.expires = r.expire_time_ms;
                }
            }
            Event::RevokeStarted(r) => {
                if let Some(l) = self.leases.get_mut(&r.lease_id)
                    && !matches!(l.status, RefStatus::Revoking(_))
                {
                    l.status = RefStatus::Revoking(r.reason);
                }
            }
            Event::LeaseIrrevocable(r) => {
                if let Some(l) = self.leases.get_mut(&r.lease_id) {
                    l.irrevocable = true;
                }
            }
            Event::RevokeCompleted(RevokeCompleted { lease_id })
            | Event::RevokeForced(RevokeForced { lease_id, .. }) => {
                self.leases.remove(lease_id);
            }
            Event::RoleWritten(r) => {
                self.roles.insert((r.mount.clone(), r.name.clone()));
            }
            Event::RoleDeleted(r) => {
                self.roles.remove(&(r.mount.clone(), r.name.clone()));
            }
            Event::MountDisabled(m) => self.roles.retain(|(mount, _)| mount != &m.path),
            Event::PolicyWritten(p) => {
                self.policies.insert(p.name.clone());
            }
            Event::PolicyDeleted(p) => {
                self.policies.remove(&p.name);
            }
            _ => {}
        }
    }

    fn at(entries: &[Entry], t: i64) -> Reference {
        let mut r = Reference::default();
        for e in entries.iter().take_while(|e| e.ts_ms <= t) {
            r.apply(e);
        }
        r
    }
}

fn reason(r: RevokeReason) -> &'static str {
    match r {
        RevokeReason::Expired => "expired",
        RevokeReason::Explicit => "explicit",
        RevokeReason::Prefix => "prefix",
        RevokeReason::TokenRevoked => "token_revoked",
        RevokeReason::MountDisabled => "mount_disabled",
        RevokeReason::Recovery => "recovery",
        RevokeReason::Forced => "forced",
    }
}

type LeaseRow = (String, String, String, String, String, i64, i64, String, bool);

fn ref_rows(r: &Reference) -> Vec<LeaseRow> {
    r.leases
        .iter()
        .map(|(id, l)| {
            let status = match l.status {
                RefStatus::Issuing => "issuing".to_string(),
                RefStatus::Active => "active".to_string(),
                RefStatus::Revoking(why) => format!("revoking {}", reason(why)),
            };
            (
                id.clone(),
                l.mount.clone(),
                l.role.clone(),
                l.username.clone(),
                l.accessor.clone(),
                l.issued,
                l.expires,
                status,
                l.irrevocable,
            )
        })
        .collect()
}

fn audit_rows(s: &audit::StateAt) -> Vec<LeaseRow> {
    s.leases
        .iter()
        .map(|l| {
            let status = match l.revoke_reason {
                Some(why) => format!("{} {why}", l.status),
                None => l.status.to_string(),
            };
            let row = (l.lease_id.clone(), l.mount.clone(), l.role.clone(), l.username.clone(), l.accessor.clone());
            (row.0, row.1, row.2, row.3, row.4, l.issue_time_ms, l.expire_time_ms, status, l.irrevocable)
        })
        .collect()
}

/// The diff by the reference, with expiries found per lease rather than by a
/// sweep over time: a lease expired at `E` if it was active with expiry `E` after
/// one of its own changes (or at `from`) and its next own change comes at or
/// after `E` (or none comes and `E <= to`); once per lease and expiry instant.
#[derive(Debug, Default, PartialEq)]
struct RefDiff {
    issued: Vec<(Lsn, String, String, String, String, i64)>,
    renewed: Vec<(Lsn, String, i64, i64)>,
    revoked: Vec<(Lsn, String, String, &'static str, bool)>,
    expired: Vec<(i64, String, String, String, Option<i64>)>,
    roles: Vec<(Lsn, String, String, &'static str)>,
    policies: Vec<(Lsn, String, &'static str)>,
}

/// A lease's state after one of its own events (`None`: the state at `from`).
type LifeStep<'a> = (Option<RefLease>, Option<&'a Entry>);

fn ref_diff(entries: &[Entry], from: i64, to: i64) -> RefDiff {
    let split = entries.partition_point(|e| e.ts_ms <= from);
    let mut r = Reference::at(&entries[..split], from);
    let window: Vec<&Entry> = entries[split..].iter().take_while(|e| e.ts_ms <= to).collect();
    let mut out = RefDiff::default();
    // Per lease: the state after each of its own events in the window.
    let mut lives: HashMap<String, Vec<LifeStep<'_>>> =
        r.leases.iter().map(|(id, l)| (id.clone(), vec![(Some(l.clone()), None)])).collect();
    for e in &window {
        let before = e.event.lease_id().and_then(|id| r.leases.get(id)).cloned();
        match &e.event {
            Event::IssueCompleted(i) => {
                if let Some(l) = before.as_ref().filter(|l| l.status == RefStatus::Issuing) {
                    out.issued.push((
                        e.lsn,
                        i.lease_id.clone(),
                        l.role.clone(),
                        l.username.clone(),
                        l.accessor.clone(),
                        l.expires,
                    ));
                }
            }
            Event::RenewCompleted(x) => {
                if let Some(l) = &before {
                    out.renewed.push((e.lsn, x.lease_id.clone(), l.expires, x.expire_time_ms));
                }
            }
            Event::RevokeCompleted(_) | Event::RevokeForced(_) => {
                if let Some(l) = &before {
                    let forced = matches!(e.event, Event::RevokeForced(_));
                    let why = match l.status {
                        RefStatus::Revoking(w) => reason(w),
                        _ if forced => "forced",
                        _ => "unknown",
                    };
                    out.revoked.push((e.lsn, e.event.lease_id().unwrap().to_string(), l.username.clone(), why, forced));
                }
            }
            Event::RoleWritten(x) => {
                let existed = r.roles.contains(&(x.mount.clone(), x.name.clone()));
                out.roles.push((e.lsn, x.mount.clone(), x.name.clone(), if existed { "updated" } else { "created" }));
            }
            Event::RoleDeleted(x) if r.roles.contains(&(x.mount.clone(), x.name.clone())) => {
                out.roles.push((e.lsn, x.mount.clone(), x.name.clone(), "deleted"));
            }
            Event::MountDisabled(m) => {
                for (mount, name) in r.roles.iter().filter(|(mount, _)| mount == &m.path) {
                    out.roles.push((e.lsn, mount.clone(), name.clone(), "deleted with its mount"));
                }
            }
            Event::PolicyWritten(p) => {
                let existed = r.policies.contains(&p.name);
                out.policies.push((e.lsn, p.name.clone(), if existed { "updated" } else { "created" }));
            }
            Event::PolicyDeleted(p) if r.policies.contains(&p.name) => {
                out.policies.push((e.lsn, p.name.clone(), "deleted"));
            }
            _ => {}
        }
        r.apply(e);
        if let Some(id) = e.event.lease_id() {
            lives
                .entry(id.to_string())
                .or_insert_with(|| vec![(None, None)])
                .push((r.leases.get(id).cloned(), Some(*e)));
        }
    }
    for (id, life) in &lives {
        let mut latest: Option<usize> = None;
        for (k, (state, _)) in life.iter().enumerate() {
            let next = life.get(k + 1).map(|(_, e)| e.expect("own events after the first"));
            if let Some(l) = state.as_ref().filter(|l| l.status == RefStatus::Active) {
                let e_at = l.expires;
                let passed = match next {
                    Some(n) => n.ts_ms >= e_at,
                    None => e_at <= to,
                };
                let again = latest.is_some_and(|i| out.expired[i].0 == e_at);
                if from < e_at && passed && !again {
                    latest = Some(out.expired.len());
                    out.expired.push((e_at, id.clone(), l.username.clone(), l.accessor.clone(), None));
                }
            }
            if let (Some(n), Some(i)) = (next, latest)
                && matches!(n.event, Event::RevokeCompleted(_) | Event::RevokeForced(_))
                && state.is_some()
            {
                out.expired[i].4.get_or_insert(n.ts_ms);
            }
        }
    }
    out.expired.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out
}

fn audit_diff(d: &audit::DiffReport) -> RefDiff {
    RefDiff {
        issued: d
            .issued
            .iter()
            .map(|x| {
                (x.lsn, x.lease_id.clone(), x.role.clone(), x.username.clone(), x.accessor.clone(), x.expire_time_ms)
            })
            .collect(),
        renewed: d
            .renewed
            .iter()
            .map(|x| (x.lsn, x.lease_id.clone(), x.previous_expire_time_ms, x.expire_time_ms))
            .collect(),
        revoked: d
            .revoked
            .iter()
            .map(|x| (x.lsn, x.lease_id.clone(), x.username.clone(), x.reason, x.forced))
            .collect(),
        expired: d
            .expired
            .iter()
            .map(|x| (x.expire_time_ms, x.lease_id.clone(), x.username.clone(), x.accessor.clone(), x.revoked_ms))
            .collect(),
        roles: d.roles.iter().map(|x| (x.lsn, x.mount.clone(), x.name.clone(), x.change)).collect(),
        policies: d.policies.iter().map(|x| (x.lsn, x.name.clone(), x.change)).collect(),
    }
}

#[test]
fn state_at_and_diff_agree_with_the_reference_over_100k_simulated_events() {
    let dir = simulated_history(0x5eed);
    let (entries, _) = read_entries(&ReadOnlyDir::new(dir.path())).unwrap();
    // The generator stops at SIM_EVENTS LSNs, proofs included; the writer's proof
    // ends the last batch, and the clean close adds a checkpoint and its
    // signature, which may take it three past.
    assert!((SIM_EVENTS..=SIM_EVENTS + 3).contains(&(entries.len() as u64)), "{}", entries.len());
    assert!(matches!(entries.last().unwrap().event, Event::BatchSigned(_)));
    let report = verify(dir.path()).unwrap();
    assert!(report.segments > 20 && report.checkpoints > 20, "{report:?}");

    let ts = |i: usize| entries[i].ts_ms;
    let last = entries.last().unwrap().ts_ms;
    let instants = [T0 - 1, ts(1_000), ts(24_999) + 1, ts(50_000), ts(77_777), ts(99_000), last, last + 86_400_000];
    let no_snapshots = ReplayOptions { use_snapshots: false };
    let mut snapshot_used = false;
    for &t in &instants {
        let with = audit::state_at(dir.path(), t, ReplayOptions::default(), None).unwrap();
        let without = audit::state_at(dir.path(), t, no_snapshots, None).unwrap();
        snapshot_used |= with.snapshot.is_some();
        assert_eq!(without.snapshot, None);
        if with.lsn >= 2 * SIM_SNAPSHOT_EVERY_EVENTS {
            // A history snapshot lies at most a stretch plus a snapshot interval
            // (and one batch) before any instant.
            assert!(with.snapshot.is_some(), "at {t}: replayed from LSN 1");
            let bound = SIM_SNAPSHOT_HISTORY_EVERY_EVENTS + SIM_SNAPSHOT_EVERY_EVENTS + 16;
            assert!(with.events_replayed <= bound, "at {t}: {} events replayed", with.events_replayed);
        }
        assert_eq!((with.lsn, with.chain), (without.lsn, without.chain), "at {t}");
        assert_eq!(with.leases, without.leases, "at {t}: snapshot and full replay disagree");
        let expected_lsn = entries.iter().take_while(|e| e.ts_ms <= t).count() as Lsn;
        assert_eq!(with.lsn, expected_lsn, "at {t}");
        let reference = Reference::at(&entries, t);
        assert_eq!(audit_rows(&with), ref_rows(&reference), "state at {t} differs from the reference");
    }
    assert!(snapshot_used, "no instant started from a snapshot");
    assert!(audit::state_at(dir.path(), ts(50_000), ReplayOptions::default(), None).unwrap().leases.len() > 10);

    let mut totals = [0usize; 6];
    let mut windows: Vec<(i64, i64)> = instants.windows(2).map(|w| (w[0], w[1])).collect();
    windows.extend([(T0 - 1, last), (ts(60_000), ts(60_000)), (ts(30_000), ts(30_500))]);
    for (from, to) in windows {
        let d = audit::diff(dir.path(), from, to, ReplayOptions::default(), None).unwrap();
        let got = audit_diff(&d);
        let want = ref_diff(&entries, from, to);
        assert_eq!(got.issued, want.issued, "issued in ({from}, {to}]");
        assert_eq!(got.renewed, want.renewed, "renewed in ({from}, {to}]");
        assert_eq!(got.revoked, want.revoked, "revoked in ({from}, {to}]");
        assert_eq!(got.expired, want.expired, "expired in ({from}, {to}]");
        assert_eq!(got.roles, want.roles, "roles in ({from}, {to}]");
        assert_eq!(got.policies, want.policies, "policies in ({from}, {to}]");
        let without = audit::diff(dir.path(), from, to, no_snapshots, None).unwrap();
        assert_eq!(audit_diff(&without), got);
        for (i, n) in [
            got.issued.len(),
            got.renewed.len(),
            got.revoked.len(),
            got.expired.len(),
            got.roles.len(),
            got.policies.len(),
        ]
        .into_iter()
        .enumerate()
        {
            totals[i] += n;
        }
        assert!(got.expired.iter().filter(|x| x.4.is_some()).count() <= got.revoked.len());
    }
    // The history exercised every part of the diff.
    assert!(totals.iter().all(|&n| n > 50), "{totals:?}");
    let err = audit::diff(dir.path(), last, T0, ReplayOptions::default(), None).unwrap_err();
    assert!(
        matches!(err, QueryError::BadArgument { .. }) && err.to_string().contains("earlier instant first"),
        "{err}"
    );
}

/// The auditor's state at the end of the log is the state the engine opens
/// with, from a snapshot or from LSN 1: open and `audit state` are one fold
/// (`engine/src/fold.rs`), not two kept alike.
#[test]
fn the_audited_state_at_the_last_record_is_the_state_the_engine_opens_with() {
    let dir = test_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let opts = || EngineOptions { snapshot_every_events: 700, ..options(&clock, 64 * 1024) };
    let (engine, _root) = Engine::init(dir.path(), opts()).unwrap();
    let mut rng = SplitMix64(21);
    for _ in 0..1_000 {
        clock.advance_ms(rng.below(5_000) as i64);
        engine.append_unchecked_blocking((0..3).map(|_| noise(&mut rng)).collect()).unwrap();
    }
    let written = (engine.last_lsn(), engine.digest());
    engine.close();
    let snapshots = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("snap-"))
        .count();
    assert!(snapshots >= 2, "{snapshots} snapshots");

    let audited: Vec<audit::ReplayedState> = [ReplayOptions::default(), ReplayOptions { use_snapshots: false }]
        .into_iter()
        .map(|options| audit::replay_until(dir.path(), i64::MAX, options, None).unwrap())
        .collect();
    // At most a snapshot interval after the newest snapshot, and the close's records.
    assert!(audited[0].snapshot.is_some() && audited[0].events_replayed <= 703, "{:?}", audited[0].snapshot);
    assert_eq!(audited[1].snapshot, None);
    let engine = Engine::open(dir.path(), opts()).unwrap();
    let opened = (engine.last_lsn(), engine.digest());
    engine.close();
    // The clean close logged a checkpoint and its proof, which the digest leaves out.
    assert!(opened.0 > written.0);
    assert_eq!(opened.1, written.1);
    for replayed in &audited {
        assert_eq!((replayed.lsn, replayed.state.digest()), opened, "from {:?}", replayed.snapshot);
        assert_eq!(replayed.state.applied_lsn, opened.0);
    }
}

// ---------------------------------------------------------------------------
// who-had, timeline filters and the keyed hash, over a history of real requests.

struct Story {
    dir: tempfile::TempDir,
    root: String,
    app_token: String,
    app_accessor: String,
    lease_id: String,
    username: String,
    /// Instants: before the issue, while the lease lived, after its revocation.
    before: i64,
    during: i64,
    after: i64,
}

/// Through `Engine::request`: a mount, a connection, a role, a policy, a token
/// `app-A`, a credential issued, renewed and revoked, a second credential left
/// live, and a denied request.
fn story() -> Story {
    let dir = test_dir();
    let clock = Arc::new(ManualClock::new(T0));
    let plugin = FaultInjectingPlugin::default();
    let opts = EngineOptions { plugin_factory: Some(plugin.factory()), ..options(&clock, 64 << 20) };
    let (engine, root) = Engine::init(dir.path(), opts).unwrap();
    master().write_new_file(&dir.path().join("master.key")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let req = |token: &str, op: Operation, path: &str, data: Value| rt.block_on(engine.request(token, op, path, data));
    let root = root.expose().to_string();
    let ok = |op, path: &str, data| req(&root, op, path, data).unwrap_or_else(|e| panic!("{path}: {e}"));
    ok(Operation::Update, "sys/mounts/database", json!({"type": "database"}));
    ok(
        Operation::Update,
        "database/config/pg",
        json!({"plugin_name": "postgresql-database-plugin", "connection_url": "postgresql://{{username}}:{{password}}@h/db",
               "username": "admin", "password": "root-secret-pw", "allowed_roles": "*"}),
    );
    ok(
        Operation::Update,
        "database/roles/app-readonly",
        json!({"db_name": "pg", "creation_statements": "CREATE ROLE \"{{name}}\";", "default_ttl": 3600, "max_ttl": 86400}),
    );
    ok(
        Operation::Update,
        "sys/policy/app",
        json!({"policy": "path \"database/creds/app-readonly\" { capabilities = [\"read\"] }\npath \"sys/leases/*\" { capabilities = [\"update\"] }"}),
    );
    let auth =
        ok(Operation::Update, "auth/token/create", json!({"policies": ["app"], "display_name": "app-A", "ttl": "24h"}))
            .auth
            .unwrap();
    let (app_token, app_accessor) = (auth.client_token, auth.accessor);
    clock.advance_ms(MINUTE);
    let before = clock.now_ms() - 1;
    let issued = req(&app_token, Operation::Read, "database/creds/app-readonly", Value::Null).unwrap();
    let username = issued.data.unwrap()["username"].as_str().unwrap().to_string();
    let lease_id = issued.lease_id;
    clock.advance_ms(10 * MINUTE);
    let during = clock.now_ms();
    req(&app_token, Operation::Update, "sys/leases/renew", json!({"lease_id": lease_id, "increment": 7200})).unwrap();
    clock.advance_ms(10 * MINUTE);
    req(&app_token, Operation::Read, "database/roles/app-readonly", Value::Null).unwrap_err();
    req(&app_token, Operation::Update, "sys/leases/revoke", json!({"lease_id": lease_id})).unwrap();
    clock.advance_ms(MINUTE);
    let after = clock.now_ms();
    clock.advance_ms(MINUTE);
    req(&app_token, Operation::Read, "database/creds/app-readonly", Value::Null).unwrap();
    engine.close();
    Story { dir, root, app_token, app_accessor, lease_id, username, before, during, after }
}

fn kinds(dir: &Path, filter: &Filter) -> Vec<&'static str> {
    let mut out = Vec::new();
    audit::timeline(dir, filter, None, &mut |entry, _| {
        out.push(entry.event.kind().name());
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

#[test]
fn who_had_tells_the_lease_the_token_and_the_lifetime() {
    let s = story();
    let lives = audit::who_had(s.dir.path(), &s.username, None, None).unwrap();
    assert_eq!(lives.len(), 1, "{lives:?}");
    let life = &lives[0];
    assert_eq!(life.lease_id, s.lease_id);
    assert_eq!(
        (life.mount.as_str(), life.role.as_str(), life.connection.as_str()),
        ("database/", "app-readonly", "pg")
    );
    assert_eq!(life.accessor, s.app_accessor);
    assert_eq!(life.display_name.as_deref(), Some("token-app-A"));
    assert_eq!(life.token_policies, ["app", "default"]);
    assert_eq!(life.requested_ms, s.before + 1);
    assert_eq!(life.issued_ms, Some(s.before + 1));
    assert_eq!(life.renewals.len(), 1);
    assert_eq!(life.renewals[0].expire_time_ms, s.during + 7_200_000);
    assert_eq!(life.expire_time_ms, s.during + 7_200_000);
    assert_eq!(life.revoke_reason, Some("explicit"));
    let ended = life.ended.as_ref().unwrap();
    assert_eq!(ended.how, "revoked (explicit)");
    assert!(ended.ts_ms > s.during && ended.ts_ms < s.after);
    assert_eq!(audit::who_had(s.dir.path(), &s.username, Some(s.during), None).unwrap().len(), 1);
    assert!(audit::who_had(s.dir.path(), &s.username, Some(s.before), None).unwrap().is_empty());
    assert!(audit::who_had(s.dir.path(), &s.username, Some(s.after), None).unwrap().is_empty());
    assert!(audit::who_had(s.dir.path(), "v-nobody", None, None).unwrap().is_empty());

    // The state then agrees.
    let then = audit::state_at(s.dir.path(), s.during, ReplayOptions::default(), None).unwrap();
    assert_eq!(then.leases.len(), 1);
    assert_eq!(then.leases[0].username, s.username);
    assert_eq!(then.leases[0].display_name.as_deref(), Some("token-app-A"));
    let diff = audit::diff(s.dir.path(), s.before, s.after, ReplayOptions::default(), None).unwrap();
    assert_eq!(diff.issued.len(), 1);
    assert_eq!(diff.issued[0].display_name.as_deref(), Some("token-app-A"));
    assert_eq!((diff.renewed.len(), diff.revoked.len(), diff.expired.len()), (1, 1, 0));
    assert_eq!(diff.revoked[0].reason, "explicit");
}

#[test]
fn timeline_filters() {
    let s = story();
    let dir = s.dir.path();
    let lease =
        ["IssueStarted", "IssueCompleted", "RenewStarted", "RenewCompleted", "RevokeStarted", "RevokeCompleted"];
    let by_user = kinds(dir, &Filter { username: Some(s.username.clone()), ..Filter::default() });
    assert_eq!(by_user, lease);
    assert_eq!(kinds(dir, &Filter { lease_id: Some(s.lease_id.clone()), ..Filter::default() }), lease);
    // The window cuts the lease's story but still knows whose lease it is.
    let late = Filter { username: Some(s.username.clone()), since_ms: Some(s.during), ..Filter::default() };
    assert_eq!(kinds(dir, &late), &lease[2..]);
    let early = Filter { username: Some(s.username.clone()), until_ms: Some(s.during - 1), ..Filter::default() };
    assert_eq!(kinds(dir, &early), &lease[..2]);

    // The token: its creation, its five requests and both its leases' events.
    let by_accessor = kinds(dir, &Filter { accessor: Some(s.app_accessor.clone()), ..Filter::default() });
    assert_eq!(by_accessor.iter().filter(|k| **k == "RequestRecorded").count(), 5, "{by_accessor:?}");
    assert_eq!(by_accessor.iter().filter(|k| **k == "IssueStarted").count(), 2, "{by_accessor:?}");
    assert_eq!(by_accessor[0], "TokenCreated");
    let keys = audit::load_keys(dir, None).unwrap();
    let hash = keys.hash_token(&s.app_token);
    assert_eq!(kinds(dir, &Filter { token_hash: Some(hash), ..Filter::default() }), by_accessor);
    assert!(kinds(dir, &Filter { token_hash: Some([0; 32]), ..Filter::default() }).is_empty());

    let denied = Filter { outcome: Some(Outcome::Denied), ..Filter::default() };
    let mut seen = Vec::new();
    audit::timeline(dir, &denied, None, &mut |entry, chain| {
        seen.push(audit::event_json(entry, chain));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["event"]["path"], "database/roles/app-readonly");
    assert_eq!(seen[0]["event"]["accessor"], s.app_accessor.as_str());
    assert_eq!(seen[0]["chain"].as_str().unwrap().len(), 64);
    assert!(seen[0]["ts"].as_str().unwrap().ends_with('Z'));

    let role_paths = kinds(dir, &Filter { path: Some("database/roles".into()), ..Filter::default() });
    assert_eq!(role_paths, ["RoleWritten", "RequestRecorded", "RequestRecorded"]);
    let by_role = kinds(dir, &Filter { role: Some("database/app-readonly".into()), ..Filter::default() });
    assert_eq!(by_role.iter().filter(|k| **k == "IssueCompleted").count(), 2, "{by_role:?}");
    assert_eq!(by_role, kinds(dir, &Filter { role: Some("app-readonly".into()), ..Filter::default() }));
    assert!(kinds(dir, &Filter { role: Some("other".into()), ..Filter::default() }).is_empty());

    // Nothing secret in any line, in either form.
    let mut all = String::new();
    audit::timeline(dir, &Filter::default(), None, &mut |entry, chain| {
        all.push_str(&audit::event_text(entry, chain));
        all.push_str(&audit::event_json(entry, chain).to_string());
        ControlFlow::Continue(())
    })
    .unwrap();
    for secret in [s.root.as_str(), s.app_token.as_str(), "root-secret-pw"] {
        assert!(!all.contains(secret), "a secret reached the timeline");
    }
    assert!(all.contains("password=sealed"));
}

#[test]
fn hash_needs_the_right_key_and_matches_the_stored_hash() {
    let s = story();
    let dir = s.dir.path();
    let keys = audit::load_keys(dir, None).unwrap();
    let (entries, _) = read_entries(&ReadOnlyDir::new(dir)).unwrap();
    let stored = entries
        .iter()
        .find_map(|e| match &e.event {
            Event::TokenCreated(t) if t.accessor == s.app_accessor => Some(t.token_hash),
            _ => None,
        })
        .unwrap();
    assert_eq!(audit::hash_value(&keys, &s.app_token), format!("hmac-sha256:{}", hex::encode(stored)));

    let elsewhere = tempfile::tempdir().unwrap();
    let wrong = elsewhere.path().join("wrong.key");
    MasterKey::from_bytes([1; 32]).write_new_file(&wrong).unwrap();
    assert!(matches!(audit::load_keys(dir, Some(&wrong)), Err(KeyLoadError::WrongKey { .. })));
    std::fs::remove_file(dir.join("master.key")).unwrap();
    let err = audit::load_keys(dir, None).unwrap_err();
    assert!(matches!(err, KeyLoadError::Missing { .. }) && err.to_string().contains("LESSOR_MASTER_KEY_FILE"), "{err}");
    let right: PathBuf = elsewhere.path().join("right.key");
    master().write_new_file(&right).unwrap();
    assert!(audit::load_keys(dir, Some(&right)).is_ok());
}

#[test]
fn an_empty_or_foreign_directory_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let err = verify(empty.path()).unwrap_err();
    assert!(matches!(err, VerifyError::Read(ReadError::NoLog { .. })) && err.to_string().contains("-d DIR"), "{err}");
    let err = audit::state_at(empty.path(), 0, ReplayOptions::default(), None).unwrap_err();
    assert!(err.to_string().contains("holds no log segments"), "{err}");
}
