//! Revoke: the intent, `DROP ROLE` (idempotent), the outcome; and
//! `revoke-force`, which forgets a lease only when the database refuses.

use super::{Claim, LeaseError, RevokePlan, Settled};
use crate::Engine;
use crate::event::{Event, RevokeCompleted, RevokeFailed, RevokeForced, RevokeStarted};

/// Adds lessor's hint to a revocation error the database explains poorly, so the
/// operator knows which statement to fix (the lease records both).
fn with_revocation_hint(e: LeaseError) -> LeaseError {
    match e {
        LeaseError::Database(message) if message.contains("depend on it") => LeaseError::Database(format!(
            "{message} (hint: the role's revocation_statements leave something it was granted, typically default \
             privileges: add ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM \"{{{{name}}}}\" \
             before DROP ROLE, or leave revocation_statements empty to use the default revocation)"
        )),
        other => other,
    }
}

/// The first few ids of a list, for a warning of bounded length.
fn listed(ids: &[String]) -> String {
    const SHOWN_MAX: usize = 10;
    let shown = ids.iter().take(SHOWN_MAX).map(String::as_str).collect::<Vec<_>>().join(", ");
    match ids.len().checked_sub(SHOWN_MAX) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

impl Engine {
    /// `revoke-force`: every lease is revoked as usual; a lease the database
    /// refuses to drop is then forgotten (`RevokeForced` with the refusal), so
    /// the audit tells a dropped user from one that may still exist. The outcomes
    /// ride in the request's append; their claims are held until it is durable.
    /// Its value is what to warn the caller of.
    pub(crate) async fn run_revoke_force(&self, plans: Vec<RevokePlan>) -> Result<Settled<Vec<String>>, LeaseError> {
        let mut done = Settled { value: Vec::new(), outcome: Vec::with_capacity(plans.len()), claims: Vec::new() };
        let mut forced = Vec::new();
        let mut busy = Vec::new();
        for plan in plans {
            let lease_id = plan.lease.lease_id.to_string();
            match self.revoke_to_outcome(plan).await {
                Ok(settled) => {
                    done.claims.extend(settled.claims);
                    done.outcome.extend(settled.outcome);
                }
                // Another revocation of it is running; it finishes that one.
                Err(LeaseError::Busy(_)) => busy.push(lease_id),
                // Nothing could be logged: stop, and say so (I6).
                Err(LeaseError::Io(e)) => return Err(LeaseError::Io(e)),
                Err(refusal) => {
                    done.outcome.push(RevokeForced { lease_id: lease_id.clone(), error: refusal.to_string() }.into());
                    forced.push(lease_id);
                }
            }
        }
        if !forced.is_empty() {
            done.value.push(format!(
                "{} lease(s) forgotten although the database refused to drop their users, which may still log in: {}",
                forced.len(),
                listed(&forced)
            ));
        }
        if !busy.is_empty() {
            done.value.push(format!(
                "{} lease(s) left to the revocation already running for them: {}",
                busy.len(),
                listed(&busy)
            ));
        }
        Ok(done)
    }

    /// Revokes one lease now: intent, database, outcome. A failure is recorded as
    /// an attempt (retried later) and returned with the database's own message.
    pub(crate) async fn run_revoke(&self, plan: RevokePlan) -> Result<(), LeaseError> {
        self.revoke_to_outcome(plan).await?.append(self).await
    }

    /// A revocation up to its outcome: the intent made durable, the database user
    /// dropped. On success the outcome is `RevokeCompleted`, for the caller to
    /// append — a request appends it with its audit record, one fsync instead of
    /// two — under the lease's claim, so no other revocation of it starts
    /// meanwhile. A failure is logged here.
    pub(crate) async fn revoke_to_outcome(&self, plan: RevokePlan) -> Result<Settled<()>, LeaseError> {
        let lease_id = plan.lease.lease_id.to_string();
        // One revocation of a lease at a time: the expirer and an explicit revoke
        // must not race each other's DROP ROLE.
        let Some(claim) = Claim::take(&self.lifecycle.claims, &lease_id) else {
            return Err(LeaseError::Busy(format!("a revocation of {lease_id} is already running; retry shortly")));
        };
        let started = RevokeStarted { lease_id: lease_id.clone(), reason: plan.reason };
        self.append(vec![started.into()]).await.map_err(LeaseError::io)?;
        let result = match &plan.connection {
            Some(connection) => match self.plugin_for(connection) {
                Ok(plugin) => plugin
                    .revoke_user(&plan.lease.username, &plan.statements, plan.terminate_sessions)
                    .await
                    .map_err(LeaseError::from),
                Err(e) => Err(e),
            },
            None => Err(LeaseError::Database(format!(
                "connection \"{}\" of {} no longer exists; write it again to revoke, or use revoke-force",
                plan.lease.connection, plan.lease.mount
            ))),
        };
        match result {
            Ok(()) => {
                Ok(Settled { value: (), outcome: vec![RevokeCompleted { lease_id }.into()], claims: vec![claim] })
            }
            Err(e) => {
                let e = with_revocation_hint(e);
                let attempt = plan.lease.revoke_attempts + 1;
                let failed = RevokeFailed {
                    lease_id,
                    attempt,
                    error: e.to_string(),
                    next_attempt_time_ms: self.clock().now_ms() + self.expiry_options().backoff_ms(attempt) as i64,
                };
                let _ = self.append(vec![Event::RevokeFailed(failed)]).await;
                Err(e)
            }
        }
    }
}
