//! Who may do what: keys derived from the master key, tokens, and ACL policies.
//!
//! Every request goes through one function, [`crate::Engine::request`]'s
//! authorization step, which resolves the token ([`tokens`]) and checks its
//! policies ([`policy::Acl`]).

pub(crate) mod acl_cache;
pub mod keys;
pub mod policy;
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
