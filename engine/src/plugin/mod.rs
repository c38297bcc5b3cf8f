//! Database plugins: what lessor runs against the database for each lease.
//!
//! [`DatabasePlugin`] is the seam, and all of this module that is public: an
//! embedder can put its own plugins behind it ([`PluginFactory`] in
//! [`crate::EngineOptions::plugin_factory`]). `postgresql-database-plugin`
//! (`postgres.rs`) is the real one, with its TLS (`tls.rs`) and SCRAM verifiers
//! (`scram.rs`) beside it — the engine's own, public to test code with feature
//! `testing`; tests put fault-injecting doubles behind the same trait. The
//! engine never holds a database connection itself.
//!
//! What the plugin renders into SQL — statements, templates, passwords — is text
//! work that touches no database: it lives in `text/`. The load
//! generator's raw baseline runs the real plugin with a gate that is always open
//! (`testing::open_gate`, feature `testing`).

internal! {
    mod postgres;
    mod scram;
}
mod tls;
pub(crate) use postgres::{db_error, quote_identifier};
pub(crate) use tls::client_config;

use std::future::Future;
use std::pin::Pin;

/// A boxed future, so plugins can live behind `dyn DatabasePlugin`.
pub type PluginFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, PluginError>> + Send + 'a>>;

/// Awaited by [`DatabasePlugin::create_user`] between running the creation
/// statements and `COMMIT`: it resolves once the issue intent is durable (I1).
/// An error aborts the transaction, so no user appears for an intent that is not
/// on disk (I6).
pub type CommitGate<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Why a plugin operation failed. `Database` carries the server's own message
/// verbatim (and its SQLSTATE) — never a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    #[error("{message}")]
    Database { message: String, sqlstate: Option<String> },
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("the database did not answer within {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Config(String),
    #[error("aborted before COMMIT: {0}")]
    Aborted(String),
}

/// Builds the plugin for a connection in place of `postgresql-database-plugin`:
/// tests and simulations put a fault-injecting double here.
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct PluginFactory(
    pub  std::sync::Arc<
        dyn Fn(&crate::event::ConnectionWritten) -> Result<std::sync::Arc<dyn DatabasePlugin>, PluginError>
            + Send
            + Sync,
    >,
);

impl std::fmt::Debug for PluginFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PluginFactory(..)")
    }
}

/// A user to create.
#[derive(Clone, Copy)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// `{{expiration}}`, already formatted.
    pub expiration: &'a str,
    pub statements: &'a [String],
}

impl std::fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// What every database plugin does. Every method runs its statements in one
/// transaction and within the plugin's statement timeout.
pub trait DatabasePlugin: Send + Sync + std::fmt::Debug {
    /// Connects and pings.
    fn verify(&self) -> PluginFuture<'_, ()>;
    /// Runs `user.statements`, awaits `gate`, then commits.
    fn create_user<'a>(&'a self, user: NewUser<'a>, gate: CommitGate<'a>) -> PluginFuture<'a, ()>;
    /// Moves the user's expiry (`VALID UNTIL`) with the renew statements.
    fn renew_user<'a>(
        &'a self,
        username: &'a str,
        expiration: &'a str,
        statements: &'a [String],
    ) -> PluginFuture<'a, ()>;
    /// Drops the user: with `statements`, or the default revocation when empty;
    /// awaits `gate` before it commits (the revocation's intent is durable
    /// first, as an issue's). Succeeds when the user does not exist.
    fn revoke_user<'a>(
        &'a self,
        username: &'a str,
        statements: &'a [String],
        terminate_sessions: bool,
        gate: CommitGate<'a>,
    ) -> PluginFuture<'a, ()>;
    /// Sets the root user's password with the rotation statements.
    fn rotate_root<'a>(
        &'a self,
        username: &'a str,
        new_password: &'a str,
        statements: &'a [String],
    ) -> PluginFuture<'a, ()>;
    /// Does `username` exist?
    fn user_exists<'a>(&'a self, username: &'a str) -> PluginFuture<'a, bool>;
    /// How many sessions on the server carry an `application_name` that starts
    /// with `prefix` but is not `mine`: those of an earlier run of this engine
    /// that may still commit what that run sent. `None`: this plugin cannot
    /// tell (recovery then proves nothing from the database).
    fn other_sessions<'a>(&'a self, prefix: &'a str, mine: &'a str) -> PluginFuture<'a, Option<u64>> {
        let _ = (prefix, mine);
        Box::pin(async { Ok(None) })
    }
}
