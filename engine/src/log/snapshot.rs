//! Snapshots: the encoded state at an LSN, with the chain hash there. They are pure
//! caches — deleting every one gives the same state after replay (I4).
//!
//! ```text
//! snap-<lsn, 20 digits>.bin
//!   magic u32 "LSNP" | version u16 | reserved u16 | lsn u64 | ts_ms i64 | chain [32]
//!   | body_len u64 | body_sha256 [32] | signature [64] | body
//! ```
//! The signature (Ed25519 under the checkpoint key, over [`message`]) makes a
//! snapshot the key holder's: someone who can write the data directory but does
//! not hold the key cannot plant a state for open to start from. A snapshot whose
//! signature does not verify under the log's public key is ignored (replayed
//! instead); one written without a key carries zeros.
//! Written to `<name>.tmp`, fsync'd, renamed, and the directory fsync'd, so a
//! snapshot file either is whole or does not exist under its final name.

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::event::Lsn;
use crate::log::format::Chain;
use crate::log::storage::Storage;

pub(crate) const SNAPSHOT_MAGIC: u32 = u32::from_le_bytes(*b"LSNP");
/// Bumped whenever the encoded `State` changes shape or the fold that made it
/// changes (2: `ConnectionWritten` gained `scram_iterations`; 3: a retired
/// connection goes with its last lease; 4: signed). A snapshot of another version
/// is skipped — it is a cache — and the state is replayed from the log, which
/// stays readable.
pub const SNAPSHOT_VERSION: u16 = 4;
pub const SNAPSHOT_HEADER_BYTES: usize = 4 + 2 + 2 + 8 + 8 + 32 + 8 + 32 + SIGNATURE_BYTES;
const _: () = assert!(SNAPSHOT_HEADER_BYTES == 160);
const SIGNATURE_BYTES: usize = 64;

/// Signs a snapshot's [`message`] with the checkpoint key.
pub(crate) type SnapshotSigner<'a> = &'a dyn Fn(&[u8]) -> [u8; 64];

/// What a snapshot's signature covers: where it stands and its body's digest.
pub(crate) fn message(lsn: Lsn, ts_ms: i64, chain: &Chain, body_sha256: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(24 + 8 + 8 + 32 + 32);
    m.extend_from_slice(b"lessor snapshot v1\n");
    m.extend_from_slice(&lsn.to_le_bytes());
    m.extend_from_slice(&ts_ms.to_le_bytes());
    m.extend_from_slice(chain);
    m.extend_from_slice(body_sha256);
    m
}

/// The newest snapshots always kept after a new one is written: open starts from
/// the newest usable one, and the one before it covers a damaged newest.
pub const SNAPSHOTS_KEPT: usize = 2;

/// Default of `EngineOptions::snapshot_history_every_events`.
pub(crate) const SNAPSHOT_HISTORY_EVERY_EVENTS_DEFAULT: u64 = 1_000_000;

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
    sign: Option<SnapshotSigner<'_>>,
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
    let body_sha256: [u8; 32] = Sha256::digest(body).into();
    bytes.extend_from_slice(&body_sha256);
    let signature = sign.map_or([0; SIGNATURE_BYTES], |sign| sign(&message(lsn, ts_ms, chain, &body_sha256)));
    bytes.extend_from_slice(&signature);
    assert_eq!(bytes.len(), SNAPSHOT_HEADER_BYTES);

    let _ = storage.remove(&tmp); // a leftover from a crash mid-write
    let mut file = storage.create_new(&tmp)?;
    file.write_all_at(&bytes, 0)?;
    file.write_all_at(body, bytes.len() as u64)?;
    file.sync_data()?;
    drop(file);
    storage.rename(&tmp, &name)?;
    storage.sync_dir()?;
    // The new snapshot is durable; only now may older ones go.
    let names = storage.list()?;
    let lsns: Vec<Lsn> = names.iter().filter_map(|n| parse_snapshot_name(n)).collect();
    assert!(lsns.contains(&lsn), "the snapshot just written is not listed");
    // Leftovers of snapshots a crash cut short at other LSNs: only this writer
    // (under the directory's lock) makes them, and its own was just renamed.
    for stale in names.iter().filter(|n| n.ends_with(".tmp") && n.strip_suffix(".tmp").is_some_and(|n| parse_snapshot_name(n).is_some())) {
        storage.remove(stale)?;
    }
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
    pub(crate) name: String,
    pub what: String,
}

/// A snapshot's header, checked against its file name.
#[derive(Debug)]
struct Header {
    lsn: Lsn,
    ts_ms: i64,
    chain: Chain,
    body_len: u64,
    body_sha256: [u8; 32],
    signature: [u8; SIGNATURE_BYTES],
}

fn parse_header(name: &str, bytes: &[u8; SNAPSHOT_HEADER_BYTES]) -> Result<Header, String> {
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if bytes[0..4] != SNAPSHOT_MAGIC.to_le_bytes() {
        return Err("bad magic".into());
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("version {version}, this build reads {SNAPSHOT_VERSION}"));
    }
    let lsn = u64_at(8);
    if parse_snapshot_name(name) != Some(lsn) {
        return Err(format!("file name does not match its LSN {lsn}"));
    }
    let mut chain = [0u8; 32];
    chain.copy_from_slice(&bytes[24..56]);
    let mut body_sha256 = [0u8; 32];
    body_sha256.copy_from_slice(&bytes[64..96]);
    let mut signature = [0u8; SIGNATURE_BYTES];
    signature.copy_from_slice(&bytes[96..160]);
    Ok(Header { lsn, ts_ms: u64_at(16) as i64, chain, body_len: u64_at(56), body_sha256, signature })
}

