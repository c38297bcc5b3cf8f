//! The byte format of segments and records. Little-endian everywhere; every size is
//! a constant checked at compile time, and a golden test pins the bytes.
//!
//! ```text
//! segment header (52 bytes)
//!   magic u32 "LSRS" | format_version u16 | reserved u16 (0) | first_lsn u64
//!   | prev_chain [32] | crc32 u32 (over the 48 bytes before it)
//! record (62 bytes + payload)
//!   magic u32 "LSRE" | len u32 (payload bytes) | crc32 u32 | lsn u64 | ts_ms i64
//!   | kind u16 | payload [len] | chain [32]
//! ```
//! The record crc covers every byte after itself (lsn .. chain): it catches torn and
//! damaged records. `chain = SHA-256(prev_chain ‖ lsn ‖ ts_ms ‖ kind ‖ payload)`:
//! it catches edits, deletions and reordering even when every crc is recomputed.

use sha2::{Digest, Sha256};

use crate::event::Lsn;

pub(crate) const SEGMENT_MAGIC: u32 = u32::from_le_bytes(*b"LSRS");
pub(crate) const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"LSRE");
/// Version of the byte format. A change bumps it; readers keep opening old versions.
/// 2: every batch ends with a proof, `BatchSigned` or `BatchMac`
/// ([`super::proof`]); the framing is unchanged. 1: no proofs.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest version this build still reads.
pub(crate) const FORMAT_VERSION_MIN: u16 = 1;
/// The first version whose batches end in a proof (when the log has a key).
pub(crate) const FORMAT_VERSION_PROOFS: u16 = 2;

pub(crate) const CHAIN_BYTES: usize = 32;
pub const SEGMENT_HEADER_BYTES: usize = 4 + 2 + 2 + 8 + CHAIN_BYTES + 4;
pub(crate) const RECORD_HEADER_BYTES: usize = 4 + 4 + 4 + 8 + 8 + 2;
/// Framing bytes around a payload.
pub const RECORD_OVERHEAD_BYTES: usize = RECORD_HEADER_BYTES + CHAIN_BYTES;
/// The largest payload a record may carry; a larger `len` is damage, not data.
pub(crate) const RECORD_PAYLOAD_BYTES_MAX: usize = 1 << 20;
/// Offset of the first byte the record crc covers.
const RECORD_CRC_START: usize = 12;

const _: () = assert!(SEGMENT_HEADER_BYTES == 52);
const _: () = assert!(RECORD_HEADER_BYTES == 30);
const _: () = assert!(RECORD_OVERHEAD_BYTES == 62);
const _: () = assert!(RECORD_PAYLOAD_BYTES_MAX <= u32::MAX as usize);

/// The chain value before the first record.
pub const GENESIS_CHAIN: [u8; CHAIN_BYTES] = [0; CHAIN_BYTES];

/// A chain hash.
pub type Chain = [u8; CHAIN_BYTES];

/// File name of the segment whose first record has `first_lsn`.
pub fn segment_name(first_lsn: Lsn) -> String {
    format!("{first_lsn:020}.log")
}

/// Inverse of [`segment_name`]; `None` for any other file name.
pub fn parse_segment_name(name: &str) -> Option<Lsn> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// [`FORMAT_VERSION`] for every segment this build writes.
    pub version: u16,
    pub first_lsn: Lsn,
    /// Chain of the last record of the previous segment (genesis for the first).
    pub prev_chain: Chain,
}

/// Why a segment header is not valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderProblem {
    Short,
    BadMagic,
    UnsupportedVersion(u16),
    BadCrc,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES];
        out[0..4].copy_from_slice(&SEGMENT_MAGIC.to_le_bytes());
        out[4..6].copy_from_slice(&self.version.to_le_bytes());
        // 6..8 reserved, zero.
        out[8..16].copy_from_slice(&self.first_lsn.to_le_bytes());
        out[16..48].copy_from_slice(&self.prev_chain);
        let crc = crc32fast::hash(&out[..48]);
        out[48..52].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderProblem> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(HeaderProblem::Short);
        }
        if u32_at(bytes, 0) != SEGMENT_MAGIC {
            return Err(HeaderProblem::BadMagic);
        }
        if u32_at(bytes, 48) != crc32fast::hash(&bytes[..48]) {
            return Err(HeaderProblem::BadCrc);
        }
        let version = u16::from_le_bytes([bytes[4], bytes[5]]);
        if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version) {
            return Err(HeaderProblem::UnsupportedVersion(version));
        }
        let mut prev_chain = [0u8; CHAIN_BYTES];
        prev_chain.copy_from_slice(&bytes[16..48]);
        Ok(SegmentHeader { version, first_lsn: u64_at(bytes, 8), prev_chain })
    }
}

/// `SHA-256(prev_chain ‖ lsn ‖ ts_ms ‖ kind ‖ payload)`.
pub(crate) fn chain_next(prev_chain: &Chain, lsn: Lsn, ts_ms: i64, kind: u16, payload: &[u8]) -> Chain {
    let mut h = Sha256::new();
    h.update(prev_chain);
    h.update(lsn.to_le_bytes());
    h.update(ts_ms.to_le_bytes());
    h.update(kind.to_le_bytes());
    h.update(payload);
    h.finalize().into()
}

