//! `verify`: every segment, every record's crc, the hash chain across segments,
//! every logged checkpoint's signature, and optionally an exported checkpoint.

use serde::Serialize;

use super::checkpoint::{CheckpointError, SignedCheckpoint};
use super::reader::{ReadError, Reader, TornTail};
use super::{PROGRESS_EVERY_RECORDS, Progress, report};
use crate::event::{Event, Lsn};
use crate::log::format::{Chain, GENESIS_CHAIN};

/// What to verify besides the log itself.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// A checkpoint exported earlier: the log must still hold exactly the history
    /// it signed.
    pub exported: Option<&'a SignedCheckpoint>,
    /// The public key the auditor trusts (`audit verify --public-key`), kept off
    /// the host: the log's own key must be it, and the exported checkpoint is
    /// checked against it. Without it, the key in the log's first record is used,
    /// which someone who rewrote the whole log would have replaced.
    pub public_key: Option<[u8; 32]>,
    pub progress: Progress<'a>,
}

impl std::fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("exported", &self.exported)
            .field("public_key", &self.public_key.map(hex::encode))
            .finish_non_exhaustive()
    }
}

/// Where the exported checkpoint's LSN is in the log (it matched).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedMatch {
    pub lsn: Lsn,
    #[serde(rename = "ts", serialize_with = "super::time::serialize_ms")]
    pub ts_ms: i64,
    pub file: String,
    pub offset: u64,
}

/// A log that verified.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub segments: u64,
    pub records: u64,
    /// Logged checkpoints, each checked against the chain and its signature.
    pub checkpoints: u64,
    /// Bytes of verified segment data: headers and whole records (not the
    /// zeros a preallocated segment ends in).
    pub bytes: u64,
    pub last_lsn: Lsn,
    #[serde(rename = "last_ts", serialize_with = "super::time::serialize_opt_ms")]
    pub last_ts_ms: Option<i64>,
    #[serde(serialize_with = "serialize_hex")]
    pub last_chain: Chain,
    /// The checkpoint public key from `EngineInitialized`.
    #[serde(serialize_with = "serialize_opt_hex")]
    pub public_key: Option<[u8; 32]>,
    /// The newest logged checkpoint (verified) that the newest batch proof covers
    /// (in a log with proofs), so exporting it never exports one that the next
    /// open cuts.
    #[serde(skip)]
    pub latest_checkpoint: Option<SignedCheckpoint>,
    /// A partial record at the very end (a write in flight or a torn write that
    /// the next open cuts): not damage, but the records in it are not there.
    pub torn_tail: Option<TornTail>,
    pub exported: Option<ExportedMatch>,
    /// The newest batch signature, verified: it proves every record up to it was
    /// written by the key holder (`docs/DESIGN.md`, §6.3). `None` for a log
    /// written before proofs (format 1).
    pub proven_lsn: Option<Lsn>,
    /// Records after the newest signature that batch MACs cover: only the key
    /// holder can check those (the engine's next open does), so an auditor
    /// cannot yet; the writer signs them within `signature_interval_ms` while it
    /// runs, and at a clean close.
    pub unsigned_records: u64,
    /// The newest batch MAC after the newest signature.
    pub mac_lsn: Option<Lsn>,
    /// Whole records after the newest proof of either kind: a batch a crash cut
    /// short (the next open cuts them) or records appended without the master
    /// key. Never applied.
    pub unproven_records: u64,
    /// The first of them.
    pub unproven_from_lsn: Option<Lsn>,
}

fn serialize_hex<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

fn serialize_opt_hex<S: serde::Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_str(&hex::encode(b)),
        None => s.serialize_none(),
    }
}

