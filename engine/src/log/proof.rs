//! Batch proofs: why a record appended by someone without the master key is never
//! accepted.
//!
//! The crc and the hash chain use no key: anyone who can write the data directory
//! can append a record and recompute both. So the writer ends every batch (and
//! every segment it seals) with a [`BatchSigned`] record: an Ed25519 signature,
//! under the checkpoint key derived from the master key, of the LSN and chain of
//! the record before it. Because each chain value commits to every record before
//! it, the newest valid signature proves the whole log up to it; verifying that
//! one signature (not one per batch) is enough, at open and in `audit verify`,
//! and auditors need only the public key.
//!
//! Records after the newest signature are an *unproven tail*: a batch whose write
//! a crash cut short at a record boundary (never acknowledged: the signature is in
//! the same write and fsync), or records someone appended without the key. Either
//! way they are never applied: open cuts them like a torn tail and logs
//! `TailTruncated`; a signature that does not verify refuses the open.
//! Segments of format version 1 (before proofs) carry none; a log whose newest
//! segment is version 1 opens as before, and the writer starts a version 2
//! segment before it appends anything.

use crate::event::{BatchSigned, EventKind, Lsn};
use crate::log::format::{self, Chain, RECORD_OVERHEAD_BYTES, RecordView};

/// Domain separation from the checkpoint notes signed with the same key.
const CONTEXT: &[u8] = b"lessor batch proof v1\n";

/// Bytes of a signature.
pub const SIGNATURE_BYTES: usize = 64;

/// Framed size of a `BatchSigned` record: the writer keeps this much room in a
/// segment so a seal always fits.
pub const PROOF_RECORD_BYTES: usize = RECORD_OVERHEAD_BYTES + 2 + SIGNATURE_BYTES;

/// What is signed for the record at `lsn` with chain `chain`.
pub fn message(lsn: Lsn, chain: &Chain) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + 8 + chain.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(&lsn.to_le_bytes());
    m.extend_from_slice(chain);
    m
}

/// Does `signature` prove the record at `lsn` with `chain` under `public_key`?
pub fn verify(public_key: &[u8; 32], lsn: Lsn, chain: &Chain, signature: &[u8]) -> bool {
    use ed25519_dalek::Verifier;
    let (Ok(key), Ok(signature)) =
        (ed25519_dalek::VerifyingKey::from_bytes(public_key), ed25519_dalek::Signature::from_slice(signature))
    else {
        return false;
    };
    key.verify(&message(lsn, chain), &signature).is_ok()
}

/// The signature a `BatchSigned` record carries, if `rec` is one.
pub fn signature_of(rec: &RecordView<'_>) -> Option<Vec<u8>> {
    if rec.kind != EventKind::BatchSigned.code() {
        return None;
    }
    match crate::event::Event::decode(rec.kind, rec.payload) {
        Ok(crate::event::Event::BatchSigned(BatchSigned { signature })) => Some(signature),
        _ => None,
    }
}

/// Where the proofs of one segment stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProofScan {
    /// The end offset of the newest `BatchSigned` record.
    pub proof_end: Option<usize>,
    /// The offset of the first bad record, where the walk stopped.
    pub first_bad: Option<usize>,
}

/// Walks a segment's whole records from `start` (crc checked) to the first bad
/// one, noting where the newest `BatchSigned` record ends.
pub fn last_proof_end(bytes: &[u8], start: usize) -> ProofScan {
    let mut offset = start;
    let mut scan = ProofScan { proof_end: None, first_bad: None };
    while offset < bytes.len() {
        let Ok(rec) = format::read_record(&bytes[offset..]) else {
            scan.first_bad = Some(offset);
            break;
        };
        offset += rec.size;
        if rec.kind == EventKind::BatchSigned.code() {
            scan.proof_end = Some(offset);
        }
    }
    scan
}

/// The public key in a log's first record (`EngineInitialized`), if `rec` is it.
pub fn public_key_of_first(rec: &RecordView<'_>) -> Option<[u8; 32]> {
    if rec.lsn != 1 || rec.kind != EventKind::EngineInitialized.code() {
        return None;
    }
    match crate::event::Event::decode(rec.kind, rec.payload) {
        Ok(crate::event::Event::EngineInitialized(init)) => Some(init.checkpoint_public_key),
        _ => None,
    }
}
