//! Recovery: finishing what a crash interrupted, by the recovery table
//! (docs/DESIGN.md, "Recovery").

use super::{EXPIRATION_MARGIN_MS, LeaseError, RevokePlan, plan_revoke};
use crate::Engine;
use crate::event::RenewCompleted;
use crate::state::LeaseStatus;
use crate::text::template;

/// What [`Engine::recover`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Root rotations settled.
    pub rotations: usize,
    /// Interrupted revocations now finished.
    pub revoked: usize,
    /// Revocations that failed again (recorded; the expirer retries them).
    pub revoke_failed: usize,
    /// Renewals without an outcome whose `VALID UNTIL` was set again and recorded.
    pub renewed: usize,
    /// Issues without an outcome, left live until their expiry (the caller may
    /// hold the password); the expirer revokes them then.
    pub issues_kept: usize,
}

impl Engine {
    /// Finishes what a crash interrupted, by the recovery table:
    /// - an issue intent without outcome stays live until the intent's expiry —
    ///   its COMMIT may have run and its caller may hold the password (the
    ///   outcome rides after the reply) — and the expirer revokes it then;
    /// - a renewal without outcome keeps the intent's expiry (its caller may have
    ///   been told it): its `VALID UNTIL` is set again and `RenewCompleted`
    ///   logged, or, if the database cannot be reached, the intent's expiry holds
    ///   anyway ([`crate::state::Lease::expire_time_effective_ms`]);
    /// - a revocation in progress runs again (it is idempotent);
    /// - a root rotation finds the password that works.
    ///
    /// Call once after opening, before serving. Revocations that fail stay
    /// recorded and are retried by the expirer.
    pub async fn recover(&self) -> Result<Recovered, LeaseError> {
        let rotations = self.recover_rotations().await?;
        let mut recovered = Recovered { rotations, ..Recovered::default() };
        let (plans, renewals): (Vec<RevokePlan>, Vec<_>) = self.with_state(|s| {
            let mut plans = Vec::new();
            let mut renewals = Vec::new();
            for lease in s.leases.values() {
                match lease.status {
                    LeaseStatus::Revoking(reason) => plans.push(plan_revoke(s, lease, reason)),
                    LeaseStatus::Issuing | LeaseStatus::Active => {
                        if lease.status == LeaseStatus::Issuing {
                            recovered.issues_kept += 1;
                        }
                        if let Some(to) = lease.renewing_to_ms
                            && let Some(connection) = s.connection_for(&lease.mount, &lease.connection)
                        {
                            let statements = s
                                .roles
                                .get(&(lease.mount.to_string(), lease.role.to_string()))
                                .map(|r| r.renew_statements.clone())
                                .unwrap_or_default();
                            renewals.push((
                                lease.lease_id.to_string(),
                                lease.username.to_string(),
                                to,
                                connection.clone(),
                                statements,
                            ));
                        }
                    }
                }
            }
            (plans, renewals)
        });
        for (lease_id, username, to, connection, statements) in renewals {
            let expiration = template::expiration_text(to + EXPIRATION_MARGIN_MS);
            let set = match self.plugin_for(&connection) {
                Ok(plugin) => plugin.renew_user(&username, &expiration, &statements).await.map_err(LeaseError::from),
                Err(e) => Err(e),
            };
            match set {
                Ok(()) => {
                    self.append(vec![RenewCompleted { lease_id, expire_time_ms: to }.into()])
                        .await
                        .map_err(LeaseError::io)?;
                    recovered.renewed += 1;
                }
                // The intent's expiry holds without it; the next open tries again.
                Err(e) => tracing::warn!(error = %e, lease_id, "cannot set a recovered renewal's VALID UNTIL again"),
            }
        }
        for plan in plans {
            match self.run_revoke(plan).await {
                Ok(()) => recovered.revoked += 1,
                Err(LeaseError::Io(e)) => return Err(LeaseError::Io(e)),
                Err(_) => recovered.revoke_failed += 1,
            }
        }
        Ok(recovered)
    }

    /// Finishes root rotations that a crash interrupted; part of [`Engine::recover`].
    pub async fn recover_rotations(&self) -> Result<usize, LeaseError> {
        let pending: Vec<_> = self.with_state(|s| {
            s.rotations
                .values()
                .filter_map(|r| s.connections.get(&(r.mount.clone(), r.name.clone())).map(|c| (c.clone(), r.clone())))
                .collect()
        });
        for (connection, started) in &pending {
            self.settle_rotation(connection, started).await?;
        }
        Ok(pending.len())
    }
}
