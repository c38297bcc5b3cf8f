//! Renew: the intent, `VALID UNTIL` in the database, the outcome.

use super::{Claim, EXPIRATION_MARGIN_MS, LeaseError, RenewPlan};
use crate::Engine;
use crate::event::{RenewCompleted, RenewFailed, RenewStarted};
use crate::text::template;

/// What a renewal granted.
#[derive(Debug)]
pub(crate) struct RenewGranted {
    pub lease_id: String,
    /// Seconds from now.
    pub lease_duration_s: u64,
    /// Set when the max TTL capped the increment.
    pub warning: Option<String>,
}

impl Engine {
    /// Runs a renewal plan. The outcome is durable before this returns, logged
    /// while the lease is still claimed, so the expirer next sees the new expiry.
    /// A failure keeps the old expiry (the caller never got the new TTL).
    pub(crate) async fn run_renew(&self, plan: RenewPlan) -> Result<RenewGranted, LeaseError> {
        let plugin = self.plugin_for(&plan.connection)?;
        let lease_id = plan.lease.lease_id.to_string();
        // One operation on a lease at a time: the expirer must not revoke a lease
        // under a renewal in flight (a database slower than the time left), or the
        // caller would be told of an expiry the lease no longer has (I3).
        let Some(_claim) = Claim::take(&self.lifecycle.claims, &lease_id) else {
            return Err(LeaseError::Busy(format!("{lease_id} is being revoked or renewed; retry shortly")));
        };
        let started = RenewStarted { lease_id: lease_id.clone(), expire_time_ms: plan.expire_time_ms };
        self.append(vec![started.into()]).await.map_err(LeaseError::io)?;
        let expiration = template::expiration_text(plan.expire_time_ms + EXPIRATION_MARGIN_MS);
        match plugin.renew_user(&plan.lease.username, &expiration, &plan.statements).await {
            Ok(()) => {
                let done = RenewCompleted { lease_id: lease_id.clone(), expire_time_ms: plan.expire_time_ms };
                self.append(vec![done.into()]).await.map_err(LeaseError::io)?;
                Ok(RenewGranted { lease_id, lease_duration_s: plan.lease_duration_s, warning: plan.warning })
            }
            Err(e) => {
                let failed = RenewFailed { lease_id, error: e.to_string() };
                let _ = self.append(vec![failed.into()]).await;
                Err(e.into())
            }
        }
    }
}
