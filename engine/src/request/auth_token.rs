//! `auth/token/*`: create, look up, renew and revoke tokens (Vault's token store).

use serde_json::{Value, json};

use super::handler::{Ctx, Handled};
use super::input::Input;
use super::router::TokenVerb;
use super::{AuthResponse, RequestError, Response};
use crate::auth::policy::{DEFAULT_POLICY, ROOT_POLICY, normalize_policy_name};
use crate::auth::tokens::{self, TOKEN_TTL_MS_DEFAULT, TokenSecret};
use crate::clock::rfc3339;
use crate::event::{Event, RevokeReason, RevokeStarted, TokenCreated, TokenRenewed, TokenRevoked};
use crate::state::{LeaseStatus, State, Token};

/// Most uses a token may be limited to.
pub(super) const NUM_USES_MAX: u64 = 1_000_000;
/// Most policies one token may carry.
pub(super) const TOKEN_POLICIES_MAX: usize = 64;

pub(crate) fn handle(ctx: &Ctx<'_>, verb: TokenVerb, mut input: Input) -> Result<Handled, RequestError> {
    match verb {
        TokenVerb::Create => create(ctx, input, false),
        TokenVerb::CreateOrphan => create(ctx, input, true),
        TokenVerb::Lookup => {
            let secret = input.required_string("token", "the token to look up")?;
            input.finish()?;
            let token = by_secret(ctx, &secret)?;
            Ok(data(lookup_json(ctx, token, &secret)))
        }
        TokenVerb::LookupSelf => {
            input.finish()?;
            Ok(data(lookup_json(ctx, &ctx.caller.token, &ctx.caller.secret)))
        }
        TokenVerb::LookupAccessor => {
            let accessor = input.required_string("accessor", "the accessor of the token to look up")?;
            input.finish()?;
            Ok(data(lookup_json(ctx, by_accessor(ctx.state, &accessor)?, "")))
        }
        TokenVerb::Renew => {
            let secret = input.required_string("token", "the token to renew")?;
            let token = by_secret(ctx, &secret)?.clone();
            renew(ctx, &token, &secret, input)
        }
        TokenVerb::RenewSelf => {
            let token = ctx.caller.token.clone();
            renew(ctx, &token, &ctx.caller.secret, input)
        }
        TokenVerb::RenewAccessor => {
            let accessor = input.required_string("accessor", "the accessor of the token to renew")?;
            let token = by_accessor(ctx.state, &accessor)?.clone();
            renew(ctx, &token, "", input)
        }
        TokenVerb::Revoke | TokenVerb::RevokeOrphan => {
            let secret = input.required_string("token", "the token to revoke")?;
            input.finish()?;
            // Vault answers success for a token that does not exist: revocation is idempotent.
            let hash = ctx.keys.hash_token(&secret);
            let events = match ctx.state.token_by_hash(&hash) {
                Some(t) => revoke_events(ctx.state, &t.accessor, verb == TokenVerb::RevokeOrphan),
                None => vec![],
            };
            Ok(Handled { events, ..Handled::default() })
        }
        TokenVerb::RevokeSelf => {
            input.finish()?;
            Ok(Handled { events: revoke_events(ctx.state, &ctx.caller.token.accessor, false), ..Handled::default() })
        }
        TokenVerb::RevokeAccessor => {
            let accessor = input.required_string("accessor", "the accessor of the token to revoke")?;
            input.finish()?;
            by_accessor(ctx.state, &accessor)?;
            Ok(Handled { events: revoke_events(ctx.state, &accessor, false), ..Handled::default() })
        }
        TokenVerb::Accessors => {
            input.finish()?;
            let keys: Vec<&String> = ctx.state.tokens.keys().collect();
            Ok(data(json!({ "keys": keys })))
        }
    }
}

fn data(value: Value) -> Handled {
    Handled { response: Response::with_json(value), ..Handled::default() }
}

fn by_secret<'s>(ctx: &Ctx<'s>, secret: &str) -> Result<&'s Token, RequestError> {
    let hash = ctx.keys.hash_token(secret);
    let token = ctx.state.token_by_hash(&hash).ok_or_else(|| RequestError::not_found("token not found"))?;
    tokens::usable(token, ctx.now_ms).map_err(|r| RequestError::not_found(r.describe()))?;
    Ok(token)
}

