//! The raw-SQL baseline: the same statements straight through tokio-postgres.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lessor_engine::plugin::PluginError;
use lessor_engine::plugin::postgres::{
    CONFLICT_ATTEMPTS_MAX, PasswordAuthentication, db_error, default_revocation_sql, jitter_ms, password_for_sql,
    quote_identifier, retryable,
};
use lessor_engine::text::password::{PasswordPolicy, generate_password};
use lessor_engine::text::random::random_alnum;
use lessor_engine::text::statements::updates_shared_catalog_rows;
use lessor_engine::text::template::{StatementVars, expiration_text, render_statement};

use super::phase::Target;
use super::statements::{ROLE_PREFIX, StatementSet};

/// Raw SQL: one connection per worker.
pub(crate) struct Raw {
    pub(crate) clients: Vec<tokio::sync::Mutex<tokio_postgres::Client>>,
    pub(crate) set: StatementSet,
    pub(crate) run_id: String,
    pub(crate) policy: PasswordPolicy,
    pub(crate) mode: PasswordAuthentication,
    pub(crate) scram_iterations: u32,
    /// The same per-connection serialization of shared-catalog updates as the plugin.
    pub(crate) shared_catalog: Option<tokio::sync::Mutex<()>>,
    pub(crate) retries: AtomicU64,
}

impl Raw {
    pub(crate) fn fill(buf: &mut [u8]) {
        getrandom::fill(buf).expect("the OS random source failed");
    }

    /// Runs `statements` in one transaction, serialized and retried as the plugin does.
    async fn transaction(&self, worker: usize, prefix: Option<&str>, statements: &[String]) -> Result<(), String> {
        let mut client = self.clients[worker].lock().await;
        let mut attempt = 1;
        loop {
            let result: Result<(), PluginError> = async {
                let tx = client.transaction().await.map_err(db_error)?;
                let mut held = None;
                if let Some(prefix) = prefix {
                    tx.batch_execute(prefix).await.map_err(db_error)?;
                }
                for sql in statements {
                    if let Some(lock) = &self.shared_catalog
                        && held.is_none()
                        && updates_shared_catalog_rows(sql)
                    {
                        held = Some(lock.lock().await);
                    }
                    tx.batch_execute(sql).await.map_err(db_error)?;
                }
                let committed = tx.commit().await.map_err(db_error);
                drop(held);
                committed
            }
            .await;
            match result {
                Err(e) if retryable(&e) && attempt < CONFLICT_ATTEMPTS_MAX => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter_ms())).await;
                    attempt += 1;
                }
                other => return other.map_err(|e| e.to_string()),
            }
        }
    }
}

impl Target for Raw {
    async fn issue(&self, worker: usize) -> Result<String, String> {
        let username = format!("{ROLE_PREFIX}{}-r-{}", self.run_id, random_alnum(16, &mut Raw::fill));
        let password = generate_password(&self.policy, &mut Raw::fill);
        let sql_password = password_for_sql(self.mode, self.scram_iterations, &password);
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let expiration = expiration_text(now_ms + 3_600_000);
        let vars =
            StatementVars { name: Some(&username), password: Some(&sql_password), expiration: Some(&expiration) };
        let sql = self
            .set
            .creation
            .iter()
            .map(|s| render_statement(s, &vars).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        self.transaction(worker, None, &sql).await?;
        Ok(username)
    }

    async fn revoke(&self, worker: usize, username: String) -> Result<(), String> {
        if self.set.revocation.is_empty() {
            let grant = format!("GRANT {} TO CURRENT_USER", quote_identifier(&username));
            return self.transaction(worker, Some(&grant), &[default_revocation_sql(&username)]).await;
        }
        let vars = StatementVars { name: Some(&username), password: None, expiration: None };
        let sql = self
            .set
            .revocation
            .iter()
            .map(|s| render_statement(s, &vars).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        self.transaction(worker, None, &sql).await
    }
}
