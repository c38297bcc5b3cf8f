//! The master key and what is derived from it.
//!
//! One 32-byte master key (a 0600 key file outside the log, or bytes the embedder
//! supplies) derives, through HKDF-SHA256 with a distinct label each:
//! - the **token-hash key**: token secrets are stored only as HMAC-SHA256 under it;
//! - the **AEAD key** (AES-256-GCM): root passwords and other secrets inside events
//!   are [`Sealed`] fields, so the log stays readable for forensics without the key;
//! - the **key check**: a public value in `EngineInitialized`, so opening with the
//!   wrong key is a clear error instead of every token failing to match;
//! - the **checkpoint signing key** (Ed25519) whose public half is in the log.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::Mac;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::event::Sealed;

pub const MASTER_KEY_BYTES: usize = 32;
/// File name of the key file `init` writes when the embedder supplies no key.
pub const KEY_FILE_NAME: &str = "master.key";
/// More than any key file holds (64 hex characters and a newline, or 32 bytes).
const KEY_FILE_BYTES_MAX: usize = 4096;
/// HKDF salt: versioned, so a future derivation scheme cannot collide with this one.
const HKDF_SALT: &[u8] = b"lessor/v1";

/// The master key. Never printed: its `Debug` shows nothing, and it is wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; MASTER_KEY_BYTES]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Why a key could not be read, written or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("master key must be {MASTER_KEY_BYTES} bytes (or 64 hex characters), got {0} bytes")]
    WrongLength(usize),
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "key file {path} is readable by others or writable by them (mode {mode:o}): only its owner may have \
         access; run `chmod 600 {path}`"
    )]
    Permissions { path: String, mode: u32 },
    #[error("key file {path} is {found}, not a regular file; give the key file itself")]
    NotRegularFile { path: String, found: &'static str },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; MASTER_KEY_BYTES]) -> MasterKey {
        MasterKey(bytes)
    }

    /// Accepts 32 raw bytes or 64 hex characters (surrounding whitespace ignored).
    pub fn from_slice(bytes: &[u8]) -> Result<MasterKey, KeyError> {
        let trimmed = bytes.trim_ascii();
        let raw = if trimmed.len() == 2 * MASTER_KEY_BYTES && trimmed.iter().all(u8::is_ascii_hexdigit) {
            hex::decode(trimmed).map_err(|_| KeyError::WrongLength(bytes.len()))?
        } else {
            bytes.to_vec()
        };
        let arr: [u8; MASTER_KEY_BYTES] = raw.as_slice().try_into().map_err(|_| KeyError::WrongLength(raw.len()))?;
        Ok(MasterKey(arr))
    }

    pub fn generate() -> Result<MasterKey, KeyError> {
        let mut bytes = [0u8; MASTER_KEY_BYTES];
        fill_random(&mut bytes)?;
        Ok(MasterKey(bytes))
    }

    /// Reads a key file (raw or hex), refusing one that group or others may read or
    /// write. A link is followed (an operator-chosen path, e.g. a mounted secret);
    /// what it leads to must be a regular file. See [`MasterKey::read_file_no_follow`].
    pub fn read_file(path: &Path) -> Result<MasterKey, KeyError> {
        MasterKey::read_key_file(path, 0)
    }

    /// [`MasterKey::read_file`] for the key file inside a data directory
    /// (`<dir>/master.key`): never through a symbolic link (`O_NOFOLLOW`).
    pub fn read_file_no_follow(path: &Path) -> Result<MasterKey, KeyError> {
        MasterKey::read_key_file(path, libc::O_NOFOLLOW)
    }

    fn read_key_file(path: &Path, flags: i32) -> Result<MasterKey, KeyError> {
        use std::io::Read;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let shown = path.display().to_string();
        let read_err = |source| KeyError::Read { path: shown.clone(), source };
        let not_regular = |file_type: std::fs::FileType| KeyError::NotRegularFile {
            path: shown.clone(),
            found: if file_type.is_symlink() {
                "a symbolic link"
            } else if file_type.is_dir() {
                "a directory"
            } else {
                "a special file"
            },
        };
        // O_NONBLOCK: a FIFO in its place must not hang the open (no effect on a file).
        let opened = std::fs::OpenOptions::new().read(true).custom_flags(flags | libc::O_NONBLOCK).open(path);
        let file = match opened {
            Ok(file) => file,
            Err(e) => {
                return Err(match std::fs::symlink_metadata(path) {
                    Ok(meta) if flags & libc::O_NOFOLLOW != 0 && meta.file_type().is_symlink() => {
                        not_regular(meta.file_type())
                    }
                    _ => read_err(e),
                });
            }
        };
        // Checked on what was opened, not on the path (which could change meanwhile).
        let meta = file.metadata().map_err(read_err)?;
        if !meta.file_type().is_file() {
            return Err(not_regular(meta.file_type()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions { path: shown, mode });
        }
        // Sized up front (a key file is 65 bytes), so no copy of the key is left
        // behind in a reallocation; what is longer than any key is not read whole.
        let mut bytes = Vec::with_capacity(KEY_FILE_BYTES_MAX + 1);
        let read = file.take(KEY_FILE_BYTES_MAX as u64 + 1).read_to_end(&mut bytes).map_err(read_err);
        let key = read.and_then(|_| MasterKey::from_slice(&bytes));
        bytes.zeroize();
        key
    }

    /// Writes a new key file with mode 0600 whatever the umask (hex, one line);
    /// fails if anything of that name exists, a symbolic link included.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |source| KeyError::Write { path: path.display().to_string(), source };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(err)?;
        // The mode given to open was masked by the umask: set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        let mut text = hex::encode(self.0);
        text.push('\n');
        let written = file.write_all(text.as_bytes()).and_then(|()| file.sync_all());
        text.zeroize();
        written.map_err(err)
    }
}

