//! The engine's state: a pure fold of the log.
//!
//! [`State::apply`] is the only way state changes. It reads time only from the
//! entry (never a clock) and is total: every event, in any order, leads to a defined
//! state, so replaying the same log always yields the same [`State::digest`] (I4).
//! Decisions — is this allowed, does this exist — are made before an event is
//! appended; the fold only records their consequences.

mod lease_table;
mod leases;
mod tokens;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::encoding;
use crate::event::{
    Checkpoint, ConnectionWritten, EngineInitialized, Entry, Event, Lsn, MountEnabled, RoleWritten, RotateRootStarted,
};
pub use lease_table::Leases;
pub use leases::{Lease, LeaseStatus};
pub use tokens::Token;

/// A secrets-engine mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    pub path: String,
    pub mount_type: String,
    pub description: String,
    pub default_lease_ttl_ms: u64,
    pub max_lease_ttl_ms: u64,
    pub enabled_time_ms: i64,
}

/// Key of connections and roles: `(mount, name)`.
pub type MountKey = (String, String);

/// Counters of what the log recorded that leaves no other trace in state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub requests: u64,
    pub requests_denied: u64,
    pub tail_truncations: u64,
    pub connection_resets: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// LSN of the last applied entry (0 before any).
    pub applied_lsn: Lsn,
    /// Timestamp of the last applied entry.
    pub applied_ts_ms: i64,
    pub initialized: Option<EngineInitialized>,
    pub mounts: BTreeMap<String, Mount>,
    pub connections: BTreeMap<MountKey, ConnectionWritten>,
    /// Connections deleted (or whose mount was disabled) while leases still used
    /// them: kept so those leases stay revocable.
    pub retired_connections: BTreeMap<MountKey, ConnectionWritten>,
    /// Leases still using each retired connection: derived from `leases`, so not
    /// encoded; the retired copy goes when its last lease does.
    #[serde(skip)]
    pub(crate) retired_users: std::collections::HashMap<MountKey, u64>,
    pub roles: BTreeMap<MountKey, RoleWritten>,
    /// Policy name → source text.
    pub policies: BTreeMap<String, String>,
    /// Accessor → token.
    pub tokens: BTreeMap<String, Token>,
    /// Token hash → accessor: derived from `tokens`, so not encoded (and not in
    /// the digest); rebuilt when a snapshot is decoded.
    #[serde(skip)]
    pub token_index: std::collections::HashMap<[u8; 32], String>,
    /// LSN of the last policy write or delete: compiled ACLs older than it are stale.
    pub policies_changed_lsn: Lsn,
    /// Lease id → lease.
    pub leases: Leases,
    /// Root rotations begun and not yet finished: recovery decides their outcome.
    pub rotations: BTreeMap<MountKey, RotateRootStarted>,
    pub last_checkpoint: Option<Checkpoint>,
    pub counters: Counters,
}

impl State {
    /// Folds one entry into the state.
    pub fn apply(&mut self, entry: &Entry) {
        self.apply_owned(entry.clone());
    }

