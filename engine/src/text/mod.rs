//! The text lessor reads, renders and generates for a database: none of it touches
//! one, so all of it is tested (and fuzzed) on its own.
//!
//! * [`statements`]: a role's SQL text split into statements, as `psql` does.
//! * [`template`]: `{{name}}`, `{{password}}` and `{{expiration}}` in statements,
//!   `{{username}}` / `{{password}}` in a `connection_url`, and Vault's
//!   `username_template` (a subset of Go's templates).
//! * [`password`]: Vault's password policies, and the passwords they generate.
//! * [`random`]: unbiased random characters from a caller-supplied byte source.
//!
//! Username templates and password policies are both small languages with `"…"`
//! strings; they read them with one lexer (`quoted`).
//!
//! The database plugins ([`crate::plugin`]) render what these produce into SQL.

pub mod password;
mod quoted;
pub mod random;
pub mod statements;
pub mod template;
