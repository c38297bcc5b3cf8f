//! `postgresql-database-plugin`: roles created, renewed and dropped in PostgreSQL
//! through tokio-postgres, over a bounded pool, optionally over TLS (rustls, ring).
//!
//! `sslmode` follows libpq: `disable`; `prefer` and `require` encrypt without
//! verifying (unless `sslrootcert` is given with `require`, which then verifies the
//! chain like libpq does); `verify-ca` checks the chain against `sslrootcert`;
//! `verify-full` also checks the host name (`tls.rs`).

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

use super::scram::{SCRAM_ITERATIONS_DEFAULT, scram_sha256_verifier};
use super::tls::{take_tls_params, tls_config};
use super::{CommitGate, DatabasePlugin, NewUser, PluginError, PluginFuture};
use crate::text::statements::updates_shared_catalog_rows;
use crate::text::template::{StatementVars, mask_url_password, render_connection_url, render_statement};

pub const PLUGIN_NAME: &str = "postgresql-database-plugin";
/// Longest any one statement may run on the server.
pub(crate) const STATEMENT_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Longest to wait for a pooled connection, or to open one.
pub(crate) const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Vault's default pool size.
pub(crate) const MAX_OPEN_CONNECTIONS_DEFAULT: u32 = 4;
/// Vault's default root rotation statement.
pub(crate) const ROOT_ROTATION_STATEMENT_DEFAULT: &str = r#"ALTER ROLE "{{username}}" WITH PASSWORD '{{password}}';"#;
/// Vault's default renew statement.
pub(crate) const RENEW_STATEMENT_DEFAULT: &str = r#"ALTER ROLE "{{name}}" VALID UNTIL '{{expiration}}';"#;

/// How `{{password}}` reaches SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordAuthentication {
    /// The password itself (the server hashes it, and may log the statement).
    Password,
    /// A SCRAM-SHA-256 verifier computed here: the password never reaches the server.
    ScramSha256,
}

/// Everything the plugin needs. `connection_url` holds the root password, so
/// `Debug` never shows it.
#[derive(Clone)]
pub struct PostgresSettings {
    /// With `{{username}}` / `{{password}}` already filled in.
    pub connection_url: String,
    pub max_open_connections: u32,
    /// Idle connections kept open; more are closed as they come back (Vault's
    /// `max_idle_connections`; 0 = as many as `max_open_connections`).
    pub max_idle_connections: u32,
    pub max_connection_lifetime_ms: u64,
    pub password_authentication: PasswordAuthentication,
    pub statement_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// PBKDF2 rounds of the verifiers computed for `ScramSha256`
    /// (see [`scram_sha256_verifier`] for what a lower count buys).
    pub scram_iterations: u32,
    /// Run the statements that rewrite shared catalog rows (see
    /// [`updates_shared_catalog_rows`]) one transaction at a time per connection
    /// instead of only retrying their collisions. On by default: at 8 concurrent
    /// issues of the article's role it is faster, and fails nothing (README, "Concurrent
    /// GRANTs"); off only to measure the alternative.
    pub serialize_shared_catalog_updates: bool,
    /// The sessions' `application_name`: the engine's run tag
    /// (`lessor/<engine>/<run>`), so recovery can tell an earlier run's
    /// sessions from its own ([`DatabasePlugin::other_sessions`]).
    pub application_name: String,
}

impl Default for PostgresSettings {
    fn default() -> Self {
        PostgresSettings {
            connection_url: String::new(),
            max_open_connections: MAX_OPEN_CONNECTIONS_DEFAULT,
            max_idle_connections: 0,
            max_connection_lifetime_ms: 0,
            password_authentication: PasswordAuthentication::Password,
            statement_timeout_ms: STATEMENT_TIMEOUT_MS_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            scram_iterations: SCRAM_ITERATIONS_DEFAULT,
            serialize_shared_catalog_updates: true,
            application_name: "lessor".into(),
        }
    }
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("max_open_connections", &self.max_open_connections)
            .field("password_authentication", &self.password_authentication)
            .field("scram_iterations", &self.scram_iterations)
            .field("serialize_shared_catalog_updates", &self.serialize_shared_catalog_updates)
            .finish_non_exhaustive()
    }
}

