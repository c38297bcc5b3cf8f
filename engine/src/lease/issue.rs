//! Issue: the intent's fsync overlaps the creation SQL, and COMMIT waits for it.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{Claim, IssuePlan, LeaseError, Settled, plan_revoke};
use crate::event::{IssueCompleted, IssueFailed, RevokeReason};
use crate::plugin::{NewUser, PluginError};
use crate::{Engine, Secret};

/// A credential the database committed. Its outcome (`IssueCompleted`) comes
/// with it in a [`Settled`]: the password may be handed out now — the intent
/// was durable before the COMMIT (I1) — while the outcome rides the next group
/// commit, and the claim keeps the expirer off the lease, still `Issuing`, until
/// it is durable. A crash before then leaves the lease live until its expiry
/// ([`Engine::recover`]).
pub(crate) struct Issued {
    pub(crate) lease_id: String,
    pub(crate) username: String,
    /// Shown to the caller once; never logged.
    pub(crate) password: Secret,
    pub(crate) lease_duration_s: u64,
    pub(crate) renewable: bool,
}

impl std::fmt::Debug for Issued {
    /// Everything but the password, which is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("lease_id", &self.lease_id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("lease_duration_s", &self.lease_duration_s)
            .field("renewable", &self.renewable)
            .finish()
    }
}

impl Engine {
    /// Runs an issue plan: the intent's fsync overlaps the creation SQL; COMMIT
    /// waits for it. A rollback is recorded (`IssueFailed`); a COMMIT of unknown
    /// fate is revoked at once, or left `Issuing` for recovery (I2).
    pub(crate) async fn run_issue(&self, plan: IssuePlan) -> Result<Settled<Issued>, LeaseError> {
        let plugin = self.plugin_for(&plan.connection)?;
        let lease_id = plan.started.lease_id.clone();
        let username = plan.started.username.clone();
        // While the creation runs the lease is `Issuing`: the expirer must leave it
        // alone even past its expiry (a database slower than the TTL), or its
        // DROP ROLE would run before the CREATE commits and the role would outlive
        // the forgotten lease (I2).
        let claim = Claim::take(&self.lifecycle.claims, &lease_id);
        let pending = self.submit(vec![plan.started.clone().into()]).await.map_err(LeaseError::io)?;
        let intent_durable = AtomicBool::new(false);
        let gate = Box::pin(async {
            pending.durable().await.map_err(|e| e.to_string())?;
            intent_durable.store(true, Ordering::SeqCst);
            Ok(())
        });
        let user = NewUser {
            username: &username,
            password: plan.password.expose(),
            expiration: &plan.expiration,
            statements: &plan.creation_statements,
        };
        match plugin.create_user(user, gate).await {
            Ok(()) => Ok(Settled {
                outcome: vec![IssueCompleted { lease_id: lease_id.clone() }.into()],
                claims: claim.into_iter().collect(),
                value: Issued {
                    lease_id,
                    username,
                    password: plan.password,
                    lease_duration_s: plan.lease_duration_s,
                    renewable: plan.started.renewable,
                },
            }),
            Err(e) if !intent_durable.load(Ordering::SeqCst) => {
                // Rolled back before COMMIT: no user exists; the outcome says so.
                self.fail_issue_intent(&lease_id, &e).await;
                match e {
                    // The intent could not be made durable (disk full, I/O error):
                    // the log's failure, not the database's (I6).
                    PluginError::Aborted(cause) => Err(LeaseError::Io(cause)),
                    e => Err(e.into()),
                }
            }
            Err(e) => {
                // COMMIT's fate is unknown: the user may exist. Revoke it now (or
                // leave it to the revocation workers) — never leave it untracked (I2).
                drop(claim);
                let plan =
                    self.with_state(|s| s.leases.get(&lease_id).map(|l| plan_revoke(s, l, RevokeReason::Recovery)));
                if let Some(plan) = plan {
                    let _ = self.run_revoke(plan).await;
                }
                Err(e.into())
            }
        }
    }

    /// Records that an issue rolled back. The intent was enqueued first, so this
    /// outcome lands after it in the log even if the intent is not applied yet.
    async fn fail_issue_intent(&self, lease_id: &str, error: &PluginError) {
        let failed = IssueFailed { lease_id: lease_id.to_string(), error: error.to_string() };
        if let Err(e) = self.append(vec![failed.into()]).await {
            tracing::error!(error = %e, lease_id, "cannot record a failed issue; recovery will revoke it");
        }
    }
}
