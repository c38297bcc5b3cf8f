//! Snapshots: the encoded state at an LSN, with the chain hash there. They are pure
//! caches — deleting every one gives the same state after replay (I4).
//!
//! ```text
//! snap-<lsn, 20 digits>.bin
//!   magic u32 "LSNP" | version u16 | reserved u16 | lsn u64 | ts_ms i64 | chain [32]
//!   | body_len u64 | body_sha256 [32] | body
//! ```
//! Written to `<name>.tmp`, fsync'd, renamed, and the directory fsync'd, so a
//! snapshot file either is whole or does not exist under its final name.

use sha2::{Digest, Sha256};

use crate::event::Lsn;
use crate::log::format::Chain;
use crate::log::storage::Storage;

pub const SNAPSHOT_MAGIC: u32 = u32::from_le_bytes(*b"LSNP");
/// Bumped whenever the encoded `State` changes shape (2: `ConnectionWritten`
/// gained `scram_iterations`). A snapshot of another version is skipped — it is a
/// cache — and the state is replayed from the log, which stays readable.
pub const SNAPSHOT_VERSION: u16 = 2;
pub const SNAPSHOT_HEADER_BYTES: usize = 4 + 2 + 2 + 8 + 8 + 32 + 8 + 32;
const _: () = assert!(SNAPSHOT_HEADER_BYTES == 96);

/// The newest snapshots always kept after a new one is written: open starts from
/// the newest usable one, and the one before it covers a damaged newest.
pub const SNAPSHOTS_KEPT: usize = 2;

/// Default of `EngineOptions::snapshot_history_every_events`.
pub const SNAPSHOT_HISTORY_EVERY_EVENTS_DEFAULT: u64 = 1_000_000;

pub fn snapshot_name(lsn: Lsn) -> String {
    format!("snap-{lsn:020}.bin")
}

pub fn parse_snapshot_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".bin")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A snapshot read back and checked.
#[derive(Debug)]
pub struct LoadedSnapshot {
    pub name: String,
    pub lsn: Lsn,
    pub ts_ms: i64,
    pub chain: Chain,
    pub body: Vec<u8>,
}

/// Which of the snapshots at `lsns` (any order) to remove once the newest is
/// durable. The [`SNAPSHOTS_KEPT`] newest stay. Of the older ones, with
/// `history_every_events > 0`, the oldest snapshot in each stretch of that many
/// LSNs stays as history: forensic replay (`audit state --at`) of any instant then
/// starts from a snapshot at most about one stretch plus one snapshot interval
/// before it, instead of from LSN 1. A kept history snapshot stays kept: later
/// snapshots have higher LSNs, so it remains the oldest of its stretch.
pub fn to_prune(lsns: &[Lsn], history_every_events: u64) -> Vec<Lsn> {
    let mut sorted = lsns.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let older = &sorted[..sorted.len().saturating_sub(SNAPSHOTS_KEPT)];
    let mut prune = Vec::new();
    let mut stretch_seen = None;
    for &lsn in older {
        let stretch = (history_every_events > 0).then(|| lsn / history_every_events);
        if stretch.is_none() || stretch == stretch_seen {
            prune.push(lsn);
        }
        stretch_seen = stretch;
    }
    prune
}

/// Writes a snapshot atomically and prunes old ones ([`to_prune`]). Returns the
/// file name.
pub fn write(
    storage: &dyn Storage,
    lsn: Lsn,
    ts_ms: i64,
    chain: &Chain,
    body: &[u8],
    history_every_events: u64,
) -> std::io::Result<String> {
    let name = snapshot_name(lsn);
    let tmp = format!("{name}.tmp");
    let mut bytes = Vec::with_capacity(SNAPSHOT_HEADER_BYTES);
    bytes.extend_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
    bytes.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&lsn.to_le_bytes());
    bytes.extend_from_slice(&ts_ms.to_le_bytes());
    bytes.extend_from_slice(chain);
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&Sha256::digest(body));
    assert_eq!(bytes.len(), SNAPSHOT_HEADER_BYTES);

    let _ = storage.remove(&tmp); // a leftover from a crash mid-write
    let mut file = storage.create_new(&tmp)?;
    file.write_all(&bytes)?;
    file.write_all(body)?;
    file.sync_data()?;
    drop(file);
    storage.rename(&tmp, &name)?;
    storage.sync_dir()?;
    // The new snapshot is durable; only now may older ones go.
    let lsns: Vec<Lsn> = storage.list()?.iter().filter_map(|n| parse_snapshot_name(n)).collect();
    assert!(lsns.contains(&lsn), "the snapshot just written is not listed");
    // A stray file with a higher LSN (another log's, ignored at open) must not
    // push out the snapshot just written.
    for old in to_prune(&lsns, history_every_events).into_iter().filter(|&old| old != lsn) {
        storage.remove(&snapshot_name(old))?;
    }
    Ok(name)
}

/// Why a snapshot file was not usable. Snapshots are caches, so this is a warning
/// and the next older snapshot (or a full replay) is used instead.
#[derive(Debug, thiserror::Error)]
#[error("snapshot {name} unusable: {what}")]
pub struct SnapshotProblem {
    pub name: String,
    pub what: String,
}

/// Reads and checks one snapshot file.
pub fn read(storage: &dyn Storage, name: &str) -> Result<LoadedSnapshot, SnapshotProblem> {
    let problem = |what: String| SnapshotProblem { name: name.to_string(), what };
    let bytes = storage.read(name).map_err(|e| problem(e.to_string()))?;
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(problem("shorter than its header".into()));
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if bytes[0..4] != SNAPSHOT_MAGIC.to_le_bytes() {
        return Err(problem("bad magic".into()));
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != SNAPSHOT_VERSION {
        return Err(problem(format!("version {version}, this build reads {SNAPSHOT_VERSION}")));
    }
    let lsn = u64_at(8);
    let ts_ms = u64_at(16) as i64;
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&bytes[24..56]);
    let body_len = u64_at(56);
    if body_len != (bytes.len() - SNAPSHOT_HEADER_BYTES) as u64 {
        return Err(problem(format!("body is {} bytes, header says {body_len}", bytes.len() - SNAPSHOT_HEADER_BYTES)));
    }
    let body = bytes[SNAPSHOT_HEADER_BYTES..].to_vec();
    if Sha256::digest(&body)[..] != bytes[64..96] {
        return Err(problem("body checksum mismatch".into()));
    }
    if parse_snapshot_name(name) != Some(lsn) {
        return Err(problem(format!("file name does not match its LSN {lsn}")));
    }
    Ok(LoadedSnapshot { name: name.to_string(), lsn, ts_ms, chain, body })
}

/// Snapshot file names, newest first.
pub fn list_newest_first(storage: &dyn Storage) -> std::io::Result<Vec<String>> {
    let mut snaps: Vec<(Lsn, String)> =
        storage.list()?.into_iter().filter_map(|n| parse_snapshot_name(&n).map(|l| (l, n))).collect();
    snaps.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    Ok(snaps.into_iter().map(|(_, n)| n).collect())
}