/// Fills `buf` from the operating system's CSPRNG.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|e| KeyError::Random(e.to_string()))
}

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decrypt {context}: wrong master key or damaged data")]
pub(crate) struct UnsealError {
    pub(crate) context: String,
}

/// The keys derived from a master key.
#[derive(ZeroizeOnDrop)]
pub struct Keys {
    token_hash: [u8; 32],
    aead: [u8; 32],
    key_check: [u8; 32],
    /// Keys the batch MACs that end the log's batches between signatures.
    batch_mac: [u8; 32],
    /// Expanded once: every batch proof is signed with it on the writer thread,
    /// where re-deriving it per signature (a scalar multiplication) showed.
    /// It zeroizes itself on drop.
    #[zeroize(skip)]
    checkpoint_signing: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

impl Keys {
    pub fn derive(master: &MasterKey) -> Keys {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(HKDF_SALT), &master.0);
        let expand = |label: &[u8]| {
            let mut out = [0u8; 32];
            hk.expand(label, &mut out).expect("32 bytes is a valid HKDF-SHA256 output length");
            out
        };
        Keys {
            token_hash: expand(b"token-hash"),
            aead: expand(b"aead"),
            key_check: expand(b"key-check"),
            batch_mac: expand(b"batch-mac"),
            checkpoint_signing: ed25519_dalek::SigningKey::from_bytes(&expand(b"checkpoint-signing")),
        }
    }

    /// Public value that identifies the master key without revealing it.
    pub(crate) fn key_check(&self) -> [u8; 32] {
        self.key_check
    }

    /// HMAC-SHA256 of a token secret under the token-hash key.
    pub fn hash_token(&self, secret: &str) -> [u8; 32] {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.token_hash).expect("HMAC takes any key length");
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// HMAC-SHA256 of `message` under the batch-MAC key: the proof that ends a
    /// log batch between signatures (a microsecond, where a signature is twenty).
    pub(crate) fn mac_batch(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.batch_mac).expect("HMAC takes any key length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Is `tag` the batch MAC of `message`? Compared in constant time.
    pub(crate) fn verify_batch_mac(&self, message: &[u8], tag: &[u8]) -> bool {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.batch_mac).expect("HMAC takes any key length");
        mac.update(message);
        mac.verify_slice(tag).is_ok()
    }

    /// Ed25519 public key that verifies this engine's checkpoints.
    pub fn checkpoint_public_key(&self) -> [u8; 32] {
        self.checkpoint_signing.verifying_key().to_bytes()
    }

    /// Ed25519 signature of `message` under the checkpoint key (C2SP signed notes).
    pub fn sign_checkpoint(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::ed25519::signature::Signer;
        self.checkpoint_signing.sign(message).to_bytes()
    }