/// Why the log did not verify. Every variant names the file, byte offset and LSN
/// where it failed, or says why there is no such place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("log invalid in {file} at byte {offset} (LSN {lsn}): {what}")]
    Invalid { file: String, offset: u64, lsn: Lsn, what: String },
    #[error("exported checkpoint rejected: {0}")]
    Exported(#[source] CheckpointError),
    #[error(
        "the log was rewritten: the exported checkpoint signed chain {expected} at LSN {lsn} (time {ts_ms}), but \
         {file} at byte {offset} holds chain {found} (time {found_ts_ms}): the history up to the checkpoint is not \
         the one that was signed"
    )]
    ExportedMismatch {
        file: String,
        offset: u64,
        lsn: Lsn,
        expected: String,
        ts_ms: i64,
        found: String,
        found_ts_ms: i64,
    },
    #[error(
        "the exported checkpoint covers LSN {lsn} but the log ends at LSN {last_lsn}: records up to the checkpoint \
         were removed"
    )]
    ExportedBeyondLog { lsn: Lsn, last_lsn: Lsn },
    #[error("the log has no EngineInitialized record, so there is no public key to check the exported checkpoint with")]
    NoPublicKey,
    #[error(
        "the log's public key {found} is not the pinned key {pinned}: the log was rewritten whole, or this is \
         another engine's data directory"
    )]
    ForeignPublicKey { pinned: String, found: String },
}

/// Walks the whole log in `dir` (read-only, no lock, no master key).
pub fn verify(dir: &std::path::Path, options: VerifyOptions<'_>) -> Result<VerifyReport, VerifyError> {
    verify_reader(Reader::open(dir)?, options)
}

/// [`verify`] over any storage: the log in PostgreSQL, read without owning its
/// stream; `label` names it in the report and errors.
pub fn verify_storage(
    storage: Box<dyn crate::log::storage::Storage>,
    label: &str,
    options: VerifyOptions<'_>,
) -> Result<VerifyReport, VerifyError> {
    verify_reader(Reader::open_storage(storage, label)?, options)
}

