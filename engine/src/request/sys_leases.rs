//! `sys/leases/*`: look up, list, renew and revoke leases.
//!
//! Revocation here records the intent (`RevokeStarted`); the revocation workers
//! run the database side and record the outcome, so a crash in between is
//! finished by recovery (DESIGN.md's recovery table), never forgotten.

use std::ops::Bound;

use serde_json::json;

use super::creds;
use super::input::Input;
use super::pipeline::{Ctx, Handled, Plan};
use super::router::Route;
use super::{RequestError, Response};
use crate::clock::rfc3339;
use crate::event::{Event, RevokeForced, RevokeReason, RevokeStarted};
use crate::state::{Lease, LeaseStatus, State};

/// Most lease ids one list returns.
pub const LEASE_LIST_MAX: usize = 100_000;

pub(crate) fn handle(ctx: &Ctx<'_>, route: Route, mut input: Input) -> Result<Plan, RequestError> {
    match route {
        Route::LeaseRevoke => {
            let id = input.required_string("lease_id", "the lease id, e.g. database/creds/app/AbC…")?;
            input.finish()?;
            Ok(Plan::Revoke(Box::new(creds::lease_for_revoke(ctx.state, &id)?)))
        }
        Route::LeaseRenew => {
            let lease = find(ctx.state, &mut input)?;
            let increment_ms = input.duration_ms("increment")?;
            input.finish()?;
            Ok(Plan::Renew(Box::new(creds::plan_renew(ctx, lease, increment_ms)?)))
        }
        other => handle_local(ctx, other, input).map(Plan::Done),
    }
}

fn handle_local(ctx: &Ctx<'_>, route: Route, mut input: Input) -> Result<Handled, RequestError> {
    match route {
        Route::Leases => {
            let kind = input.required_string("type", "\"irrevocable\" lists leases whose revocation keeps failing")?;
            input.finish()?;
            if kind != "irrevocable" {
                return Err(RequestError::invalid(format!(
                    "field \"type\": only \"irrevocable\" is supported, not \"{kind}\""
                )));
            }
            let leases: Vec<_> = ctx
                .state
                .leases
                .values()
                .filter(|l| l.irrevocable)
                .take(LEASE_LIST_MAX)
                .map(|l| {
                    json!({
                        "lease_id": l.lease_id,
                        "attempts": l.revoke_attempts,
                        "error": l.revoke_error,
                        "next_attempt_time": l.next_revoke_attempt_ms.map(rfc3339),
                    })
                })
                .collect();
            let keys: Vec<_> = leases.iter().map(|l| l["lease_id"].clone()).collect();
            let data = json!({ "count": keys.len(), "keys": keys, "leases": leases });
            Ok(Handled { response: Response::with_json(data), ..Handled::default() })
        }
        Route::LeaseLookup(None) => {
            let lease = find(ctx.state, &mut input)?;
            input.finish()?;
            let ttl = (lease.expire_time_ms - ctx.now_ms).max(0) / 1000;
            let data = json!({
                "id": lease.lease_id,
                "issue_time": rfc3339(lease.issue_time_ms),
                "expire_time": rfc3339(lease.expire_time_ms),
                "last_renewal": lease.last_renewal_time_ms.map(rfc3339),
                "renewable": lease.renewable,
                "ttl": ttl,
            });
            Ok(Handled { response: Response::with_json(data), ..Handled::default() })
        }
        Route::LeaseLookup(Some(prefix)) => {
            input.finish()?;
            // Vault lists the next path segment under the prefix, like a directory.
            let mut keys: Vec<String> = ctx
                .state
                .leases
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                .take_while(|(id, _)| id.starts_with(&prefix))
                .map(|(id, _)| {
                    let rest = &id[prefix.len()..];
                    match rest.find('/') {
                        Some(i) => rest[..=i].to_string(),
                        None => rest.to_string(),
                    }
                })
                .collect();
            keys.dedup();
            keys.truncate(LEASE_LIST_MAX);
            Ok(Handled { response: Response::with_json(json!({ "keys": keys })), ..Handled::default() })
        }
        Route::LeaseRevokePrefix(prefix) => {
            input.finish()?;
            let leases = under(ctx.state, &prefix);
            Ok(Handled { events: revoke(&leases, RevokeReason::Prefix), ..Handled::default() })
        }
        Route::LeaseRevokeForce(prefix) => {
            input.finish()?;
            let events = under(ctx.state, &prefix)
                .into_iter()
                .map(|l| RevokeForced { lease_id: l.lease_id.to_string() }.into())
                .collect();
            Ok(Handled { events, ..Handled::default() })
        }
        other => unreachable!("sys/leases handler got {other:?}"),
    }
}

fn find<'s>(state: &'s State, input: &mut Input) -> Result<&'s Lease, RequestError> {
    let id = input.required_string("lease_id", "the lease id, e.g. database/creds/app/AbC…")?;
    state.leases.get(&id).ok_or_else(|| RequestError::not_found("lease not found"))
}

fn under<'s>(state: &'s State, prefix: &str) -> Vec<&'s Lease> {
    state
        .leases
        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(|(id, _)| id.starts_with(prefix))
        .map(|(_, l)| &**l)
        .collect()
}

fn revoke(leases: &[&Lease], reason: RevokeReason) -> Vec<Event> {
    leases
        .iter()
        .filter(|l| !matches!(l.status, LeaseStatus::Revoking(_)))
        .map(|l| RevokeStarted { lease_id: l.lease_id.to_string(), reason }.into())
        .collect()
}
