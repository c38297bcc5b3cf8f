//! SCRAM-SHA-256 verifiers in PostgreSQL's form, computed here so that with
//! `password_authentication = scram-sha-256` a password never reaches the server
//! (the PostgreSQL plugin writes the verifier where `{{password}}` stands).

use zeroize::Zeroize;

/// PostgreSQL's iteration count for SCRAM-SHA-256 verifiers (its
/// `scram_iterations` default, fixed at 4096 before PostgreSQL 16).
pub const SCRAM_ITERATIONS_DEFAULT: u32 = 4096;
/// The fewest iterations a verifier may use (PostgreSQL accepts any count ≥ 1).
pub(crate) const SCRAM_ITERATIONS_MIN: u32 = 1;
/// The most iterations lessor computes: the verifier is computed on every issue,
/// so the count bounds the CPU one request may take (I7). About 0.4 s at this count
/// on the benchmark machine.
pub(crate) const SCRAM_ITERATIONS_MAX: u32 = 1_000_000;
/// Bytes of salt in a verifier: PostgreSQL's `SCRAM_DEFAULT_SALT_LEN`.
pub(crate) const SCRAM_SALT_BYTES: usize = 16;

/// A SCRAM-SHA-256 verifier for `password`, in PostgreSQL's `pg_authid` form
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, with a fresh salt
/// from `fill`. Given to `CREATE ROLE … PASSWORD`, the server stores it as it is: the
/// password never reaches the server. The key stretching (PBKDF2, `iterations`
/// rounds of HMAC-SHA-256) is paid here, and PostgreSQL (15) pays it once more:
/// it checks every verifier it is given against the empty password.
///
/// Why the count is a setting: key stretching slows down guessing a *weak* password
/// from a stolen verifier. lessor's passwords are machine-generated (the default
/// policy draws 20 characters from 63: about 119 bits), so guessing is out of reach
/// at any count and stretching adds no protection; what it does add is CPU on every
/// issue (here) and on every login (on the server). A low count buys throughput; the
/// default stays PostgreSQL's.
///
/// The password must be printable ASCII (every password policy is): PostgreSQL
/// applies SASLprep to the password at login, which leaves printable ASCII as it
/// is, so the bytes are hashed directly. Anything else gives `None`.
pub fn scram_sha256_verifier(password: &str, iterations: u32, fill: &mut dyn FnMut(&mut [u8])) -> Option<String> {
    if !password.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return None;
    }
    let mut salt = [0u8; SCRAM_SALT_BYTES];
    fill(&mut salt);
    Some(scram_sha256_verifier_with_salt(password, iterations.max(SCRAM_ITERATIONS_MIN), &salt))
}

/// [`scram_sha256_verifier`] with a given salt (deterministic, for tests).
pub(crate) fn scram_sha256_verifier_with_salt(password: &str, iterations: u32, salt: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    use sha2::Digest;
    type HmacSha256 = hmac::Hmac<sha2::Sha256>;

    // PBKDF2-HMAC-SHA-256 with one 32-byte block. The keyed HMAC state is built
    // once and cloned per round, so a round costs two compressions, not four.
    let keyed = HmacSha256::new_from_slice(password.as_bytes()).expect("HMAC takes any key length");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u: [u8; 32] = mac.finalize().into_bytes().into();
    let mut salted = u;
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().into();
        for (s, b) in salted.iter_mut().zip(u.iter()) {
            *s ^= b;
        }
    }
    let key_mac = |label: &[u8]| -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&salted).expect("HMAC takes any key length");
        mac.update(label);
        mac.finalize().into_bytes().into()
    };
    let client_key = key_mac(b"Client Key");
    let stored_key: [u8; 32] = sha2::Sha256::digest(client_key).into();
    let server_key = key_mac(b"Server Key");
    salted.zeroize();
    u.zeroize();
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        base64_encode(salt),
        base64_encode(&stored_key),
        base64_encode(&server_key)
    )
}

/// Standard base64 with padding (RFC 4648), as PostgreSQL writes verifiers.
fn base64_encode(bytes: &[u8]) -> String {
    use ::base64::Engine as _;
    ::base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::random::seeded;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE=")]
        {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }

    /// The verifier equals the one postgres-protocol (tokio-postgres's own SCRAM
    /// code, 4096 rounds) computes for the same password and salt.
    #[test]
    fn scram_verifier_matches_postgres_protocol_at_4096() {
        for password in
            ["Probe-Password-1", "a", "A-very-long-password-with-128-chars-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
        {
            let theirs = postgres_protocol::password::scram_sha_256(password.as_bytes());
            // SCRAM-SHA-256$4096:<salt>$<stored>:<server>
            let salt_b64 = theirs.split('$').nth(1).unwrap().split(':').nth(1).unwrap();
            let salt = base64_decode_for_test(salt_b64);
            assert_eq!(scram_sha256_verifier_with_salt(password, 4096, &salt), theirs);
        }
    }

    #[test]
    fn scram_verifier_shape_and_iterations() {
        let v = scram_sha256_verifier("Probe-Password-1", 16, &mut seeded(5)).unwrap();
        assert!(v.starts_with("SCRAM-SHA-256$16:"), "{v}");
        let parts: Vec<&str> = v.split(['$', ':']).collect();
        assert_eq!(parts.len(), 5, "{v}");
        assert_eq!(base64_decode_for_test(parts[2]).len(), SCRAM_SALT_BYTES);
        assert_eq!(base64_decode_for_test(parts[3]).len(), 32);
        assert_eq!(base64_decode_for_test(parts[4]).len(), 32);
        // Fresh salt, fresh verifier; the count changes the keys.
        assert_ne!(v, scram_sha256_verifier("Probe-Password-1", 16, &mut seeded(6)).unwrap());
        let salt = [7u8; SCRAM_SALT_BYTES];
        assert_ne!(
            scram_sha256_verifier_with_salt("p", 1, &salt).split('$').nth(2),
            scram_sha256_verifier_with_salt("p", 2, &salt).split('$').nth(2)
        );
        assert_eq!(scram_sha256_verifier("pässword", 16, &mut seeded(5)), None);
    }

    fn base64_decode_for_test(text: &str) -> Vec<u8> {
        use ::base64::Engine as _;
        ::base64::engine::general_purpose::STANDARD.decode(text).unwrap()
    }
}
