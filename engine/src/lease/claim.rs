//! Claims: one operation on a lease at a time.
//!
//! An issue, a renewal and a revocation each claim their lease for as long as
//! they run — and until their outcome is durable, which for a request is after
//! its reply (the outcome rides the next group commit) — so the expirer never
//! drops a role whose `CREATE` has not committed (I2), never revokes a lease
//! under a renewal it may have granted (I3), and two revocations never race
//! each other's `DROP ROLE`. A request that finds its lease claimed waits a
//! bounded time for the claim instead of failing at once: a caller that renews
//! or revokes right after its issue meets the riding outcome.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a request waits for another operation's claim on its lease before
/// answering "busy": a riding outcome's fsync, or a revocation's SQL.
pub(crate) const CLAIM_WAIT_MS_MAX: u64 = 5_000;

/// Lease ids claimed now, and a signal for those waiting on one.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    ids: Mutex<HashSet<String>>,
    released: tokio::sync::Notify,
}

/// The engine's claims, shared with the claims themselves.
pub(crate) type ClaimSet = Arc<Claims>;

impl Claims {
    /// The ids claimed now (for the expirer, which skips them).
    pub(crate) fn snapshot(&self) -> HashSet<String> {
        self.ids.lock().expect("claim lock poisoned").clone()
    }
}

/// A lease claimed for as long as this lives. Owned (not a borrow of the
/// engine), so a request can hold it until its outcome is durable.
pub(crate) struct Claim {
    set: ClaimSet,
    lease_id: String,
}

impl Claim {
    /// Claims `lease_id`, or `None` when another operation holds it.
    pub(crate) fn take(set: &ClaimSet, lease_id: &str) -> Option<Claim> {
        set.ids
            .lock()
            .expect("claim lock poisoned")
            .insert(lease_id.to_string())
            .then(|| Claim { set: set.clone(), lease_id: lease_id.to_string() })
    }

    /// Claims `lease_id`, waiting up to `wait` for another operation's claim
    /// on it to end; `None` if it is still held then.
    pub(crate) async fn take_waiting(set: &ClaimSet, lease_id: &str, wait: Duration) -> Option<Claim> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the attempt, so a release between the attempt
            // and the wait is not missed.
            let released = set.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Some(claim) = Claim::take(set, lease_id) {
                return Some(claim);
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Claim::take(set, lease_id);
            }
        }
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Claim").field(&self.lease_id).finish()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut ids) = self.set.ids.lock() {
            ids.remove(&self.lease_id);
        }
        self.set.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_claim_gets_the_lease_once_the_holder_lets_go() {
        let set = ClaimSet::default();
        let held = Claim::take(&set, "l1").unwrap();
        assert!(Claim::take(&set, "l1").is_none(), "a claimed lease was claimed twice");
        let waiter = {
            let set = set.clone();
            tokio::spawn(async move { Claim::take_waiting(&set, "l1", Duration::from_secs(60)).await.is_some() })
        };
        tokio::task::yield_now().await;
        drop(held);
        assert!(waiter.await.unwrap(), "the waiter did not get the released claim");
        assert!(set.snapshot().is_empty(), "the waiter's claim outlived it");
    }

    #[tokio::test]
    async fn a_claim_still_held_after_the_wait_is_refused() {
        let set = ClaimSet::default();
        let _held = Claim::take(&set, "l1").unwrap();
        assert!(Claim::take_waiting(&set, "l1", Duration::from_millis(50)).await.is_none());
        assert!(Claim::take_waiting(&set, "l2", Duration::from_millis(50)).await.is_some(), "another lease was busy");
    }
}
