//! Which wheel entry arms each lease: lease id → [`Key`].
//!
//! With a million armed leases a map of id handle → key costs 24 bytes a bucket.
//! This table stores only the slab index of each entry (4 bytes a bucket) and reads
//! the id and the key's generation from the wheel entry it names, so every index
//! in it must name a live entry: entries leave the table before, or (when fired)
//! right after, they leave the wheel.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;

use super::wheel::{Key, Wheel};
use crate::fxhash::FxBuild;

#[derive(Debug, Default)]
pub(crate) struct Armed {
    indices: HashTable<u32>,
}

fn hash(lease_id: &str) -> u64 {
    FxBuild::default().hash_one(lease_id)
}

impl Armed {
    pub(crate) fn with_capacity(capacity: usize) -> Armed {
        Armed { indices: HashTable::with_capacity(capacity) }
    }

    pub(crate) fn get(&self, wheel: &Wheel<Arc<str>>, lease_id: &str) -> Option<Key> {
        let index = self.indices.find(hash(lease_id), |&i| names(wheel, i, lease_id))?;
        wheel.at_index(*index).map(|(key, _)| key)
    }

    /// Records the live entry `key` as the one arming its lease, in place of any
    /// other (which stays in the wheel, unlisted, and is ignored when it fires).
    pub(crate) fn insert(&mut self, wheel: &Wheel<Arc<str>>, key: Key) {
        let (_, id) = wheel.at_index(key.index()).expect("a live wheel entry");
        let rehash = |&i: &u32| hash(&wheel.at_index(i).expect("armed entries are live").1[..]);
        match self.indices.entry(hash(id), |&i| names(wheel, i, id), rehash) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => *slot.get_mut() = key.index(),
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(key.index());
            }
        }
    }

    /// Forgets the entry arming `lease_id` while it is still in the wheel.
    pub(crate) fn remove(&mut self, wheel: &Wheel<Arc<str>>, lease_id: &str) {
        if let Ok(slot) = self.indices.find_entry(hash(lease_id), |&i| names(wheel, i, lease_id)) {
            slot.remove();
        }
    }

    /// Forgets `key`, an entry the wheel has just fired (its slot is free now).
    pub(crate) fn remove_fired(&mut self, lease_id: &str, key: Key) {
        if let Ok(slot) = self.indices.find_entry(hash(lease_id), |&i| i == key.index()) {
            slot.remove();
        }
    }
}

fn names(wheel: &Wheel<Arc<str>>, index: u32, lease_id: &str) -> bool {
    wheel.at_index(index).is_some_and(|(_, id)| **id == *lease_id)
}
