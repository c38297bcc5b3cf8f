//! lessor-engine: dynamic database credentials as an event-sourced engine.
//!
//! Every operation is an [`event::Event`] appended to a checksummed, hash-chained
//! log ([`log`]); the engine's [`state::State`] is a pure fold of that log, rebuilt
//! on [`Engine::open`] from the newest snapshot and the records after it.
//!
//! ```
//! use lessor_engine::request::Operation;
//! use lessor_engine::{Engine, EngineOptions};
//! use serde_json::json;
//!
//! let dir = tempfile::tempdir()?;
//! // Creates the directory, a 0600 master.key, the default policy and the root token.
//! let (engine, root) = Engine::init(dir.path(), EngineOptions::default())?;
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! let path = "sys/mounts/database";
//! rt.block_on(engine.request(root.expose(), Operation::Update, path, json!({"type": "database"})))?;
//! let digest = engine.digest(); // a stable hash of the whole state (not of where the log ends)
//! engine.close(); // drains the log and releases the directory lock
//!
//! let reopened = Engine::open(dir.path(), EngineOptions::default())?; // reads master.key
//! assert_eq!(reopened.digest(), digest);
//! assert!(reopened.with_state(|s| s.mounts.contains_key("database/")));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where to start
//!
//! | to | use |
//! |---|---|
//! | serve requests with recovery and expiry running | [`Host`] ([`HostOptions`], [`Closed`]); or an [`Engine`] with an [`Expirer`] on your own runtime |
//! | create or open a data directory | [`Engine::init`], [`Engine::open`], [`EngineOptions`] ([`ExpiryOptions`], [`log::LogOptions`]) |
//! | issue, renew, revoke | [`Engine::issue`] → [`request::Credential`] (its password a [`Secret`]), [`Engine::renew`], [`Engine::revoke`] |
//! | call any Vault path | [`Engine::request`] with a [`request::Operation`] → [`request::Response`] |
//! | branch on a failure | [`request::RequestError::kind`], [`OpenError`], [`InitError`], [`HostError`], [`LeaseError`]: match the variant, never the message |
//! | ask who had which database user when; verify the log | [`audit`] (needs neither the master key nor the lock) |
//! | drive time in a test | [`clock::ManualClock`] |
//!
//! The public modules hold the rest of what an embedder touches: [`request`]
//! (operations, responses, the error every request can end in), [`state`] (what
//! [`Engine::with_state`] reads), [`event`] (the log's vocabulary, which
//! [`audit`] hands back), [`auth`] (the master key and the root token secret),
//! [`log`] (its options and errors, and the storage seam), [`plugin`] (the
//! database seam), [`expiry`] (its options) and [`clock`]. Everything else — the
//! lease lifecycle, the request handlers, the log's format, writer, proofs and
//! snapshots, the timing wheel, the policy parser, the PostgreSQL plugin, the
//! text tools — is the engine's own: crate-private, and public to tests, benches
//! and fuzz targets only with feature `testing`. Invariants, the write path and
//! the recovery tables are in `docs/DESIGN.md`.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]
// Every type reachable from the public API can be named by its user.
#![deny(unnameable_types)]

// What is public, and why (feature `testing` is what the crate's tests, the
// `tests/` crate, the benches and the fuzz targets turn on; the CLI and the C
// library do not, so nothing they use may depend on it):
//
// * **the facade**: what an embedder uses — the items re-exported below and the
//   public modules `audit`, `auth` (keys and token secrets), `clock`, `event`,
//   `expiry` (its options), `log` (its options, errors and the storage seam),
//   `plugin` (the database seam), `request` and `state`. `pub` in them means
//   public: `unreachable_pub` is denied.
// * **internal parts test code reaches into** (the log's format, snapshots and
//   proofs, the timing wheel, the policy parser, the PostgreSQL plugin, the text
//   tools): declared with `internal!`, which makes a module (or a re-export) `pub`
//   with `testing` and `pub(crate)` without. Inside such a module `pub` marks what
//   test code uses and `pub(crate)` what only the engine does; `unreachable_pub`
//   is allowed there without `testing`, where it cannot tell the two apart.
// * **test doubles and hooks** the engine itself never calls (sample events, the
//   fault-injecting storage and plugin, raw appends): they exist only with
//   `any(test, feature = "testing")`.
// * everything else is `pub(crate)` or private.

/// Declares internal parts that test code reaches into (see above): each
/// `mod name;` or `use path;` is `pub` with feature `testing` and `pub(crate)`
/// without, so the facade a build without the feature documents and exports
/// stays narrow while tests, benches and fuzz targets keep their access.
macro_rules! internal {
    ($($(#[$attr:meta])* mod $name:ident;)+) => {$(
        $(#[$attr])*
        #[cfg(feature = "testing")]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        #[allow(unreachable_pub)]
        pub(crate) mod $name;
    )+};
    ($(#[$attr:meta])* use $($path:tt)+) => {
        $(#[$attr])*
        #[cfg(feature = "testing")]
        pub use $($path)+
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        #[allow(unused_imports)]
        pub(crate) use $($path)+
    };
}

pub mod audit;
pub mod auth;
pub mod clock;
mod encoding;
mod engine;
pub mod event;
pub mod expiry;
mod fold;
mod fxhash;
mod host;
mod lease;
pub mod log;
pub mod plugin;
pub mod request;
mod secret;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
internal! {
    mod text;
}

pub use engine::{Engine, EngineOptions, InitError, LogStore, OpenError, PgLogOptions};
pub use expiry::ExpiryOptions;
pub use host::{Closed, EXPIRER_GRACE_DEFAULT, Expirer, ExpirerWarning, Host, HostError, HostOptions};
pub use lease::{LeaseError, Recovered};
pub use secret::Secret;
