//! Typed Rust entry points for the three hot operations. They go through the same
//! pipeline as every request (authorization, audit, log) — only the input and
//! output are Rust types instead of JSON.

use serde_json::{Value, json};

use super::handler::Login;
use super::{Operation, RequestError, Response};
use crate::{Engine, Secret};

/// A database credential as issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub lease_id: String,
    pub username: String,
    /// Shown once; lessor keeps no copy. Zeroed when dropped.
    pub password: Secret,
    /// Seconds.
    pub lease_duration: u64,
    pub renewable: bool,
    pub warnings: Vec<String>,
}

/// What a renewal granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewed {
    pub lease_id: String,
    /// Seconds from now.
    pub lease_duration: u64,
    pub warnings: Vec<String>,
}

impl Engine {
    /// `read <mount>/creds/<role>`: a new credential. The password goes from
    /// the generator to the returned [`Secret`] without a JSON copy.
    pub async fn issue(&self, token: &str, creds_path: &str) -> Result<Credential, RequestError> {
        let (response, login) = self.request_typed(token, Operation::Read, creds_path, Value::Null).await?;
        let Some(Login { username, password }) = login else {
            return Err(RequestError::invalid(format!(
                "\"{creds_path}\" issued no credential: issue reads <mount>/creds/<role>"
            )));
        };
        Ok(Credential {
            lease_id: response.lease_id,
            username,
            password,
            lease_duration: response.lease_duration,
            renewable: response.renewable,
            warnings: response.warnings.unwrap_or_default(),
        })
    }

    /// `sys/leases/renew`; `increment_s` 0 asks for the role's default TTL.
    pub async fn renew(&self, token: &str, lease_id: &str, increment_s: u64) -> Result<Renewed, RequestError> {
        let mut data = json!({ "lease_id": lease_id });
        if increment_s > 0 {
            data["increment"] = json!(increment_s);
        }
        let Response { lease_id, lease_duration, warnings, .. } =
            self.request(token, Operation::Update, "sys/leases/renew", data).await?;
        Ok(Renewed { lease_id, lease_duration, warnings: warnings.unwrap_or_default() })
    }

    /// `sys/leases/revoke`. Revoking a lease that is gone (revoked, expired,
    /// never issued) succeeds with nothing to do, as in Vault: a revoke retried
    /// after a lost reply succeeds.
    pub async fn revoke(&self, token: &str, lease_id: &str) -> Result<(), RequestError> {
        self.request(token, Operation::Update, "sys/leases/revoke", json!({ "lease_id": lease_id })).await.map(drop)
    }
}
