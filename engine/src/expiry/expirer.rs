//! The expirer: every live lease is armed in the wheel at its expiry (or, while a
//! revocation is being retried, at its next attempt); what falls due is revoked,
//! a bounded number at a time per connection.
//!
//! The expirer learns of lease changes from the log's durable sink (a bounded list
//! of lease ids; past its bound it rebuilds from the state), so it never scans the
//! state on a tick. Failed revocations back off exponentially (capped); after the
//! retry budget the lease is marked irrevocable — listed and counted — and still
//! retried at the capped interval, so an outage ends with every lease revoked.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::armed::Armed;
use super::wheel::{Expired, Wheel};
use crate::Engine;
use crate::event::{LeaseIrrevocable, RevokeReason};
use crate::lease::{LeaseError, RevokePlan, plan_revoke};
use crate::state::{Lease, LeaseStatus, MountKey, State};

/// How the expirer paces itself. Every number is a bound (I7).
#[derive(Clone, Debug)]
pub struct ExpiryOptions {
    /// Wheel resolution: a lease is revoked at most this long after it expires
    /// (plus the revocation itself).
    pub tick_ms: u64,
    /// Revocations running at once against one connection.
    pub revocations_per_connection_max: usize,
    /// Leases handled per [`Engine::expire_due`] call.
    pub fire_batch_max: usize,
    /// Failed attempts before a lease is marked irrevocable (Vault: 6).
    pub revoke_attempts_budget: u32,
    /// Delay before the second attempt; doubles per attempt.
    pub retry_ms_first: u64,
    /// Cap of that delay; irrevocable leases are retried at this interval.
    pub retry_ms_max: u64,
    /// Live leases the whole engine may hold (0 = no limit): a crash-looping
    /// client cannot create users without bound.
    pub lease_count_max: u64,
}

impl Default for ExpiryOptions {
    fn default() -> Self {
        ExpiryOptions {
            tick_ms: 1_000,
            revocations_per_connection_max: 4,
            fire_batch_max: 4_096,
            revoke_attempts_budget: 6,
            retry_ms_first: 20_000,
            retry_ms_max: 320_000,
            lease_count_max: 1_000_000,
        }
    }
}

impl ExpiryOptions {
    /// Delay after failed attempt number `attempt` (1-based), with ±10% jitter.
    pub(crate) fn backoff_ms(&self, attempt: u32) -> u64 {
        let doubled = self.retry_ms_first.saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
        let base = doubled.min(self.retry_ms_max);
        let mut b = [0u8; 1];
        let _ = getrandom::fill(&mut b);
        let jitter = base / 10;
        base - jitter + (jitter * 2 * u64::from(b[0]) / 255)
    }
}

/// Lease ids whose state changed since the expirer last looked.
#[derive(Debug, Default)]
pub(crate) struct LeaseChanges {
    ids: Vec<String>,
    /// Too many changes to list: the expirer rebuilds from the state instead.
    overflow: bool,
}

/// Changes listed before the expirer falls back to a rebuild.
pub(crate) const LEASE_CHANGES_MAX: usize = 100_000;

impl LeaseChanges {
    pub(crate) fn push(&mut self, lease_id: &str) {
        if self.overflow {
            return;
        }
        if self.ids.len() >= LEASE_CHANGES_MAX {
            self.overflow = true;
            self.ids = Vec::new();
            return;
        }
        self.ids.push(lease_id.to_string());
    }
}

/// When a lease next needs the expirer.
fn deadline(lease: &Lease) -> i64 {
    match lease.status {
        LeaseStatus::Active | LeaseStatus::Issuing => lease.expire_time_effective_ms(),
        // A revocation in progress: at its next attempt (now, if none failed yet).
        LeaseStatus::Revoking(_) => lease.next_revoke_attempt_ms.unwrap_or(i64::MIN),
    }
}

#[derive(Debug)]
pub(crate) struct ExpirerState {
    /// Lease ids are shared between the wheel and the index: one allocation each.
    wheel: Wheel<Arc<str>>,
    armed: Armed,
    synced: bool,
    semaphores: HashMap<MountKey, Arc<Semaphore>>,
}

impl ExpirerState {
    pub(crate) fn new(now_ms: i64, tick_ms: u64) -> ExpirerState {
        ExpirerState {
            wheel: Wheel::new(now_ms, tick_ms),
            armed: Armed::default(),
            synced: false,
            semaphores: HashMap::new(),
        }
    }

    /// Arms `lease_id` at `deadline_ms`, sharing the state's copy of the id when
    /// the lease is live.
    fn insert(&mut self, deadline_ms: i64, lease_id: &str, state: &State) {
        let id = state.leases.get_key_value(lease_id).map_or_else(|| Arc::from(lease_id), |(id, _)| id.clone());
        self.insert_shared(deadline_ms, id);
    }

    fn insert_shared(&mut self, deadline_ms: i64, id: Arc<str>) {
        let key = self.wheel.insert(deadline_ms, id);
        self.armed.insert(&self.wheel, key);
    }

    fn arm(&mut self, state: &State, lease_id: &str) {
        match (state.leases.get_key_value(lease_id), self.armed.get(&self.wheel, lease_id)) {
            (Some((_, lease)), Some(key)) => {
                if !self.wheel.reset(key, deadline(lease)) {
                    self.insert(deadline(lease), lease_id, state);
                }
            }
            (Some((id, lease)), None) => self.insert_shared(deadline(lease), id.clone()),
            (None, Some(key)) => {
                self.armed.remove(&self.wheel, lease_id);
                self.wheel.cancel(key);
            }
            (None, None) => {}
        }
    }

