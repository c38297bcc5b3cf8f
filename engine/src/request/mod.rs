//! The request model: `Engine::request(token, operation, path, data)` in Vault's
//! shapes, the error every request can end in, and the helpers handlers use to
//! read their input.
//!
//! The pipeline (one place, `pipeline.rs`): authenticate the token, route the path,
//! authorize the capability, validate, append the handler's events *and* the audit
//! record in one durable batch, reply. A denial or a malformed request is also
//! recorded, durably, before its error is returned.

mod auth_token;
mod database;
mod handler;
pub(crate) mod input;
mod pipeline;
mod router;
mod sys_capabilities;
mod sys_leases;
mod sys_mounts;
mod sys_policy;
mod typed;

use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::event::Operation;
pub use input::parse_duration_ms;
pub use typed::{Credential, Renewed};

/// The stable category of an error: what a caller (or the C API) branches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    InvalidArgument,
    PermissionDenied,
    NotFound,
    Database,
    Io,
    Corrupt,
    Busy,
    /// The path exists but does not take the operation (Vault's 405).
    UnsupportedOperation,
}

/// Why a request failed. Messages name the field or path and the fix; they never
/// contain a secret.
///
/// **The message is the wire error.** What `Display` prints is what a Vault
/// client reads in `errors`, what the C API's `lessor_error_message` and the CLI
/// print, and what the request's audit record (`RequestRecorded::error`) keeps
/// in the log, made durable before the caller hears of the failure (I6). So a
/// cause is rendered into the message where the failure happens — the
/// database's own message, the file and the I/O error — and no
/// [`source`](std::error::Error::source) is kept: a source chain would be either
/// the same text again or detail that reaches no client and no record, and the
/// lower errors it would hold (`std::io::Error`, the PostgreSQL driver's) are
/// neither `Clone` nor `Eq`, which this type is (tests compare errors whole).
/// Branch on the variant or [`RequestError::kind`], never on the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("I/O error: {0}")]
    Io(String),
    #[error("data corrupt: {0}")]
    Corrupt(String),
    #[error("busy: {0}")]
    Busy(String),
    /// The path exists but does not take this operation (reading a path that
    /// only takes writes, listing one object): the message names the
    /// operations it takes.
    #[error("{0}")]
    UnsupportedOperation(String),
}

impl RequestError {
    /// The stable category of this error (one per variant).
    pub fn kind(&self) -> ErrorKind {
        match self {
            RequestError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            RequestError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            RequestError::NotFound(_) => ErrorKind::NotFound,
            RequestError::Database(_) => ErrorKind::Database,
            RequestError::Io(_) => ErrorKind::Io,
            RequestError::Corrupt(_) => ErrorKind::Corrupt,
            RequestError::Busy(_) => ErrorKind::Busy,
            RequestError::UnsupportedOperation(_) => ErrorKind::UnsupportedOperation,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> RequestError {
        RequestError::InvalidArgument(message.into())
    }

    pub(crate) fn not_found(message: impl Into<String>) -> RequestError {
        RequestError::NotFound(message.into())
    }
}

impl From<crate::lease::LeaseError> for RequestError {
    /// The same message, in the variant of the same meaning.
    fn from(e: crate::lease::LeaseError) -> RequestError {
        use crate::lease::LeaseError;
        match e {
            LeaseError::NotFound(m) => RequestError::NotFound(m),
            LeaseError::Invalid(m) => RequestError::InvalidArgument(m),
            LeaseError::Busy(m) => RequestError::Busy(m),
            LeaseError::Database(m) => RequestError::Database(m),
            LeaseError::Io(m) => RequestError::Io(m),
            LeaseError::Corrupt(m) => RequestError::Corrupt(m),
            LeaseError::NoMasterKey => RequestError::PermissionDenied("no master key".into()),
        }
    }
}

/// What a request's audit record says of it, beside its answer
/// ([`Engine::request_traced`](crate::Engine::request_traced)): for a host
/// that logs each request and points at the log's record, refusals included.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestTrace {
    /// The record's request id, the reply's `request_id`; `None` when nothing
    /// was recorded (an engine opened without its master key, or an append
    /// that failed).
    pub request_id: Option<String>,
    /// The accessor of the token the request carried, when the engine knows
    /// that token (also when it refused it as expired); never the token.
    pub accessor: Option<String>,
}

/// The `auth` block of a response that created a token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthResponse {
    /// The token secret: shown here once, never stored.
    pub client_token: String,
    pub accessor: String,
    pub policies: Vec<String>,
    pub token_policies: Vec<String>,
    /// Seconds; 0 for a token that never expires.
    pub lease_duration: u64,
    pub renewable: bool,
    pub orphan: bool,
}

/// A reply in Vault's JSON shape.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Response {
    pub request_id: String,
    pub lease_id: String,
    /// Seconds.
    pub lease_duration: u64,
    pub renewable: bool,
    pub data: Option<Map<String, Value>>,
    pub warnings: Option<Vec<String>>,
    pub auth: Option<AuthResponse>,
    /// The request's intent is durable and the rest runs in the background (a
    /// `sys/leases/revoke` with `sync: false`): Vault answers such a request
    /// with 202 Accepted.
    #[serde(skip)]
    pub queued: bool,
}

impl Response {
    pub(crate) fn with_data(data: Map<String, Value>) -> Response {
        Response { data: Some(data), ..Response::default() }
    }

    /// A response whose `data` is a JSON object built with `json!`.
    pub(crate) fn with_json(data: Value) -> Response {
        match data {
            Value::Object(map) => Response::with_data(map),
            other => unreachable!("response data must be an object, got {other}"),
        }
    }

    /// The response as Vault's JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a Response always serializes")
    }
}