/// Where a snapshot stands, from its header alone (checked: magic, version, the
/// LSN its name gives). The body is checked when it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stands {
    pub lsn: Lsn,
    pub ts_ms: i64,
}

/// Reads one snapshot's header: to choose a snapshot without reading bodies.
pub fn read_header(storage: &dyn Storage, name: &str) -> Result<Stands, SnapshotProblem> {
    let mut file =
        storage.open_read(name).map_err(|e| SnapshotProblem { name: name.to_string(), what: e.to_string() })?;
    let header = read_checked_header(name, &mut *file)?;
    Ok(Stands { lsn: header.lsn, ts_ms: header.ts_ms })
}

fn read_checked_header(name: &str, file: &mut dyn Read) -> Result<Header, SnapshotProblem> {
    let problem = |what: String| SnapshotProblem { name: name.to_string(), what };
    let mut header_bytes = [0u8; SNAPSHOT_HEADER_BYTES];
    file.read_exact(&mut header_bytes).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => problem("shorter than its header".into()),
        _ => problem(e.to_string()),
    })?;
    parse_header(name, &header_bytes).map_err(problem)
}

/// A snapshot's body decoded by [`read_decoded`], with its name and where it stands.
#[derive(Debug)]
pub struct DecodedSnapshot<T> {
    pub(crate) name: String,
    pub(crate) lsn: Lsn,
    pub(crate) chain: Chain,
    pub value: T,
}

/// Read buffer of [`read_decoded`].
const SNAPSHOT_READ_BUFFER_BYTES: usize = 1 << 20;

/// Reads and checks one snapshot file, handing its body to `decode` as a stream:
/// the body is never held whole, so opening costs the decoded state and not also
/// the hundreds of megabytes its encoding takes. `decode` must consume the whole
/// body; what it returns is only used once the checksum over all of it matched.
/// With the log's `public_key`, the signature must verify under it (checked
/// before the body is read); without one (a log with no `EngineInitialized`)
/// there is nothing to check it against.
pub fn read_decoded<T>(
    storage: &dyn Storage,
    name: &str,
    public_key: Option<&[u8; 32]>,
    decode: impl FnOnce(&mut dyn Read) -> Result<T, String>,
) -> Result<DecodedSnapshot<T>, SnapshotProblem> {
    let problem = |what: String| SnapshotProblem { name: name.to_string(), what };
    let mut file = storage.open_read(name).map_err(|e| problem(e.to_string()))?;
    let header = read_checked_header(name, &mut *file)?;
    if let Some(key) = public_key
        && !verify_signature(key, &header)
    {
        return Err(problem("not signed by this log's key (written without the master key, or altered)".into()));
    }
    let mut body = std::io::BufReader::with_capacity(
        SNAPSHOT_READ_BUFFER_BYTES,
        Hashing { inner: file.take(header.body_len), sha256: Sha256::new(), read: 0 },
    );
    let decoded = decode(&mut body);
    // The rest is hashed too: a damaged body is reported as such, not as whatever
    // the decoder made of it.
    let unread = std::io::copy(&mut body, &mut std::io::sink()).map_err(|e| problem(e.to_string()))?;
    let Hashing { inner, sha256, read } = body.into_inner();
    if read != header.body_len {
        return Err(problem(format!("body is {read} bytes, header says {}", header.body_len)));
    }
    let mut file = inner.into_inner();
    let mut rest = [0u8; 1];
    if file.read(&mut rest).map_err(|e| problem(e.to_string()))? != 0 {
        return Err(problem(format!("body is longer than the {} bytes its header says", header.body_len)));
    }
    if sha256.finalize()[..] != header.body_sha256 {
        return Err(problem("body checksum mismatch".into()));
    }
    let value = decoded.map_err(problem)?;
    if unread != 0 {
        return Err(problem(format!("{unread} bytes of the body after the state")));
    }
    Ok(DecodedSnapshot { name: name.to_string(), lsn: header.lsn, chain: header.chain, value })
}

fn verify_signature(public_key: &[u8; 32], header: &Header) -> bool {
    use ed25519_dalek::Verifier;
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else { return false };
    let signature = ed25519_dalek::Signature::from_bytes(&header.signature);
    key.verify(&message(header.lsn, header.ts_ms, &header.chain, &header.body_sha256), &signature).is_ok()
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    sha256: Sha256,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// Snapshot file names, newest first.
pub fn list_newest_first(storage: &dyn Storage) -> std::io::Result<Vec<String>> {
    let mut snaps: Vec<(Lsn, String)> =
        storage.list()?.into_iter().filter_map(|n| parse_snapshot_name(&n).map(|l| (l, n))).collect();
    snaps.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    Ok(snaps.into_iter().map(|(_, n)| n).collect())
}
