//! The Event enum: the only type that is ever written to the log.
//!
//! Every variant wraps its own body struct. On disk a record carries the variant's
//! `kind` code (u16, explicit, never reused) and a payload of
//! `[version] ‖ bincode(body)`, so one variant can change shape later while old
//! logs still decode: the decoder dispatches on `(kind, version)`. bincode is not
//! self-describing (a field cannot simply be optional), so a variant that gains a
//! field gets the next version ([`EventKind::version`]) and its old shape is kept
//! as a private `…V1` struct that decodes into the new one with the value old logs
//! implied. Versions so far: every kind 1, except `ConnectionWritten` 2
//! (`scram_iterations`; v1 verifiers all had 4096), `RevokeForced` 2 (`error`:
//! the database's refusal; v1 forgot leases without trying), and the lease
//! intents `IssueStarted`, `RenewStarted`, `RevokeStarted` 2 (who asked: the
//! request's id and path, and for renew and revoke the accessor; empty in v1).
//!
//! Bodies hold no plaintext secret (I5): passwords that must be kept are [`Sealed`]
//! (AEAD ciphertext), tokens appear only as keyed hashes. Everything else is public
//! on purpose: forensic replay reads the log without the master key.

use serde::{Deserialize, Serialize};

use crate::encoding;
pub use crate::encoding::DecodeError;

/// Log sequence number: dense, starting at 1.
pub type Lsn = u64;

/// The version byte every kind started at; [`EventKind::version`] is the one this
/// build writes.
pub const EVENT_VERSION: u8 = 1;

/// An AEAD-encrypted secret (nonce + ciphertext with tag). Its `Debug` output never
/// shows the bytes, so a sealed value cannot leak through a trace line either.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

/// The five request operations of Vault's API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    Create,
    Read,
    Update,
    Delete,
    List,
}

/// How a request ended, as the audit trail records it. Named in snake case in
/// JSON, as every audit output writes it (the log's bytes hold the variant's
/// index, not its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Invalid,
    Error,
}

/// Why a revocation started (snake case in JSON, as [`Outcome`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The lease reached its expiry.
    Expired,
    /// `sys/leases/revoke` on this lease.
    Explicit,
    /// `sys/leases/revoke-prefix`.
    Prefix,
    /// The owning token was revoked.
    TokenRevoked,
    /// The lease's mount was disabled.
    MountDisabled,
    /// Recovery found an issue intent without an outcome.
    Recovery,
    /// `sys/leases/revoke-force`: the revocation runs; only if the database
    /// refuses is the lease forgotten anyway ([`RevokeForced`]).
    Forced,
}

/// The engine was initialized: what later opens check the master key against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineInitialized {
    /// HMAC of a fixed label under a key derived from the master key: a wrong key
    /// is detected at open without storing the key.
    pub key_check: [u8; 32],
    /// Ed25519 public key that verifies checkpoints.
    pub checkpoint_public_key: [u8; 32],
}

/// Recovery cut a torn tail off the last segment (and says exactly how much).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailTruncated {
    /// First LSN of the segment that was cut.
    pub segment_first_lsn: Lsn,
    /// Byte offset in that segment where the cut was made.
    pub offset: u64,
    /// Bytes removed.
    pub bytes: u64,
}

/// A signed statement of the log's head: `{lsn, chain, ts}` of an earlier record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub lsn: Lsn,
    pub chain: [u8; 32],
    pub ts_ms: i64,
    /// Ed25519 signature (64 bytes) over the checkpoint text.
    pub signature: Vec<u8>,
}

/// Proof that the key holder wrote the records before it: an Ed25519 signature,
/// under the checkpoint key, of the LSN and chain of the record just before this
/// one (`docs/DESIGN.md`, §6.3). Anyone with the public key can check it; the chain
/// makes the newest one prove every record before it. The writer signs at most
/// `signature_interval_ms` after a batch it only MAC'd ([`BatchMac`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSigned {
    /// 64 bytes.
    pub signature: Vec<u8>,
}

