//! Who may do what: keys derived from the master key, tokens, and ACL policies.
//!
//! Every request goes through one function, [`crate::Engine::request`]'s
//! authorization step, which resolves the token and checks its policies (a
//! compiled ACL). Public here: the master key and what is derived from it
//! ([`keys`]), and the root token secret [`crate::Engine::init`] returns
//! ([`tokens::TokenSecret`]); the policy parser and ACLs (`policy.rs`) are the
//! engine's own (public to test code with feature `testing`).

pub(crate) mod acl_cache;
pub mod keys;
internal! {
    mod policy;
}
pub mod tokens;

pub(crate) use acl_cache::AclCache;

/// What authorization keeps in an engine between requests.
#[derive(Debug, Default)]
pub(crate) struct AuthRuntime {
    /// Compiled ACLs by policy set.
    pub(crate) acls: AclCache,
    /// Serializes the spending of `num_uses` tokens, so two requests cannot
    /// share a token's last use.
    pub(crate) token_uses: tokio::sync::Mutex<()>,
}
