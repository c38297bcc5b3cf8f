//! Standard base64 with padding (RFC 4648 §4), the encoding C2SP notes use; the
//! `base64` crate, strict on decode (canonical padding and trailing bits), so one
//! value has one text.

use ::base64::Engine as _;
use ::base64::engine::general_purpose::STANDARD;

pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (plain, coded) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(encode(plain.as_bytes()), coded);
            assert_eq!(decode(coded).as_deref(), Some(plain.as_bytes()));
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)), Some(all));
    }

    #[test]
    fn non_canonical_text_is_refused() {
        for bad in ["Zg", "Zh==", "Z===", "Zg==Zg==", "Zm9v!", "Zm 9"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