fn by_accessor<'s>(state: &'s State, accessor: &str) -> Result<&'s Token, RequestError> {
    state.tokens.get(accessor).ok_or_else(|| RequestError::not_found("no token has that accessor"))
}

fn secs(ms: i64) -> i64 {
    ms.max(0) / 1000
}

fn lookup_json(ctx: &Ctx<'_>, t: &Token, secret: &str) -> Value {
    let ttl = t.expire_time_ms.map_or(0, |e| secs(e - ctx.now_ms));
    json!({
        "accessor": t.accessor,
        "creation_time": secs(t.creation_time_ms),
        "creation_ttl": t.ttl_ms / 1000,
        "display_name": t.display_name,
        // lessor has no identity store and no token metadata; Vault sends both.
        "entity_id": "",
        "expire_time": t.expire_time_ms.map(rfc3339),
        "explicit_max_ttl": t.explicit_max_ttl_ms / 1000,
        "id": secret,
        "issue_time": rfc3339(t.creation_time_ms),
        "meta": Value::Null,
        "num_uses": if t.num_uses == 0 { 0 } else { t.num_uses - t.uses.min(t.num_uses) },
        "orphan": t.parent_accessor.is_none(),
        "path": "auth/token/create",
        "policies": t.policies,
        "renewable": t.renewable,
        "ttl": ttl,
        "type": "service",
    })
}

fn create(ctx: &Ctx<'_>, mut input: Input, orphan_path: bool) -> Result<Handled, RequestError> {
    let parent = &ctx.caller.token;
    let caller_root = ctx.caller.is_root();
    let requested = input.string_list("policies")?;
    let ttl_ms = input.duration_ms("ttl")?.unwrap_or(0);
    let explicit_max_ttl_ms = input.duration_ms("explicit_max_ttl")?.unwrap_or(0);
    let display_name = tokens::display_name(input.string("display_name")?.as_deref());
    let no_parent = input.bool("no_parent")?.unwrap_or(false);
    let no_default_policy = input.bool("no_default_policy")?.unwrap_or(false);
    let renewable = input.bool("renewable")?.unwrap_or(true);
    let num_uses = input.u64("num_uses", NUM_USES_MAX)?.unwrap_or(0) as u32;
    // What `vault token create` sends besides: service tokens only, no periodic
    // tokens, no identity, no chosen id, no metadata.
    input.default_only(&["type"], &["service", "default"])?;
    input.default_only(&["period", "entity_alias", "id", "meta", "metadata", "lease"], &[])?;
    input.finish()?;

    let orphan = orphan_path || no_parent;
    if no_parent && !orphan_path && !caller_root && !ctx.sudo {
        return Err(RequestError::PermissionDenied(
            "\"no_parent\" needs the root token or sudo on auth/token/create; or use auth/token/create-orphan".into(),
        ));
    }
    let mut policies: Vec<String> = match requested {
        Some(list) => list.iter().map(|p| normalize_policy_name(p)).collect(),
        None => parent.policies.clone(),
    };
    if policies.len() > TOKEN_POLICIES_MAX {
        return Err(RequestError::invalid(format!("field \"policies\": at most {TOKEN_POLICIES_MAX} policies")));
    }
    // A token cannot grant what it does not hold (root can).
    if !caller_root && let Some(extra) = policies.iter().find(|p| *p != DEFAULT_POLICY && !parent.policies.contains(p))
    {
        return Err(RequestError::PermissionDenied(format!(
            "child policies must be a subset of the parent's: this token does not hold \"{extra}\""
        )));
    }
    if !policies.iter().any(|p| p == ROOT_POLICY) && !no_default_policy {
        policies.push(DEFAULT_POLICY.to_string());
    }
    policies.sort();
    policies.dedup();

    let mut warnings = Vec::new();
    let mut ttl_ms = if ttl_ms == 0 { TOKEN_TTL_MS_DEFAULT } else { ttl_ms };
    if explicit_max_ttl_ms > 0 && ttl_ms > explicit_max_ttl_ms {
        ttl_ms = explicit_max_ttl_ms;
    }
    let mut expire_time_ms = ctx.now_ms.saturating_add(ttl_ms as i64);
    // A child dies with its parent: it cannot be promised a longer life.
    if !orphan
        && let Some(parent_expiry) = parent.expire_time_ms
        && expire_time_ms > parent_expiry
    {
        expire_time_ms = parent_expiry;
        ttl_ms = (parent_expiry - ctx.now_ms).max(0) as u64;
        warnings.push("TTL capped at the parent token's expiry".to_string());
    }
    let secret = TokenSecret::generate().map_err(|e| RequestError::Io(e.to_string()))?;
    let accessor = tokens::new_accessor().map_err(|e| RequestError::Io(e.to_string()))?;
    let event = TokenCreated {
        accessor: accessor.clone(),
        token_hash: ctx.keys.hash_token(secret.expose()),
        parent_accessor: (!orphan).then(|| parent.accessor.clone()),
        policies: policies.clone(),
        display_name,
        ttl_ms,
        explicit_max_ttl_ms,
        expire_time_ms: Some(expire_time_ms),
        renewable,
        num_uses,
    };
    let auth = AuthResponse {
        client_token: secret.expose().to_string(),
        accessor,
        token_policies: policies.clone(),
        policies,
        lease_duration: ttl_ms / 1000,
        renewable,
        orphan,
    };
    let response =
        Response { auth: Some(auth), warnings: (!warnings.is_empty()).then_some(warnings), ..Response::default() };
    Ok(Handled { events: vec![event.into()], response, login: None })
}

