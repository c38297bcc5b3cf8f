//! Typed Rust entry points for the three hot operations. They go through the same
//! pipeline as every request (authorization, audit, log) — only the input and
//! output are Rust types instead of JSON.

use serde_json::json;

use super::{Operation, RequestError, Response};
use crate::Engine;

/// A database credential as issued.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub lease_id: String,
    pub username: String,
    /// Shown once; lessor keeps no copy.
    pub password: String,
    /// Seconds.
    pub lease_duration: u64,
    pub renewable: bool,
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("lease_id", &self.lease_id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .finish()
    }
}

/// What a renewal granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Renewed {
    pub lease_id: String,
    /// Seconds from now.
    pub lease_duration: u64,
    pub warnings: Vec<String>,
}

fn missing(field: &str) -> RequestError {
    RequestError::Corrupt(format!("the response lacks \"{field}\""))
}

impl Engine {
    /// `read <mount>/creds/<role>`: a new credential.
    pub async fn issue(&self, token: &str, creds_path: &str) -> Result<Credential, RequestError> {
        let r = self.request(token, Operation::Read, creds_path, serde_json::Value::Null).await?;
        let field = |name: &str| -> Result<String, RequestError> {
            r.data
                .as_ref()
                .and_then(|d| d.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| missing(name))
        };
        Ok(Credential {
            username: field("username")?,
            password: field("password")?,
            lease_id: r.lease_id.clone(),
            lease_duration: r.lease_duration,
            renewable: r.renewable,
            warnings: r.warnings.clone().unwrap_or_default(),
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

    /// `sys/leases/revoke`.
    pub async fn revoke(&self, token: &str, lease_id: &str) -> Result<(), RequestError> {
        self.request(token, Operation::Update, "sys/leases/revoke", json!({ "lease_id": lease_id })).await.map(drop)
    }
}