    fn sync(&mut self, state: &State, changes: LeaseChanges, now_ms: i64) {
        if !self.synced || changes.overflow {
            // Start-up (every live lease re-armed; the overdue ones fire at once)
            // or too many changes to list.
            self.wheel = Wheel::with_capacity(now_ms, self.wheel.tick_ms(), state.leases.len());
            self.armed = Armed::with_capacity(state.leases.len());
            for (id, lease) in &state.leases {
                self.insert_shared(deadline(lease), id.clone());
            }
            self.synced = true;
            return;
        }
        for id in changes.ids {
            self.arm(state, &id);
        }
    }

    fn semaphore(&mut self, key: MountKey, permits: usize) -> Arc<Semaphore> {
        self.semaphores.entry(key).or_insert_with(|| Arc::new(Semaphore::new(permits.max(1)))).clone()
    }
}

/// What one [`Engine::expire_due`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    pub revoked: usize,
    pub failed: usize,
    /// Leases newly marked irrevocable.
    pub irrevocable: usize,
    /// More leases are due than one call handles.
    pub more_due: bool,
}

impl Engine {
    /// Revokes every lease due at the engine clock's now (at most
    /// `fire_batch_max` per call). Deterministic under a manual clock; the
    /// background loop ([`crate::Expirer`], which a [`crate::Host`] runs) calls
    /// it every tick.
    pub async fn expire_due(self: &Arc<Self>) -> Result<ExpiryReport, LeaseError> {
        let now = self.clock().now_ms();
        let options = self.expiry_options().clone();
        let changes = self.take_lease_changes();
        let (due, more_due) = {
            let mut expirer = self.expirer.lock().expect("expirer lock poisoned");
            self.with_state(|s| expirer.sync(s, changes, now));
            let mut out: Vec<Expired<Arc<str>>> = Vec::new();
            expirer.wheel.advance(now, &mut out, options.fire_batch_max);
            for e in &out {
                expirer.armed.remove_fired(&e.value, e.key);
            }
            (out.into_iter().map(|e| e.value.to_string()).collect::<Vec<_>>(), expirer.wheel.needs_advance(now))
        };
        let in_flight = self.lifecycle.claims.snapshot();
        let mut busy = Vec::new();
        let plans: Vec<RevokePlan> = self.with_state(|s| {
            due.iter()
                .filter_map(|id| {
                    let lease = s.leases.get(id.as_str())?;
                    if in_flight.contains(id) {
                        // Someone is revoking it right now; look again next tick.
                        busy.push(id.clone());
                        return None;
                    }
                    match lease.status {
                        LeaseStatus::Active if lease.expire_time_effective_ms() <= now => {
                            Some(plan_revoke(s, lease, RevokeReason::Expired))
                        }
                        LeaseStatus::Issuing if lease.expire_time_effective_ms() <= now => {
                            Some(plan_revoke(s, lease, RevokeReason::Recovery))
                        }
                        LeaseStatus::Revoking(reason) if deadline(lease) <= now => Some(plan_revoke(s, lease, reason)),
                        // Renewed or rescheduled meanwhile: its change re-arms it.
                        _ => None,
                    }
                })
                .collect()
        });
        if !busy.is_empty() {
            let mut expirer = self.expirer.lock().expect("expirer lock poisoned");
            self.with_state(|s| {
                for id in busy {
                    expirer.insert(now + options.tick_ms as i64, &id, s);
                }
            });
        }
        let mut tasks = tokio::task::JoinSet::new();
        for plan in plans {
            let semaphore = self.expirer.lock().expect("expirer lock poisoned").semaphore(
                (plan.lease.mount.to_string(), plan.lease.connection.to_string()),
                options.revocations_per_connection_max,
            );
            let engine = Arc::clone(self);
            tasks.spawn(async move {
                let _permit = semaphore.acquire_owned().await;
                let lease = plan.lease.clone();
                (lease, engine.run_revoke(plan).await)
            });
        }
        let mut report = ExpiryReport { more_due, ..ExpiryReport::default() };
        while let Some(joined) = tasks.join_next().await {
            let (lease, result) = joined.map_err(|e| LeaseError::Io(format!("revocation task failed: {e}")))?;
            match result {
                Ok(()) => report.revoked += 1,
                Err(LeaseError::Io(e)) => return Err(LeaseError::Io(e)),
                Err(LeaseError::Busy(_)) => {
                    // A renewal or revocation claimed it meanwhile: look again next
                    // tick (its outcome re-arms it too, but it may have none).
                    let at = now + options.tick_ms as i64;
                    self.expirer.lock().expect("expirer lock poisoned").insert_shared(at, lease.lease_id.clone());
                }
                Err(e) => {
                    report.failed += 1;
                    let attempts = lease.revoke_attempts + 1;
                    if attempts >= options.revoke_attempts_budget && !lease.irrevocable {
                        let event =
                            LeaseIrrevocable { lease_id: lease.lease_id.to_string(), attempts, error: e.to_string() };
                        self.append(vec![event.into()]).await.map_err(|e| LeaseError::Io(e.to_string()))?;
                        report.irrevocable += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}
