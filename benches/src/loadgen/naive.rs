//! `--raw-client naive`: the raw baseline as the simplest script would run it —
//! `BEGIN`, each statement, `COMMIT`, every one sent alone and its answer awaited
//! before the next (one round trip each), on plain tokio-postgres connections.
//!
//! The default raw baseline (`--raw-client plugin`, `raw.rs`) is lessor's own
//! PostgreSQL plugin with an open commit gate: today it also waits for every
//! statement, but it is lessor's client, and whatever it learns (pipelining
//! `BEGIN`, the statements and `COMMIT`) the raw side then learns too. This one
//! stays statement by statement, so through the latency proxy (`--rtt-ms`) it is
//! the naive client a pipelining one is measured against.
//!
//! What it keeps of the plugin, so the two sides run the same SQL: the password
//! generator and, with `scram-sha-256`, a verifier of `--scram-iterations` rounds;
//! TLS when the server offers it (`sslmode` as the URL says, default `prefer`, the
//! certificate not verified, like libpq); statements that rewrite shared catalog
//! rows serialized in this process from the first of them through COMMIT
//! (`--grants serialize`), and collisions ("tuple concurrently updated",
//! serialization failures, deadlocks) rolled back and retried up to 8 times with
//! a growing, jittered pause. A pool of one connection per worker.

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lessor_engine::plugin::postgres::PasswordAuthentication;
use lessor_engine::plugin::scram::scram_sha256_verifier;
use lessor_engine::text::password::{PasswordPolicy, generate_password};
use lessor_engine::text::random::random_alnum;
use lessor_engine::text::statements::updates_shared_catalog_rows;
use lessor_engine::text::template::{StatementVars, expiration_text, render_statement};
use tokio::sync::Semaphore;

use super::phase::Target;
use super::raw::Raw;
use super::statements::{ROLE_PREFIX, StatementSet};

/// Attempts at a transaction that collides with a concurrent one.
const ATTEMPTS_MAX: u32 = 8;

/// The connections, shared by every statement set of the run.
pub(crate) struct NaivePool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<tokio_postgres::Client>>,
    slots: Semaphore,
    serialize: Option<tokio::sync::Mutex<()>>,
    mode: PasswordAuthentication,
    scram_iterations: u32,
    retries: AtomicU64,
}

impl NaivePool {
    pub(crate) fn new(
        connection_url: &str,
        size: usize,
        serialize_shared_catalog_updates: bool,
        mode: PasswordAuthentication,
        scram_iterations: u32,
    ) -> Result<NaivePool, String> {
        let config = tokio_postgres::Config::from_str(connection_url)
            .map_err(|e| format!("raw (naive client): the connection URL: {e}"))?;
        Ok(NaivePool {
            config,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(size.max(1)),
            serialize: serialize_shared_catalog_updates.then(|| tokio::sync::Mutex::new(())),
            mode,
            scram_iterations,
            retries: AtomicU64::new(0),
        })
    }

    /// Transactions run again after a collision, so far.
    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, String> {
        let (client, connection) = self
            .config
            .connect(lessor_pgtemp::tls_connector_no_verify())
            .await
            .map_err(|e| format!("raw (naive client): connecting: {}", error_text(&e)))?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Runs `statements` (rendered with `vars`) in one transaction, one round
    /// trip per statement, retried after collisions.
    async fn transaction(&self, statements: &[String], vars: &StatementVars<'_>) -> Result<(), String> {
        let _slot = self.slots.acquire().await.map_err(|e| e.to_string())?;
        let pooled = self.idle.lock().expect("pool lock").pop();
        let client = match pooled {
            Some(client) if !client.is_closed() => client,
            _ => self.connect().await?,
        };
        let mut attempt = 1;
        loop {
            let mut held = None;
            let outcome = async {
                client.batch_execute("BEGIN").await?;
                for statement in statements {
                    if let Some(lock) = &self.serialize
                        && held.is_none()
                        && updates_shared_catalog_rows(statement)
                    {
                        held = Some(lock.lock().await);
                    }
                    let sql = render_statement(statement, vars).map_err(|e| Failure::Template(e.to_string()))?;
                    client.batch_execute(&sql).await?;
                }
                client.batch_execute("COMMIT").await?;
                Ok::<(), Failure>(())
            }
            .await;
            drop(held);
            match outcome {
                Ok(()) => {
                    self.idle.lock().expect("pool lock").push(client);
                    return Ok(());
                }
                Err(Failure::Database(e)) => {
                    // Leaves the transaction (a failed COMMIT has ended it already).
                    let rolled_back = client.batch_execute("ROLLBACK").await.is_ok();
                    if collision(&e) && attempt < ATTEMPTS_MAX && rolled_back {
                        self.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter_ms())).await;
                        attempt += 1;
                        continue;
                    }
                    if rolled_back {
                        self.idle.lock().expect("pool lock").push(client);
                    }
                    return Err(error_text(&e));
                }
                Err(Failure::Template(e)) => {
                    if client.batch_execute("ROLLBACK").await.is_ok() {
                        self.idle.lock().expect("pool lock").push(client);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn password_for_sql(&self, password: &str) -> Result<String, String> {
        match self.mode {
            PasswordAuthentication::Password => Ok(password.to_string()),
            PasswordAuthentication::ScramSha256 => {
                scram_sha256_verifier(password, self.scram_iterations, &mut Raw::fill)
                    .ok_or_else(|| "raw (naive client): a generated password that is not printable ASCII".to_string())
            }
        }
    }
}

enum Failure {
    Database(tokio_postgres::Error),
    Template(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Database(e)
    }
}

/// A collision with a concurrent transaction: the same transaction may run again.
fn collision(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        matches!(db.code().code(), "40001" | "40P01")
            || (db.code().code() == "XX000" && db.message().contains("tuple concurrently updated"))
    })
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

fn jitter_ms() -> u64 {
    let mut b = [0u8; 1];
    Raw::fill(&mut b);
    u64::from(b[0] % 10)
}

/// `"name"` with inner quotes doubled.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The naive raw baseline for one statement set.
pub(crate) struct NaiveRaw {
    pub(crate) pool: std::sync::Arc<NaivePool>,
    pub(crate) set: StatementSet,
    pub(crate) run_id: String,
    pub(crate) policy: PasswordPolicy,
}

impl Target for NaiveRaw {
    async fn issue(&self) -> Result<String, String> {
        let username = format!("{ROLE_PREFIX}{}-r-{}", self.run_id, random_alnum(16, &mut Raw::fill));
        let password = generate_password(&self.policy, &mut Raw::fill);
        let sql_password = self.pool.password_for_sql(&password)?;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let expiration = expiration_text(now_ms + 3_600_000);
        let vars =
            StatementVars { name: Some(&username), password: Some(&sql_password), expiration: Some(&expiration) };
        self.pool.transaction(&self.set.creation, &vars).await?;
        Ok(username)
    }

    async fn revoke(&self, username: String) -> Result<(), String> {
        let vars = StatementVars { name: Some(&username), password: None, expiration: None };
        if self.set.revocation.is_empty() {
            // The plugin's default revocation, statement by statement.
            let role = quote_identifier(&username);
            let default = [
                format!("GRANT {role} TO CURRENT_USER"),
                format!("REASSIGN OWNED BY {role} TO CURRENT_USER"),
                format!("DROP OWNED BY {role}"),
                format!("DROP ROLE IF EXISTS {role}"),
            ];
            self.pool.transaction(&default, &vars).await
        } else {
            self.pool.transaction(&self.set.revocation, &vars).await
        }
    }
}
