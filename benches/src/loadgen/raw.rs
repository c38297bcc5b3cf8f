//! The raw baseline: the same statements through lessor's own PostgreSQL plugin,
//! with nothing of the engine around it.
//!
//! The plugin is built from the settings lessor's connection has
//! ([`plugin_settings`](super::lessor::plugin_settings)) and driven through
//! [`DatabasePlugin`] with a commit gate that is always open ([`open_gate`]): the
//! pool, statement rendering, SCRAM verifier, per-connection serialization of
//! shared-catalog updates, bounded retry with jitter and COMMIT are the plugin's,
//! not a copy of them, so the baseline cannot drift from what lessor runs. What
//! lessor adds on top — token and ACL, the durable log, the state, the expirer —
//! is what the comparison measures.

use std::sync::Arc;

use lessor_engine::plugin::postgres::PostgresPlugin;
use lessor_engine::plugin::{DatabasePlugin, NewUser};
use lessor_engine::testing::open_gate;
use lessor_engine::text::password::{PasswordPolicy, generate_password};
use lessor_engine::text::random::random_alnum;
use lessor_engine::text::template::expiration_text;

use super::phase::Target;
use super::statements::{ROLE_PREFIX, StatementSet};

/// Raw: the PostgreSQL plugin alone, its pool sized to the workers.
pub(crate) struct Raw {
    pub(crate) plugin: Arc<PostgresPlugin>,
    pub(crate) set: StatementSet,
    pub(crate) run_id: String,
    pub(crate) policy: PasswordPolicy,
}

impl Raw {
    pub(crate) fn fill(buf: &mut [u8]) {
        getrandom::fill(buf).expect("the OS random source failed");
    }

    /// Transactions the plugin ran again after a collision, so far.
    pub(crate) fn retries(&self) -> u64 {
        self.plugin.conflict_retries()
    }
}

impl Target for Raw {
    async fn issue(&self) -> Result<String, String> {
        let username = format!("{ROLE_PREFIX}{}-r-{}", self.run_id, random_alnum(16, &mut Raw::fill));
        let password = generate_password(&self.policy, &mut Raw::fill);
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let expiration = expiration_text(now_ms + 3_600_000);
        let user = NewUser {
            username: &username,
            password: &password,
            expiration: &expiration,
            statements: &self.set.creation,
        };
        self.plugin.create_user(user, open_gate()).await.map_err(|e| e.to_string())?;
        Ok(username)
    }

    async fn revoke(&self, username: String) -> Result<(), String> {
        // Empty statements: the plugin's default revocation, as lessor's.
        self.plugin.revoke_user(&username, &self.set.revocation, false, open_gate()).await.map_err(|e| e.to_string())
    }
}
