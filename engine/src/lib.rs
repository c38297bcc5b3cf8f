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
//! The other modules are the engine's parts, public for tools, tests and
//! readers: [`event`] (the log's vocabulary), [`log`] (its format and the
//! storage seam), [`state`] (the fold), [`auth`] (keys, tokens, policies),
//! [`expiry`] (the timing wheel), [`plugin`] (the database seam and the
//! PostgreSQL plugin), [`text`] (templates, statements, password policies).
//! The lease lifecycle, the request handlers and the engine's internals are
//! private. Invariants, the write path and the recovery tables are in
//! `docs/DESIGN.md`.
#![forbid(unsafe_code)]
#![deny(unreachable_pub)]

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
pub mod text;

pub use engine::{Engine, EngineOptions, InitError, OpenError};
pub use expiry::ExpiryOptions;
pub use host::{Closed, EXPIRER_GRACE_DEFAULT, Expirer, ExpirerWarning, Host, HostError, HostOptions};
pub use lease::{LeaseError, Recovered};
pub use secret::Secret;
