//! Forensics over a data directory: verify, timeline, state at an instant, diff,
//! who had a username, and the keyed hash exports search by.
//!
//! Everything here reads the log the way an auditor needs it read:
//! - **without the lock**: files are opened read-only, so a live engine keeps
//!   running (a record being written at the end is reported as a torn tail, not
//!   as damage);
//! - **without the master key**: the log is public by design (I5); only
//!   [`hash_value`] and a timeline filtered by token secret need the key;
//! - **streaming**: one record in memory at a time ([`reader::Reader`]); what a
//!   query keeps grows with its answer (live leases for [`state_at`], the matching
//!   leases for [`who_had`]), never with the length of the log;
//! - **verifying as it reads**: every query checks crcs, LSNs and the hash chain
//!   over what it reads, so no answer is computed from a damaged log.
//!
//! Signed checkpoints ([`checkpoint`]) tie it together: the engine logs one at
//! every segment seal and every `LogOptions::checkpoint_interval_ms`; an exported
//! one kept elsewhere lets [`verify()`] prove the history up to it is unchanged.

mod base64;
pub mod checkpoint;
mod reader;
mod replay;
pub mod time;
mod timeline;
mod verify;

use std::path::{Path, PathBuf};

pub use checkpoint::{CheckpointError, SignedCheckpoint};
pub use reader::{ReadError, Reader, Rec, TornTail};
pub use replay::{
    DiffReport, Expiry, IssuedLease, LeaseEnd, LeaseLife, LiveLease, PolicyChange, Renewal, RenewalAt, ReplayOptions,
    ReplayedState, Revocation, RoleChange, StateAt, diff, replay_until, state_at, who_had,
};
pub use timeline::{Filter, TimelineStats, event_json, event_json_line, event_text, timeline};
pub use verify::{ExportedMatch, VerifyError, VerifyOptions, VerifyReport, verify, verify_storage};

use crate::auth::keys::{KEY_FILE_NAME, KeyError, Keys, MasterKey};
use crate::event::Event;

/// Reports progress of a long scan: `(bytes read, bytes of all segments)`.
pub type Progress<'a> = Option<&'a mut dyn FnMut(u64, u64)>;

/// How many records pass between two progress reports.
const PROGRESS_EVERY_RECORDS: u64 = 1 << 14;

/// Why a query over the log (timeline, state, diff, who-had) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{what}")]
    BadArgument { what: String },
}

/// Why the engine's keys could not be had for hashing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLoadError {
    #[error(
        "this needs the master key, and {default} does not exist: set LESSOR_MASTER_KEY_FILE (or pass the key \
         file) to the key this data directory was initialized with"
    )]
    Missing { default: PathBuf },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "the master key from {file} is not the key {dir} was initialized with: hashes under it would match \
         nothing; use the right key file"
    )]
    WrongKey { file: PathBuf, dir: PathBuf },
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// The engine's derived keys, from `key_file` or `<dir>/master.key`, checked
/// against the key check the log's first record holds.
pub fn load_keys(dir: &Path, key_file: Option<&Path>) -> Result<Keys, KeyLoadError> {
    let default = dir.join(KEY_FILE_NAME);
    let (file, key) = match key_file {
        Some(f) => (f.to_path_buf(), MasterKey::read_file(f)?),
        // Inside the data directory: never through a link.
        None if default.symlink_metadata().is_ok() => {
            let key = MasterKey::read_file_no_follow(&default)?;
            (default, key)
        }
        None => return Err(KeyLoadError::Missing { default }),
    };
    let keys = Keys::derive(&key);
    let mut reader = Reader::open(dir)?;
    if let Some(rec) = reader.next_record()?
        && let Event::EngineInitialized(init) = rec.decode()?
        && init.key_check != keys.key_check()
    {
        return Err(KeyLoadError::WrongKey { file, dir: dir.to_path_buf() });
    }
    Ok(keys)
}

/// The checkpoint public key from the log's first record (`EngineInitialized`),
/// or `None` for a log that was never initialized.
pub fn public_key(dir: &Path) -> Result<Option<[u8; 32]>, ReadError> {
    let mut reader = Reader::open(dir)?;
    let Some(rec) = reader.next_record()? else { return Ok(None) };
    Ok(match rec.decode()? {
        Event::EngineInitialized(init) => Some(init.checkpoint_public_key),
        _ => None,
    })
}

/// `hmac-sha256:<hex>`: the keyed hash the engine stores for token secrets, which
/// is also how exports name values they must not show.
pub fn hash_value(keys: &Keys, value: &str) -> String {
    format!("hmac-sha256:{}", hex::encode(keys.hash_token(value)))
}

/// Calls `progress` with the reader's position.
fn report(progress: &mut Progress<'_>, reader: &Reader) {
    if let Some(p) = progress.as_deref_mut() {
        p(reader.bytes_done(), reader.total_bytes());
    }
}