pub struct PostgresPlugin {
    pool: Pool,
    /// [`PostgresSettings::max_idle_connections`], resolved (never 0 unless the
    /// pool is).
    max_idle: usize,
    password_authentication: PasswordAuthentication,
    scram_iterations: u32,
    /// Held from a transaction's first statement that rewrites shared catalog rows
    /// through its COMMIT, when serializing those (`None` when only retrying).
    shared_catalog: Option<tokio::sync::Mutex<()>>,
    /// Client-side bound on one operation: the server's statement timeout plus the
    /// wait for a connection.
    op_timeout: Duration,
    /// Transactions run again after colliding with a concurrent one ([`retryable`]):
    /// the load generator reports them (feature `testing`).
    conflict_retries: AtomicU64,
    max_connection_lifetime: Option<Duration>,
}

impl std::fmt::Debug for PostgresPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresPlugin").field("pool", &self.pool.status()).finish_non_exhaustive()
    }
}

pub(super) fn config_error(what: impl std::fmt::Display) -> PluginError {
    PluginError::Config(what.to_string())
}

/// Checks a `connection_url` template when it is written, so a URL that can
/// never connect is refused then rather than at the first issue (even with
/// `verify_connection=false`), and a literal password — which would be stored
/// and shown in plaintext, since only the `password` field is sealed — is
/// refused with the way to write it. Errors never repeat the URL.
pub(crate) fn check_connection_url(template: &str) -> Result<(), String> {
    const PROBE_USER: &str = "lessor-probe-user";
    const PROBE_PASSWORD: &str = "lessor-probe-password";
    let rendered = render_connection_url(template, PROBE_USER, PROBE_PASSWORD)
        .map_err(|e| format!("{e}; it may use only {{{{username}}}} and {{{{password}}}}"))?;
    let (url, tls) = take_tls_params(&rendered);
    if !matches!(tls.mode.as_str(), "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full") {
        return Err(format!(
            "sslmode={} is not supported; use disable, prefer, require, verify-ca or verify-full",
            mask_url_password(&tls.mode)
        ));
    }
    let config = tokio_postgres::Config::from_str(&url).map_err(|e| {
        format!("is not a PostgreSQL connection URL ({e}); write it as postgresql://{{{{username}}}}:{{{{password}}}}@host:5432/db")
    })?;
    if config.get_hosts().is_empty() {
        return Err("names no host; write it as postgresql://{{username}}:{{password}}@host:5432/db".into());
    }
    if config.get_password().is_some_and(|p| p != PROBE_PASSWORD.as_bytes()) {
        return Err("holds a password, which would be stored and shown in plaintext: write \
                    {{password}} in its place and give the password in the field \"password\" (stored sealed)"
            .into());
    }
    Ok(())
}