fn verify_reader(mut reader: Reader, mut options: VerifyOptions<'_>) -> Result<VerifyReport, VerifyError> {
    let mut public_key: Option<[u8; 32]> = None;
    let mut latest: Option<SignedCheckpoint> = None;
    // The newest checkpoint a batch proof covers: one in an unproven tail is cut
    // at the next open, and an auditor who exported it would then see a rewrite.
    let mut latest_proven: Option<SignedCheckpoint> = None;
    let mut checkpoints = 0u64;
    let mut records = 0u64;
    let mut exported_signature_checked = false;
    let mut exported_match = None;
    let mut prev: (Lsn, Chain, i64) = (0, GENESIS_CHAIN, i64::MIN);
    // The newest signature: (its location, the LSN and chain it covers, the signature).
    let mut newest_proof: Option<(String, u64, Lsn, Lsn, Chain, Vec<u8>)> = None;
    let mut mac_lsn: Option<Lsn> = None;
    let mut unsigned = 0u64;
    let mut unproven = 0u64;
    if let Some(cp) = options.exported
        && cp.lsn == 0
        && cp.chain != GENESIS_CHAIN
    {
        return Err(VerifyError::Exported(CheckpointError::Malformed {
            what: "tree size 0 with a non-empty hash".into(),
        }));
    }
    while let Some(rec) = reader.next_record()? {
        let invalid =
            |what: String| VerifyError::Invalid { file: rec.file.to_string(), offset: rec.offset, lsn: rec.lsn, what };
        match rec.decode()? {
            Event::EngineInitialized(init) => {
                if public_key.is_some_and(|k| k != init.checkpoint_public_key) {
                    return Err(invalid("a second EngineInitialized with another checkpoint key".into()));
                }
                if let Some(pinned) = options.public_key
                    && pinned != init.checkpoint_public_key
                {
                    return Err(VerifyError::ForeignPublicKey {
                        pinned: hex::encode(pinned),
                        found: hex::encode(init.checkpoint_public_key),
                    });
                }
                public_key = Some(init.checkpoint_public_key);
            }
            Event::BatchSigned(proof) => {
                newest_proof = Some((rec.file.to_string(), rec.offset, rec.lsn, prev.0, prev.1, proof.signature));
                (unproven, unsigned, mac_lsn) = (0, 0, None);
                if latest.is_some() {
                    latest_proven.clone_from(&latest);
                }
            }
            Event::BatchMac(_) => {
                // Only the master key checks it: the records it covers stay
                // unsigned to an auditor until the next signature.
                unsigned += std::mem::take(&mut unproven);
                mac_lsn = Some(rec.lsn);
            }
            Event::Checkpoint(event) => {
                let Some(key) = public_key else {
                    return Err(invalid(
                        "a checkpoint, but no EngineInitialized before it holds the key to check it".into(),
                    ));
                };
                if event.lsn + 1 != rec.lsn {
                    return Err(invalid(format!(
                        "the checkpoint covers LSN {}; lessor's checkpoints cover the record just before them (LSN {})",
                        event.lsn,
                        rec.lsn - 1
                    )));
                }
                if event.chain != prev.1 || event.ts_ms != prev.2 {
                    return Err(invalid(format!("the checkpoint's chain or time does not match LSN {}", prev.0)));
                }
                let signed = SignedCheckpoint::from_event(&event, &key).map_err(|e| invalid(e.to_string()))?;
                signed.verify(&key).map_err(|e| invalid(format!("checkpoint for LSN {}: {e}", event.lsn)))?;
                checkpoints += 1;
                latest = Some(signed);
            }
            _ => {}
        }
        if let Some(cp) = options.exported {
            if !exported_signature_checked && let Some(key) = public_key {
                cp.verify(&key).map_err(VerifyError::Exported)?;
                exported_signature_checked = true;
            }
            if cp.lsn == rec.lsn {
                if cp.chain != rec.chain || cp.ts_ms != rec.ts_ms {
                    return Err(VerifyError::ExportedMismatch {
                        file: rec.file.to_string(),
                        offset: rec.offset,
                        lsn: rec.lsn,
                        expected: hex::encode(cp.chain),
                        ts_ms: cp.ts_ms,
                        found: hex::encode(rec.chain),
                        found_ts_ms: rec.ts_ms,
                    });
                }
                exported_match = Some(ExportedMatch {
                    lsn: rec.lsn,
                    ts_ms: rec.ts_ms,
                    file: rec.file.to_string(),
                    offset: rec.offset,
                });
            }
        }
        if !crate::log::proof::is_proof(rec.kind) {
            unproven += 1;
        }
        prev = (rec.lsn, rec.chain, rec.ts_ms);
        records += 1;
        if records.is_multiple_of(PROGRESS_EVERY_RECORDS) {
            report(&mut options.progress, &reader);
        }
    }
    report(&mut options.progress, &reader);
    // The newest proof covers every record before it (each chain value commits to
    // all before it), so it is the one signature to check.
    let proven_lsn = match (&newest_proof, public_key) {
        (Some((file, offset, lsn, covered, chain, signature)), Some(key)) => {
            if !crate::log::proof::verify(&key, *covered, chain, signature) {
                return Err(VerifyError::Invalid {
                    file: file.clone(),
                    offset: *offset,
                    lsn: *lsn,
                    what: "the batch proof does not verify under the log's public key: records were written \
                           without the master key"
                        .into(),
                });
            }
            Some(*lsn)
        }
        (Some((file, offset, lsn, ..)), None) => {
            return Err(VerifyError::Invalid {
                file: file.clone(),
                offset: *offset,
                lsn: *lsn,
                what: "a batch proof, but no EngineInitialized holds the key to check it".into(),
            });
        }
        (None, _) => None,
    };
    let has_proofs = proven_lsn.is_some() || mac_lsn.is_some();
    let unproven_records = if has_proofs { unproven } else { 0 };
    if let Some(cp) = options.exported {
        if !exported_signature_checked {
            let key = public_key.ok_or(VerifyError::NoPublicKey)?;
            cp.verify(&key).map_err(VerifyError::Exported)?;
        }
        if cp.lsn > prev.0 {
            return Err(VerifyError::ExportedBeyondLog { lsn: cp.lsn, last_lsn: prev.0 });
        }
    }
    Ok(VerifyReport {
        segments: reader.segments_read(),
        records,
        checkpoints,
        bytes: reader.data_bytes(),
        last_lsn: prev.0,
        last_ts_ms: (records > 0).then_some(prev.2),
        last_chain: prev.1,
        public_key,
        latest_checkpoint: if has_proofs { latest_proven } else { latest },
        torn_tail: reader.torn_tail().cloned(),
        exported: exported_match,
        proven_lsn,
        unsigned_records: unsigned,
        mac_lsn,
        unproven_records,
        unproven_from_lsn: (unproven_records > 0).then(|| prev.0 + 1 - unproven_records),
    })
}
