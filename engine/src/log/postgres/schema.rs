//! The log's tables in PostgreSQL, their version and their migrations
//! (`docs/DESIGN.md` §11). `lessor log init-postgresql` runs [`init_schema`] as
//! the role that is to own the tables: it creates what is missing, applies the
//! migrations past the recorded version in order, and grants the engine's role
//! only what appending needs — never `UPDATE`, `DELETE` or `TRUNCATE` on the
//! log, which a trigger refuses to the owner too.

use super::connect::{connect, error_text};
use crate::plugin::quote_identifier;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Longest role name PostgreSQL keeps (`NAMEDATALEN` − 1).
const ROLE_NAME_BYTES_MAX: usize = 63;

/// Version 1: streams, their records, snapshots, and the append-only wall. A
/// migration runs once, in the transaction that records its version.
const MIGRATION_1: &str = r#"
CREATE TABLE lessor_stream (
    stream      text PRIMARY KEY CHECK (stream ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    owner       text NOT NULL DEFAULT '' CHECK (length(owner) <= 256),
    epoch       bigint NOT NULL DEFAULT 0 CHECK (epoch >= 0),
    valid_until timestamptz NOT NULL DEFAULT '-infinity',
    api_addr    text NOT NULL DEFAULT '' CHECK (length(api_addr) <= 512),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE lessor_log (
    stream  text NOT NULL REFERENCES lessor_stream (stream),
    lsn     bigint NOT NULL CHECK (lsn > 0),
    ts_ms   bigint NOT NULL,
    kind    integer NOT NULL CHECK (kind BETWEEN 0 AND 65535),
    payload bytea NOT NULL CHECK (length(payload) <= 1048576),
    chain   bytea NOT NULL CHECK (length(chain) = 32),
    crc     bigint NOT NULL CHECK (crc BETWEEN 0 AND 4294967295),
    epoch   bigint NOT NULL CHECK (epoch >= 0),
    PRIMARY KEY (stream, lsn)
);
CREATE TABLE lessor_snapshot (
    stream text NOT NULL REFERENCES lessor_stream (stream),
    lsn    bigint NOT NULL CHECK (lsn > 0),
    body   bytea NOT NULL,
    PRIMARY KEY (stream, lsn)
);
CREATE FUNCTION lessor_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'lessor_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'history is dropped only by retention, run as the owner';
END
$fn$;
CREATE TRIGGER lessor_log_append_only BEFORE UPDATE OR DELETE ON lessor_log
    FOR EACH ROW EXECUTE FUNCTION lessor_log_append_only();
CREATE TRIGGER lessor_log_no_truncate BEFORE TRUNCATE ON lessor_log
    FOR EACH STATEMENT EXECUTE FUNCTION lessor_log_append_only();
"#;

/// The migrations, in order: `MIGRATIONS[i]` takes the schema to version `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [MIGRATION_1];

/// What [`init_schema`] is asked to do.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct InitOptions {
    /// The role the engines connect as: granted `SELECT, INSERT` on the log,
    /// `SELECT, INSERT, UPDATE` on the streams, and what snapshots need.
    /// `None` grants nothing (the owner then grants by hand).
    pub engine_role: Option<String>,
}

impl InitOptions {
    /// Grants to `role` (see [`InitOptions::engine_role`]).
    pub fn with_engine_role(role: impl Into<String>) -> InitOptions {
        InitOptions { engine_role: Some(role.into()) }
    }
}

/// What [`init_schema`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InitReport {
    /// The version recorded before (0: no tables yet).
    pub version_before: i32,
    /// The version now: [`SCHEMA_VERSION`].
    pub version: i32,
    /// The role granted the engine's privileges, if one was named.
    pub engine_role: Option<String>,
}

