//! The lease table: lease id → lease, laid out for a million live leases.
//!
//! Leases differ mostly in id, username and times; mount, role, connection, the
//! owning token's accessor and the revocation statements repeat across thousands of
//! them. Each distinct value is held once, shared through [`Interner`], and the
//! lease id is one allocation shared by the map key, the lease and the expirer.
//! Sharing is invisible to encoding (an `Arc<str>` encodes as its `str`), so
//! snapshots and [`State::digest`](super::State::digest) are the bytes an unshared
//! table would give.
//!
//! Leases are boxed: a `BTreeMap` node has 11 slots, and filled in key order (as
//! replay and snapshot decoding do) it splits leaving 6 of them used, so a large
//! inline value would leave almost half of every node empty.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Lease, LeaseStatus};
use crate::fxhash::FxBuild;

/// Lease id → lease. Reads go through `Deref` to the map; writes through the
/// methods here, so every stored string is shared.
#[derive(Clone, Default)]
pub struct Leases {
    map: BTreeMap<Arc<str>, Box<Lease>>,
    interner: Interner,
}

impl std::ops::Deref for Leases {
    type Target = BTreeMap<Arc<str>, Box<Lease>>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<'a> IntoIterator for &'a Leases {
    type Item = (&'a Arc<str>, &'a Box<Lease>);
    type IntoIter = std::collections::btree_map::Iter<'a, Arc<str>, Box<Lease>>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl fmt::Debug for Leases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.map.fmt(f)
    }
}

/// The interner is a cache: two tables with the same leases are equal.
impl PartialEq for Leases {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl Eq for Leases {}

impl<Q: AsRef<str> + ?Sized> std::ops::Index<&Q> for Leases {
    type Output = Lease;

    fn index(&self, lease_id: &Q) -> &Lease {
        self.get(lease_id.as_ref()).expect("no lease with this id")
    }
}

impl Leases {
    /// The lease with this id. (Shadows the map's `get`, which would hand out the box.)
    pub fn get(&self, lease_id: &str) -> Option<&Lease> {
        self.map.get(lease_id).map(|l| &**l)
    }

    pub fn contains_key(&self, lease_id: &str) -> bool {
        self.map.contains_key(lease_id)
    }

    /// Every lease, in id order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Lease> + ExactSizeIterator {
        self.map.values().map(|l| &**l)
    }

    /// The shared copy of `s`.
    pub(crate) fn share(&mut self, s: String) -> Arc<str> {
        self.interner.str(s)
    }

    /// The shared copy of a list of statements.
    pub(crate) fn share_statements(&mut self, statements: Vec<String>) -> Arc<Vec<String>> {
        self.interner.statements(statements)
    }

    /// Inserts `lease` under its id, replacing any lease with that id.
    pub(crate) fn insert(&mut self, lease: Lease) {
        self.map.insert(lease.lease_id.clone(), Box::new(lease));
    }

    pub(crate) fn get_mut(&mut self, lease_id: &str) -> Option<&mut Lease> {
        self.map.get_mut(lease_id).map(|l| &mut **l)
    }

    pub(crate) fn remove(&mut self, lease_id: &str) -> Option<Box<Lease>> {
        self.map.remove(lease_id)
    }
}

/// Equal strings (and statement lists) handed out as one `Arc`. Values no lease
/// holds any more are swept once the tables have doubled since the last sweep, so
/// the interner stays proportional to what is live at amortised O(1) per insert.
#[derive(Clone, Default)]
struct Interner {
    strs: HashSet<Arc<str>, FxBuild>,
    statements: HashSet<Arc<Vec<String>>, FxBuild>,
    /// Entries left by the last sweep.
    kept: usize,
}

/// Entries below which the interner is never swept.
const INTERNER_SWEEP_FLOOR: usize = 1024;

impl Interner {
    fn str(&mut self, s: String) -> Arc<str> {
        if let Some(shared) = self.strs.get(s.as_str()) {
            return shared.clone();
        }
        self.sweep_if_grown();
        let shared: Arc<str> = Arc::from(s);
        self.strs.insert(shared.clone());
        shared
    }

    fn statements(&mut self, statements: Vec<String>) -> Arc<Vec<String>> {
        if let Some(shared) = self.statements.get(&statements) {
            return shared.clone();
        }
        self.sweep_if_grown();
        let shared = Arc::new(statements);
        self.statements.insert(shared.clone());
        shared
    }

    fn sweep_if_grown(&mut self) {
        let len = self.strs.len() + self.statements.len();
        if len < INTERNER_SWEEP_FLOOR.max(2 * self.kept) {
            return;
        }
        // Only the interner's own reference left: no lease uses it.
        self.strs.retain(|s| Arc::strong_count(s) > 1);
        self.statements.retain(|s| Arc::strong_count(s) > 1);
        self.kept = self.strs.len() + self.statements.len();
    }
}

impl Serialize for Leases {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.map.iter())
    }
}

/// A lease as encoded: owned strings, shared as the table is rebuilt. Its fields
/// are [`Lease`]'s, in the same order.
#[derive(Deserialize)]
struct LeaseWire {
    lease_id: String,
    mount: String,
    role: String,
    connection: String,
    username: String,
    accessor: String,
    issue_time_ms: i64,
    expire_time_ms: i64,
    expire_time_max_ms: i64,
    last_renewal_time_ms: Option<i64>,
    renewable: bool,
    revocation_statements: Vec<String>,
    status: LeaseStatus,
    renewing_to_ms: Option<i64>,
    revoke_attempts: u32,
    revoke_error: Option<String>,
    next_revoke_attempt_ms: Option<i64>,
    irrevocable: bool,
}

impl<'de> Deserialize<'de> for Leases {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor;

        impl<'de> Visitor<'de> for TableVisitor {
            type Value = Leases;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of lease id to lease")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Leases, A::Error> {
                let mut table = Leases::default();
                while let Some((key, w)) = access.next_entry::<String, LeaseWire>()? {
                    // The key is the lease's own id: one allocation serves both.
                    drop(w.lease_id);
                    let lease = Lease {
                        lease_id: Arc::from(key),
                        mount: table.share(w.mount),
                        role: table.share(w.role),
                        connection: table.share(w.connection),
                        username: w.username.into_boxed_str(),
                        accessor: table.share(w.accessor),
                        issue_time_ms: w.issue_time_ms,
                        expire_time_ms: w.expire_time_ms,
                        expire_time_max_ms: w.expire_time_max_ms,
                        last_renewal_time_ms: w.last_renewal_time_ms,
                        renewable: w.renewable,
                        revocation_statements: table.share_statements(w.revocation_statements),
                        status: w.status,
                        renewing_to_ms: w.renewing_to_ms,
                        revoke_attempts: w.revoke_attempts,
                        revoke_error: w.revoke_error.map(String::into_boxed_str),
                        next_revoke_attempt_ms: w.next_revoke_attempt_ms,
                        irrevocable: w.irrevocable,
                    };
                    table.insert(lease);
                }
                Ok(table)
            }
        }

        deserializer.deserialize_map(TableVisitor)
    }
}
