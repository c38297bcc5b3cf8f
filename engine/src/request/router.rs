//! Paths to handlers. The route also says which capability a request needs, so the
//! one authorization check in the pipeline has everything it needs.

use super::{Operation, RequestError};
use crate::auth::policy::Capabilities;
use crate::state::State;

/// Longest request path accepted, in bytes.
pub(super) const PATH_BYTES_MAX: usize = 512;

/// Where a request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Route {
    /// `sys/mounts`
    Mounts,
    /// `sys/mounts/<path>`; the mount path is normalized with a trailing `/`.
    Mount(String),
    /// `sys/mounts/<path>/tune`
    MountTune(String),
    /// `sys/policy`, `sys/policies/acl`
    Policies(PolicyApi),
    /// `sys/policy/<name>`, `sys/policies/acl/<name>`
    Policy(String, PolicyApi),
    /// `auth/token/<verb>`
    Token(TokenVerb),
    /// `sys/leases` (list, `type=irrevocable`)
    Leases,
    /// `sys/leases/lookup` (update) or `sys/leases/lookup/<prefix>` (list)
    LeaseLookup(Option<String>),
    /// `sys/leases/renew`
    LeaseRenew,
    /// `sys/leases/revoke` (the lease id in `lease_id`) or
    /// `sys/leases/revoke/<lease_id>`.
    LeaseRevoke(Option<String>),
    /// `sys/leases/revoke-prefix/<prefix>`
    LeaseRevokePrefix(String),
    /// `sys/leases/revoke-force/<prefix>`
    LeaseRevokeForce(String),
    /// `sys/capabilities-self`, `sys/capabilities`, `sys/capabilities-accessor`
    Capabilities(CapabilitiesOf),
    /// Anything under an enabled database mount: `<mount>/<rest>`.
    Database { mount: String, rest: String },
}

/// Which of Vault's two policy paths a request came by: they differ only in
/// the names of their reply fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PolicyApi {
    /// `sys/policies/acl`: a read answers `policy`, a list `keys`.
    Acl,
    /// The legacy `sys/policy` (hvac's): a read answers `rules`, a list `keys`
    /// and `policies`, and a write may send `rules` for `policy`.
    Legacy,
}

/// Whose capabilities a `sys/capabilities*` request asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CapabilitiesOf {
    /// `sys/capabilities-self`: the calling token's.
    Caller,
    /// `sys/capabilities`: the token given in `token`.
    Token,
    /// `sys/capabilities-accessor`: the token named by `accessor`.
    Accessor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenVerb {
    Create,
    CreateOrphan,
    Lookup,
    LookupSelf,
    LookupAccessor,
    Renew,
    RenewSelf,
    RenewAccessor,
    Revoke,
    RevokeSelf,
    RevokeAccessor,
    RevokeOrphan,
    Accessors,
}

/// Checks a request path's shape: no leading `/` (one is removed), no empty or
/// `.`/`..` segments, printable ASCII, bounded length.
pub(super) fn normalize_path(path: &str) -> Result<String, RequestError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    if path.is_empty() {
        return Err(RequestError::invalid("path is empty: give a path such as \"sys/mounts\""));
    }
    if path.len() > PATH_BYTES_MAX {
        return Err(RequestError::invalid(format!("path is {} bytes; at most {PATH_BYTES_MAX}", path.len())));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RequestError::invalid("path may contain only printable ASCII characters without spaces"));
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(RequestError::invalid(format!(
            "path \"{path}\" has an empty, \".\" or \"..\" segment; write each segment once"
        )));
    }
    Ok(path.to_string())
}

fn no_route(path: &str) -> RequestError {
    RequestError::not_found(format!("no handler for route \"{path}\"; see the paths in the README"))
}

