//! Batch proofs: why a record appended by someone without the master key is never
//! accepted.
//!
//! The crc and the hash chain use no key: anyone who can write the data directory
//! can append a record and recompute both. So the writer ends every batch with a
//! proof of the LSN and chain of the record before it, made with a key derived
//! from the master key, in the same write and fsync as the batch:
//!
//! - a [`BatchSigned`] record, an Ed25519 signature under the checkpoint key,
//!   which anyone with the log's public key can check (auditors need no master
//!   key); or
//! - between signatures, a [`BatchMac`] record, an HMAC-SHA256 under the batch-MAC
//!   key, which only the key holder can check. A signature costs about 20 µs of
//!   the writer thread's time per batch, a MAC about 1 µs; signing every batch cost
//!   10–17 % of the engine's durable issues/s.
//!
//! The writer signs the first batch after it starts, every batch that logs a
//! checkpoint, and the first batch once `signature_interval_ms` of log time has
//! passed since the last signature; an idle engine's MAC'd records are signed at
//! the expirer's first tick after that interval (on the engine's clock, never
//! the writer's: `Log::sign_tick`), and at a clean close. So an auditor's view
//! lags the log by about that interval while the engine runs (its expirer
//! running), and not at all once it has stopped cleanly.
//!
//! Because each chain value commits to every record before it, the newest valid
//! proof proves the whole log up to it: verifying one proof (not one per batch)
//! is enough. At open, the engine (holding the key) checks the newest proof of
//! either kind, and also the newest signature; `audit verify` checks the newest
//! signature and reports the MAC'd records after it as *unsigned*.
//!
//! Records after the newest proof are an *unproven tail*: a batch whose write
//! a crash cut short at a record boundary (never acknowledged: the proof is in
//! the same write and fsync), or records someone appended without the key. Either
//! way they are never applied: open cuts them like a torn tail and logs
//! `TailTruncated`; a proof that does not verify refuses the open.
//! Segments of format version 1 (before proofs) carry none; a log whose newest
//! segment is version 1 opens as before, and the writer starts a version 2
//! segment before it appends anything.

use crate::event::{BatchMac, BatchSigned, EventKind, Lsn};
use crate::log::format::{Chain, RECORD_OVERHEAD_BYTES, RecordView};
use crate::log::reader::{Raw, SegmentStream};

/// Domain separation from the checkpoint notes signed with the same key.
const CONTEXT: &[u8] = b"lessor batch proof v1\n";

/// Domain separation of the MAC'd message from the signed one.
const MAC_CONTEXT: &[u8] = b"lessor batch mac v1\n";

/// Bytes of a signature.
pub(crate) const SIGNATURE_BYTES: usize = 64;

/// Bytes of a batch MAC.
pub(crate) const MAC_BYTES: usize = 32;

/// Framed size of a `BatchSigned` record.
pub(crate) const PROOF_RECORD_BYTES: usize = RECORD_OVERHEAD_BYTES + 2 + SIGNATURE_BYTES;

/// Framed size of a `BatchMac` record.
pub(crate) const MAC_RECORD_BYTES: usize = RECORD_OVERHEAD_BYTES + 2 + MAC_BYTES;

/// Checks a batch MAC: `(message, tag)` → valid. Only an engine holding the
/// master key has one.
pub(crate) type MacCheck<'a> = &'a dyn Fn(&[u8], &[u8]) -> bool;

/// What is signed for the record at `lsn` with chain `chain`.
pub fn message(lsn: Lsn, chain: &Chain) -> Vec<u8> {
    framed(CONTEXT, lsn, chain)
}

/// What is MAC'd for the record at `lsn` with chain `chain`.
pub(crate) fn mac_message(lsn: Lsn, chain: &Chain) -> Vec<u8> {
    framed(MAC_CONTEXT, lsn, chain)
}