impl PostgresPlugin {
    /// Builds the pool; connects lazily (call [`DatabasePlugin::verify`] to check).
    pub fn new(settings: &PostgresSettings) -> Result<PostgresPlugin, PluginError> {
        let (url, tls) = take_tls_params(&settings.connection_url);
        let mut pg = tokio_postgres::Config::from_str(&url)
            .map_err(|e| config_error(format!("connection_url is not a valid PostgreSQL URL: {e}")))?;
        let (mode, client_config) = tls_config(&tls)?;
        pg.ssl_mode(mode);
        pg.connect_timeout(Duration::from_millis(settings.connect_timeout_ms));
        pg.options(format!("-c statement_timeout={}", settings.statement_timeout_ms));
        pg.application_name(&settings.application_name);
        let manager = Manager::from_config(
            pg,
            MakeRustlsConnect::new(client_config),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let wait = Some(Duration::from_millis(settings.connect_timeout_ms));
        let pool = Pool::builder(manager)
            .max_size(settings.max_open_connections.max(1) as usize)
            .runtime(Runtime::Tokio1)
            .wait_timeout(wait)
            .create_timeout(wait)
            .recycle_timeout(wait)
            .build()
            .map_err(config_error)?;
        let max_open = settings.max_open_connections.max(1) as usize;
        let max_idle = match settings.max_idle_connections as usize {
            0 => max_open,
            n => n.min(max_open),
        };
        Ok(PostgresPlugin {
            pool,
            max_idle,
            password_authentication: settings.password_authentication,
            scram_iterations: settings.scram_iterations,
            shared_catalog: settings.serialize_shared_catalog_updates.then(|| tokio::sync::Mutex::new(())),
            op_timeout: Duration::from_millis(settings.statement_timeout_ms + 2 * settings.connect_timeout_ms),
            conflict_retries: AtomicU64::new(0),
            max_connection_lifetime: (settings.max_connection_lifetime_ms > 0)
                .then(|| Duration::from_millis(settings.max_connection_lifetime_ms)),
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, PluginError> {
        loop {
            let client = self.pool.get().await.map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => db_error(e),
                other => PluginError::Connect(error_chain(&other)),
            })?;
            // Connections past their lifetime are closed instead of reused.
            let expired =
                self.max_connection_lifetime.is_some_and(|max| deadpool_postgres::Object::metrics(&client).age() > max);
            if !expired {
                return Ok(client);
            }
            let _ = deadpool_postgres::Object::take(client);
        }
    }

    /// Pooled connections a stale one may be replaced by: the whole pool, and one
    /// new connection.
    fn stale_attempts_max(&self) -> usize {
        self.pool.status().max_size + 1
    }

    /// `BEGIN` on a pooled connection. A connection the server closed while it sat
    /// in the pool (`pg_terminate_backend`, a restart) fails at this first round
    /// trip, before anything ran: it is discarded and the next one tried — what
    /// Go's `database/sql` does for Vault with `ErrBadConn` — so a dead pooled
    /// connection costs no request. A failure to open a new one is returned.
    async fn begin(&self) -> Result<Tx, PluginError> {
        self.begin_with(None).await.map(|(tx, _)| tx)
    }

    /// `BEGIN`, and with `first` that SQL too, in one round trip: the two
    /// messages go out back to back on the connection (tokio-postgres sends each
    /// request as its future is first polled, in order, and the server answers
    /// in order), so a creation costs two round trips — `BEGIN` + statements,
    /// then `COMMIT` — however many statements it has, where a client awaiting
    /// each statement pays one per statement. Returns the transaction and how
    /// `first` went (on its error the caller rolls back).
    async fn begin_with(&self, first: Option<&str>) -> Result<(Tx, Result<(), PluginError>), PluginError> {
        let mut attempt = 1;
        loop {
            let client = self.client().await?;
            let (begun, ran) = match first {
                None => (client.batch_execute("BEGIN").await, Ok(())),
                Some(sql) => tokio::join!(client.batch_execute("BEGIN"), client.batch_execute(sql)),
            };
            match begun {
                Ok(()) => {
                    let tx = Tx {
                        client: Some(client),
                        rollback_timeout: self.op_timeout,
                        idle: IdleLimit { pool: self.pool.clone(), max: self.max_idle },
                    };
                    return Ok((tx, ran.map_err(db_error)));
                }
                Err(e) if stale(&e) && attempt < self.stale_attempts_max() => {
                    tracing::debug!(error = %e, "pooled connection was closed by the server; trying another");
                    let _ = deadpool_postgres::Object::take(client);
                    attempt += 1;
                }
                Err(e) => {
                    let _ = deadpool_postgres::Object::take(client);
                    return Err(db_error(e));
                }
            }
        }
    }

    /// [`PostgresPlugin::role_exists`] on a pooled connection, replacing stale
    /// ones as [`PostgresPlugin::begin`] does (a read: safe to run again).
    async fn role_exists_now(&self, username: &str) -> Result<bool, PluginError> {
        let mut attempt = 1;
        loop {
            let client = self.client().await?;
            match client.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&username]).await {
                Ok(row) => {
                    drop(client);
                    IdleLimit { pool: self.pool.clone(), max: self.max_idle }.enforce();
                    return Ok(row.is_some());
                }
                Err(e) if stale(&e) && attempt < self.stale_attempts_max() => {
                    let _ = deadpool_postgres::Object::take(client);
                    attempt += 1;
                }
                Err(e) => return Err(db_error(e)),
            }
        }
    }

