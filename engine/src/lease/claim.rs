//! Claims: one operation on a lease at a time.
//!
//! An issue, a renewal and a revocation each claim their lease for as long as
//! they run, so the expirer never drops a role whose `CREATE` has not committed
//! (I2), never revokes a lease under a renewal it may have granted (I3), and two
//! revocations never race each other's `DROP ROLE`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Lease ids claimed now.
pub(crate) type ClaimSet = Arc<Mutex<HashSet<String>>>;

/// A lease claimed for as long as this lives. Owned (not a borrow of the
/// engine), so a request can hold it until its outcome is durable.
pub(crate) struct Claim {
    set: ClaimSet,
    lease_id: String,
}

impl Claim {
    /// Claims `lease_id`, or `None` when another operation holds it.
    pub(crate) fn take(set: &ClaimSet, lease_id: &str) -> Option<Claim> {
        set.lock()
            .expect("claim lock poisoned")
            .insert(lease_id.to_string())
            .then(|| Claim { set: set.clone(), lease_id: lease_id.to_string() })
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Claim").field(&self.lease_id).finish()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.lease_id);
        }
    }
}