fn framed(context: &[u8], lsn: Lsn, chain: &Chain) -> Vec<u8> {
    let mut m = Vec::with_capacity(context.len() + 8 + chain.len());
    m.extend_from_slice(context);
    m.extend_from_slice(&lsn.to_le_bytes());
    m.extend_from_slice(chain);
    m
}

/// Does `signature` prove the record at `lsn` with `chain` under `public_key`?
pub(crate) fn verify(public_key: &[u8; 32], lsn: Lsn, chain: &Chain, signature: &[u8]) -> bool {
    use ed25519_dalek::Verifier;
    let (Ok(key), Ok(signature)) =
        (ed25519_dalek::VerifyingKey::from_bytes(public_key), ed25519_dalek::Signature::from_slice(signature))
    else {
        return false;
    };
    key.verify(&message(lsn, chain), &signature).is_ok()
}

/// Is `rec` a proof record of either kind?
pub(crate) fn is_proof(kind: u16) -> bool {
    kind == EventKind::BatchSigned.code() || kind == EventKind::BatchMac.code()
}

/// The signature a `BatchSigned` record carries, if `rec` is one.
pub(crate) fn signature_of(rec: &RecordView<'_>) -> Option<Vec<u8>> {
    if rec.kind != EventKind::BatchSigned.code() {
        return None;
    }
    match crate::event::Event::decode(rec.kind, rec.payload) {
        Ok(crate::event::Event::BatchSigned(BatchSigned { signature })) => Some(signature),
        _ => None,
    }
}

/// The MAC a `BatchMac` record carries, if `rec` is one.
pub(crate) fn mac_of(rec: &RecordView<'_>) -> Option<Vec<u8>> {
    if rec.kind != EventKind::BatchMac.code() {
        return None;
    }
    match crate::event::Event::decode(rec.kind, rec.payload) {
        Ok(crate::event::Event::BatchMac(BatchMac { mac })) => Some(mac),
        _ => None,
    }
}

/// Where the proofs of one segment stand (byte offsets in the segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProofScan {
    /// The end offset of the newest proof record of either kind.
    pub(crate) proof_end: Option<u64>,
    /// The end offset of the newest `BatchSigned` record.
    pub(crate) signature_end: Option<u64>,
    /// The offset of the first bad record, where the walk stopped.
    pub(crate) first_bad: Option<u64>,
    /// The LSN after the last whole record walked (`None`: there was none).
    pub(crate) next_lsn: Option<Lsn>,
}

/// Walks a segment's whole records from where `stream` stands (crc checked) to
/// the first bad one, noting where the newest proofs end. The stream is left at
/// that bad record (or at the end).
pub(crate) fn last_proof_end(stream: &mut SegmentStream) -> std::io::Result<ProofScan> {
    let mut scan = ProofScan { proof_end: None, signature_end: None, first_bad: None, next_lsn: None };
    loop {
        let rec = match stream.next_record()? {
            Raw::Record(rec) => rec,
            Raw::Bad(_) => {
                scan.first_bad = Some(stream.offset());
                return Ok(scan);
            }
            Raw::End => return Ok(scan),
        };
        stream.consume(rec.size);
        scan.next_lsn = Some(rec.lsn + 1);
        if is_proof(rec.kind) {
            scan.proof_end = Some(stream.offset());
        }
        if rec.kind == EventKind::BatchSigned.code() {
            scan.signature_end = Some(stream.offset());
        }
    }
}

/// The public key in a log's first record (`EngineInitialized`), if `rec` is it.
pub(crate) fn public_key_of_first(rec: &RecordView<'_>) -> Option<[u8; 32]> {
    if rec.lsn != 1 || rec.kind != EventKind::EngineInitialized.code() {
        return None;
    }
    match crate::event::Event::decode(rec.kind, rec.payload) {
        Ok(crate::event::Event::EngineInitialized(init)) => Some(init.checkpoint_public_key),
        _ => None,
    }
}