    /// Bounds a whole operation in time (the server's statement timeout bounds
    /// each statement; this bounds waiting for the network too).
    async fn timed<T>(&self, op: impl Future<Output = Result<T, PluginError>>) -> Result<T, PluginError> {
        tokio::time::timeout(self.op_timeout, op)
            .await
            .unwrap_or_else(|_| Err(PluginError::Timeout(self.op_timeout.as_millis() as u64)))
    }

    fn password_for_sql(&self, password: &str) -> String {
        password_for_sql(self.password_authentication, self.scram_iterations, password)
    }

    /// One revocation transaction; its COMMIT waits for `gate` if that is still
    /// there (taken by the first attempt that gets as far).
    async fn revoke_once(
        &self,
        username: &str,
        statements: &[String],
        terminate_sessions: bool,
        gate: &mut Option<CommitGate<'_>>,
    ) -> Result<(), PluginError> {
        // No existence check first (a round trip on every revocation): a role
        // dropped behind our back makes the statements fail, and `revoke_user`
        // then finds it gone, which counts as revoked.
        let (tx, ran, held) = if terminate_sessions {
            // Ending the role's sessions takes a parameterized query: statement
            // by statement.
            let tx = self.begin().await?;
            let mut held = None;
            let ran = self.revoke_in(&tx, username, statements, terminate_sessions, &mut held).await;
            (tx, ran, held)
        } else {
            // One batch sent with BEGIN, as a creation is (`begin_with`).
            let (batch, serialize) = if statements.is_empty() {
                // The default revocation: DROP OWNED rewrites ACLs (serialized).
                let role = quote_identifier(username);
                (Zeroizing::new(format!("GRANT {role} TO CURRENT_USER;\n{}", default_revocation_sql(username))), true)
            } else {
                let vars = StatementVars { name: Some(username), password: None, expiration: None };
                let serialize = statements.iter().any(|s| updates_shared_catalog_rows(s));
                (Zeroizing::new(render_batch(statements, &vars)?), serialize)
            };
            let held = if serialize { self.hold_shared_catalog().await } else { None };
            let (tx, ran) = self.begin_with(Some(&batch)).await?;
            (tx, ran, held)
        };
        let result = match ran {
            Ok(()) => match gate.take() {
                // The intent is not durable: nothing is dropped (I1).
                Some(gate) => match gate.await {
                    Ok(()) => tx.commit().await,
                    Err(cause) => {
                        tx.rollback().await;
                        Err(PluginError::Aborted(cause))
                    }
                },
                None => tx.commit().await,
            },
            Err(e) => Err(tx.abandon(e).await),
        };
        drop(held);
        result
    }

