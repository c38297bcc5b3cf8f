//! Lease lifecycle in the fold: intent → outcome for issue, renew and revoke.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::State;
use crate::event::{
    IssueCompleted, IssueFailed, IssueStarted, LeaseIrrevocable, RenewCompleted, RenewFailed, RenewStarted,
    RevokeFailed, RevokeReason, RevokeStarted,
};

/// Where a lease is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseStatus {
    /// The intent is logged; the outcome is not. While the issue runs (under
    /// its claim) the caller has no password yet; once its COMMIT ran the caller
    /// may have it before the outcome is durable, so a crash leaves the lease
    /// live until its expiry (docs/DESIGN.md, "Recovery").
    Issuing,
    /// Issued; the caller holds the credential.
    Active,
    /// Revocation started and has not succeeded yet.
    Revoking(RevokeReason),
}

/// The engine's record of one credential. The `Arc`s are shared with other leases
/// (and the id with the table's key): see [`super::Leases`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub lease_id: Arc<str>,
    pub mount: Arc<str>,
    pub role: Arc<str>,
    pub connection: Arc<str>,
    pub username: Box<str>,
    /// Accessor of the owning token.
    pub accessor: Arc<str>,
    pub issue_time_ms: i64,
    pub expire_time_ms: i64,
    pub expire_time_max_ms: i64,
    pub last_renewal_time_ms: Option<i64>,
    pub renewable: bool,
    /// The statements in force when the lease was issued.
    pub revocation_statements: Arc<Vec<String>>,
    pub status: LeaseStatus,
    /// A renewal whose outcome is not logged yet: its target expiry, which
    /// holds ([`Lease::expire_time_effective_ms`]).
    pub renewing_to_ms: Option<i64>,
    pub revoke_attempts: u32,
    pub revoke_error: Option<Box<str>>,
    pub next_revoke_attempt_ms: Option<i64>,
    /// The retry budget is spent; still retried, listed and force-revocable.
    pub irrevocable: bool,
}

impl Lease {
    /// When the lease expires as far as any caller may have been told: the
    /// logged expiry, or a renewal's intent if that is later — its SQL may have
    /// run and its caller heard the new expiry before `RenewCompleted` became
    /// durable (docs/DESIGN.md, "Recovery"). The expirer and renewals go by it.
    pub fn expire_time_effective_ms(&self) -> i64 {
        self.renewing_to_ms.map_or(self.expire_time_ms, |to| to.max(self.expire_time_ms))
    }
}

pub(super) fn issue_started(state: &mut State, e: IssueStarted, ts: i64) {
    let leases = &mut state.leases;
    let lease = Lease {
        lease_id: Arc::from(e.lease_id),
        mount: leases.share(e.mount),
        role: leases.share(e.role),
        connection: leases.share(e.connection),
        username: e.username.into_boxed_str(),
        accessor: leases.share(e.accessor),
        issue_time_ms: ts,
        expire_time_ms: e.expire_time_ms,
        expire_time_max_ms: e.expire_time_max_ms,
        last_renewal_time_ms: None,
        renewable: e.renewable,
        revocation_statements: leases.share_statements(e.revocation_statements),
        status: LeaseStatus::Issuing,
        renewing_to_ms: None,
        revoke_attempts: 0,
        revoke_error: None,
        next_revoke_attempt_ms: None,
        irrevocable: false,
    };
    // Total fold: even a lease on a retired connection (no request makes one) is
    // counted, so the connection it is revoked through stays.
    if !state.retired_users.is_empty()
        && let Some(users) = state.retired_users.get_mut(&(lease.mount.to_string(), lease.connection.to_string()))
    {
        *users += 1;
    }
    leases.insert(lease);
}

pub(super) fn issue_completed(state: &mut State, e: IssueCompleted) {
    if let Some(lease) = state.leases.get_mut(&e.lease_id)
        && lease.status == LeaseStatus::Issuing
    {
        lease.status = LeaseStatus::Active;
    }
}

/// The creation transaction rolled back: no user exists, nothing to revoke.
pub(super) fn issue_failed(state: &mut State, e: IssueFailed) {
    if state.leases.get(e.lease_id.as_str()).is_some_and(|l| l.status == LeaseStatus::Issuing) {
        forget(state, &e.lease_id);
    }
}

pub(super) fn renew_started(state: &mut State, e: RenewStarted) {
    if let Some(lease) = state.leases.get_mut(&e.lease_id) {
        lease.renewing_to_ms = Some(e.expire_time_ms);
    }
}

pub(super) fn renew_completed(state: &mut State, e: RenewCompleted, ts: i64) {
    if let Some(lease) = state.leases.get_mut(&e.lease_id) {
        lease.expire_time_ms = e.expire_time_ms;
        lease.last_renewal_time_ms = Some(ts);
        lease.renewing_to_ms = None;
    }
}

/// A failed renewal keeps the old expiry (the caller never got the new TTL).
pub(super) fn renew_failed(state: &mut State, e: RenewFailed) {
    if let Some(lease) = state.leases.get_mut(&e.lease_id) {
        lease.renewing_to_ms = None;
    }
}

pub(super) fn revoke_started(state: &mut State, e: RevokeStarted) {
    if let Some(lease) = state.leases.get_mut(&e.lease_id) {
        // The first reason sticks: a lease revoked by its token and then found
        // expired was still revoked because of the token.
        if !matches!(lease.status, LeaseStatus::Revoking(_)) {
            lease.status = LeaseStatus::Revoking(e.reason);
        }
    }
}

pub(super) fn revoke_failed(state: &mut State, e: RevokeFailed) {
    if let Some(lease) = state.leases.get_mut(&e.lease_id) {
        lease.revoke_attempts = lease.revoke_attempts.max(e.attempt);
        lease.revoke_error = Some(e.error.into_boxed_str());
        lease.next_revoke_attempt_ms = Some(e.next_attempt_time_ms);
    }
}

pub(super) fn irrevocable(state: &mut State, e: LeaseIrrevocable) {
    if let Some(lease) = state.leases.get_mut(&e.lease_id) {
        lease.irrevocable = true;
        lease.revoke_attempts = lease.revoke_attempts.max(e.attempts);
        lease.revoke_error = Some(e.error.into_boxed_str());
    }
}

/// The lease is gone (revoked, forced, or its issue failed); a retired
/// connection goes with the last lease using it.
pub(super) fn forget(state: &mut State, lease_id: &str) {
    let Some(lease) = state.leases.remove(lease_id) else { return };
    if state.retired_users.is_empty() {
        return;
    }
    let key = (lease.mount.to_string(), lease.connection.to_string());
    if let Some(users) = state.retired_users.get_mut(&key) {
        if *users <= 1 {
            state.retired_users.remove(&key);
            state.retired_connections.remove(&key);
        } else {
            *users -= 1;
        }
    }
}