    /// [`State::apply`] taking the entry by value: replay and the writer hand over
    /// entries they no longer need, so strings move instead of being copied.
    pub(crate) fn apply_owned(&mut self, entry: Entry) {
        debug_assert!(
            self.applied_lsn == 0 || entry.lsn == self.applied_lsn + 1,
            "entries must be applied in LSN order: {} after {}",
            entry.lsn,
            self.applied_lsn
        );
        self.applied_lsn = entry.lsn;
        self.applied_ts_ms = entry.ts_ms;
        let ts = entry.ts_ms;
        match entry.event {
            Event::EngineInitialized(e) => self.initialized = Some(e),
            Event::TailTruncated(_) => self.counters.tail_truncations += 1,
            Event::Checkpoint(e) => self.last_checkpoint = Some(e),
            // Proofs are checked by the reader; they change no state.
            Event::BatchSigned(_) | Event::BatchMac(_) => {}
            Event::MountEnabled(e) => {
                let MountEnabled { path, mount_type, description, default_lease_ttl_ms, max_lease_ttl_ms } = e;
                let mount = Mount {
                    path,
                    mount_type,
                    description,
                    default_lease_ttl_ms,
                    max_lease_ttl_ms,
                    enabled_time_ms: ts,
                };
                self.mounts.insert(mount.path.clone(), mount);
            }
            Event::MountTuned(e) => {
                if let Some(m) = self.mounts.get_mut(&e.path) {
                    m.default_lease_ttl_ms = e.default_lease_ttl_ms;
                    m.max_lease_ttl_ms = e.max_lease_ttl_ms;
                }
            }
            Event::MountDisabled(e) => {
                // Configuration goes with the mount; its leases stay until each is
                // revoked (they carry what revocation needs).
                self.mounts.remove(&e.path);
                let (gone, kept): (BTreeMap<_, _>, BTreeMap<_, _>) =
                    std::mem::take(&mut self.connections).into_iter().partition(|((mount, _), _)| mount == &e.path);
                self.connections = kept;
                for (key, connection) in gone {
                    self.retire_connection(key, connection);
                }
                self.roles.retain(|(mount, _), _| mount != &e.path);
                self.rotations.retain(|(mount, _), _| mount != &e.path);
            }
            Event::ConnectionWritten(e) => {
                let key = (e.mount.clone(), e.name.clone());
                self.retired_connections.remove(&key);
                self.retired_users.remove(&key);
                self.connections.insert(key, e);
            }
            Event::ConnectionDeleted(e) => {
                let key = (e.mount, e.name);
                if let Some(connection) = self.connections.remove(&key) {
                    self.retire_connection(key, connection);
                }
            }
            Event::ConnectionReset(_) => self.counters.connection_resets += 1,
            Event::RoleWritten(e) => {
                self.roles.insert((e.mount.clone(), e.name.clone()), e);
            }
            Event::RoleDeleted(e) => {
                self.roles.remove(&(e.mount, e.name));
            }
            Event::PolicyWritten(e) => {
                self.policies.insert(e.name, e.text);
                self.policies_changed_lsn = entry.lsn;
            }
            Event::PolicyDeleted(e) => {
                self.policies.remove(&e.name);
                self.policies_changed_lsn = entry.lsn;
            }
            Event::TokenCreated(e) => tokens::created(self, e, ts),
            Event::TokenRenewed(e) => tokens::renewed(self, e),
            Event::TokenUsed(e) => tokens::used(self, e),
            Event::TokenRevoked(e) => tokens::revoked(self, e),
            Event::IssueStarted(e) => leases::issue_started(self, e, ts),
            Event::IssueCompleted(e) => leases::issue_completed(self, e),
            Event::IssueFailed(e) => leases::issue_failed(self, e),
            Event::RenewStarted(e) => leases::renew_started(self, e),
            Event::RenewCompleted(e) => leases::renew_completed(self, e, ts),
            Event::RenewFailed(e) => leases::renew_failed(self, e),
            Event::RevokeStarted(e) => leases::revoke_started(self, e),
            Event::RevokeCompleted(e) => leases::forget(self, &e.lease_id),
            Event::RevokeFailed(e) => leases::revoke_failed(self, e),
            Event::LeaseIrrevocable(e) => leases::irrevocable(self, e),
            Event::RevokeForced(e) => leases::forget(self, &e.lease_id),
            Event::RotateRootStarted(e) => {
                self.rotations.insert((e.mount.clone(), e.name.clone()), e);
            }
            Event::RotateRootCompleted(e) => {
                let key = (e.mount, e.name);
                self.rotations.remove(&key);
                if let Some(conn) = self.connections.get_mut(&key) {
                    conn.password = Some(e.password);
                }
            }
            Event::RotateRootFailed(e) => {
                self.rotations.remove(&(e.mount, e.name));
            }
            Event::RequestRecorded(e) => {
                self.counters.requests += 1;
                if e.outcome == crate::event::Outcome::Denied {
                    self.counters.requests_denied += 1;
                }
            }
        }
    }

