//! The one place that knows how values become bytes.
//!
//! Everything that reaches disk (event payloads, snapshots) goes through these two
//! functions, so the wire format is pinned by one configuration and one golden test.
//! bincode is pinned to `=2.0.1`: 3.0.0 on crates.io is an empty tombstone.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Upper bound on what a single decode may allocate: a hostile or damaged payload
/// cannot make the decoder reserve more than this (I7).
pub(crate) const DECODE_BYTES_MAX: usize = 1 << 30;

/// Standard config: little-endian, variable-length integers, with an allocation limit.
fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit::<DECODE_BYTES_MAX>()
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Encoding into a Vec cannot fail for the types we define (no maps with
    // non-string keys that serde rejects, no sequences of unknown length).
    bincode::serde::encode_into_std_write(value, out, config())
        .expect("encoding into a Vec<u8> is infallible for lessor types");
}

/// Encodes `value` into a fresh buffer.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Why bytes could not be decoded. The message is bincode's own; it never echoes
/// the input bytes (they may hold sealed secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct DecodeError {
    pub(crate) message: String,
}

/// Decodes a `T` that must occupy `bytes` exactly: trailing bytes are an error,
/// because a payload that is longer than its value means the format is not ours.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(bytes, config())
        .map_err(|e| DecodeError { message: e.to_string() })?;
    if read != bytes.len() {
        return Err(DecodeError { message: format!("{} trailing bytes after the value", bytes.len() - read) });
    }
    Ok(value)
}

/// Decodes a `T` from the front of `reader`, reading no further than it: the
/// caller says whether what follows is allowed (a snapshot's body must end there).
pub(crate) fn decode_from_reader<T: DeserializeOwned>(mut reader: &mut dyn std::io::Read) -> Result<T, DecodeError> {
    bincode::serde::decode_from_std_read::<T, _, _>(&mut reader, config())
        .map_err(|e| DecodeError { message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        a: u64,
        b: i64,
        s: String,
        v: Vec<u8>,
        o: Option<u32>,
    }

    /// Pins the configuration itself: varint integers, zig-zag signed, length-prefixed
    /// strings and byte vectors, a one-byte Option tag.
    #[test]
    fn golden_bytes_of_the_configuration() {
        let s = Sample { a: 300, b: -2, s: "hi".into(), v: vec![7, 8], o: Some(1) };
        let bytes = encode(&s);
        assert_eq!(bytes, vec![0xfb, 0x2c, 0x01, 0x03, 0x02, b'h', b'i', 0x02, 7, 8, 0x01, 0x01]);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), s);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&5u32);
        bytes.push(0);
        let err = decode::<u32>(&bytes).unwrap_err();
        assert!(err.message.contains("trailing"), "{err}");
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // A string claiming u64::MAX bytes.
        let bytes = [0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(decode::<String>(&bytes).is_err());
    }
}