fn renew(ctx: &Ctx<'_>, token: &Token, secret: &str, mut input: Input) -> Result<Handled, RequestError> {
    let increment_ms = input.duration_ms("increment")?;
    input.finish()?;
    if token.expire_time_ms.is_none() {
        // Never expires (root): nothing to extend.
        return Ok(Handled { response: token_auth(token, secret, 0, None), ..Handled::default() });
    }
    if !token.renewable {
        return Err(RequestError::invalid("token is not renewable"));
    }
    let wanted_ms = increment_ms.filter(|&i| i > 0).unwrap_or(token.ttl_ms);
    let mut expire_time_ms = ctx.now_ms.saturating_add(wanted_ms as i64);
    let mut warning = None;
    if token.explicit_max_ttl_ms > 0 {
        let cap = token.creation_time_ms.saturating_add(token.explicit_max_ttl_ms as i64);
        if expire_time_ms > cap {
            expire_time_ms = cap;
            warning = Some("TTL capped at the token's explicit max TTL".to_string());
        }
    }
    let lease_secs = secs(expire_time_ms - ctx.now_ms) as u64;
    let event = TokenRenewed { accessor: token.accessor.clone(), expire_time_ms };
    Ok(Handled { events: vec![event.into()], response: token_auth(token, secret, lease_secs, warning), login: None })
}

fn token_auth(token: &Token, secret: &str, lease_duration: u64, warning: Option<String>) -> Response {
    Response {
        auth: Some(AuthResponse {
            client_token: secret.to_string(),
            accessor: token.accessor.clone(),
            policies: token.policies.clone(),
            token_policies: token.policies.clone(),
            lease_duration,
            renewable: token.renewable,
            orphan: token.parent_accessor.is_none(),
        }),
        warnings: warning.map(|w| vec![w]),
        ..Response::default()
    }
}

/// Revoking a token: start revocation of every lease it (and, unless orphaning,
/// every descendant) owns, then revoke the token itself (the fold removes the
/// descendants in the same step).
pub(crate) fn revoke_events(state: &State, accessor: &str, orphan_children: bool) -> Vec<Event> {
    let mut doomed = std::collections::HashSet::from([accessor.to_string()]);
    if !orphan_children {
        doomed.extend(state.token_descendants(accessor));
    }
    let mut events: Vec<Event> = state
        .leases
        .values()
        .filter(|l| doomed.contains(&*l.accessor) && !matches!(l.status, LeaseStatus::Revoking(_)))
        .map(|l| RevokeStarted::by_engine(l.lease_id.to_string(), RevokeReason::TokenRevoked).into())
        .collect();
    events.push(TokenRevoked { accessor: accessor.to_string(), orphan_children }.into());
    events
}