    fn retire_connection(&mut self, key: MountKey, connection: ConnectionWritten) {
        let users = self.leases.values().filter(|l| *l.mount == *key.0 && *l.connection == *key.1).count() as u64;
        if users > 0 {
            self.retired_users.insert(key.clone(), users);
            self.retired_connections.insert(key, connection);
        }
    }

    /// The connection a lease is revoked through: the live one, else the retired copy.
    pub(crate) fn connection_for(&self, mount: &str, name: &str) -> Option<&ConnectionWritten> {
        let key = (mount.to_string(), name.to_string());
        self.connections.get(&key).or_else(|| self.retired_connections.get(&key))
    }

    /// A stable SHA-256 over what the log's events mean: equal digests, equal
    /// states. Where the log ends (`applied_lsn`, `applied_ts_ms`) and its newest
    /// checkpoint are left out: batch proofs and checkpoints record the log's
    /// own head and change nothing else, and a clean close may append both, so
    /// an engine reopened after a close has the digest it had before.
    /// [`State::applied_lsn`] says where a state stands.
    pub fn digest(&self) -> [u8; 32] {
        // Exhaustive on purpose: a new field must be placed in or out here.
        let State {
            applied_lsn: _,
            applied_ts_ms: _,
            initialized,
            mounts,
            connections,
            retired_connections,
            retired_users: _,
            roles,
            policies,
            tokens,
            token_index: _,
            policies_changed_lsn,
            leases,
            rotations,
            last_checkpoint: _,
            counters,
        } = self;
        let content = (
            initialized,
            mounts,
            connections,
            retired_connections,
            roles,
            policies,
            tokens,
            policies_changed_lsn,
            leases,
            (rotations, counters),
        );
        Sha256::digest(encoding::encode(&content)).into()
    }

    /// Encoded form, as snapshots store it.
    pub fn encode(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// The state [`State::encode`] encoded.
    pub fn decode(bytes: &[u8]) -> Result<State, crate::event::DecodeError> {
        Ok(encoding::decode::<State>(bytes)?.indexed())
    }

    /// [`State::decode`] from a stream, which it reads up to the state's end.
    pub fn decode_from_reader(reader: &mut dyn std::io::Read) -> Result<State, crate::event::DecodeError> {
        Ok(encoding::decode_from_reader::<State>(reader)?.indexed())
    }

    /// Rebuilds what is derived, not encoded.
    fn indexed(mut self) -> State {
        self.token_index = self.tokens.values().map(|t| (t.token_hash, t.accessor.clone())).collect();
        self.retired_users = self.retired_connections.keys().map(|k| (k.clone(), 0)).collect();
        // Usually nothing is retired: no pass over a million leases at open then.
        if !self.retired_users.is_empty() {
            for lease in self.leases.values() {
                let key = (lease.mount.to_string(), lease.connection.to_string());
                if let Some(users) = self.retired_users.get_mut(&key) {
                    *users += 1;
                }
            }
        }
        self
    }

    /// Accessors of every token below `accessor` in the token tree.
    pub(crate) fn token_descendants(&self, accessor: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut frontier = vec![accessor.to_string()];
        while let Some(parent) = frontier.pop() {
            for t in self.tokens.values().filter(|t| t.parent_accessor.as_deref() == Some(parent.as_str())) {
                out.push(t.accessor.clone());
                frontier.push(t.accessor.clone());
            }
        }
        out
    }

    /// The token whose secret hashes to `hash`.
    pub(crate) fn token_by_hash(&self, hash: &[u8; 32]) -> Option<&Token> {
        self.token_index.get(hash).and_then(|accessor| self.tokens.get(accessor))
    }
}