    /// Encrypts `plaintext`; `context` (e.g. `connection database/ pg`) is bound as
    /// associated data, so a sealed value cannot be moved to another field.
    pub(crate) fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, KeyError> {
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce)?;
        let cipher = Aes256Gcm::new_from_slice(&self.aead).expect("32-byte AES-256 key");
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: context.as_bytes() })
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        Ok(Sealed { nonce, ciphertext })
    }

    pub(crate) fn unseal(&self, context: &str, sealed: &Sealed) -> Result<Vec<u8>, UnsealError> {
        let cipher = Aes256Gcm::new_from_slice(&self.aead).expect("32-byte AES-256 key");
        cipher
            .decrypt(&Nonce::from(sealed.nonce), Payload { msg: &sealed.ciphertext, aad: context.as_bytes() })
            .map_err(|_| UnsealError { context: context.to_string() })
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Bytes held by a [`RandomPool`]: one request's randomness (a username's,
/// a password's and a lease id's 64-byte blocks) in one system call.
const RANDOM_POOL_BYTES: usize = 256;

/// Bytes from the operating system's CSPRNG, fetched [`RANDOM_POOL_BYTES`] at
/// a time: a getrandom call costs the kernel a fresh ChaCha state whatever its
/// size, and an issue used to make one per 64-byte block (four or five). A
/// pool lives on the stack of one request and is never kept or shared, so a
/// fork cannot hand the same bytes to two processes; every byte is wiped once
/// handed out, and the rest on drop.
pub(crate) struct RandomPool {
    bytes: [u8; RANDOM_POOL_BYTES],
    used: usize,
}

impl RandomPool {
    pub(crate) fn new() -> RandomPool {
        RandomPool { bytes: [0; RANDOM_POOL_BYTES], used: RANDOM_POOL_BYTES }
    }

    /// Fills `out`, refilling the pool from the OS as often as it runs dry.
    pub(crate) fn fill(&mut self, out: &mut [u8]) -> Result<(), KeyError> {
        let mut at = 0;
        while at < out.len() {
            if self.used == RANDOM_POOL_BYTES {
                fill_random(&mut self.bytes)?;
                self.used = 0;
            }
            let n = (out.len() - at).min(RANDOM_POOL_BYTES - self.used);
            let taken = &mut self.bytes[self.used..self.used + n];
            out[at..at + n].copy_from_slice(taken);
            taken.zeroize();
            self.used += n;
            at += n;
        }
        Ok(())
    }
}

impl Drop for RandomPool {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// `len` characters from `[0-9A-Za-z]`, uniformly (rejection sampling on bytes).
pub(crate) fn random_base62(len: usize) -> Result<String, KeyError> {
    random_base62_from(len, &mut RandomPool::new())
}

/// [`random_base62`] from `pool`.
pub(crate) fn random_base62_from(len: usize, pool: &mut RandomPool) -> Result<String, KeyError> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        pool.fill(&mut buf)?;
        // 248 = 4 × 62: bytes at or above it would bias the first characters.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == len {
                break;
            }
            out.push(BASE62[(b % 62) as usize] as char);
        }
    }
    buf.zeroize();
    Ok(out)
}

/// Associated data binding a sealed root password to its connection.
pub(crate) fn connection_context(mount: &str, name: &str) -> String {
    format!("connection {mount} {name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_labels_are_distinct() {
        let keys = Keys::derive(&MasterKey::from_bytes([7; 32]));
        let again = Keys::derive(&MasterKey::from_bytes([7; 32]));
        assert_eq!(keys.key_check(), again.key_check());
        assert_eq!(keys.hash_token("lsr.x"), again.hash_token("lsr.x"));
        let other = Keys::derive(&MasterKey::from_bytes([8; 32]));
        assert_ne!(keys.key_check(), other.key_check());
        assert_ne!(keys.token_hash, keys.aead);
        assert_ne!(keys.aead, keys.key_check);
    }

    #[test]
    fn seal_round_trips_and_binds_its_context() {
        let keys = Keys::derive(&MasterKey::from_bytes([1; 32]));
        let sealed = keys.seal("connection database/ pg", b"s3cret").unwrap();
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(keys.unseal("connection database/ pg", &sealed).unwrap(), b"s3cret");
        assert!(keys.unseal("connection database/ other", &sealed).is_err());
        let wrong = Keys::derive(&MasterKey::from_bytes([2; 32]));
        assert!(wrong.unseal("connection database/ pg", &sealed).is_err());
    }

    #[test]
    fn key_text_forms_and_lengths() {
        let hex_text = format!("{}\n", "ab".repeat(32));
        assert!(MasterKey::from_slice(hex_text.as_bytes()).is_ok());
        assert!(MasterKey::from_slice(&[0u8; 32]).is_ok());
        let err = MasterKey::from_slice(&[0u8; 31]).unwrap_err().to_string();
        assert!(err.contains("32 bytes") && err.contains("31"), "{err}");
        assert_eq!(format!("{:?}", MasterKey::from_bytes([9; 32])), "MasterKey(..)");
    }

    #[test]
    fn key_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = MasterKey::generate().unwrap();
        key.write_new_file(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(MasterKey::read_file(&path).unwrap().0, key.0);
        assert!(key.write_new_file(&path).is_err(), "an existing key file is never overwritten");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::read_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn base62_has_the_length_and_alphabet() {
        let s = random_base62(40).unwrap();
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, random_base62(40).unwrap());
    }

    /// A pool hands out each byte once, across refills, and wipes what it
    /// handed out.
    #[test]
    fn a_random_pool_hands_out_fresh_bytes_across_refills_and_wipes_them() {
        let mut pool = RandomPool::new();
        let mut first = [0u8; 200];
        pool.fill(&mut first).unwrap();
        assert!(pool.bytes[..200].iter().all(|&b| b == 0), "handed-out bytes left in the pool");
        assert_eq!(pool.used, 200);
        // Runs past the end: the rest of this fill, a refill, and on.
        let mut second = [0u8; 600];
        pool.fill(&mut second).unwrap();
        assert_eq!(pool.used, (200 + 600) % RANDOM_POOL_BYTES);
        // 800 bytes of a CSPRNG: no 16-byte window repeats, none is all zero.
        let all: Vec<u8> = first.iter().chain(second.iter()).copied().collect();
        let mut windows: Vec<&[u8]> = all.chunks(16).collect();
        assert!(windows.iter().all(|w| w.iter().any(|&b| b != 0)));
        windows.sort();
        windows.dedup();
        assert_eq!(windows.len(), all.len() / 16, "bytes repeated across a refill");
    }
}
