//! The one path every request takes: authenticate → route → authorize → handle →
//! run the lease work, if any → append (the handler's effects and outcomes with
//! the audit record) → reply. Database work appends its intents before it runs
//! (docs/DESIGN.md, "The write path").

use serde_json::Value;

use super::handler::{Caller, Ctx, Handled, Login, Plan};
use super::input::{Input, truncate};
use super::router::{self, Route};
use super::{Operation, RequestError, RequestTrace, Response};
use crate::Engine;
use crate::auth::keys::{self, Keys};
use crate::auth::policy::Capabilities;
use crate::auth::tokens::{self, TokenRefusal};
use crate::event::{Event, Outcome, RequestRecorded, TokenUsed};
use crate::lease::{Asked, Claim, Settled};
use crate::log::AppendError;
use crate::state::State;

/// Why a request failed: refused (on the record), or its record did not
/// become durable.
enum Failed {
    Refused(RequestError),
    Unrecorded(AppendError),
}

/// What a request holds until its append is durable.
#[derive(Debug, Default)]
struct Held {
    /// Claims on the leases whose outcomes the append carries, so the expirer
    /// and other requests leave them alone until then.
    claims: Vec<Claim>,
    /// A lease operation (issue, renew, revoke) whose intent was durable before
    /// its SQL committed: the reply goes at once, and the outcome and audit
    /// record ride the next group commit (docs/DESIGN.md, "The write path").
    riding: bool,
}

fn no_master_key() -> RequestError {
    RequestError::PermissionDenied(
        "the engine was opened without its master key (read-only); open it with the key file".into(),
    )
}

fn denied(refusal: TokenRefusal) -> RequestError {
    RequestError::PermissionDenied(refusal.describe().to_string())
}

fn io_error(e: AppendError) -> RequestError {
    RequestError::Io(e.to_string())
}

fn outcome_of(e: &RequestError) -> Outcome {
    match e {
        RequestError::PermissionDenied(_) => Outcome::Denied,
        RequestError::InvalidArgument(_) | RequestError::UnsupportedOperation(_) => Outcome::Invalid,
        _ => Outcome::Error,
    }
}

/// A random request id in UUID form (for correlating a reply with its audit record).
fn new_request_id() -> Result<String, RequestError> {
    let mut b = [0u8; 16];
    keys::fill_random(&mut b).map_err(|e| RequestError::Io(e.to_string()))?;
    let h = hex::encode(b);
    Ok(format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]))
}

