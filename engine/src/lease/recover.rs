//! Recovery: finishing what a crash interrupted, by the recovery table
//! (docs/DESIGN.md, "Recovery").

use super::{LeaseError, RevokePlan, plan_revoke};
use crate::Engine;
use crate::event::RevokeReason;
use crate::state::LeaseStatus;

/// What [`Engine::recover`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Root rotations settled.
    pub rotations: usize,
    /// Interrupted issues and revocations now revoked.
    pub revoked: usize,
    /// Revocations that failed again (recorded; the expirer retries them).
    pub revoke_failed: usize,
}

impl Engine {
    /// Finishes what a crash interrupted, by the recovery table: an issue intent
    /// without outcome is revoked (the caller never saw the password); a
    /// revocation in progress runs again (it is idempotent); a renewal without
    /// outcome keeps the old expiry (the fold already does); a root rotation finds
    /// the password that works. Call once after opening, before serving.
    /// Revocations that fail stay recorded and are retried by the expirer.
    pub async fn recover(&self) -> Result<Recovered, LeaseError> {
        let rotations = self.recover_rotations().await?;
        let plans: Vec<RevokePlan> = self.with_state(|s| {
            s.leases
                .values()
                .filter_map(|l| match l.status {
                    LeaseStatus::Issuing => Some(plan_revoke(s, l, RevokeReason::Recovery)),
                    LeaseStatus::Revoking(reason) => Some(plan_revoke(s, l, reason)),
                    LeaseStatus::Active => None,
                })
                .collect()
        });
        let mut recovered = Recovered { rotations, ..Recovered::default() };
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