    /// The statements of one revocation, in `tx`; `held` as for [`run_all`].
    async fn revoke_in<'l>(
        &'l self,
        tx: &Tx,
        username: &str,
        statements: &[String],
        terminate_sessions: bool,
        held: &mut Option<tokio::sync::MutexGuard<'l, ()>>,
    ) -> Result<(), PluginError> {
        let role = quote_identifier(username);
        if terminate_sessions || statements.is_empty() {
            // Membership lets a CREATEROLE (non-superuser) admin end the role's
            // sessions and drop what it owns; DROP ROLE removes it again.
            tx.batch_execute(&format!("GRANT {role} TO CURRENT_USER")).await?;
        }
        if terminate_sessions {
            tx.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", &[&username])
                .await?;
        }
        if statements.is_empty() {
            // Default revocation: every privilege granted to the role in this
            // database (tables, sequences, functions, schemas, the database
            // itself, default privileges — on any schema, with or without
            // `public`) goes with DROP OWNED; memberships go with DROP ROLE.
            // DROP OWNED rewrites the ACLs the role is in: serialized like GRANTs.
            *held = self.hold_shared_catalog().await;
            tx.batch_execute(&default_revocation_sql(username)).await
        } else {
            let vars = StatementVars { name: Some(username), password: None, expiration: None };
            run_all(tx, statements, &vars, self.shared_catalog.as_ref(), held).await
        }
    }

    /// `statements` in one transaction, committed (renew, rotate-root); run again
    /// on a collision or a lost connection, as a creation is.
    async fn run_in_transaction(&self, statements: &[String], vars: &StatementVars<'_>) -> Result<(), PluginError> {
        let mut attempt = 1;
        loop {
            let tx = self.begin().await?;
            match run_all(&tx, statements, vars, None, &mut None).await {
                Ok(()) => return tx.commit().await,
                Err(e) if connection_lost(&e) && attempt < CONFLICT_ATTEMPTS_MAX => drop(tx),
                Err(e) if retryable(&e) && attempt < CONFLICT_ATTEMPTS_MAX => {
                    tx.rollback().await;
                    self.back_off(attempt).await;
                }
                Err(e) => return Err(tx.abandon(e).await),
            }
            attempt += 1;
        }
    }

    /// After the `attempt`th collision ([`retryable`]): counted, then a pause that
    /// grows with the attempt, jittered so colliding transactions spread out.
    async fn back_off(&self, attempt: u32) {
        self.conflict_retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter_ms())).await;
    }

    /// Transactions run again after colliding with a concurrent one, since the
    /// plugin was built: the load generator's `retries` column (feature `testing`).
    #[cfg(any(test, feature = "testing"))]
    pub fn conflict_retries(&self) -> u64 {
        self.conflict_retries.load(Ordering::Relaxed)
    }

    async fn hold_shared_catalog(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.shared_catalog {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }
}

/// Attempts at a transaction that collides with a concurrent one (another
/// process's GRANTs: this one's are serialized) or loses its connection.
const CONFLICT_ATTEMPTS_MAX: u32 = 8;

/// How `{{password}}` is written into SQL for a connection: the password, or a
/// SCRAM-SHA-256 verifier of `scram_iterations` rounds.
fn password_for_sql(mode: PasswordAuthentication, scram_iterations: u32, password: &str) -> String {
    match mode {
        PasswordAuthentication::Password => password.to_string(),
        PasswordAuthentication::ScramSha256 => {
            let mut fill = |buf: &mut [u8]| getrandom::fill(buf).expect("the OS random source failed");
            scram_sha256_verifier(password, scram_iterations, &mut fill)
                // Policies allow only printable ASCII; anything else gets
                // postgres-protocol's verifier, which applies SASLprep itself.
                .unwrap_or_else(|| postgres_protocol::password::scram_sha_256(password.as_bytes()))
        }
    }
}

/// The SQL of the default revocation (empty `revocation_statements`), after
/// `GRANT <role> TO CURRENT_USER`.
fn default_revocation_sql(username: &str) -> String {
    let role = quote_identifier(username);
    format!("REASSIGN OWNED BY {role} TO CURRENT_USER; DROP OWNED BY {role}; DROP ROLE IF EXISTS {role};")
}

/// Errors after which the same transaction may simply run again.
fn retryable(e: &PluginError) -> bool {
    match e {
        PluginError::Database { message, sqlstate } => {
            matches!(sqlstate.as_deref(), Some("40001" | "40P01"))
                || (sqlstate.as_deref() == Some("XX000") && message.contains("tuple concurrently updated"))
        }
        _ => false,
    }
}

/// The connection is gone (closed, reset, or SQLSTATE class 57P: terminated,
/// shutdown): a transaction on it was rolled back by the server, uncommitted.
fn connection_lost(e: &PluginError) -> bool {
    match e {
        PluginError::Connect(_) => true,
        PluginError::Database { sqlstate: Some(code), .. } => code.starts_with("57P"),
        _ => false,
    }
}