/// Why the schema could not be created or brought up to date. Nothing was
/// changed: every step runs in one transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The database could not be reached, or the URL is not one.
    #[error("{0}")]
    Connect(String),
    /// The tables are of a later version than this build knows: upgrade lessor.
    #[error(
        "the log's tables are at schema version {found}, newer than this lessor knows ({known}): run a lessor \
         at least as new as the one that wrote them"
    )]
    Newer { found: i32, known: i32 },
    /// A role name PostgreSQL would not take or that names no role.
    #[error("engine role {role:?}: {reason}")]
    Role { role: String, reason: String },
    /// The database refused a statement (privileges, a conflicting object).
    #[error("{0}")]
    Sql(String),
}

/// Creates the log's tables in the database `url` names, or brings them to
/// [`SCHEMA_VERSION`], and grants `options.engine_role` what engines need. Run
/// as the role that is to own the tables; concurrent runs are serialized by a
/// lock on the version table, and running it again changes nothing.
pub async fn init_schema(url: &str, options: &InitOptions) -> Result<InitReport, SchemaError> {
    if let Some(role) = &options.engine_role {
        check_role_name(role)?;
    }
    let mut client = connect(url, "lessor/log-init").await.map_err(SchemaError::Connect)?;
    let sql = |e: tokio_postgres::Error| SchemaError::Sql(error_text(e));
    let tx = client.transaction().await.map_err(sql)?;
    // The version table first, so that two inits queue on its lock.
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS lessor_schema (
             singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
             version   integer NOT NULL CHECK (version >= 0)
         );
         LOCK TABLE lessor_schema IN EXCLUSIVE MODE;",
    )
    .await
    .map_err(sql)?;
    let row = tx.query_opt("SELECT version FROM lessor_schema", &[]).await.map_err(sql)?;
    let version_before: i32 = row.map_or(0, |r| r.get(0));
    if version_before > SCHEMA_VERSION {
        return Err(SchemaError::Newer { found: version_before, known: SCHEMA_VERSION });
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(version_before.max(0) as usize) {
        tx.batch_execute(migration).await.map_err(sql)?;
        let version = i as i32 + 1;
        tx.execute(
            "INSERT INTO lessor_schema (version) VALUES ($1)
             ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
            &[&version],
        )
        .await
        .map_err(sql)?;
    }
    if let Some(role) = &options.engine_role {
        let exists = tx.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[role]).await.map_err(sql)?;
        if exists.is_none() {
            return Err(SchemaError::Role {
                role: role.clone(),
                reason: "no such role: create it first (CREATE ROLE … LOGIN), then run this again".into(),
            });
        }
        let role_sql = quote_identifier(role);
        tx.batch_execute(&format!(
            "GRANT SELECT ON lessor_schema TO {role_sql};
             GRANT SELECT, INSERT ON lessor_log TO {role_sql};
             GRANT SELECT, INSERT, UPDATE ON lessor_stream TO {role_sql};
             GRANT SELECT, INSERT, DELETE ON lessor_snapshot TO {role_sql};"
        ))
        .await
        .map_err(sql)?;
    }
    tx.commit().await.map_err(sql)?;
    Ok(InitReport { version_before, version: SCHEMA_VERSION, engine_role: options.engine_role.clone() })
}

fn check_role_name(role: &str) -> Result<(), SchemaError> {
    let bad = |reason: &str| Err(SchemaError::Role { role: role.to_string(), reason: reason.into() });
    if role.is_empty() {
        return bad("empty: name the role the engines log in as");
    }
    if role.len() > ROLE_NAME_BYTES_MAX {
        return bad("longer than PostgreSQL's 63 bytes");
    }
    if role.chars().any(char::is_control) {
        return bad("holds a control character");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_has_its_migration() {
        assert_eq!(MIGRATIONS.len(), SCHEMA_VERSION as usize);
        assert!(MIGRATIONS.iter().all(|m| !m.trim().is_empty()));
    }

    #[test]
    fn role_names_are_checked_before_connecting() {
        assert!(check_role_name("lessor_engine").is_ok());
        assert!(check_role_name("we\"ird role").is_ok(), "quoted, any printable name is a name");
        for bad in ["", "a\nb", &"r".repeat(64)] {
            assert!(matches!(check_role_name(bad), Err(SchemaError::Role { .. })), "{bad:?}");
        }
    }
}
