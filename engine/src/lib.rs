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
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod clock;
pub mod encoding;
mod engine;
pub mod event;
pub mod expiry;
mod fold;
mod fxhash;
mod host;
pub mod lease;
pub mod log;
pub mod plugin;
pub mod request;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use engine::{Engine, EngineOptions, InitError, OpenError};
pub use host::{Closed, EXPIRER_GRACE_DEFAULT, ExpirerWarning, Host, HostError, HostOptions};
