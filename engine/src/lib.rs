//! lessor-engine: dynamic database credentials as an event-sourced engine.
//!
//! Every operation is an [`event::Event`] appended to a checksummed, hash-chained
//! log ([`log`]); the engine's [`state::State`] is a pure fold of that log, rebuilt
//! on [`Engine::open`] from the newest snapshot and the records after it.
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