/// Finds the route of a normalized path.
pub(super) fn route(path: &str, state: &State) -> Result<Route, RequestError> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed == "sys/mounts" {
        return Ok(Route::Mounts);
    }
    if let Some(rest) = trimmed.strip_prefix("sys/mounts/") {
        if let Some(mount) = rest.strip_suffix("/tune") {
            return Ok(Route::MountTune(format!("{mount}/")));
        }
        return Ok(Route::Mount(format!("{rest}/")));
    }
    if trimmed == "sys/policy" {
        return Ok(Route::Policies(PolicyApi::Legacy));
    }
    if trimmed == "sys/policies/acl" {
        return Ok(Route::Policies(PolicyApi::Acl));
    }
    if let Some(name) = trimmed.strip_prefix("sys/policy/") {
        return Ok(Route::Policy(name.to_string(), PolicyApi::Legacy));
    }
    if let Some(name) = trimmed.strip_prefix("sys/policies/acl/") {
        return Ok(Route::Policy(name.to_string(), PolicyApi::Acl));
    }
    if let Some(verb) = trimmed.strip_prefix("auth/token/") {
        let verb = match verb {
            "create" => TokenVerb::Create,
            "create-orphan" => TokenVerb::CreateOrphan,
            "lookup" => TokenVerb::Lookup,
            "lookup-self" => TokenVerb::LookupSelf,
            "lookup-accessor" => TokenVerb::LookupAccessor,
            "renew" => TokenVerb::Renew,
            "renew-self" => TokenVerb::RenewSelf,
            "renew-accessor" => TokenVerb::RenewAccessor,
            "revoke" => TokenVerb::Revoke,
            "revoke-self" => TokenVerb::RevokeSelf,
            "revoke-accessor" => TokenVerb::RevokeAccessor,
            "revoke-orphan" => TokenVerb::RevokeOrphan,
            "accessors" => TokenVerb::Accessors,
            _ => return Err(no_route(path)),
        };
        return Ok(Route::Token(verb));
    }
    match trimmed {
        "sys/capabilities-self" => return Ok(Route::Capabilities(CapabilitiesOf::Caller)),
        "sys/capabilities" => return Ok(Route::Capabilities(CapabilitiesOf::Token)),
        "sys/capabilities-accessor" => return Ok(Route::Capabilities(CapabilitiesOf::Accessor)),
        _ => {}
    }
    if trimmed == "sys/leases" {
        return Ok(Route::Leases);
    }
    if trimmed == "sys/leases/lookup" {
        return Ok(Route::LeaseLookup(None));
    }
    if let Some(prefix) = path.strip_prefix("sys/leases/lookup/") {
        return Ok(Route::LeaseLookup(Some(prefix.to_string())));
    }
    if trimmed == "sys/leases/renew" || trimmed == "sys/renew" {
        return Ok(Route::LeaseRenew);
    }
    if trimmed == "sys/leases/revoke" || trimmed == "sys/revoke" {
        return Ok(Route::LeaseRevoke(None));
    }
    if let Some(id) = path.strip_prefix("sys/leases/revoke/").or_else(|| path.strip_prefix("sys/revoke/")) {
        return Ok(Route::LeaseRevoke(Some(id.to_string())));
    }
    if let Some(prefix) = path.strip_prefix("sys/leases/revoke-prefix/") {
        return Ok(Route::LeaseRevokePrefix(prefix.to_string()));
    }
    if let Some(prefix) = path.strip_prefix("sys/leases/revoke-force/") {
        return Ok(Route::LeaseRevokeForce(prefix.to_string()));
    }
    // The longest enabled mount that prefixes the path.
    let with_slash = format!("{trimmed}/");
    if let Some(mount) = state.mounts.keys().filter(|m| with_slash.starts_with(m.as_str())).max_by_key(|m| m.len()) {
        let rest = path[mount.len().min(path.len())..].to_string();
        return Ok(Route::Database { mount: mount.clone(), rest });
    }
    Err(no_route(path))
}

/// The refusal of an operation a path does not take (Vault's 405).
pub(super) fn unsupported(operation: Operation, path: &str, allowed: &str) -> RequestError {
    RequestError::UnsupportedOperation(format!(
        "unsupported operation {} on \"{path}\"; this path takes {allowed}",
        operation_name(operation)
    ))
}

pub(super) fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "create",
        Operation::Read => "read",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::List => "list",
    }
}

