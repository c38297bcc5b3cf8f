//! Tokens in the fold. Revoking a token revokes its descendants in the same step,
//! so a crash can never leave half a token tree alive.

use serde::{Deserialize, Serialize};

use super::State;
use crate::event::{TokenCreated, TokenRenewed, TokenRevoked, TokenUsed};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub accessor: String,
    /// Keyed hash of the secret; the secret itself is never stored (I5).
    pub token_hash: [u8; 32],
    pub parent_accessor: Option<String>,
    pub policies: Vec<String>,
    pub display_name: String,
    pub creation_time_ms: i64,
    pub ttl_ms: u64,
    pub explicit_max_ttl_ms: u64,
    pub expire_time_ms: Option<i64>,
    pub renewable: bool,
    /// 0 = unlimited.
    pub num_uses: u32,
    pub uses: u32,
}

pub(super) fn created(state: &mut State, e: TokenCreated, ts: i64) {
    // A child whose parent is already gone would outlive it: it is not created.
    if e.parent_accessor.as_ref().is_some_and(|p| !state.tokens.contains_key(p)) {
        return;
    }
    let token = Token {
        accessor: e.accessor,
        token_hash: e.token_hash,
        parent_accessor: e.parent_accessor,
        policies: e.policies,
        display_name: e.display_name,
        creation_time_ms: ts,
        ttl_ms: e.ttl_ms,
        explicit_max_ttl_ms: e.explicit_max_ttl_ms,
        expire_time_ms: e.expire_time_ms,
        renewable: e.renewable,
        num_uses: e.num_uses,
        uses: 0,
    };
    if let Some(old) = state.tokens.get(&token.accessor) {
        state.token_index.remove(&old.token_hash);
    }
    state.token_index.insert(token.token_hash, token.accessor.clone());
    state.tokens.insert(token.accessor.clone(), token);
}

pub(super) fn renewed(state: &mut State, e: TokenRenewed) {
    if let Some(t) = state.tokens.get_mut(&e.accessor) {
        t.expire_time_ms = Some(e.expire_time_ms);
    }
}

pub(super) fn used(state: &mut State, e: TokenUsed) {
    if let Some(t) = state.tokens.get_mut(&e.accessor) {
        t.uses = t.uses.saturating_add(1);
    }
}

pub(super) fn revoked(state: &mut State, e: TokenRevoked) {
    let Some(token) = state.tokens.remove(&e.accessor) else { return };
    state.token_index.remove(&token.token_hash);
    if e.orphan_children {
        for t in state.tokens.values_mut() {
            if t.parent_accessor.as_deref() == Some(e.accessor.as_str()) {
                t.parent_accessor = None;
            }
        }
        return;
    }
    // Breadth-first over the tree below the revoked token.
    let mut doomed = vec![e.accessor.clone()];
    while let Some(parent) = doomed.pop() {
        let children: Vec<String> = state
            .tokens
            .values()
            .filter(|t| t.parent_accessor.as_deref() == Some(parent.as_str()))
            .map(|t| t.accessor.clone())
            .collect();
        for child in children {
            if let Some(t) = state.tokens.remove(&child) {
                state.token_index.remove(&t.token_hash);
            }
            doomed.push(child);
        }
    }
}
