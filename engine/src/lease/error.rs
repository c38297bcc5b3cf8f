//! Why a lease operation failed.

use crate::plugin::PluginError;

/// Why a lease operation (plan, issue, renew, revoke, rotate, recover, expire)
/// failed. Messages name the lease, role or connection and the fix; they never
/// contain a secret. Each variant has the meaning of the
/// [`RequestError`](crate::request::RequestError) variant it becomes, with the
/// same message; like it, it carries its cause as text, not as a `source`
/// (see there why).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    /// A role, connection or lease that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be planned as given (a role not allowed, a lease that
    /// cannot be renewed, a template that does not render).
    #[error("{0}")]
    Invalid(String),
    /// Another operation holds the lease, or a limit is reached: retry later.
    #[error("busy: {0}")]
    Busy(String),
    /// The database refused or could not be reached; the message is its own.
    #[error("database error: {0}")]
    Database(String),
    /// The log could not make an intent or outcome durable (I6).
    #[error("I/O error: {0}")]
    Io(String),
    /// A sealed secret in the state does not open.
    #[error("data corrupt: {0}")]
    Corrupt(String),
    /// The engine was opened without its master key.
    #[error("permission denied: no master key")]
    NoMasterKey,
}

impl LeaseError {
    pub(crate) fn invalid(message: impl Into<String>) -> LeaseError {
        LeaseError::Invalid(message.into())
    }

    pub(crate) fn io(e: impl std::fmt::Display) -> LeaseError {
        LeaseError::Io(e.to_string())
    }
}

impl From<PluginError> for LeaseError {
    fn from(e: PluginError) -> LeaseError {
        LeaseError::Database(e.to_string())
    }
}
