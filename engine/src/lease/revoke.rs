//! Revoke: the intent, `DROP ROLE` (idempotent), the outcome; and
//! `revoke-force`, which forgets a lease only when the database refuses.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{CLAIM_WAIT_MS_MAX, Claim, LeaseError, RevokePlan, Settled};
use crate::Engine;
use crate::event::{Event, RevokeCompleted, RevokeFailed, RevokeForced, RevokeStarted};
use crate::plugin::PluginError;

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

    /// A revocation up to its outcome: the intent's fsync under way while the
    /// revocation SQL runs, and its COMMIT waiting for it (the commit gate, as
    /// an issue's). On success the outcome is `RevokeCompleted`, for the caller
    /// to append — a request lets it ride the next group commit after its reply
    /// (a crash before it is durable runs the revocation again, idempotently) —
    /// under the lease's claim, so no other revocation of it starts meanwhile.
    /// A failure is logged here.
    pub(crate) async fn revoke_to_outcome(&self, plan: RevokePlan) -> Result<Settled<()>, LeaseError> {
        let lease_id = plan.lease.lease_id.to_string();
        // One revocation of a lease at a time: the expirer and an explicit revoke
        // must not race each other's DROP ROLE. A revoke right after the issue
        // or a renewal meets their riding outcome: it waits for it.
        let wait = std::time::Duration::from_millis(CLAIM_WAIT_MS_MAX);
        let Some(claim) = Claim::take_waiting(&self.lifecycle.claims, &lease_id, wait).await else {
            return Err(LeaseError::Busy(format!("a revocation of {lease_id} is already running; retry shortly")));
        };
        if self.with_state(|s| !s.leases.contains_key(lease_id.as_str())) {
            // Revoked while it waited: nothing left to do, and nothing to log.
            return Ok(Settled { value: (), outcome: Vec::new(), claims: vec![claim] });
        }
        let started = RevokeStarted {
            lease_id: lease_id.clone(),
            reason: plan.reason,
            accessor: plan.asked.accessor.clone(),
            request_id: plan.asked.request_id.clone(),
            path: plan.asked.path.clone(),
        };
        let pending = self.submit(vec![started.into()]).await.map_err(LeaseError::io)?;
        // Whether the intent was found not durable (the log's failure, I6). A
        // revocation that fails before its gate is awaited still records its
        // attempt: appends keep their order, so it lands after the intent.
        let intent_lost = AtomicBool::new(false);
        let gate = Box::pin(async {
            let durable = pending.durable().await.map(drop).map_err(|e| e.to_string());
            intent_lost.store(durable.is_err(), Ordering::SeqCst);
            durable
        });
        let result = match &plan.connection {
            Some(connection) => match self.plugin_for(connection) {
                Ok(plugin) => plugin
                    .revoke_user(&plan.lease.username, &plan.statements, plan.terminate_sessions, gate)
                    .await
                    .map_err(|e| match e {
                        // The intent could not be made durable: the log's failure.
                        PluginError::Aborted(cause) => LeaseError::Io(cause),
                        e => LeaseError::from(e),
                    }),
                Err(e) => {
                    gate.await.map_err(LeaseError::Io)?;
                    Err(e)
                }
            },
            None => {
                gate.await.map_err(LeaseError::Io)?;
                Err(LeaseError::Database(format!(
                    "connection \"{}\" of {} no longer exists; write it again to revoke, or use revoke-force",
                    plan.lease.connection, plan.lease.mount
                )))
            }
        };
        match result {
            Ok(()) => {
                Ok(Settled { value: (), outcome: vec![RevokeCompleted { lease_id }.into()], claims: vec![claim] })
            }
            // No intent in the log: nothing to record an attempt against.
            Err(e) if intent_lost.load(Ordering::SeqCst) => Err(e),
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
