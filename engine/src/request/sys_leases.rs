//! `sys/leases/*`: look up, list, renew and revoke leases.
//!
//! `revoke` and `revoke-force` run the revocation inside the request (the
//! lease lifecycle, `crate::lease`); `revoke-prefix` records the intents
//! (`RevokeStarted`) and leaves the database side to the expirer. Either way a
//! crash in between is finished by recovery (docs/DESIGN.md, "Recovery"),
//! never forgotten.

use std::ops::Bound;

use serde_json::json;

use super::handler::{Ctx, Handled, Plan};
use super::input::Input;
use super::router::Route;
use super::{RequestError, Response};
use crate::clock::rfc3339;
use crate::event::{Event, RevokeReason, RevokeStarted};
use crate::lease;
use crate::state::{Lease, LeaseStatus, State};

/// Most lease ids one list returns.
pub(super) const LEASE_LIST_MAX: usize = 100_000;

pub(crate) fn handle(ctx: &Ctx<'_>, route: Route, mut input: Input) -> Result<Plan, RequestError> {
    match route {
        Route::LeaseRevoke(in_path) => {
            let id = match in_path {
                Some(id) => id,
                None => input.required_string("lease_id", "the lease id, e.g. database/creds/app/AbC…")?,
            };
            // Vault's default is a synchronous revoke; `sync: false` (what the
            // CLI sends) only records the intent and leaves the database side to
            // the expirer, which the caller hears as "queued" (HTTP 202).
            let sync = input.bool("sync")?.unwrap_or(true);
            input.finish()?;
            // A lease that is gone (revoked, expired, never issued) is revoked
            // already: success with nothing to do, as in Vault, so a revoke
            // retried after a lost reply succeeds. The record still names it.
            let Some(lease) = ctx.state.leases.get(id.as_str()) else {
                let response = Response { queued: !sync, ..Response::default() };
                return Ok(Plan::Done(Handled { response, ..Handled::default() }));
            };
            if sync {
                return Ok(Plan::Revoke(Box::new(lease::lease_for_revoke(ctx.state, &id, ctx.asked)?)));
            }
            let events = revoke(&[lease], RevokeReason::Explicit);
            let response = Response { queued: true, ..Response::default() };
            Ok(Plan::Done(Handled { events, response, ..Handled::default() }))
        }
        Route::LeaseRenew => {
            let lease = find(ctx.state, &mut input)?;
            let increment_ms = input.duration_ms("increment")?;
            input.finish()?;
            Ok(Plan::Renew(Box::new(lease::plan_renew(ctx.state, ctx.now_ms, lease, increment_ms, ctx.asked)?)))
        }
        Route::LeaseRevokeForce(prefix) => {
            input.finish()?;
            // Force still tries: the lease is forgotten only if the database
            // refuses, so a healthy user never outlives its lease's record.
            let plans = select(ctx.state, &prefix)?
                .into_iter()
                .map(|lease| lease::plan_revoke(ctx.state, lease, RevokeReason::Forced))
                .collect();
            Ok(Plan::RevokeForce(plans))
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
            // What the caller was told: a renewal's expiry from the moment it
            // was answered, before its outcome is durable.
            let expire_time_ms = lease.expire_time_effective_ms();
            let ttl = (expire_time_ms - ctx.now_ms).max(0) / 1000;
            let data = json!({
                "id": lease.lease_id,
                "issue_time": rfc3339(lease.issue_time_ms),
                "expire_time": rfc3339(expire_time_ms),
                "last_renewal": lease.last_renewal_time_ms.map(rfc3339),
                "renewable": lease.renewable,
                "ttl": ttl,
            });
            Ok(Handled { response: Response::with_json(data), ..Handled::default() })
        }
        Route::LeaseLookup(Some(prefix)) => {
            input.finish()?;
            // Vault lists the next path segment under the prefix, like a directory;
            // the prefix is a path, so "database/creds/app" lists what is under
            // "database/creds/app/" and never the leases of "app2".
            let dir = list_dir(&prefix);
            let mut keys: Vec<String> = under_dir(ctx.state, &dir)
                .map(|lease| {
                    let rest = &lease.lease_id[dir.len()..];
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
            let leases = select(ctx.state, &prefix)?;
            Ok(Handled { events: revoke(&leases, RevokeReason::Prefix), ..Handled::default() })
        }
        other => unreachable!("sys/leases handler got {other:?}"),
    }
}

fn find<'s>(state: &'s State, input: &mut Input) -> Result<&'s Lease, RequestError> {
    let id = input.required_string("lease_id", "the lease id, e.g. database/creds/app/AbC…")?;
    state.leases.get(&id).ok_or_else(|| RequestError::not_found("lease not found"))
}

