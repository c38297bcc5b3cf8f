//! Signed checkpoints in the C2SP `tlog-checkpoint` form, as a C2SP signed note:
//!
//! ```text
//! lessor/3f1c0a9e5b7d2c44          origin: "lessor/" + hex of the key's first 8 bytes
//! 120345                           tree size: the LSN of the last record covered
//! q83vEjRWeJq83vEjRWeJq83vEjRW…=   root hash: that record's chain, base64
//! time 1795600800123               extension line: that record's timestamp (Unix ms)
//!
//! — lessor/3f1c0a9e5b7d2c44 <base64(key id ‖ Ed25519 signature)>
//! ```
//!
//! The "root hash" is the log's hash chain, not a Merkle root: it commits to every
//! record up to the LSN all the same, so a checkpoint kept off the host proves the
//! history up to it was not rewritten (a rewrite would need a SHA-256 collision).
//! The key id is `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[..4]`, as the signed-note
//! spec has it, so standard note verifiers accept these given [`verifier_key`].

use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};

use super::base64;
use crate::auth::keys::Keys;
use crate::event::{Checkpoint, Lsn};
use crate::log::format::Chain;

/// Signed-note signature type of Ed25519.
const SIGNATURE_TYPE_ED25519: u8 = 0x01;
/// The signature line starts with an em dash and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Exported checkpoints are a few hundred bytes; anything much larger is not one.
const CHECKPOINT_TEXT_BYTES_MAX: usize = 64 * 1024;

/// Why a checkpoint is malformed, from another log, or not validly signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("not a lessor checkpoint: {what}")]
    Malformed { what: String },
    #[error(
        "the checkpoint is from another log: its origin is {found}, this log's is {expected}; \
         verify it against the data directory it was exported from"
    )]
    OtherLog { found: String, expected: String },
    #[error("the checkpoint carries no signature by {origin} (the key of this log)")]
    Unsigned { origin: String },
    #[error("the checkpoint's signature does not verify under this log's public key: it was forged or edited")]
    BadSignature,
}

fn malformed(what: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed { what: what.into() }
}

/// `lessor/<hex of the first 8 bytes of the public key>`: the origin line and key name.
pub(crate) fn origin(public_key: &[u8; 32]) -> String {
    format!("lessor/{}", hex::encode(&public_key[..8]))
}

/// The signed-note key id of `public_key` under `name`.
pub(crate) fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', SIGNATURE_TYPE_ED25519]);
    h.update(public_key);
    let digest = h.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The signed-note verifier key: `<name>+<hex key id>+<base64(0x01 ‖ public key)>`,
/// the form note tools (Go's `sumdb/note`, witnesses) take.
pub fn verifier_key(public_key: &[u8; 32]) -> String {
    let name = origin(public_key);
    let mut typed = Vec::with_capacity(33);
    typed.push(SIGNATURE_TYPE_ED25519);
    typed.extend_from_slice(public_key);
    format!("{name}+{}+{}", hex::encode(key_id(&name, public_key)), base64::encode(&typed))
}

/// A public key as `audit checkpoint --public-key` prints it: 64 hex characters,
/// or the signed-note verifier key (`<origin>+<key id>+<base64>`, whose key id
/// must match), for `audit verify --public-key` to pin.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes = hex::decode(text).map_err(|e| e.to_string())?;
        return bytes.try_into().map_err(|_| "not 32 bytes".to_string());
    }
    // The origin and key id hold no '+'; base64 may.
    let mut parts = text.splitn(3, '+');
    let (Some(_name), Some(_id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("a public key is 64 hex characters or a verifier key <origin>+<key id>+<base64>, as \
                    `lessor audit checkpoint --public-key` prints it"
            .into());
    };
    let typed = base64::decode(key).ok_or("the verifier key's last part is not base64")?;
    let [kind, rest @ ..] = typed.as_slice() else { return Err("the verifier key is empty".into()) };
    if *kind != SIGNATURE_TYPE_ED25519 || rest.len() != 32 {
        return Err("the verifier key is not an Ed25519 key".into());
    }
    let public_key: [u8; 32] = rest.try_into().map_err(|_| "not 32 bytes".to_string())?;
    if verifier_key(&public_key) != text {
        return Err("the verifier key's origin or key id does not match its key".into());
    }
    Ok(public_key)
}

/// A checkpoint: the log up to `lsn` has chain `chain`, and record `lsn` was
/// written at `ts_ms`; signed by the engine's checkpoint key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub origin: String,
    pub lsn: Lsn,
    pub chain: Chain,
    pub ts_ms: i64,
    pub key_id: [u8; 4],
    pub signature: [u8; 64],
}

/// The signed text (the note's body, final newline included).
fn body(origin: &str, lsn: Lsn, chain: &Chain, ts_ms: i64) -> String {
    format!("{origin}\n{lsn}\n{}\ntime {ts_ms}\n", base64::encode(chain))
}