/// 0–9 ms, so colliding retries spread out.
fn jitter_ms() -> u64 {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    u64::from(b[0] % 10)
}

/// The server's error verbatim (message, detail, hint) with its SQLSTATE.
pub(crate) fn db_error(e: tokio_postgres::Error) -> PluginError {
    match e.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_string();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" (detail: {detail})"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!(" (hint: {hint})"));
            }
            PluginError::Database { message, sqlstate: Some(db.code().code().to_string()) }
        }
        None => PluginError::Connect(error_chain(&e)),
    }
}

/// An error and every cause under it, `outer: inner: …`: tokio-postgres says
/// only `error connecting to server` at the top, and the reason (`Connection
/// refused (os error 111)`, `server does not support TLS`) is in its source.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some errors repeat their cause in their own message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `"name"` with inner quotes doubled: safe as an SQL identifier.
pub(crate) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs `statements` in `tx`. With `shared_catalog`, takes that lock (into
/// `held`) before the first statement that rewrites shared catalog rows; the
/// caller keeps it through COMMIT, as the collision lasts until then.
/// `statements` rendered into one simple-query batch (each is one statement,
/// comments already dropped by the splitter), `;`-separated. It may hold the
/// password: the caller keeps it in a `Zeroizing`.
fn render_batch(statements: &[String], vars: &StatementVars<'_>) -> Result<String, PluginError> {
    let mut batch = String::new();
    for statement in statements {
        let sql = Zeroizing::new(render_statement(statement, vars).map_err(|e| PluginError::Config(e.to_string()))?);
        batch.push_str(&sql);
        batch.push_str(";\n");
    }
    Ok(batch)
}

async fn run_all<'l>(
    tx: &Tx,
    statements: &[String],
    vars: &StatementVars<'_>,
    shared_catalog: Option<&'l tokio::sync::Mutex<()>>,
    held: &mut Option<tokio::sync::MutexGuard<'l, ()>>,
) -> Result<(), PluginError> {
    for statement in statements {
        if let Some(lock) = shared_catalog
            && held.is_none()
            && updates_shared_catalog_rows(statement)
        {
            *held = Some(lock.lock().await);
        }
        // The rendered SQL may hold the password: zeroed when dropped (the
        // driver's own send buffer is beyond reach).
        let sql = Zeroizing::new(render_statement(statement, vars).map_err(|e| PluginError::Config(e.to_string()))?);
        tx.client().batch_execute(&sql).await.map_err(db_error)?;
    }
    Ok(())
}

