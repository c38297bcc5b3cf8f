//! Recovery: finishing what a crash interrupted, by the recovery table
//! (docs/DESIGN.md, "Recovery").

use super::{Claim, EXPIRATION_MARGIN_MS, LeaseError, RevokePlan, plan_revoke};
use crate::Engine;
use crate::event::{ConnectionWritten, IssueCompleted, IssueFailed, RenewCompleted};
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
    /// Issues without an outcome whose role exists: committed, now `Active`.
    pub issues_committed: usize,
    /// Issues without an outcome proven never committed (no such role, and no
    /// session of an earlier run left on the server): forgotten at once.
    pub issues_never_committed: usize,
}

/// How long recovery waits for an earlier run's database sessions to end (the
/// server notices a dead client's closed socket within moments) before it
/// leaves interrupted issues to their expiry instead of proving them.
const EARLIER_SESSIONS_WAIT_MS_MAX: u64 = 2_000;

impl Engine {
    /// Finishes what a crash interrupted, by the recovery table:
    /// - an issue intent without outcome: if its role exists, its COMMIT ran and
    ///   the caller may hold the password: `IssueCompleted` is logged (the lease
    ///   is `Active`, its expiry the intent's). If the role does not exist and no
    ///   session of an earlier run is left on the server (none could still
    ///   commit it), it never will: `IssueFailed` forgets the lease. Otherwise —
    ///   the database unreachable, earlier sessions lingering — it stays live
    ///   until the intent's expiry and the expirer revokes it then;
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
        self.settle_interrupted_issues(&mut recovered).await?;
        for (lease_id, username, to, connection, statements) in renewals {
            // A renewal of this run still running holds the claim; it finishes itself.
            let Some(_claim) = Claim::take(&self.lifecycle.claims, &lease_id) else { continue };
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
        if recovered != Recovered::default() {
            tracing::info!(
                rotations = recovered.rotations,
                revoked = recovered.revoked,
                revoke_failed = recovered.revoke_failed,
                renewed = recovered.renewed,
                issues_committed = recovered.issues_committed,
                issues_never_committed = recovered.issues_never_committed,
                issues_kept_until_expiry = recovered.issues_kept,
                "recovery finished what a crash interrupted"
            );
        }
        Ok(recovered)
    }

    /// Settles the issue intents a crash left without an outcome, where the
    /// database can prove what happened (see [`Engine::recover`]).
    async fn settle_interrupted_issues(&self, recovered: &mut Recovered) -> Result<(), LeaseError> {
        type Interrupted = Vec<(String, String)>;
        let by_connection: std::collections::BTreeMap<crate::state::MountKey, (ConnectionWritten, Interrupted)> = self
            .with_state(|s| {
                let mut by_connection = std::collections::BTreeMap::new();
                for lease in s.leases.values().filter(|l| l.status == LeaseStatus::Issuing) {
                    if let Some(connection) = s.connection_for(&lease.mount, &lease.connection) {
                        by_connection
                            .entry((lease.mount.to_string(), lease.connection.to_string()))
                            .or_insert_with(|| (connection.clone(), Vec::new()))
                            .1
                            .push((lease.lease_id.to_string(), lease.username.to_string()));
                    }
                }
                by_connection
            });
        let (mine, prefix) = &self.run_tag;
        for (connection, leases) in by_connection.into_values() {
            let Ok(plugin) = self.plugin_for(&connection) else { continue };
            // Only once no earlier session could still commit a creation it sent.
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(EARLIER_SESSIONS_WAIT_MS_MAX);
            let quiet = loop {
                match plugin.other_sessions(prefix, mine).await {
                    Ok(Some(0)) => break true,
                    Ok(Some(_)) if std::time::Instant::now() < deadline => {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    _ => break false,
                }
            };
            if !quiet {
                continue;
            }
            for (lease_id, username) in leases {
                // An issue of this run (recover called while serving) holds its
                // lease's claim until its outcome is durable: before its COMMIT
                // there is no role yet, and that proves nothing. Held while
                // deciding, so nothing of this run starts on it meanwhile.
                let Some(_claim) = Claim::take(&self.lifecycle.claims, &lease_id) else { continue };
                let event: crate::event::Event = match plugin.user_exists(&username).await {
                    Ok(true) => {
                        recovered.issues_committed += 1;
                        IssueCompleted { lease_id }.into()
                    }
                    Ok(false) => {
                        recovered.issues_never_committed += 1;
                        IssueFailed {
                            lease_id,
                            error: "recovery: the role was never created (no such role, and no session of an \
                                    earlier run left on the server)"
                                .into(),
                        }
                        .into()
                    }
                    Err(_) => continue,
                };
                recovered.issues_kept -= 1;
                self.append(vec![event]).await.map_err(LeaseError::io)?;
            }
        }
        Ok(())
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