impl SignedCheckpoint {
    /// Signs the head `(lsn, chain, ts_ms)` with the checkpoint key in `keys`.
    pub fn sign(keys: &Keys, lsn: Lsn, chain: &Chain, ts_ms: i64) -> SignedCheckpoint {
        let public_key = keys.checkpoint_public_key();
        let origin = origin(&public_key);
        let signature = keys.sign_checkpoint(body(&origin, lsn, chain, ts_ms).as_bytes());
        SignedCheckpoint { key_id: key_id(&origin, &public_key), origin, lsn, chain: *chain, ts_ms, signature }
    }

    /// The checkpoint a `Checkpoint` event records, for the log whose key is `public_key`.
    pub fn from_event(event: &Checkpoint, public_key: &[u8; 32]) -> Result<SignedCheckpoint, CheckpointError> {
        let signature: [u8; 64] = event
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| malformed(format!("signature is {} bytes, Ed25519 has 64", event.signature.len())))?;
        let origin = origin(public_key);
        Ok(SignedCheckpoint {
            key_id: key_id(&origin, public_key),
            origin,
            lsn: event.lsn,
            chain: event.chain,
            ts_ms: event.ts_ms,
            signature,
        })
    }

    /// The event that logs this checkpoint.
    pub fn to_event(&self) -> Checkpoint {
        Checkpoint { lsn: self.lsn, chain: self.chain, ts_ms: self.ts_ms, signature: self.signature.to_vec() }
    }

    /// The text that is signed.
    pub(crate) fn body(&self) -> String {
        body(&self.origin, self.lsn, &self.chain, self.ts_ms)
    }

    /// The whole signed note, to keep off the host.
    pub fn to_text(&self) -> String {
        let mut sig = Vec::with_capacity(68);
        sig.extend_from_slice(&self.key_id);
        sig.extend_from_slice(&self.signature);
        format!("{}\n{SIGNATURE_PREFIX}{} {}\n", self.body(), self.origin, base64::encode(&sig))
    }

    /// Reads an exported checkpoint. Signature lines by other keys (witness
    /// cosignatures) are ignored; the one by the origin's key is kept. Only the
    /// canonical body lessor writes is accepted, so the signed bytes are exactly
    /// the ones [`SignedCheckpoint::verify`] checks.
    pub fn parse(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
        if text.len() > CHECKPOINT_TEXT_BYTES_MAX {
            return Err(malformed(format!("{} bytes is far larger than a checkpoint", text.len())));
        }
        let text = text.replace("\r\n", "\n");
        let Some(split) = text.rfind("\n\n") else {
            return Err(malformed("no blank line between the checkpoint and its signature"));
        };
        let (body_text, sigs) = (&text[..split + 1], &text[split + 2..]);
        let mut lines = body_text.lines();
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| malformed("the origin line is empty"))?;
        let size = lines.next().ok_or_else(|| malformed("the tree size line is missing"))?;
        let lsn: Lsn =
            size.parse().map_err(|_| malformed(format!("tree size '{size}' is not a non-negative integer")))?;
        let hash = lines.next().ok_or_else(|| malformed("the root hash line is missing"))?;
        let chain: Chain = base64::decode(hash)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| malformed(format!("root hash '{hash}' is not 32 bytes of base64")))?;
        let time = lines.next().ok_or_else(|| malformed("the 'time <unix ms>' line is missing"))?;
        let ts_ms: i64 = time
            .strip_prefix("time ")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| malformed(format!("expected 'time <unix ms>', found '{time}'")))?;
        if body(origin, lsn, &chain, ts_ms) != body_text {
            return Err(malformed("the text is not in the form lessor writes (extra lines or spacing)"));
        }
        let mut found = None;
        for line in sigs.lines().filter(|l| !l.is_empty()) {
            let rest =
                line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| malformed(format!("bad signature line '{line}'")))?;
            let (name, sig) = rest.split_once(' ').ok_or_else(|| malformed(format!("bad signature line '{line}'")))?;
            if name != origin || found.is_some() {
                continue;
            }
            let raw = base64::decode(sig).ok_or_else(|| malformed("signature is not base64"))?;
            if raw.len() != 68 {
                return Err(malformed(format!("signature is {} bytes; key id and Ed25519 make 68", raw.len())));
            }
            let key_id: [u8; 4] = raw[..4].try_into().expect("4 bytes");
            let signature: [u8; 64] = raw[4..].try_into().expect("64 bytes");
            found = Some((key_id, signature));
        }
        let (key_id, signature) = found.ok_or_else(|| CheckpointError::Unsigned { origin: origin.to_string() })?;
        Ok(SignedCheckpoint { origin: origin.to_string(), lsn, chain, ts_ms, key_id, signature })
    }

    /// Checks origin, key id and signature against the log's public key.
    pub fn verify(&self, public_key: &[u8; 32]) -> Result<(), CheckpointError> {
        let expected = origin(public_key);
        if self.origin != expected {
            return Err(CheckpointError::OtherLog { found: self.origin.clone(), expected });
        }
        if self.key_id != key_id(&expected, public_key) {
            return Err(CheckpointError::Unsigned { origin: expected });
        }
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| CheckpointError::BadSignature)?;
        key.verify_strict(self.body().as_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| CheckpointError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::MasterKey;

    /// The example from Go's `golang.org/x/mod/sumdb/note` documentation: our key
    /// id and signature check agree with the reference implementation.
    #[test]
    fn public_keys_parse_as_printed() {
        let key = [0x42; 32];
        assert_eq!(super::parse_public_key(&hex::encode(key)), Ok(key));
        assert_eq!(super::parse_public_key(&super::verifier_key(&key)), Ok(key));
        // A key whose base64 holds '+' and '/'.
        let plus = [0xfb; 32];
        assert!(super::verifier_key(&plus).rsplit('+').next().unwrap().len() < 44);
        assert_eq!(super::parse_public_key(&super::verifier_key(&plus)), Ok(plus));
        let mut forged = super::verifier_key(&key);
        forged.replace_range(..6, "evilxx");
        assert!(super::parse_public_key(&forged).is_err());
        assert!(super::parse_public_key("nonsense").is_err());
    }

    #[test]
    fn reference_note_verifies() {
        let vkey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        let parts: Vec<&str> = vkey.split('+').collect();
        let typed = base64::decode(parts[2]).unwrap();
        assert_eq!(typed[0], SIGNATURE_TYPE_ED25519);
        let public_key: [u8; 32] = typed[1..].try_into().unwrap();
        assert_eq!(hex::encode(key_id(parts[0], &public_key)), parts[1]);
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let sig = base64::decode(
            "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
        )
        .unwrap();
        assert_eq!(&sig[..4], &key_id(parts[0], &public_key));
        let key = VerifyingKey::from_bytes(&public_key).unwrap();
        let signature = Signature::from_bytes(&sig[4..].try_into().unwrap());
        key.verify_strict(text.as_bytes(), &signature).unwrap();
    }

    #[test]
    fn text_round_trips_and_verifies() {
        let keys = Keys::derive(&MasterKey::from_bytes([3; 32]));
        let cp = SignedCheckpoint::sign(&keys, 120_345, &[0xab; 32], 1_795_600_800_123);
        let text = cp.to_text();
        assert!(text.starts_with(&format!("{}\n120345\n", origin(&keys.checkpoint_public_key()))), "{text}");
        assert!(text.contains("\ntime 1795600800123\n\n\u{2014} lessor/"), "{text}");
        let parsed = SignedCheckpoint::parse(&text).unwrap();
        assert_eq!(parsed, cp);
        parsed.verify(&keys.checkpoint_public_key()).unwrap();
        // A witness's cosignature after ours changes nothing.
        let cosigned = format!("{text}\u{2014} witness.example/w AAAA\n");
        assert_eq!(SignedCheckpoint::parse(&cosigned).unwrap(), cp);
    }

    #[test]
    fn forgeries_fail() {
        let keys = Keys::derive(&MasterKey::from_bytes([3; 32]));
        let pk = keys.checkpoint_public_key();
        let cp = SignedCheckpoint::sign(&keys, 10, &[1; 32], 5);
        let mut moved = cp.clone();
        moved.lsn = 11;
        assert_eq!(moved.verify(&pk), Err(CheckpointError::BadSignature));
        let mut rehashed = cp.clone();
        rehashed.chain[0] ^= 1;
        assert_eq!(rehashed.verify(&pk), Err(CheckpointError::BadSignature));
        let other = Keys::derive(&MasterKey::from_bytes([4; 32]));
        let theirs = SignedCheckpoint::sign(&other, 10, &[1; 32], 5);
        assert!(matches!(theirs.verify(&pk), Err(CheckpointError::OtherLog { .. })));
        // Same origin text, signed by another key: the key id gives it away.
        let mut impostor = SignedCheckpoint::sign(&other, 10, &[1; 32], 5);
        impostor.origin = cp.origin.clone();
        assert!(matches!(impostor.verify(&pk), Err(CheckpointError::Unsigned { .. })));
        let edited = cp.to_text().replace("\n10\n", "\n9\n");
        assert_eq!(SignedCheckpoint::parse(&edited).unwrap().verify(&pk), Err(CheckpointError::BadSignature));
    }

    #[test]
    fn malformed_texts_are_named() {
        for (text, want) in [
            ("", "blank line"),
            ("lessor/x\nten\nAAAA\n\n\u{2014} lessor/x AAAA\n", "tree size"),
            ("lessor/x\n1\nAAAA\ntime 1\n\n\u{2014} lessor/x AAAA\n", "root hash"),
            ("lessor/x\n1\n", "blank line"),
        ] {
            let err = SignedCheckpoint::parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let keys = Keys::derive(&MasterKey::from_bytes([3; 32]));
        let text = SignedCheckpoint::sign(&keys, 1, &[0; 32], 0).to_text();
        let unsigned = text.replace("\u{2014} lessor/", "\u{2014} someone/");
        assert!(matches!(SignedCheckpoint::parse(&unsigned), Err(CheckpointError::Unsigned { .. })));
    }
}