/// The cheap proof that ends a batch between signatures: HMAC-SHA256, under a
/// key derived from the master key, of the LSN and chain of the record just
/// before it (`docs/DESIGN.md`, §6.3). Only the key holder can check it (the
/// engine's open does); auditors wait for the next [`BatchSigned`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMac {
    /// 32 bytes.
    pub mac: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEnabled {
    /// Normalized path with a trailing `/`, e.g. `database/`.
    pub path: String,
    /// Engine type; `database` is the only one.
    pub mount_type: String,
    pub description: String,
    /// 0 = the system default.
    pub default_lease_ttl_ms: u64,
    /// 0 = the system default.
    pub max_lease_ttl_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountTuned {
    pub path: String,
    pub default_lease_ttl_ms: u64,
    pub max_lease_ttl_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountDisabled {
    pub path: String,
}

/// `<mount>/config/<name>` written (created or replaced as a whole).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionWritten {
    pub mount: String,
    pub name: String,
    pub plugin_name: String,
    /// Template with `{{username}}` / `{{password}}` placeholders; never a password.
    pub connection_url: String,
    pub username: String,
    /// The root password, encrypted under the AEAD key.
    pub password: Option<Sealed>,
    pub allowed_roles: Vec<String>,
    pub verify_connection: bool,
    pub max_open_connections: u32,
    pub max_idle_connections: u32,
    pub max_connection_lifetime_ms: u64,
    /// `password` or `scram-sha-256`.
    pub password_authentication: String,
    pub root_rotation_statements: Vec<String>,
    pub username_template: String,
    pub password_policy: String,
    /// PBKDF2 rounds of the SCRAM verifiers lessor computes with
    /// `scram-sha-256` (since version 2 of this event; version 1 meant 4096).
    pub scram_iterations: u32,
}

/// `ConnectionWritten` as version 1 logged it: without `scram_iterations`.
#[derive(Deserialize)]
struct ConnectionWrittenV1 {
    mount: String,
    name: String,
    plugin_name: String,
    connection_url: String,
    username: String,
    password: Option<Sealed>,
    allowed_roles: Vec<String>,
    verify_connection: bool,
    max_open_connections: u32,
    max_idle_connections: u32,
    max_connection_lifetime_ms: u64,
    password_authentication: String,
    root_rotation_statements: Vec<String>,
    username_template: String,
    password_policy: String,
}

impl From<ConnectionWrittenV1> for ConnectionWritten {
    fn from(v1: ConnectionWrittenV1) -> Self {
        ConnectionWritten {
            mount: v1.mount,
            name: v1.name,
            plugin_name: v1.plugin_name,
            connection_url: v1.connection_url,
            username: v1.username,
            password: v1.password,
            allowed_roles: v1.allowed_roles,
            verify_connection: v1.verify_connection,
            max_open_connections: v1.max_open_connections,
            max_idle_connections: v1.max_idle_connections,
            max_connection_lifetime_ms: v1.max_connection_lifetime_ms,
            password_authentication: v1.password_authentication,
            root_rotation_statements: v1.root_rotation_statements,
            username_template: v1.username_template,
            password_policy: v1.password_policy,
            // Version 1 computed verifiers with postgres-protocol: always 4096.
            scram_iterations: crate::plugin::scram::SCRAM_ITERATIONS_DEFAULT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionDeleted {
    pub mount: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionReset {
    pub mount: String,
    pub name: String,
}

/// `<mount>/roles/<name>` written (created or replaced as a whole).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleWritten {
    pub mount: String,
    pub name: String,
    pub db_name: String,
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    pub rollback_statements: Vec<String>,
    /// 0 = the mount / system default.
    pub default_ttl_ms: u64,
    /// 0 = the mount / system default.
    pub max_ttl_ms: u64,
    /// End the role's open sessions before revoking it.
    pub terminate_sessions: bool,
    /// Live leases this role may hold at once; 0 = no per-role limit.
    pub lease_count_max: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDeleted {
    pub mount: String,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyWritten {
    pub name: String,
    /// The policy source as written (HCL or JSON).
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDeleted {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// Public handle of the token.
    pub accessor: String,
    /// HMAC-SHA256 of the secret under the token-hash key; the secret is never stored.
    pub token_hash: [u8; 32],
    /// `None` for root and orphan tokens.
    pub parent_accessor: Option<String>,
    pub policies: Vec<String>,
    pub display_name: String,
    pub ttl_ms: u64,
    pub explicit_max_ttl_ms: u64,
    /// `None`: never expires (the root token).
    pub expire_time_ms: Option<i64>,
    pub renewable: bool,
    /// 0 = unlimited.
    pub num_uses: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRenewed {
    pub accessor: String,
    pub expire_time_ms: i64,
}

/// One use of a token with `num_uses` was consumed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsed {
    pub accessor: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRevoked {
    pub accessor: String,
    /// `revoke-orphan`: children survive, re-parented to nothing.
    pub orphan_children: bool,
}

/// Intent to create a database user. Everything revocation needs is copied in, so
/// the lease stays revocable after its role or connection is deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueStarted {
    /// `<mount>/creds/<role>/<random>`.
    pub lease_id: String,
    pub mount: String,
    pub role: String,
    pub connection: String,
    pub username: String,
    /// Accessor of the token that asked; owner of the lease.
    pub accessor: String,
    pub expire_time_ms: i64,
    /// Issue time + the role's max TTL: no renewal goes past it.
    pub expire_time_max_ms: i64,
    pub renewable: bool,
    pub revocation_statements: Vec<String>,
    /// The request that asked (since version 2): its id, as the reply and the
    /// `RequestRecorded` carry it, and its path. The caller may hold the password
    /// once the COMMIT ran, before that record is durable, so the intent itself
    /// says who asked. Empty in version 1 records.
    pub request_id: String,
    pub path: String,
}

/// `IssueStarted` as version 1 logged it: without the request's id and path.
#[derive(Deserialize)]
struct IssueStartedV1 {
    lease_id: String,
    mount: String,
    role: String,
    connection: String,
    username: String,
    accessor: String,
    expire_time_ms: i64,
    expire_time_max_ms: i64,
    renewable: bool,
    revocation_statements: Vec<String>,
}

impl From<IssueStartedV1> for IssueStarted {
    fn from(v1: IssueStartedV1) -> Self {
        IssueStarted {
            lease_id: v1.lease_id,
            mount: v1.mount,
            role: v1.role,
            connection: v1.connection,
            username: v1.username,
            accessor: v1.accessor,
            expire_time_ms: v1.expire_time_ms,
            expire_time_max_ms: v1.expire_time_max_ms,
            renewable: v1.renewable,
            revocation_statements: v1.revocation_statements,
            request_id: String::new(),
            path: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueCompleted {
    pub lease_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueFailed {
    pub lease_id: String,
    /// The database's error, verbatim (it never contains the generated password).
    pub error: String,
}

/// Intent to move a lease's expiry. Once its SQL ran the caller may be told the
/// new expiry before `RenewCompleted` is durable, so the intent's expiry holds
/// after a crash (docs/DESIGN.md, "Recovery").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewStarted {
    pub lease_id: String,
    pub expire_time_ms: i64,
    /// Who asked (since version 2; empty in version 1 records): the token's
    /// accessor, the request's id and path.
    pub accessor: String,
    pub request_id: String,
    pub path: String,
}

/// `RenewStarted` as version 1 logged it.
#[derive(Deserialize)]
struct RenewStartedV1 {
    lease_id: String,
    expire_time_ms: i64,
}

impl From<RenewStartedV1> for RenewStarted {
    fn from(v1: RenewStartedV1) -> Self {
        RenewStarted {
            lease_id: v1.lease_id,
            expire_time_ms: v1.expire_time_ms,
            accessor: String::new(),
            request_id: String::new(),
            path: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewCompleted {
    pub lease_id: String,
    pub expire_time_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewFailed {
    pub lease_id: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeStarted {
    pub lease_id: String,
    pub reason: RevokeReason,
    /// Who asked (since version 2): the token's accessor, the request's id and
    /// path; empty for the engine's own revocations (expiry, recovery) and in
    /// version 1 records.
    pub accessor: String,
    pub request_id: String,
    pub path: String,
}

impl RevokeStarted {
    /// A revocation recorded without its own attribution: the engine's (expiry,
    /// recovery), or one of many a request appends together with its own
    /// `RequestRecorded` (revoke-prefix, token and mount revocations), which
    /// attributes them in the same durable batch.
    pub fn by_engine(lease_id: String, reason: RevokeReason) -> RevokeStarted {
        RevokeStarted { lease_id, reason, accessor: String::new(), request_id: String::new(), path: String::new() }
    }
}

/// `RevokeStarted` as version 1 logged it.
#[derive(Deserialize)]
struct RevokeStartedV1 {
    lease_id: String,
    reason: RevokeReason,
}

impl From<RevokeStartedV1> for RevokeStarted {
    fn from(v1: RevokeStartedV1) -> Self {
        RevokeStarted {
            lease_id: v1.lease_id,
            reason: v1.reason,
            accessor: String::new(),
            request_id: String::new(),
            path: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeCompleted {
    pub lease_id: String,
}

/// One failed revocation attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeFailed {
    pub lease_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    pub error: String,
    pub next_attempt_time_ms: i64,
}

/// The retry budget is spent: the lease is listed as irrevocable, still retried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseIrrevocable {
    pub lease_id: String,
    pub attempts: u32,
    pub error: String,
}

/// `revoke-force`: the revocation ran and the database refused it, so the lease
/// is forgotten anyway; the database user may still exist. (A forced revocation
/// the database accepted ends in `RevokeCompleted` like any other.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeForced {
    pub lease_id: String,
    /// The database's refusal, as its `RevokeFailed` recorded it.
    pub error: String,
}

/// Version 1 of `RevokeForced`: written by builds that forgot the lease without
/// trying the revocation first.
#[derive(Deserialize)]
struct RevokeForcedV1 {
    lease_id: String,
}

/// What a version 1 `RevokeForced` means, as its `error`.
pub const REVOKE_FORCED_V1_ERROR: &str =
    "forgotten without a revocation attempt (revoke-force before log format 2): the database user may still exist";

impl From<RevokeForcedV1> for RevokeForced {
    fn from(v1: RevokeForcedV1) -> Self {
        RevokeForced { lease_id: v1.lease_id, error: REVOKE_FORCED_V1_ERROR.to_string() }
    }
}

/// Intent to rotate a connection's root password; both passwords sealed, so
/// recovery can find the one that works.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRootStarted {
    pub mount: String,
    pub name: String,
    pub old_password: Sealed,
    pub new_password: Sealed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRootCompleted {
    pub mount: String,
    pub name: String,
    /// The password that works now.
    pub password: Sealed,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRootFailed {
    pub mount: String,
    pub name: String,
    pub error: String,
}

/// The audit record of one request: allowed, denied, invalid or failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecorded {
    pub request_id: String,
    /// The presented token's accessor; empty when the engine knows no such
    /// token (an expired or used-up one is named, with its refusal).
    pub accessor: String,
    pub display_name: String,
    pub operation: Operation,
    pub path: String,
    pub outcome: Outcome,
    /// The error returned to the caller, with secret values removed.
    pub error: Option<String>,
}

/// Why a payload could not become an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventDecodeError {
    #[error("unknown event kind {0}: the log was written by a newer lessor")]
    UnknownKind(u16),
    #[error("empty payload for event kind {0}")]
    Empty(u16),
    #[error(
        "event kind {kind} has payload version {version}, which this build cannot read: the log was written by a \
         newer lessor"
    )]
    UnsupportedVersion { kind: u16, version: u8 },
    #[error("event kind {kind}: {source}")]
    Body {
        kind: u16,
        #[source]
        source: DecodeError,
    },
}

macro_rules! events {
    ($( $(#[$doc:meta])* $code:literal => $name:ident ),* $(,)?) => {
        /// One fact in the log. Variants are never removed and codes never reused.
        #[derive(Clone, Debug, PartialEq)]
        #[non_exhaustive]
        pub enum Event {
            $( $(#[$doc])* $name($name), )*
        }

        /// The `kind` code stored in a record header.
        #[repr(u16)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum EventKind {
            $( $name = $code, )*
        }

        impl EventKind {
            /// Every kind, in code order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$name),*];

            pub fn from_code(code: u16) -> Option<Self> {
                match code {
                    $( $code => Some(Self::$name), )*
                    _ => None,
                }
            }

            pub fn code(self) -> u16 {
                self as u16
            }

            /// The variant name, e.g. `IssueStarted`.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$name => stringify!($name), )*
                }
            }
        }

        impl Event {
            pub fn kind(&self) -> EventKind {
                match self {
                    $( Event::$name(_) => EventKind::$name, )*
                }
            }

            /// Appends `[version] ‖ bincode(body)` to `out`.
            pub fn encode_payload_into(&self, out: &mut Vec<u8>) {
                out.push(self.kind().version());
                match self {
                    $( Event::$name(body) => encoding::encode_into(body, out), )*
                }
            }

            /// Decodes a record's payload given its kind code.
            pub fn decode(kind: u16, payload: &[u8]) -> Result<Event, EventDecodeError> {
                let Some(kind_known) = EventKind::from_code(kind) else {
                    return Err(EventDecodeError::UnknownKind(kind));
                };
                let (&version, body) = payload.split_first().ok_or(EventDecodeError::Empty(kind))?;
                let body_err = |source| EventDecodeError::Body { kind, source };
                if version != kind_known.version() {
                    return decode_older(kind_known, version, body)
                        .ok_or(EventDecodeError::UnsupportedVersion { kind, version })?
                        .map_err(body_err);
                }
                Ok(match kind_known {
                    $( EventKind::$name => Event::$name(encoding::decode(body).map_err(body_err)?), )*
                })
            }
        }

        $(
            impl From<$name> for Event {
                fn from(body: $name) -> Event {
                    Event::$name(body)
                }
            }
        )*
    };
}

impl EventKind {
    /// The payload version this build writes for the kind.
    pub fn version(self) -> u8 {
        match self {
            EventKind::ConnectionWritten => 2,
            EventKind::RevokeForced => 2,
            EventKind::IssueStarted => 2,
            EventKind::RenewStarted => 2,
            EventKind::RevokeStarted => 2,
            _ => EVENT_VERSION,
        }
    }
}

/// Decodes an older version of a kind's payload into today's shape; `None` for a
/// version this build never wrote (a newer one).
fn decode_older(kind: EventKind, version: u8, body: &[u8]) -> Option<Result<Event, DecodeError>> {
    match (kind, version) {
        (EventKind::ConnectionWritten, 1) => Some(
            encoding::decode::<ConnectionWrittenV1>(body)
                .map(|v1| Event::ConnectionWritten(ConnectionWritten::from(v1))),
        ),
        (EventKind::RevokeForced, 1) => {
            Some(encoding::decode::<RevokeForcedV1>(body).map(|v1| Event::RevokeForced(RevokeForced::from(v1))))
        }
        (EventKind::IssueStarted, 1) => {
            Some(encoding::decode::<IssueStartedV1>(body).map(|v1| Event::IssueStarted(IssueStarted::from(v1))))
        }
        (EventKind::RenewStarted, 1) => {
            Some(encoding::decode::<RenewStartedV1>(body).map(|v1| Event::RenewStarted(RenewStarted::from(v1))))
        }
        (EventKind::RevokeStarted, 1) => {
            Some(encoding::decode::<RevokeStartedV1>(body).map(|v1| Event::RevokeStarted(RevokeStarted::from(v1))))
        }
        _ => None,
    }
}

events! {
    1 => EngineInitialized,
    2 => TailTruncated,
    3 => Checkpoint,
    4 => BatchSigned,
    5 => BatchMac,
    10 => MountEnabled,
    11 => MountTuned,
    12 => MountDisabled,
    20 => ConnectionWritten,
    21 => ConnectionDeleted,
    22 => ConnectionReset,
    30 => RoleWritten,
    31 => RoleDeleted,
    40 => PolicyWritten,
    41 => PolicyDeleted,
    50 => TokenCreated,
    51 => TokenRenewed,
    52 => TokenUsed,
    53 => TokenRevoked,
    60 => IssueStarted,
    61 => IssueCompleted,
    62 => IssueFailed,
    63 => RenewStarted,
    64 => RenewCompleted,
    65 => RenewFailed,
    66 => RevokeStarted,
    67 => RevokeCompleted,
    68 => RevokeFailed,
    69 => LeaseIrrevocable,
    70 => RevokeForced,
    80 => RotateRootStarted,
    81 => RotateRootCompleted,
    82 => RotateRootFailed,
    90 => RequestRecorded,
}

impl Event {
    /// The lease an event is about, if any.
    pub fn lease_id(&self) -> Option<&str> {
        match self {
            Event::IssueStarted(e) => Some(&e.lease_id),
            Event::IssueCompleted(e) => Some(&e.lease_id),
            Event::IssueFailed(e) => Some(&e.lease_id),
            Event::RenewStarted(e) => Some(&e.lease_id),
            Event::RenewCompleted(e) => Some(&e.lease_id),
            Event::RenewFailed(e) => Some(&e.lease_id),
            Event::RevokeStarted(e) => Some(&e.lease_id),
            Event::RevokeCompleted(e) => Some(&e.lease_id),
            Event::RevokeFailed(e) => Some(&e.lease_id),
            Event::LeaseIrrevocable(e) => Some(&e.lease_id),
            Event::RevokeForced(e) => Some(&e.lease_id),
            _ => None,
        }
    }

    /// Encodes the payload into a fresh buffer.
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_payload_into(&mut out);
        out
    }
}

/// An event as the log holds it: with the LSN and timestamp the writer gave it.
/// The fold reads time only from here, never from a clock (I4).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub lsn: Lsn,
    pub ts_ms: i64,
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample;

    const GOLDEN: &str = "tests/golden/events.txt";

    /// One line per kind: `<name> <code> <payload hex>`. A diff here is a format
    /// change: bump that kind's payload version (`EventKind::version`) and keep
    /// decoding the old one instead.
    /// Regenerate deliberately with `LESSOR_BLESS=1 cargo test -p lessor-engine golden`.
    #[test]
    fn golden_bytes_of_every_event_kind() {
        let mut text = String::new();
        for &kind in EventKind::ALL {
            let event = sample(kind);
            assert_eq!(event.kind(), kind);
            let payload = event.encode_payload();
            assert_eq!(Event::decode(kind.code(), &payload).unwrap(), event, "{kind:?} does not round-trip");
            text.push_str(&format!("{} {} {}\n", kind.name(), kind.code(), hex::encode(&payload)));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
        if std::env::var_os("LESSOR_BLESS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let golden = std::fs::read_to_string(&path).expect("golden file missing: run with LESSOR_BLESS=1 once");
        for (want, got) in golden.lines().zip(text.lines()) {
            assert_eq!(want, got, "event encoding changed");
        }
        assert_eq!(golden.lines().count(), text.lines().count(), "event kinds added or removed");
    }

    /// Version 1 of the lease intents (before they named who asked), as the
    /// golden file held them: still decode, with empty attribution.
    #[test]
    fn lease_intents_v1_still_decode() {
        let v1 = [
            (
                EventKind::IssueStarted,
                "011f64617461626173652f63726564732f6170702d726561646f6e6c792f6162630964617461626173652f0c6170702d72\
                 6561646f6e6c790270671f762d746f6b656e2d6170702d726561642d6162632d313730303030303030300461636331fd\
                 00ad38a017030000fd008817aa1703000001011e44524f5020524f4c452049462045584953545320227b7b6e616d657d\
                 7d22",
            ),
            (
                EventKind::RenewStarted,
                "011f64617461626173652f63726564732f6170702d726561646f6e6c792f616263fd008aa6a017030000",
            ),
            (EventKind::RevokeStarted, "011f64617461626173652f63726564732f6170702d726561646f6e6c792f61626300"),
        ];
        for (kind, hex_text) in v1 {
            let payload = hex::decode(hex_text.split_whitespace().collect::<String>()).unwrap();
            let decoded = Event::decode(kind.code(), &payload).unwrap();
            let mut want = sample(kind);
            match &mut want {
                Event::IssueStarted(e) => (e.request_id, e.path) = (String::new(), String::new()),
                Event::RenewStarted(e) => {
                    (e.accessor, e.request_id, e.path) = (String::new(), String::new(), String::new())
                }
                Event::RevokeStarted(e) => {
                    (e.accessor, e.request_id, e.path) = (String::new(), String::new(), String::new())
                }
                _ => unreachable!(),
            }
            assert_eq!(decoded, want, "{kind:?} v1");
            assert_eq!(Event::decode(kind.code(), &want.encode_payload()).unwrap(), want);
            assert_eq!(want.encode_payload()[0], 2, "{kind:?} is written at version 2");
        }
    }

    /// Version 1 of `ConnectionWritten` (before `scram_iterations`), as the
    /// golden file held it: still decodes, with the 4096 rounds v1 implied.
    #[test]
    fn connection_written_v1_still_decodes() {
        let v1 = "010964617461626173652f0270671a706f737467726573716c2d64617461626173652d706c7567696e39706f73746772\
                  6573716c3a2f2f7b7b757365726e616d657d7d3a7b7b70617373776f72647d7d406c6f63616c686f73743a353433322f\
                  6170700a7661756c7461646d696e01050505050505050505050505030506ee01056170702d2a010402000870617373776f\
                  72640136414c54455220524f4c4520227b7b757365726e616d657d7d2220574954482050415353574f524420277b7b7061\
                  7373776f72647d7d270000";
        let payload = hex::decode(v1.split_whitespace().collect::<String>()).unwrap();
        let decoded = Event::decode(EventKind::ConnectionWritten.code(), &payload).unwrap();
        assert_eq!(decoded, sample(EventKind::ConnectionWritten));
        let Event::ConnectionWritten(c) = decoded else { unreachable!() };
        assert_eq!(c.scram_iterations, 4096);
        // Today's encoding is version 2 and round-trips.
        let v2 = Event::ConnectionWritten(c).encode_payload();
        assert_eq!(v2[0], 2);
        // A version from the future is refused, not misread.
        let mut future = v2.clone();
        future[0] = 3;
        assert_eq!(Event::decode(20, &future), Err(EventDecodeError::UnsupportedVersion { kind: 20, version: 3 }));
    }

    /// Version 1 of `RevokeForced` (no `error`), as the golden file held it.
    #[test]
    fn revoke_forced_v1_still_decodes() {
        let v1 = hex::decode("011f64617461626173652f63726564732f6170702d726561646f6e6c792f616263").unwrap();
        let decoded = Event::decode(EventKind::RevokeForced.code(), &v1).unwrap();
        assert_eq!(
            decoded,
            Event::RevokeForced(RevokeForced {
                lease_id: "database/creds/app-readonly/abc".into(),
                error: REVOKE_FORCED_V1_ERROR.into(),
            })
        );
        assert_eq!(sample(EventKind::RevokeForced).encode_payload()[0], 2);
    }

    #[test]
    fn codes_are_unique_and_decode_back() {
        let mut codes: Vec<u16> = EventKind::ALL.iter().map(|k| k.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), EventKind::ALL.len());
        for &k in EventKind::ALL {
            assert_eq!(EventKind::from_code(k.code()), Some(k));
        }
        assert_eq!(EventKind::from_code(0), None);
    }

    #[test]
    fn unknown_kind_and_version_are_clean_errors() {
        assert_eq!(Event::decode(999, &[1]), Err(EventDecodeError::UnknownKind(999)));
        assert_eq!(Event::decode(61, &[]), Err(EventDecodeError::Empty(61)));
        assert_eq!(Event::decode(61, &[2, 0]), Err(EventDecodeError::UnsupportedVersion { kind: 61, version: 2 }));
        assert!(matches!(Event::decode(61, &[1, 200]), Err(EventDecodeError::Body { kind: 61, .. })));
    }

    #[test]
    fn sealed_debug_hides_bytes() {
        let s = Sealed { nonce: [9; 12], ciphertext: b"secretbytes".to_vec() };
        assert_eq!(format!("{s:?}"), "Sealed(11 bytes)");
    }
}