impl Route {
    /// The capabilities a request needs on its path. `exists` tells create from
    /// update for paths that name one object (Vault's existence check).
    pub(crate) fn required(
        &self,
        operation: Operation,
        path: &str,
        exists: bool,
    ) -> Result<Capabilities, RequestError> {
        use Operation::*;
        let write = if exists { Capabilities::UPDATE } else { Capabilities::CREATE };
        let caps = match (self, operation) {
            (Route::Mounts, Read | List) => Capabilities::READ,
            (Route::Mounts, _) => return Err(unsupported(operation, path, "read or list")),
            (Route::Mount(_), Create | Update) => write,
            (Route::Mount(_), Delete) => Capabilities::DELETE,
            (Route::Mount(_), Read) => Capabilities::READ,
            (Route::Mount(_), _) => return Err(unsupported(operation, path, "create, update, read or delete")),
            (Route::MountTune(_), Read) => Capabilities::READ,
            (Route::MountTune(_), Create | Update) => Capabilities::UPDATE,
            (Route::MountTune(_), _) => return Err(unsupported(operation, path, "read or update")),
            (Route::Policies(_), Read | List) => Capabilities::LIST,
            (Route::Policies(_), _) => return Err(unsupported(operation, path, "read or list")),
            (Route::Policy(..), Create | Update) => write,
            (Route::Policy(..), Read) => Capabilities::READ,
            (Route::Policy(..), Delete) => Capabilities::DELETE,
            (Route::Policy(..), List) => return Err(unsupported(operation, path, "create, update, read or delete")),
            (Route::Token(TokenVerb::Accessors), List) => Capabilities::LIST.union(Capabilities::SUDO),
            (Route::Token(TokenVerb::Accessors), _) => return Err(unsupported(operation, path, "list")),
            (Route::Token(TokenVerb::LookupSelf), Read) => Capabilities::READ,
            (Route::Token(TokenVerb::CreateOrphan | TokenVerb::RevokeOrphan), Create | Update) => {
                Capabilities::UPDATE.union(Capabilities::SUDO)
            }
            (Route::Token(_), Create | Update) => Capabilities::UPDATE,
            (Route::Token(_), _) => return Err(unsupported(operation, path, "update")),
            (Route::Leases, Read | List) => Capabilities::LIST.union(Capabilities::SUDO),
            (Route::Leases, _) => return Err(unsupported(operation, path, "read or list")),
            (Route::LeaseLookup(None), Create | Update) => Capabilities::UPDATE,
            (Route::LeaseLookup(Some(_)), List) => Capabilities::LIST.union(Capabilities::SUDO),
            (Route::LeaseLookup(None), _) => return Err(unsupported(operation, path, "update")),
            (Route::LeaseLookup(Some(_)), _) => return Err(unsupported(operation, path, "list")),
            (Route::LeaseRenew | Route::LeaseRevoke(_), Create | Update) => Capabilities::UPDATE,
            (Route::LeaseRenew | Route::LeaseRevoke(_), _) => return Err(unsupported(operation, path, "update")),
            (Route::LeaseRevokePrefix(_) | Route::LeaseRevokeForce(_), Create | Update) => {
                Capabilities::UPDATE.union(Capabilities::SUDO)
            }
            (Route::LeaseRevokePrefix(_) | Route::LeaseRevokeForce(_), _) => {
                return Err(unsupported(operation, path, "update"));
            }
            (Route::Capabilities(_), Create | Update) => Capabilities::UPDATE,
            (Route::Capabilities(_), _) => return Err(unsupported(operation, path, "update")),
            (Route::Database { .. }, Create) => Capabilities::CREATE,
            (Route::Database { .. }, Read) => Capabilities::READ,
            (Route::Database { .. }, Update) => Capabilities::UPDATE,
            (Route::Database { .. }, Delete) => Capabilities::DELETE,
            (Route::Database { .. }, List) => Capabilities::LIST,
        };
        Ok(caps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_or_refused() {
        assert_eq!(normalize_path("/sys/mounts").unwrap(), "sys/mounts");
        assert!(normalize_path("").is_err());
        assert!(normalize_path("a//b").unwrap_err().to_string().contains("segment"));
        assert!(normalize_path("a/../b").is_err());
        assert!(normalize_path("a b").is_err());
        assert!(normalize_path(&"a".repeat(600)).is_err());
    }

    #[test]
    fn routes() {
        let state = State::default();
        assert_eq!(route("sys/mounts/database", &state).unwrap(), Route::Mount("database/".into()));
        assert_eq!(route("sys/mounts/db-prod/tune", &state).unwrap(), Route::MountTune("db-prod/".into()));
        assert_eq!(route("sys/policies/acl/app", &state).unwrap(), Route::Policy("app".into(), PolicyApi::Acl));
        assert_eq!(route("sys/policy/app/", &state).unwrap(), Route::Policy("app".into(), PolicyApi::Legacy));
        assert_eq!(route("sys/policy", &state).unwrap(), Route::Policies(PolicyApi::Legacy));
        assert_eq!(route("auth/token/lookup-self", &state).unwrap(), Route::Token(TokenVerb::LookupSelf));
        assert_eq!(route("sys/capabilities-self", &state).unwrap(), Route::Capabilities(CapabilitiesOf::Caller));
        assert!(route("database/creds/x", &state).unwrap_err().to_string().contains("no handler"));
    }
}