impl Engine {
    /// Serves one request. `data` is a JSON object (or null). Every request —
    /// allowed, denied or invalid — leaves a `RequestRecorded` event, durable
    /// before this returns, with an allowed one's effects in the same batch —
    /// except an issue, renewal or single revocation: its intent (which names
    /// the request) was durable before its SQL committed, so it answers then and
    /// its outcome and record ride the next group commit.
    pub async fn request(
        &self,
        token: &str,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> Result<Response, RequestError> {
        self.request_traced(token, operation, path, data).await.0
    }

    /// [`Engine::request`], with what its audit record says of it: the request
    /// id and the caller's accessor, for a host that logs each request beside
    /// the log's record (`lessor server`'s access log) — for refusals too, which
    /// carry no `Response` — without hashing the token a second time.
    pub async fn request_traced(
        &self,
        token: &str,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> (Result<Response, RequestError>, RequestTrace) {
        let (result, trace) = self.request_recorded(token, operation, path, data).await;
        let result = result.map(|(mut response, login)| {
            if let Some(Login { username, password }) = login {
                let data = response.data.get_or_insert_with(serde_json::Map::new);
                data.insert("username".into(), Value::String(username));
                data.insert("password".into(), Value::String(password.expose().to_string()));
            }
            response
        });
        (result, trace)
    }

    /// [`Engine::request`], with an issued credential's login apart from the
    /// JSON reply (for the typed entry points).
    pub(super) async fn request_typed(
        &self,
        token: &str,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> Result<(Response, Option<Login>), RequestError> {
        self.request_recorded(token, operation, path, data).await.0
    }

    async fn request_recorded(
        &self,
        token: &str,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> (Result<(Response, Option<Login>), RequestError>, RequestTrace) {
        if self.keys.is_none() {
            // Read-only: nothing is appended, not even the refusal (a record
            // without the key's batch proof would be cut by the next keyed open).
            return (Err(no_master_key()), RequestTrace::default());
        }
        let request_id = match new_request_id() {
            Ok(id) => id,
            Err(e) => return (Err(e), RequestTrace::default()),
        };
        let mut audit = RequestRecorded {
            request_id: request_id.clone(),
            accessor: String::new(),
            display_name: String::new(),
            operation,
            path: truncate(path, router::PATH_BYTES_MAX).to_string(),
            outcome: Outcome::Ok,
            error: None,
        };
        let served = self.serve(token, operation, path, data, &mut audit).await;
        // What the record names; kept only once the record is durable.
        let trace = RequestTrace {
            request_id: Some(request_id.clone()),
            accessor: (!audit.accessor.is_empty()).then(|| audit.accessor.clone()),
        };
        let result = match served {
            Ok((Handled { mut events, mut response, login }, held)) if held.riding => {
                events.push(audit.into());
                // Nobody waits for these: the claims are released on the log's
                // thread once they are durable (or failed: a lease left `Issuing`
                // is revoked at its expiry; a renewal's intent keeps its expiry).
                let claims: Box<dyn Send> = Box::new(held.claims);
                self.submit_riding(events, claims).await.map_err(Failed::Unrecorded).map(|()| {
                    response.request_id = request_id;
                    (response, login)
                })
            }
            Ok((Handled { mut events, mut response, login }, held)) => {
                events.push(audit.into());
                // Effects beyond one append's limit (revoking thousands of leases)
                // go in chunks; the audit record rides in the last, so the request
                // is acknowledged only once all of it is durable. The chunks are
                // independent intents: a crash between them is finished by retrying.
                let chunk = self.log_options().request_events_max;
                let mut appended = Ok(());
                while appended.is_ok() && events.len() > chunk {
                    let rest = events.split_off(chunk);
                    appended = self.append(std::mem::replace(&mut events, rest)).await.map(drop);
                }
                if appended.is_ok() {
                    appended = self.append(events).await.map(drop);
                }
                // The claims were held until the outcomes are durable (or failed).
                drop(held.claims);
                appended.map_err(Failed::Unrecorded).map(|()| {
                    response.request_id = request_id;
                    (response, login)
                })
            }
            Err(e) => {
                audit.outcome = outcome_of(&e);
                audit.error = Some(e.to_string());
                // I6: the refusal is on the record before the caller hears of it.
                match self.append(vec![audit.into()]).await {
                    Ok(_) => Err(Failed::Refused(e)),
                    Err(append) => Err(Failed::Unrecorded(append)),
                }
            }
        };
        match result {
            Ok(answer) => (Ok(answer), trace),
            Err(Failed::Refused(e)) => (Err(e), trace),
            // The record did not become durable: it names nothing.
            Err(Failed::Unrecorded(e)) => (Err(io_error(e)), RequestTrace::default()),
        }
    }

    async fn serve(
        &self,
        secret: &str,
        operation: Operation,
        path: &str,
        data: Value,
        audit: &mut RequestRecorded,
    ) -> Result<(Handled, Held), RequestError> {
        let keys = self.keys.clone().ok_or_else(no_master_key)?;
        let now_ms = self.clock().now_ms();
        let caller = self.authenticate(&keys, secret, now_ms, audit).await?;
        let asked =
            Asked { accessor: audit.accessor.clone(), request_id: audit.request_id.clone(), path: audit.path.clone() };
        // `path?k=v&…` (Vault's query parameters) become data fields.
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut data = data;
        if !query.is_empty() {
            if data.is_null() {
                data = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(map) = &mut data {
                for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
                    map.entry(k.to_string()).or_insert_with(|| Value::String(v.to_string()));
                }
            }
        }
        let path = router::normalize_path(path)?;
        let input = Input::new(data)?;
        if path.starts_with("sys/leases/lookup") {
            // Read-your-writes for leases: what was answered is what is read.
            self.settle_outcomes().await;
        }
        // Route and authorize: the one check, run again on the state the
        // handler sees (a policy may change while a use is being spent).
        let check = |state: &State, caller: &Caller| -> Result<(Route, bool), RequestError> {
            let route = match router::route(&path, state) {
                Ok(route) => route,
                // Routing detail only for callers who may see the path (Vault
                // answers 403 to the others, before any routing error).
                Err(e) => return Err(self.deny_unless_visible(state, caller, operation, &path).unwrap_or(e)),
            };
            let required = match route.required(operation, &path, exists(&route, state)) {
                Ok(required) => required,
                Err(e) => return Err(self.deny_unless_visible(state, caller, operation, &path).unwrap_or(e)),
            };
            let sudo = self.authorize(state, caller, &path, required)?;
            Ok((route, sudo))
        };
        // A token with `num_uses` spends one only once the request is allowed:
        // a denied request costs nothing, as in Vault.
        let caller = if caller.token.num_uses > 0 {
            self.with_state(|state| check(state, &caller).map(drop))?;
            self.spend_use(&keys, caller, now_ms).await?
        } else {
            caller
        };
        let plan = self.with_state(|state| {
            let (route, sudo) = check(state, &caller)?;
            let lease_count_max = self.expiry_options().lease_count_max;
            let acls = &self.auth.acls;
            let ctx = Ctx {
                state,
                keys: &keys,
                caller: &caller,
                now_ms,
                operation,
                sudo,
                lease_count_max,
                acls,
                asked: &asked,
            };
            dispatch(&ctx, route, input)
        })?;
        let handled = match plan {
            Plan::Done(handled) => handled,
            Plan::VerifyThenWrite(connection) => {
                let plugin = self.build_plugin(&connection)?;
                plugin.verify().await.map_err(|e| RequestError::Database(format!("verifying the connection: {e}")))?;
                Handled { events: vec![Event::ConnectionWritten(*connection)], ..Handled::default() }
            }
            // The lease operations return their outcome and claims (`Settled`):
            // the outcome rides in the request's own append, with its audit
            // record, and the claims are held until that is durable.
            Plan::Issue(plan) => {
                let Settled { value: issued, outcome, claims } = self.run_issue(*plan).await?;
                let response = Response {
                    lease_id: issued.lease_id.clone(),
                    lease_duration: issued.lease_duration_s,
                    renewable: issued.renewable,
                    ..Response::default()
                };
                let login = Login { username: issued.username, password: issued.password };
                let held = Held { claims, riding: true };
                return Ok((Handled { events: outcome, response, login: Some(login) }, held));
            }
            Plan::Revoke(plan) => {
                let Settled { outcome, claims, .. } = self.revoke_to_outcome(*plan).await?;
                return Ok((Handled { events: outcome, ..Handled::default() }, Held { claims, riding: true }));
            }
            Plan::RevokeForce(plans) => {
                let Settled { value: warnings, outcome, claims } = self.run_revoke_force(plans).await?;
                let response = Response { warnings: (!warnings.is_empty()).then_some(warnings), ..Response::default() };
                return Ok((Handled { events: outcome, response, login: None }, Held { claims, riding: false }));
            }
            Plan::Renew(plan) => {
                let Settled { value: granted, outcome, claims } = self.run_renew(*plan).await?;
                let response = Response {
                    lease_id: granted.lease_id,
                    lease_duration: granted.lease_duration_s,
                    renewable: true,
                    warnings: granted.warning.map(|w| vec![w]),
                    ..Response::default()
                };
                return Ok((Handled { events: outcome, response, login: None }, Held { claims, riding: true }));
            }
            Plan::RotateRoot(plan) => {
                self.run_rotate_root(*plan).await?;
                Handled::default()
            }
            Plan::Reset(connection) => {
                self.drop_plugin(&connection.mount, &connection.name);
                let event = crate::event::ConnectionReset { mount: connection.mount, name: connection.name };
                Handled { events: vec![event.into()], ..Handled::default() }
            }
        };
        Ok((handled, Held::default()))
    }

    /// Resolves a token secret to a usable token.
    /// The caller, or the refusal. A token the engine knows is named on the
    /// record even when it is refused (expired, used up), so the audit trail
    /// says whose stale token was tried.
    async fn authenticate(
        &self,
        keys: &Keys,
        secret: &str,
        now_ms: i64,
        audit: &mut RequestRecorded,
    ) -> Result<Caller, RequestError> {
        let hash = keys.hash_token(secret);
        let token =
            self.with_state(|s| s.token_by_hash(&hash).cloned()).ok_or(TokenRefusal::Unknown).map_err(denied)?;
        audit.accessor = token.accessor.clone();
        audit.display_name = token.display_name.clone();
        tokens::usable(&token, now_ms).map_err(denied)?;
        Ok(Caller { token, secret: secret.to_string() })
    }

    /// Spends one of a token's `num_uses`, durably and one at a time, so two
    /// concurrent requests cannot share the last use. The caller sees its token
    /// as it is after this use.
    async fn spend_use(&self, keys: &Keys, caller: Caller, now_ms: i64) -> Result<Caller, RequestError> {
        let hash = keys.hash_token(&caller.secret);
        let lookup = || self.with_state(|s| s.token_by_hash(&hash).cloned()).ok_or(TokenRefusal::Unknown);
        let _one_at_a_time = self.auth.token_uses.lock().await;
        let token = lookup().map_err(denied)?;
        tokens::usable(&token, now_ms).map_err(denied)?;
        self.append(vec![TokenUsed { accessor: token.accessor.clone() }.into()]).await.map_err(io_error)?;
        let token = lookup().unwrap_or(token);
        Ok(Caller { token, ..caller })
    }

    /// For a caller whose ACL grants nothing for `operation` on `path`: the
    /// permission error to answer instead of a routing or operation error, so
    /// such a caller cannot map which paths exist.
    fn deny_unless_visible(
        &self,
        state: &State,
        caller: &Caller,
        operation: Operation,
        path: &str,
    ) -> Option<RequestError> {
        if caller.is_root() {
            return None;
        }
        let wanted = match operation {
            Operation::Create | Operation::Update => Capabilities::CREATE.union(Capabilities::UPDATE),
            Operation::Read => Capabilities::READ,
            Operation::Delete => Capabilities::DELETE,
            Operation::List => Capabilities::LIST,
        };
        let granted = self.auth.acls.acl_for(state, &caller.token.policies).capabilities(path);
        (granted.bits() & wanted.bits() == 0).then(|| {
            RequestError::PermissionDenied(format!("\"{path}\" requires {}", router::operation_name(operation)))
        })
    }

    /// The one authorization check: does the caller's ACL grant `required` on
    /// `path`? Returns whether it also grants `sudo` there.
    fn authorize(
        &self,
        state: &State,
        caller: &Caller,
        path: &str,
        required: Capabilities,
    ) -> Result<bool, RequestError> {
        if caller.is_root() {
            return Ok(true);
        }
        let acl = self.auth.acls.acl_for(state, &caller.token.policies);
        if acl.allows(path, required) {
            return Ok(acl.allows(path, Capabilities::SUDO));
        }
        Err(RequestError::PermissionDenied(format!("\"{path}\" requires {required}")))
    }
}

/// Vault's existence check: does the object a create/update names exist already?
fn exists(route: &Route, state: &State) -> bool {
    match route {
        Route::Mount(path) => state.mounts.contains_key(path),
        Route::Policy(name, _) => state.policies.contains_key(&name.to_ascii_lowercase()),
        _ => false,
    }
}

fn dispatch(ctx: &Ctx<'_>, route: Route, input: Input) -> Result<Plan, RequestError> {
    match route {
        Route::Mounts | Route::Mount(_) | Route::MountTune(_) => {
            super::sys_mounts::handle(ctx, route, input).map(Plan::Done)
        }
        Route::Policies(_) | Route::Policy(..) => super::sys_policy::handle(ctx, route, input).map(Plan::Done),
        Route::Token(verb) => super::auth_token::handle(ctx, verb, input).map(Plan::Done),
        Route::Leases
        | Route::LeaseLookup(_)
        | Route::LeaseRenew
        | Route::LeaseRevoke(_)
        | Route::LeaseRevokePrefix(_)
        | Route::LeaseRevokeForce(_) => super::sys_leases::handle(ctx, route, input),
        Route::Capabilities(of) => super::sys_capabilities::handle(ctx, of, input).map(Plan::Done),
        Route::Database { mount, rest } => super::database::plan(ctx, &mount, &rest, input),
    }
}
