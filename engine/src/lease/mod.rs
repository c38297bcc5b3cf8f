//! The lifecycle of a lease, apart from the requests that start it: plans
//! (what an issue, renewal, revocation or root rotation will do, decided under
//! the state lock), claims (one operation on a lease at a time), running each
//! against its database plugin, and recovery of what a crash interrupted.
//! `request/` plans and runs these for callers; `expiry/` runs revocations when
//! leases expire. Neither holds any of the protocol itself.
//!
//! The crash-safety protocol (docs/DESIGN.md, "The write path", invariants
//! I1–I3): every database effect has a durable intent before it becomes visible
//! — an issue's `CREATE ROLE` commits only once `IssueStarted` is durable (the
//! [`crate::plugin::CommitGate`]); a revocation's `DROP ROLE` runs after
//! `RevokeStarted`; a rotation's `ALTER ROLE` after `RotateRootStarted`, which
//! carries both passwords sealed. [`Engine::recover`](crate::Engine::recover)
//! finishes every intent left without an outcome, by the recovery table.

mod claim;
mod error;
mod issue;
mod plan;
mod plugins;
mod recover;
mod renew;
mod revoke;
mod rotate;

use std::sync::Mutex;

use crate::event::Event;

pub(crate) use claim::{CLAIM_WAIT_MS_MAX, Claim, ClaimSet};
pub use error::LeaseError;
pub(crate) use plan::{
    Asked, IssuePlan, RenewPlan, RevokePlan, RotatePlan, lease_for_revoke, plan_issue, plan_renew, plan_revoke,
    plan_rotate_root,
};
pub(crate) use plugins::PluginRegistry;
pub use recover::Recovered;

/// A lease operation run up to its outcome, in the one shape every mutating
/// operation returns: what it produced, the `outcome` events that record it, and
/// the `claims` that keep every other operation off its leases until those
/// events are durable. The caller appends the outcome with its own records (a
/// request's audit record): one fsync for both, and the reply waits for it.
#[must_use = "the outcome must be appended, and the claims held until it is durable"]
#[derive(Debug)]
pub(crate) struct Settled<T> {
    pub(crate) value: T,
    pub(crate) outcome: Vec<Event>,
    pub(crate) claims: Vec<Claim>,
}

impl<T> Settled<T> {
    /// Appends the outcome, holding the claims until it is durable (for callers
    /// with nothing of their own to append: the expirer, recovery).
    pub(crate) async fn append(self, engine: &crate::Engine) -> Result<T, LeaseError> {
        let Settled { value, outcome, claims } = self;
        let appended = engine.append(outcome).await.map_err(LeaseError::io);
        drop(claims);
        appended.map(|_| value)
    }
}

/// Vault's system default and maximum lease TTL: 768h.
pub(crate) const LEASE_TTL_MS_SYSTEM: u64 = 768 * 3_600_000;
/// Characters of randomness in a lease id.
pub(crate) const LEASE_ID_RANDOM_CHARS: usize = 24;
/// `{{expiration}}` is the lease's expiry plus this (Vault's margin).
pub(crate) const EXPIRATION_MARGIN_MS: i64 = 5_000;

/// What the lifecycle owns inside an engine: the live plugins and the claims.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    /// Database plugins by connection, with the configuration they were built from.
    pub(crate) plugins: Mutex<PluginRegistry>,
    /// Leases with an issue, renewal or revocation running now.
    pub(crate) claims: ClaimSet,
    /// Plugins from here instead of PostgreSQL (fault injection in tests).
    pub(crate) plugin_factory: Option<crate::plugin::PluginFactory>,
}

impl Lifecycle {
    pub(crate) fn new(plugin_factory: Option<crate::plugin::PluginFactory>) -> Lifecycle {
        Lifecycle { plugin_factory, ..Lifecycle::default() }
    }
}
