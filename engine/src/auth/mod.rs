//! Who may do what: keys derived from the master key, tokens, and ACL policies.
//!
//! Every request goes through one function, [`crate::Engine::request`]'s
//! authorization step, which resolves the token ([`tokens`]) and checks its
//! policies ([`policy::Acl`]).

pub mod keys;
pub mod policy;
pub mod tokens;
