//! `sys/capabilities-self`, `sys/capabilities` and `sys/capabilities-accessor`:
//! which capabilities a token's policies grant on each of some paths (what
//! `vault token capabilities` asks). The answer comes from the same compiled ACL
//! the pipeline authorizes with, so it cannot disagree with a request.

use serde_json::{Map, Value};

use super::handler::{Ctx, Handled};
use super::input::Input;
use super::router::{self, CapabilitiesOf};
use super::{RequestError, Response};
use crate::auth::policy::{Capabilities, ROOT_POLICY};
use crate::auth::tokens;

/// Paths asked about in one request.
pub(super) const CAPABILITIES_PATHS_MAX: usize = 64;

pub(crate) fn handle(ctx: &Ctx<'_>, of: CapabilitiesOf, mut input: Input) -> Result<Handled, RequestError> {
    let token =
        match of {
            CapabilitiesOf::Caller => ctx.caller.token.clone(),
            CapabilitiesOf::Token => {
                let secret = input.required_string("token", "give the token whose capabilities to look up")?;
                let hash = ctx.keys.hash_token(&secret);
                let token = ctx.state.token_by_hash(&hash).cloned();
                // An unknown, expired or used-up token grants nothing; say so without
                // telling which (as `auth/token/lookup`).
                token
                    .filter(|t| tokens::usable(t, ctx.now_ms).is_ok())
                    .ok_or_else(|| RequestError::invalid("token: no such token (or it expired); check the value"))?
            }
            CapabilitiesOf::Accessor => {
                let accessor = input.required_string("accessor", "give the accessor of the token to look up")?;
                ctx.state.tokens.get(&accessor).filter(|t| tokens::usable(t, ctx.now_ms).is_ok()).cloned().ok_or_else(
                    || RequestError::invalid(format!("accessor: no live token has accessor \"{accessor}\"")),
                )?
            }
        };
    // `paths` (a list), or the older `path`; Vault accepts either.
    let paths = match input.string_list("paths")? {
        Some(paths) if !paths.is_empty() => paths,
        _ => input.string_list("path")?.unwrap_or_default(),
    };
    input.finish()?;
    if paths.is_empty() {
        return Err(RequestError::invalid("paths: give at least one path, e.g. {\"paths\": [\"database/creds/app\"]}"));
    }
    if paths.len() > CAPABILITIES_PATHS_MAX {
        return Err(RequestError::invalid(format!(
            "paths: {} given; at most {CAPABILITIES_PATHS_MAX} per request",
            paths.len()
        )));
    }
    let root = token.policies.iter().any(|p| p == ROOT_POLICY);
    let acl = ctx.acls.acl_for(ctx.state, &token.policies);
    let mut data = Map::new();
    for path in &paths {
        let path = router::normalize_path(path).map_err(|e| RequestError::invalid(format!("paths: {e}")))?;
        let names = if root { vec!["root"] } else { names_of(acl.capabilities(&path)) };
        data.insert(path, Value::from(names));
    }
    // Older clients read `capabilities` when they asked about one path.
    if let [only] = paths.as_slice()
        && let Some(names) = data.get(only.strip_prefix('/').unwrap_or(only)).cloned()
    {
        data.insert("capabilities".into(), names);
    }
    Ok(Handled { response: Response::with_data(data), ..Handled::default() })
}

/// Vault's answer for a capability set: its names sorted, or `["deny"]` when
/// it is empty or denied.
fn names_of(granted: Capabilities) -> Vec<&'static str> {
    if granted.is_empty() || granted.contains(Capabilities::DENY) {
        return vec!["deny"];
    }
    let mut names: Vec<&'static str> = granted.names().collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::names_of;
    use crate::auth::policy::Capabilities;

    #[test]
    fn names_are_sorted_and_nothing_is_deny() {
        assert_eq!(names_of(Capabilities::NONE), ["deny"]);
        assert_eq!(names_of(Capabilities::DENY), ["deny"]);
        assert_eq!(
            names_of(Capabilities::UPDATE | Capabilities::READ | Capabilities::LIST),
            ["list", "read", "update"]
        );
    }
}