/// Appends one framed record to `out` and returns its chain hash.
pub fn encode_record(out: &mut Vec<u8>, prev_chain: &Chain, lsn: Lsn, ts_ms: i64, kind: u16, payload: &[u8]) -> Chain {
    assert!(payload.len() <= RECORD_PAYLOAD_BYTES_MAX, "payload over the limit reached the framer");
    let start = out.len();
    let chain = chain_next(prev_chain, lsn, ts_ms, kind, payload);
    out.reserve(RECORD_OVERHEAD_BYTES + payload.len());
    out.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]); // crc, filled below
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&ts_ms.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&chain);
    let crc = crc32fast::hash(&out[start + RECORD_CRC_START..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    debug_assert_eq!(out.len() - start, RECORD_OVERHEAD_BYTES + payload.len());
    chain
}

/// A record read in place from a segment buffer; crc already verified.
#[derive(Clone, Copy, Debug)]
pub struct RecordView<'a> {
    pub lsn: Lsn,
    pub ts_ms: i64,
    pub kind: u16,
    pub payload: &'a [u8],
    pub chain: Chain,
    /// Total framed size in bytes.
    pub size: usize,
}

/// Why the bytes at an offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordProblem {
    /// The buffer ends inside the record.
    Short,
    BadMagic,
    /// `len` over [`RECORD_PAYLOAD_BYTES_MAX`].
    LenTooLarge,
    BadCrc,
}

impl RecordProblem {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            RecordProblem::Short => "record cut short",
            RecordProblem::BadMagic => "bad record magic",
            RecordProblem::LenTooLarge => "record length over the limit",
            RecordProblem::BadCrc => "record checksum mismatch",
        }
    }
}

/// Parses and crc-checks the record starting at `buf[0]`.
pub fn read_record(buf: &[u8]) -> Result<RecordView<'_>, RecordProblem> {
    if buf.len() < RECORD_HEADER_BYTES {
        return Err(RecordProblem::Short);
    }
    if u32_at(buf, 0) != RECORD_MAGIC {
        return Err(RecordProblem::BadMagic);
    }
    let len = u32_at(buf, 4) as usize;
    if len > RECORD_PAYLOAD_BYTES_MAX {
        return Err(RecordProblem::LenTooLarge);
    }
    let size = RECORD_OVERHEAD_BYTES + len;
    if buf.len() < size {
        return Err(RecordProblem::Short);
    }
    if u32_at(buf, 8) != crc32fast::hash(&buf[RECORD_CRC_START..size]) {
        return Err(RecordProblem::BadCrc);
    }
    let mut chain = [0u8; CHAIN_BYTES];
    chain.copy_from_slice(&buf[size - CHAIN_BYTES..size]);
    Ok(RecordView {
        lsn: u64_at(buf, 12),
        ts_ms: u64_at(buf, 20) as i64,
        kind: u16::from_le_bytes([buf[28], buf[29]]),
        payload: &buf[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + len],
        chain,
        size,
    })
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Golden bytes: a change here is a format change and must bump FORMAT_VERSION.
    #[test]
    fn golden_segment_header() {
        let h = SegmentHeader { version: FORMAT_VERSION, first_lsn: 0x0102, prev_chain: [0xab; 32] };
        let bytes = h.encode();
        assert_eq!(
            hex::encode(bytes),
            concat!(
                "4c535253",
                "0200",
                "0000",
                "0201000000000000",
                "abababababababababababababababababababababababababababababababab",
                "06f9b4b8"
            )
        );
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
    }

    /// Version 1 headers, as earlier builds wrote them, still decode.
    #[test]
    fn golden_segment_header_v1_still_decodes() {
        let v1 = hex::decode(concat!(
            "4c535253",
            "0100",
            "0000",
            "0201000000000000",
            "abababababababababababababababababababababababababababababababab",
            "a0b1ccc6"
        ))
        .unwrap();
        let h = SegmentHeader::decode(&v1).unwrap();
        assert_eq!(h, SegmentHeader { version: 1, first_lsn: 0x0102, prev_chain: [0xab; 32] });
        assert_eq!(h.encode().to_vec(), v1);
        let mut v3 = SegmentHeader { version: 3, ..h }.encode();
        v3[4] = 3;
        assert_eq!(SegmentHeader::decode(&v3), Err(HeaderProblem::UnsupportedVersion(3)));
    }

    #[test]
    fn golden_record() {
        let mut out = Vec::new();
        let chain = encode_record(&mut out, &GENESIS_CHAIN, 1, 1_700_000_000_000, 0x0a, b"\x01xy");
        assert_eq!(
            hex::encode(&out),
            concat!(
                "4c535245",
                "03000000",
                "4895fdcb",
                "0100000000000000",
                "0068e5cf8b010000",
                "0a00",
                "017879",
                "8db5a8b33b4362a8e58ee82f6b74ad272991d39b61eaa2fc849d4f4c4c9c6dd5"
            )
        );
        let view = read_record(&out).unwrap();
        assert_eq!((view.lsn, view.ts_ms, view.kind, view.payload), (1, 1_700_000_000_000, 0x0a, &b"\x01xy"[..]));
        assert_eq!(view.chain, chain);
        assert_eq!(view.size, out.len());
    }

    #[test]
    fn every_single_byte_flip_is_caught() {
        let mut rec = Vec::new();
        encode_record(&mut rec, &GENESIS_CHAIN, 7, 42, 3, b"payload");
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x01;
            assert!(read_record(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_name(1), "00000000000000000001.log");
        assert_eq!(parse_segment_name(&segment_name(12345)), Some(12345));
        assert_eq!(parse_segment_name("snap-1.bin"), None);
        assert_eq!(parse_segment_name("0001.log"), None);
    }
}
