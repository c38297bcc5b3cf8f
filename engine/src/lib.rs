//! lessor-engine: dynamic database credentials as an event-sourced engine.
//!
//! Every operation is an [`event::Event`] appended to a checksummed, hash-chained
//! log ([`log`]); the engine's [`state::State`] is a pure fold of that log, rebuilt
//! on [`Engine::open`] from the newest snapshot and the records after it.
//!
//! ```
//! use lessor_engine::{Engine, EngineOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let engine = Engine::open(dir.path(), EngineOptions::default())?; // locks the directory
//! let digest = engine.digest(); // a stable hash of the whole state
//! engine.snapshot()?; // optional: a cache that shortens the next open
//! engine.close(); // drains the log and releases the lock
//!
//! let reopened = Engine::open(dir.path(), EngineOptions::default())?;
//! assert_eq!(reopened.digest(), digest);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod clock;
pub mod encoding;
mod engine;
pub mod event;
pub mod log;
pub mod state;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use engine::{Engine, EngineOptions, OpenError};