/// What `revoke-prefix/<prefix>` and `revoke-force/<prefix>` select, by Vault's
/// rule: a prefix is a path. Without a trailing `/` it is first an exact lease id;
/// otherwise (or when no lease has that id) it is a directory with the `/`
/// implied, so `database/creds/app` selects `database/creds/app/…` and never
/// `database/creds/app2/…`. The ACL checked the request path that carries this
/// prefix verbatim, so what is selected is always at or under the path the
/// caller was authorized for. An empty prefix (every lease in the engine) is
/// refused.
pub(super) fn select<'s>(state: &'s State, prefix: &str) -> Result<Vec<&'s Lease>, RequestError> {
    let bare = prefix.strip_suffix('/').unwrap_or(prefix);
    if bare.is_empty() {
        return Err(RequestError::invalid(
            "lease prefix is empty: name a path such as database/creds/app (every lease under it) or a \
             lease id; to end every lease of a mount, disable it (sys/mounts/<path>)",
        ));
    }
    if !prefix.ends_with('/')
        && let Some(lease) = state.leases.get(prefix)
    {
        return Ok(vec![lease]);
    }
    Ok(under_dir(state, &format!("{bare}/")).collect())
}

/// The directory a `sys/leases/lookup/<prefix>` list shows: the prefix with its
/// `/` implied; the empty prefix is the top (the mounts).
fn list_dir(prefix: &str) -> String {
    if prefix.is_empty() || prefix.ends_with('/') { prefix.to_string() } else { format!("{prefix}/") }
}

/// Every lease whose id starts with `dir`, which is empty or ends with `/`.
fn under_dir<'s>(state: &'s State, dir: &str) -> impl Iterator<Item = &'s Lease> {
    debug_assert!(dir.is_empty() || dir.ends_with('/'), "a lease directory ends with '/': {dir:?}");
    let dir = dir.to_string();
    state
        .leases
        .range::<str, _>((Bound::Included(dir.as_str()), Bound::Unbounded))
        .take_while(move |(id, _)| id.starts_with(dir.as_str()))
        .map(|(_, l)| &**l)
}

