//! The head file: where the log stood the last time the engine wrote it, signed,
//! kept beside the master key so that a rollback of the log alone (a deleted
//! newest segment, a segment cut back at a record boundary, an older copy of the
//! segments put back) is caught at open instead of silently reviving revoked
//! tokens and leases.
//!
//! ```text
//! lessor head v1
//! lsn <decimal>
//! chain <64 hex>
//! ts <unix ms>
//! sig <128 hex>      Ed25519 (checkpoint key) over the four lines above
//! ```
//! Written (temp file, fsync, rename, directory fsync; 0600, never through a
//! link) at open, after every batch that logs a checkpoint — every segment seal
//! and every `checkpoint_interval_ms` — and at a clean close. So the log may end
//! before it only if records the engine had made durable were removed: open
//! refuses that. What it cannot see: a rollback to a point after the newest head
//! (at most the records since the last seal, checkpoint or clean close), and a
//! rollback of the log *and* the head together (both in the data directory, as
//! by default, restored from the same old copy, or the head deleted: that is
//! only warned of). Keep the key — and so the head — outside the data directory
//! (`key_file`) and export checkpoints to cover those.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::auth::keys::Keys;
use crate::event::Lsn;
use crate::log::format::Chain;

/// The head file's name inside a data directory.
pub(crate) const HEAD_FILE_NAME: &str = "HEAD";
/// Its size limit: a longer file is not a head.
const HEAD_BYTES_MAX: u64 = 1024;

/// Where the log stood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) lsn: Lsn,
    pub(crate) chain: Chain,
    pub(crate) ts_ms: i64,
}

/// Why a head file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum HeadProblem {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid lessor head file: {what}")]
    Invalid { path: String, what: String },
}

/// The head file for a data directory whose key is `key_file` (if it has one
/// outside the directory): beside the key, else `<dir>/HEAD`.
pub(crate) fn path_for(dir: &Path, key_file: Option<&Path>) -> PathBuf {
    match key_file {
        Some(key) if key.parent().is_some_and(|p| p != dir) => {
            let mut name = key.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            name.push(".head");
            key.with_file_name(name)
        }
        _ => dir.join(HEAD_FILE_NAME),
    }
}

fn text(head: &Head) -> String {
    format!("lessor head v1\nlsn {}\nchain {}\nts {}\n", head.lsn, hex::encode(head.chain), head.ts_ms)
}

/// Writes `head`, signed, atomically.
pub(crate) fn write(path: &Path, keys: &Keys, head: &Head) -> std::io::Result<()> {
    let body = text(head);
    let signature = keys.sign_checkpoint(body.as_bytes());
    let contents = format!("{body}sig {}\n", hex::encode(signature));
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the head file, if there is one, and checks its signature under
/// `public_key`.
pub(crate) fn read(path: &Path, public_key: &[u8; 32]) -> Result<Option<Head>, HeadProblem> {
    use std::io::Read;
    let shown = path.display().to_string();
    let invalid = |what: &str| HeadProblem::Invalid { path: shown.clone(), what: what.to_string() };
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(HeadProblem::Io { path: shown, source }),
    };
    let meta = file.metadata().map_err(|source| HeadProblem::Io { path: shown.clone(), source })?;
    if !meta.is_file() {
        return Err(invalid("not a regular file"));
    }
    let mut contents = String::new();
    file.take(HEAD_BYTES_MAX)
        .read_to_string(&mut contents)
        .map_err(|source| HeadProblem::Io { path: shown.clone(), source })?;
    let lines: Vec<&str> = contents.lines().collect();
    let [magic, lsn, chain, ts, sig] = lines[..] else { return Err(invalid("expected five lines")) };
    let field = |line: &str, name: &str| line.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).map(str::to_string);
    if magic != "lessor head v1" {
        return Err(invalid("unknown first line"));
    }
    let lsn: Lsn = field(lsn, "lsn").and_then(|v| v.parse().ok()).ok_or_else(|| invalid("bad lsn line"))?;
    let chain: Chain = field(chain, "chain")
        .and_then(|v| hex::decode(v).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("bad chain line"))?;
    let ts_ms: i64 = field(ts, "ts").and_then(|v| v.parse().ok()).ok_or_else(|| invalid("bad ts line"))?;
    let signature: [u8; 64] = field(sig, "sig")
        .and_then(|v| hex::decode(v).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| invalid("bad sig line"))?;
    let head = Head { lsn, chain, ts_ms };
    use ed25519_dalek::Verifier;
    let key = ed25519_dalek::VerifyingKey::from_bytes(public_key).map_err(|_| invalid("bad public key"))?;
    key.verify(text(&head).as_bytes(), &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| invalid("its signature does not verify under this engine's key"))?;
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::MasterKey;

    #[test]
    fn a_written_head_reads_back_and_a_changed_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::derive(&MasterKey::from_bytes([3; 32]));
        let path = dir.path().join(HEAD_FILE_NAME);
        assert!(read(&path, &keys.checkpoint_public_key()).unwrap().is_none());
        let head = Head { lsn: 42, chain: [7; 32], ts_ms: 1_700_000_000_000 };
        write(&path, &keys, &head).unwrap();
        assert_eq!(read(&path, &keys.checkpoint_public_key()).unwrap(), Some(head));
        let text = std::fs::read_to_string(&path).unwrap().replace("lsn 42", "lsn 41");
        std::fs::write(&path, text).unwrap();
        assert!(matches!(read(&path, &keys.checkpoint_public_key()), Err(HeadProblem::Invalid { .. })));
        let other = Keys::derive(&MasterKey::from_bytes([4; 32]));
        write(&path, &other, &head).unwrap();
        assert!(matches!(read(&path, &keys.checkpoint_public_key()), Err(HeadProblem::Invalid { .. })));
    }

    #[test]
    fn the_head_lives_beside_a_key_kept_elsewhere() {
        let dir = Path::new("/var/lib/lessor");
        assert_eq!(path_for(dir, None), dir.join("HEAD"));
        assert_eq!(path_for(dir, Some(&dir.join("master.key"))), dir.join("HEAD"));
        assert_eq!(path_for(dir, Some(Path::new("/etc/lessor/key"))), Path::new("/etc/lessor/key.head"));
    }
}
