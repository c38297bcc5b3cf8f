//! Renew: the intent, `VALID UNTIL` in the database, then the reply; the
//! outcome rides the next group commit.

use std::time::Duration;

use super::{CLAIM_WAIT_MS_MAX, Claim, EXPIRATION_MARGIN_MS, LeaseError, RenewPlan, Settled};
use crate::Engine;
use crate::event::{RenewCompleted, RenewFailed, RenewStarted};
use crate::state::LeaseStatus;
use crate::text::template;

/// What a renewal granted.
#[derive(Debug)]
pub(crate) struct RenewGranted {
    pub(crate) lease_id: String,
    /// Seconds from now.
    pub(crate) lease_duration_s: u64,
    /// Set when the max TTL capped the increment.
    pub(crate) warning: Option<String>,
}

impl Engine {
    /// Runs a renewal plan up to its outcome: the intent durable, then `VALID
    /// UNTIL` moved in the database. From then on the caller may be told the
    /// new expiry, and it
    /// holds even if `RenewCompleted` never becomes durable (the fold keeps a
    /// renewal's intent; docs/DESIGN.md, "Recovery"). The outcome is returned
    /// for the caller to append with its audit record, under the lease's claim,
    /// so the expirer sees the new expiry before it may look at the lease
    /// again. A failure is logged here and keeps the old expiry.
    pub(crate) async fn run_renew(&self, plan: RenewPlan) -> Result<Settled<RenewGranted>, LeaseError> {
        let plugin = self.plugin_for(&plan.connection)?;
        let lease_id = plan.lease.lease_id.to_string();
        // One operation on a lease at a time: the expirer must not revoke a lease
        // under a renewal in flight (a database slower than the time left), or the
        // caller would be told of an expiry the lease no longer has (I3). A renewal
        // right after the issue meets the riding outcome: it waits.
        let wait = Duration::from_millis(CLAIM_WAIT_MS_MAX);
        let Some(claim) = Claim::take_waiting(&self.lifecycle.claims, &lease_id, wait).await else {
            return Err(LeaseError::Busy(format!("{lease_id} is being revoked or renewed; retry shortly")));
        };
        // What happened while it waited: revoked, or its issue rolled back.
        match self.with_state(|s| s.leases.get(lease_id.as_str()).map(|l| l.status)) {
            None => return Err(LeaseError::NotFound("lease not found".into())),
            Some(LeaseStatus::Revoking(_)) => {
                return Err(LeaseError::invalid("lease is being revoked and cannot be renewed"));
            }
            Some(LeaseStatus::Active | LeaseStatus::Issuing) => {}
        }
        let started = RenewStarted {
            lease_id: lease_id.clone(),
            expire_time_ms: plan.expire_time_ms,
            accessor: plan.asked.accessor.clone(),
            request_id: plan.asked.request_id.clone(),
            path: plan.asked.path.clone(),
        };
        // I1: the database changes only once the intent is durable.
        self.append(vec![started.into()]).await.map_err(LeaseError::io)?;
        let expiration = template::expiration_text(plan.expire_time_ms + EXPIRATION_MARGIN_MS);
        match plugin.renew_user(&plan.lease.username, &expiration, &plan.statements).await {
            Ok(()) => Ok(Settled {
                outcome: vec![
                    RenewCompleted { lease_id: lease_id.clone(), expire_time_ms: plan.expire_time_ms }.into(),
                ],
                claims: vec![claim],
                value: RenewGranted { lease_id, lease_duration_s: plan.lease_duration_s, warning: plan.warning },
            }),
            Err(e) => {
                let failed = RenewFailed { lease_id, error: e.to_string() };
                let _ = self.append(vec![failed.into()]).await;
                Err(e.into())
            }
        }
    }
}
