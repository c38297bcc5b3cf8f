//! Compiled ACLs, cached by policy set: authorization parses a policy once per
//! change, not once per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::policy::{Acl, parse_policy};
use crate::event::Lsn;
use crate::state::State;

/// Compiled ACLs by sorted policy names, tagged with the policy LSN they were built
/// at; an entry older than the last policy change is rebuilt.
#[derive(Debug, Default)]
pub(crate) struct AclCache(Mutex<HashMap<PolicySet, (Lsn, Arc<Acl>)>>);

/// Sorted, deduplicated policy names.
type PolicySet = Vec<String>;

/// Distinct policy sets cached at once; past it the cache starts over (I7).
const ACL_CACHE_ENTRIES_MAX: usize = 4096;

impl AclCache {
    /// The compiled ACL of `policies` as `state` holds them now.
    pub(crate) fn acl_for(&self, state: &State, policies: &[String]) -> Arc<Acl> {
        let mut names = policies.to_vec();
        names.sort_unstable();
        names.dedup();
        let mut cache = self.0.lock().expect("ACL cache lock poisoned");
        if let Some((lsn, acl)) = cache.get(&names)
            && *lsn >= state.policies_changed_lsn
        {
            return acl.clone();
        }
        let parsed: Vec<_> = names
            .iter()
            .filter_map(|name| state.policies.get(name).map(|text| (name, text)))
            .filter_map(|(name, text)| match parse_policy(name, text) {
                Ok(p) => Some(p),
                Err(e) => {
                    // Validated when written; a policy this build cannot parse grants nothing.
                    tracing::warn!(policy = %name, error = %e, "stored policy does not parse; ignoring it");
                    None
                }
            })
            .collect();
        let acl = Arc::new(Acl::new(parsed.iter()));
        if cache.len() >= ACL_CACHE_ENTRIES_MAX {
            cache.clear();
        }
        cache.insert(names, (state.policies_changed_lsn, acl.clone()));
        acl
    }
}