fn revoke(leases: &[&Lease], reason: RevokeReason) -> Vec<Event> {
    leases
        .iter()
        .filter(|l| !matches!(l.status, LeaseStatus::Revoking(_)))
        .map(|l| RevokeStarted::by_engine(l.lease_id.to_string(), reason).into())
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::select;
    use crate::auth::policy::{Acl, Capabilities, parse_policy};
    use crate::event::{Entry, Event, EventKind};
    use crate::request::router::{self, Route};
    use crate::state::State;

    const ENDPOINT: &str = "sys/leases/revoke-prefix/";

    fn state_with(lease_ids: &[String]) -> State {
        let mut state = State::default();
        for (i, id) in lease_ids.iter().enumerate() {
            let Event::IssueStarted(mut started) = crate::testing::sample(EventKind::IssueStarted) else {
                unreachable!()
            };
            started.lease_id = id.clone();
            state.apply_owned(Entry { lsn: i as u64 + 1, ts_ms: 0, event: started.into() });
        }
        state
    }

    /// Paths of segments that are string prefixes of each other (`app`, `app2`,
    /// `app-ro`, `a`), with or without a trailing `/`, so that string and path
    /// prefixes disagree often; sometimes a raw string over the same alphabet.
    fn pathish() -> impl Strategy<Value = String> {
        let segment = prop_oneof![Just("app"), Just("app2"), Just("app-ro"), Just("a"), Just("x1")];
        let segments = (proptest::collection::vec(segment, 0..4), any::<bool>()).prop_map(|(segs, slash)| {
            let mut path = segs.join("/");
            if slash {
                path.push('/');
            }
            path
        });
        prop_oneof![4 => segments, 1 => proptest::string::string_regex("[ap2/-]{0,10}").unwrap()]
    }

    proptest! {
        /// Whatever path a policy grants on `revoke-prefix` (exactly, or as a
        /// `*` glob) and whatever request path that policy lets through, every
        /// lease the request selects lies at or under a path the policy grants:
        /// the ACL and the match read the same normalized path.
        #[test]
        fn a_prefix_selects_only_leases_under_what_the_acl_granted(
            ids in proptest::collection::vec(pathish(), 1..16),
            granted in pathish(),
            glob in any::<bool>(),
            asked in pathish(),
        ) {
            let ids: Vec<String> = ids.into_iter().map(|id| format!("database/creds/{id}")).collect();
            let state = state_with(&ids);
            let pattern = format!("{ENDPOINT}database/creds/{granted}{}", if glob { "*" } else { "" });
            let Ok(policy) = parse_policy("p", &format!(r#"path "{pattern}" {{ capabilities = ["update", "sudo"] }}"#))
            else { return Ok(()) };
            let acl = Acl::new([&policy]);
            let Ok(path) = router::normalize_path(&format!("{ENDPOINT}database/creds/{asked}")) else { return Ok(()) };
            if !acl.allows(&path, Capabilities::UPDATE.union(Capabilities::SUDO)) {
                return Ok(());
            }
            let Ok(Route::LeaseRevokePrefix(prefix)) = router::route(&path, &state) else {
                panic!("{path} does not route to revoke-prefix")
            };
            let Ok(selected) = select(&state, &prefix) else { return Ok(()) };
            let granted_path = pattern.strip_prefix(ENDPOINT).unwrap();
            for lease in selected {
                let id = &*lease.lease_id;
                let covered = match granted_path.strip_suffix('*') {
                    // A glob grants every path that starts with it; the lease's own is one.
                    Some(start) => id.starts_with(start),
                    // An exact grant is that lease, or the directory of that path.
                    None => {
                        let dir = granted_path.strip_suffix('/').unwrap_or(granted_path);
                        id == granted_path || id.starts_with(&format!("{dir}/"))
                    }
                };
                prop_assert!(covered, "{path} (granted by {pattern}) selected {id}");
                // And it is at or under the asked path itself.
                let asked_dir = prefix.strip_suffix('/').unwrap_or(&prefix);
                prop_assert!(id == prefix || id.starts_with(&format!("{asked_dir}/")), "{prefix} selected {id}");
            }
        }
    }

    #[test]
    fn prefixes_are_paths_and_empty_is_refused() {
        let ids: Vec<String> =
            ["app/1", "app/2", "app2/1", "app-readonly/1"].iter().map(|s| format!("database/creds/{s}")).collect();
        let state = state_with(&ids);
        let names = |prefix: &str| -> Vec<String> {
            select(&state, prefix).unwrap().iter().map(|l| l.lease_id.to_string()).collect()
        };
        assert_eq!(names("database/creds/app"), ["database/creds/app/1", "database/creds/app/2"]);
        assert_eq!(names("database/creds/app/"), ["database/creds/app/1", "database/creds/app/2"]);
        assert_eq!(names("database/creds/app/1"), ["database/creds/app/1"]);
        assert!(names("database/creds/ap").is_empty());
        assert!(names("d").is_empty());
        assert_eq!(names("database").len(), 4);
        assert!(select(&state, "").is_err());
        assert!(select(&state, "/").is_err());
    }
}
