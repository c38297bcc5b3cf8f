//! The log in PostgreSQL (`docs/DESIGN.md` §11): the same records, chain and
//! proofs as the file log, one stream of rows per engine identity, with the
//! fence that decides who may append in every batch's own transaction.
//!
//! Built so far: the schema and its migrations (`schema.rs`), which `lessor log
//! init-postgresql` applies as the tables' owner, with the grants that make the
//! engine's role append-only; and the stream primitives (`stream.rs`): claim,
//! renew and release a stream's ownership, append a batch fenced in its own
//! transaction, read records after an LSN; and `storage.rs`, the log in
//! PostgreSQL as a [`Storage`](super::storage::Storage), over which
//! `Engine::init_with_storage` and `Engine::open_with_storage` run the whole
//! log machinery unchanged. The options, CLI and server surfaces, standbys and
//! take-over come next.

internal! {
    mod connect;
}
mod schema;
internal! {
    mod storage;
    mod stream;
}

pub use schema::{InitOptions, InitReport, SCHEMA_VERSION, SchemaError, init_schema};
pub use storage::PgOpenError;
pub use stream::{Owner, StreamError};

/// The log of `stream` in the database `url` names, for reading only (an
/// auditor's view: no ownership is taken, nothing is written, no snapshot
/// cache), as a [`Storage`](super::storage::Storage) the audit readers take.
pub fn open_reader(url: &str, stream: &str) -> Result<Box<dyn super::storage::Storage>, PgOpenError> {
    let cache = std::sync::Arc::new(super::storage::MemStorage::default());
    Ok(Box::new(storage::PgStorage::open(url, stream, None, cache)?))
}
