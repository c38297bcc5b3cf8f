//! The log in PostgreSQL (`docs/DESIGN.md` §11): the same records, chain and
//! proofs as the file log, one stream of rows per engine identity, with the
//! fence that decides who may append in every batch's own transaction.
//!
//! Built so far: the schema and its migrations (`schema.rs`), which `lessor log
//! init-postgresql` applies as the tables' owner, with the grants that make the
//! engine's role append-only.

mod connect;
mod schema;

pub use schema::{InitOptions, InitReport, SCHEMA_VERSION, SchemaError, init_schema};