/// Whether a first round trip failed because the server had closed the
/// connection: it was closed, reset, or answered with class 57P (operator
/// intervention: terminated, server shutting down or starting). Nothing ran.
fn stale(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => db.code().code().starts_with("57P"),
        None => e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// A transaction on a pooled connection it owns (so [`PostgresPlugin::begin`]
/// can swap a stale connection for another). Dropped unfinished — an error, a
/// timeout — it discards the connection, which ends the transaction on the server
/// (rolled back), rather than return a connection mid-transaction to the pool.
struct Tx {
    client: Option<deadpool_postgres::Object>,
    /// Longest a ROLLBACK may take before the connection is discarded instead.
    rollback_timeout: Duration,
    idle: IdleLimit,
}

/// Vault's `max_idle_connections`: idle connections beyond `max` are closed as
/// connections come back to the pool — unless requests are waiting for one, as
/// Go's `database/sql` hands a released connection to a waiter first.
struct IdleLimit {
    pool: Pool,
    max: usize,
}

impl IdleLimit {
    fn enforce(&self) {
        let status = self.pool.status();
        if status.available > self.max && status.waiting == 0 {
            let mut kept = 0;
            // The connections removed are dropped with the result: closed.
            drop(self.pool.retain(|_, _| {
                kept += 1;
                kept <= self.max
            }));
        }
    }
}

impl Tx {
    fn client(&self) -> &tokio_postgres::Client {
        self.client.as_ref().expect("a transaction holds its connection until it ends")
    }

    /// Queues `sql` on the transaction's connection.
    async fn batch_execute(&self, sql: &str) -> Result<(), PluginError> {
        self.client().batch_execute(sql).await.map_err(db_error)
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, PluginError> {
        self.client().execute(sql, params).await.map_err(db_error)
    }

    /// COMMIT; the connection goes back to the pool only if that succeeded.
    async fn commit(mut self) -> Result<(), PluginError> {
        let client = self.client.take().expect("a transaction holds its connection until it ends");
        match client.batch_execute("COMMIT").await {
            Ok(()) => {
                drop(client);
                self.idle.enforce();
                Ok(())
            }
            Err(e) => {
                let _ = deadpool_postgres::Object::take(client);
                Err(db_error(e))
            }
        }
    }

    /// Ends the transaction after `error`, which it returns: rolled back when the
    /// server answered (its connection is alive and goes back to the pool),
    /// otherwise — no answer, a timeout — the connection is discarded.
    async fn abandon(self, error: PluginError) -> PluginError {
        if matches!(error, PluginError::Database { .. }) {
            self.rollback().await;
        }
        error
    }

    /// ROLLBACK, keeping the connection for the pool when that worked.
    async fn rollback(mut self) {
        let client = self.client.take().expect("a transaction holds its connection until it ends");
        let rolled_back = tokio::time::timeout(self.rollback_timeout, client.batch_execute("ROLLBACK")).await;
        if matches!(rolled_back, Ok(Ok(()))) {
            drop(client);
            self.idle.enforce();
        } else {
            let _ = deadpool_postgres::Object::take(client);
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = deadpool_postgres::Object::take(client);
        }
    }
}

impl DatabasePlugin for PostgresPlugin {
    fn verify(&self) -> PluginFuture<'_, ()> {
        Box::pin(self.timed(async move {
            // A probe: a stale pooled connection is replaced, not reported.
            self.role_exists_now("").await.map(drop)
        }))
    }

    fn create_user<'a>(&'a self, user: NewUser<'a>, gate: CommitGate<'a>) -> PluginFuture<'a, ()> {
        Box::pin(async move {
            let sql_password = Zeroizing::new(self.password_for_sql(user.password));
            let vars = StatementVars {
                name: Some(user.username),
                password: Some(&sql_password),
                expiration: Some(user.expiration),
            };
            // The statements as one batch, sent with BEGIN (`begin_with`); the
            // serializer, if any statement needs it, is taken before.
            let batch = Zeroizing::new(render_batch(user.statements, &vars)?);
            let serialize = user.statements.iter().any(|s| updates_shared_catalog_rows(s));
            let mut attempt = 1;
            loop {
                let held = if serialize { self.hold_shared_catalog().await } else { None };
                let (tx, ran) = self.timed(self.begin_with(Some(&batch))).await?;
                match ran {
                    Ok(()) => {
                        // I1: the user becomes visible at COMMIT, and only once the
                        // intent is durable.
                        gate.await.map_err(PluginError::Aborted)?;
                        let committed = self.timed(tx.commit()).await;
                        drop(held);
                        return committed;
                    }
                    Err(e) if connection_lost(&e) && attempt < CONFLICT_ATTEMPTS_MAX => {
                        // The server closed the connection mid-transaction (a
                        // termination racing this request's BEGIN): nothing was
                        // committed, so run it again on another connection.
                        drop(tx);
                        drop(held);
                        attempt += 1;
                    }
                    Err(e) if retryable(&e) && attempt < CONFLICT_ATTEMPTS_MAX => {
                        // GRANTs collide with a concurrent transaction ("tuple
                        // concurrently updated"): another process's, or this one's
                        // when not serializing. Roll back and run it again.
                        tx.rollback().await;
                        drop(held);
                        self.back_off(attempt).await;
                        attempt += 1;
                    }
                    Err(e) => return Err(tx.abandon(e).await),
                }
            }
        })
    }

    fn renew_user<'a>(
        &'a self,
        username: &'a str,
        expiration: &'a str,
        statements: &'a [String],
    ) -> PluginFuture<'a, ()> {
        Box::pin(self.timed(async move {
            let default = [RENEW_STATEMENT_DEFAULT.to_string()];
            let statements = if statements.is_empty() { &default[..] } else { statements };
            let vars = StatementVars { name: Some(username), password: None, expiration: Some(expiration) };
            self.run_in_transaction(statements, &vars).await
        }))
    }

    fn revoke_user<'a>(
        &'a self,
        username: &'a str,
        statements: &'a [String],
        terminate_sessions: bool,
        gate: CommitGate<'a>,
    ) -> PluginFuture<'a, ()> {
        Box::pin(self.timed(async move {
            let mut gate = Some(gate);
            let mut attempt = 1;
            let result = loop {
                match self.revoke_once(username, statements, terminate_sessions, &mut gate).await {
                    Err(e) if retryable(&e) && attempt < CONFLICT_ATTEMPTS_MAX => {
                        self.back_off(attempt).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            let result = match result {
                // Failed because the role is gone (dropped behind our back, or by
                // a revocation elsewhere): revoked all the same.
                Err(PluginError::Database { .. }) if !self.role_exists_now(username).await? => Ok(()),
                // Custom statements that leave something the role holds — the
                // article's own statements leave its default privileges — would
                // make the lease irrevocable forever (Vault's known pain). They ran
                // and rolled back; the default revocation drops what they missed.
                Err(PluginError::Database { sqlstate: Some(code), .. })
                    if code == "2BP01" && !statements.is_empty() =>
                {
                    tracing::warn!(
                        "revocation_statements left objects depending on the role; finished with the default revocation"
                    );
                    self.revoke_once(username, &[], terminate_sessions, &mut gate).await
                }
                other => other,
            };
            // Nothing committed (the role was gone, or every attempt failed):
            // the caller still learns whether its intent became durable.
            match (result, gate) {
                (Ok(()), Some(gate)) => gate.await.map_err(PluginError::Aborted),
                (result, _) => result,
            }
        }))
    }

    fn rotate_root<'a>(
        &'a self,
        username: &'a str,
        new_password: &'a str,
        statements: &'a [String],
    ) -> PluginFuture<'a, ()> {
        Box::pin(self.timed(async move {
            let default = [ROOT_ROTATION_STATEMENT_DEFAULT.to_string()];
            let statements = if statements.is_empty() { &default[..] } else { statements };
            let sql_password = Zeroizing::new(self.password_for_sql(new_password));
            let vars = StatementVars { name: Some(username), password: Some(&sql_password), expiration: None };
            self.run_in_transaction(statements, &vars).await
        }))
    }

    fn user_exists<'a>(&'a self, username: &'a str) -> PluginFuture<'a, bool> {
        Box::pin(self.timed(async move { self.role_exists_now(username).await }))
    }

    fn other_sessions<'a>(&'a self, prefix: &'a str, mine: &'a str) -> PluginFuture<'a, Option<u64>> {
        Box::pin(self.timed(async move {
            // `application_name` is visible to every role in pg_stat_activity.
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE left(application_name, length($1)) = $1 \
                     AND application_name <> $2",
                    &[&prefix, &mine],
                )
                .await
                .map_err(db_error)?;
            let count: i64 = row.get(0);
            Ok(Some(count.max(0) as u64))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier(r#"a"b"#), r#""a""b""#);
    }

    #[tokio::test]
    async fn a_refused_connection_keeps_its_cause() {
        // Port 1 on loopback: nothing listens, so the kernel refuses at once.
        let config = "host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=5";
        let err = tokio_postgres::connect(config, tokio_postgres::NoTls).await.map(drop).unwrap_err();
        let PluginError::Connect(text) = db_error(err) else { panic!("not a connection error") };
        assert!(text.starts_with("error connecting to server: "), "{text}");
        assert!(text.contains("Connection refused"), "the cause is lost: {text}");
    }
}
