//! Issuing (`<mount>/creds/<role>`) and revoking one lease, against the database.
//!
//! Issue follows DESIGN.md's write path: the intent (`IssueStarted`) is enqueued
//! before the creation SQL runs; the transaction commits only once the intent is
//! durable; the outcome (`IssueCompleted`) is durable, with the audit record,
//! before the caller sees the password.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use super::database::connection_context;
use super::pipeline::{Ctx, Handled};
use super::{RequestError, Response};
use crate::Engine;
use crate::auth::keys::{self, random_base62};
use crate::event::{
    ConnectionWritten, Event, IssueCompleted, IssueStarted, RenewCompleted, RenewFailed, RenewStarted, RevokeCompleted,
    RevokeFailed, RevokeReason, RevokeStarted,
};
use crate::plugin::credentials::PasswordPolicy;
use crate::plugin::postgres::{PasswordAuthentication, PostgresPlugin, PostgresSettings};
use crate::plugin::template::{self, UsernameContext, UsernameTemplate};
use crate::plugin::{DatabasePlugin, NewUser, PluginError};
use crate::state::{Lease, State};

/// Vault's system default and maximum lease TTL: 768h.
pub const LEASE_TTL_MS_SYSTEM: u64 = 768 * 3_600_000;
/// Characters of randomness in a lease id.
pub const LEASE_ID_RANDOM_CHARS: usize = 24;
/// `{{expiration}}` is the lease's expiry plus this (Vault's margin).
pub const EXPIRATION_MARGIN_MS: i64 = 5_000;

/// Lease ids whose revocation (or issue) is running: one at a time per lease.
pub(crate) type InFlightSet = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// Marks a lease's revocation as running for as long as it lives. Owned (not a
/// borrow of the engine), so a request can hold it until its outcome is durable.
pub(crate) struct InFlight {
    set: InFlightSet,
    lease_id: String,
}

impl InFlight {
    fn claim(set: &InFlightSet, lease_id: &str) -> Option<InFlight> {
        set.lock()
            .expect("in-flight lock poisoned")
            .insert(lease_id.to_string())
            .then(|| InFlight { set: set.clone(), lease_id: lease_id.to_string() })
    }
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InFlight").field(&self.lease_id).finish()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.lease_id);
        }
    }
}

/// What [`Engine::recover`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Root rotations settled.
    pub rotations: usize,
    /// Interrupted issues and revocations now revoked.
    pub revoked: usize,
    /// Revocations that failed again (recorded; the expirer retries them).
    pub revoke_failed: usize,
}

/// Everything an issue needs once the state lock is released.
#[derive(Debug)]
pub(crate) struct IssuePlan {
    pub started: IssueStarted,
    pub connection: ConnectionWritten,
    pub creation_statements: Vec<String>,
    pub password: String,
    pub expiration: String,
    pub lease_duration_s: u64,
}

/// A single revocation to run now.
#[derive(Debug)]
pub(crate) struct RevokePlan {
    pub lease: Lease,
    pub connection: Option<ConnectionWritten>,
    pub statements: Vec<String>,
    pub terminate_sessions: bool,
    pub reason: RevokeReason,
}

fn ttl_or(primary: u64, fallback: u64) -> u64 {
    if primary > 0 { primary } else { fallback }
}

pub(crate) fn plan_issue(ctx: &Ctx<'_>, mount: &str, role_name: &str) -> Result<IssuePlan, RequestError> {
    let state = ctx.state;
    let role = state
        .roles
        .get(&(mount.to_string(), role_name.to_string()))
        .ok_or_else(|| RequestError::not_found(format!("unknown role: {role_name}")))?;
    let connection = state.connections.get(&(mount.to_string(), role.db_name.clone())).ok_or_else(|| {
        RequestError::not_found(format!(
            "role \"{role_name}\" uses connection \"{}\", which does not exist; write {mount}config/{} first",
            role.db_name, role.db_name
        ))
    })?;
    if !connection.allowed_roles.iter().any(|pattern| glob_match(pattern, role_name)) {
        return Err(RequestError::invalid(format!("\"{role_name}\" is not an allowed role")));
    }
    let global_max = ctx.lease_count_max;
    if global_max > 0 && state.leases.len() as u64 >= global_max {
        return Err(RequestError::Busy(format!(
            "{} live leases reach the engine's lease_count_max of {global_max}; revoke some or raise the limit",
            state.leases.len()
        )));
    }
    if role.lease_count_max > 0 {
        let live = state.leases.values().filter(|l| *l.mount == *mount && *l.role == *role_name).count() as u64;
        if live >= role.lease_count_max {
            return Err(RequestError::Busy(format!(
                "role \"{role_name}\" already has {live} live leases, its lease_count_max; revoke some or raise it"
            )));
        }
    }
    let mount_entry = state.mounts.get(mount);
    let mount_default = mount_entry.map_or(0, |m| m.default_lease_ttl_ms);
    let mount_max = mount_entry.map_or(0, |m| m.max_lease_ttl_ms);
    let max_ms = ttl_or(role.max_ttl_ms, ttl_or(mount_max, LEASE_TTL_MS_SYSTEM));
    let ttl_ms = ttl_or(role.default_ttl_ms, ttl_or(mount_default, LEASE_TTL_MS_SYSTEM)).min(max_ms);
    let now = ctx.now_ms;
    let mut expire_time_ms = now.saturating_add(ttl_ms as i64);
    let mut expire_time_max_ms = now.saturating_add(max_ms as i64);
    // A lease never outlives the token that asked for it.
    if let Some(token_expiry) = ctx.caller.token.expire_time_ms {
        expire_time_ms = expire_time_ms.min(token_expiry);
        expire_time_max_ms = expire_time_max_ms.min(token_expiry);
    }
    let io = |e: keys::KeyError| RequestError::Io(e.to_string());
    let mut fill = |buf: &mut [u8]| keys::fill_random(buf).expect("the OS random source failed");
    let username_template = if connection.username_template.is_empty() {
        UsernameTemplate::default()
    } else {
        UsernameTemplate::parse(&connection.username_template).map_err(|e| RequestError::invalid(e.to_string()))?
    };
    let username = username_template
        .render(
            &UsernameContext {
                display_name: &ctx.caller.token.display_name,
                role_name,
                unix_time_s: now.div_euclid(1000),
            },
            &mut template::random_source(&mut fill),
        )
        .map_err(|e| RequestError::invalid(format!("username_template: {e}")))?;
    let policy = if connection.password_policy.is_empty() {
        PasswordPolicy::default()
    } else {
        PasswordPolicy::parse(&connection.password_policy).map_err(|e| RequestError::invalid(e.to_string()))?
    };
    let password = crate::plugin::credentials::generate_password(&policy, &mut fill);
    let lease_id = format!("{mount}creds/{role_name}/{}", random_base62(LEASE_ID_RANDOM_CHARS).map_err(io)?);
    Ok(IssuePlan {
        started: IssueStarted {
            lease_id,
            mount: mount.to_string(),
            role: role_name.to_string(),
            connection: role.db_name.clone(),
            username,
            accessor: ctx.caller.token.accessor.clone(),
            expire_time_ms,
            expire_time_max_ms,
            renewable: true,
            revocation_statements: role.revocation_statements.clone(),
        },
        connection: connection.clone(),
        creation_statements: role.creation_statements.clone(),
        password,
        expiration: template::expiration_text(expire_time_ms + EXPIRATION_MARGIN_MS),
        lease_duration_s: ((expire_time_ms - now).max(0) / 1000) as u64,
    })
}

/// The revocation statements to use: the role's current ones while it exists (so
/// fixing a broken role heals its pending revocations), else the lease's copy.
pub(crate) fn plan_revoke(state: &State, lease: &Lease, reason: RevokeReason) -> RevokePlan {
    let role = state.roles.get(&(lease.mount.to_string(), lease.role.to_string()));
    RevokePlan {
        lease: lease.clone(),
        connection: state.connection_for(&lease.mount, &lease.connection).cloned(),
        statements: role.map_or_else(|| lease.revocation_statements.to_vec(), |r| r.revocation_statements.clone()),
        terminate_sessions: role.is_some_and(|r| r.terminate_sessions),
        reason,
    }
}

/// A renewal to run: the new expiry, already capped.
#[derive(Debug)]
pub(crate) struct RenewPlan {
    pub lease: Lease,
    pub connection: ConnectionWritten,
    pub statements: Vec<String>,
    pub expire_time_ms: i64,
    pub lease_duration_s: u64,
    pub warning: Option<String>,
}

/// Vault's renewal rules: the new TTL counts from now (`increment`, else the
/// role's default TTL), capped at issue time + max TTL with a warning.
pub(crate) fn plan_renew(ctx: &Ctx<'_>, lease: &Lease, increment_ms: Option<u64>) -> Result<RenewPlan, RequestError> {
    let state = ctx.state;
    let now = ctx.now_ms;
    if lease.status != crate::state::LeaseStatus::Active {
        return Err(RequestError::invalid("lease is being issued or revoked and cannot be renewed"));
    }
    if lease.expire_time_ms <= now {
        return Err(RequestError::invalid("lease expired"));
    }
    if !lease.renewable {
        return Err(RequestError::invalid("lease is not renewable"));
    }
    if now >= lease.expire_time_max_ms {
        return Err(RequestError::invalid("past the max TTL, cannot renew"));
    }
    let role = state.roles.get(&(lease.mount.to_string(), lease.role.to_string()));
    let mount_default = state.mounts.get(&*lease.mount).map_or(0, |m| m.default_lease_ttl_ms);
    let default_ms = ttl_or(role.map_or(0, |r| r.default_ttl_ms), ttl_or(mount_default, LEASE_TTL_MS_SYSTEM));
    let wanted_ms = increment_ms.filter(|&i| i > 0).unwrap_or(default_ms);
    let mut expire_time_ms = now.saturating_add(wanted_ms as i64);
    let mut warning = None;
    if expire_time_ms > lease.expire_time_max_ms {
        expire_time_ms = lease.expire_time_max_ms;
        warning = Some(format!(
            "TTL of {}s exceeded the effective max_ttl of {}s; TTL value is capped accordingly",
            wanted_ms / 1000,
            (lease.expire_time_max_ms - now) / 1000
        ));
    }
    let connection = state.connection_for(&lease.mount, &lease.connection).ok_or_else(|| {
        RequestError::Database(format!("connection \"{}\" of {} no longer exists", lease.connection, lease.mount))
    })?;
    Ok(RenewPlan {
        lease: lease.clone(),
        connection: connection.clone(),
        statements: role.map(|r| r.renew_statements.clone()).unwrap_or_default(),
        expire_time_ms,
        lease_duration_s: ((expire_time_ms - now) / 1000) as u64,
        warning,
    })
}

/// A root rotation: the new password, generated and sealed.
#[derive(Debug)]
pub(crate) struct RotatePlan {
    pub connection: ConnectionWritten,
    pub started: crate::event::RotateRootStarted,
    pub new_password: String,
}

pub(crate) fn plan_rotate_root(ctx: &Ctx<'_>, mount: &str, name: &str) -> Result<RotatePlan, RequestError> {
    let connection = ctx
        .state
        .connections
        .get(&(mount.to_string(), name.to_string()))
        .ok_or_else(|| RequestError::not_found(format!("no connection named \"{name}\" in {mount}")))?;
    let old_password = connection.password.clone().ok_or_else(|| {
        RequestError::invalid(format!("connection \"{name}\" has no root password to rotate; write one first"))
    })?;
    if connection.username.is_empty() {
        return Err(RequestError::invalid(format!("connection \"{name}\" has no root username to rotate")));
    }
    let policy = if connection.password_policy.is_empty() {
        PasswordPolicy::default()
    } else {
        PasswordPolicy::parse(&connection.password_policy).map_err(|e| RequestError::invalid(e.to_string()))?
    };
    let mut fill = |buf: &mut [u8]| keys::fill_random(buf).expect("the OS random source failed");
    let new_password = crate::plugin::credentials::generate_password(&policy, &mut fill);
    let sealed = ctx
        .keys
        .seal(&connection_context(mount, name), new_password.as_bytes())
        .map_err(|e| RequestError::Io(e.to_string()))?;
    Ok(RotatePlan {
        connection: connection.clone(),
        started: crate::event::RotateRootStarted {
            mount: mount.to_string(),
            name: name.to_string(),
            old_password,
            new_password: sealed,
        },
        new_password,
    })
}

/// Adds lessor's hint to a revocation error the database explains poorly, so the
/// operator knows which statement to fix (the lease records both).
fn with_revocation_hint(e: RequestError) -> RequestError {
    match e {
        RequestError::Database(message) if message.contains("depend on it") => RequestError::Database(format!(
            "{message} (hint: the role's revocation_statements leave something it was granted, typically default \
             privileges: add ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM \"{{{{name}}}}\" \
             before DROP ROLE, or leave revocation_statements empty to use the default revocation)"
        )),
        other => other,
    }
}

fn database_error(e: PluginError) -> RequestError {
    RequestError::Database(e.to_string())
}

impl Engine {
    /// The plugin for a connection, built once and rebuilt when its configuration
    /// changes (a new password after `rotate-root`, a new URL, `reset`).
    pub(crate) fn plugin_for(&self, connection: &ConnectionWritten) -> Result<Arc<dyn DatabasePlugin>, RequestError> {
        let key = (connection.mount.clone(), connection.name.clone());
        let mut plugins = self.plugins.lock().expect("plugin registry poisoned");
        if let Some((config, plugin)) = plugins.get(&key)
            && config == connection
        {
            return Ok(plugin.clone());
        }
        let plugin = self.build_plugin(connection)?;
        plugins.insert(key, (connection.clone(), plugin.clone()));
        Ok(plugin)
    }

    /// Forgets a connection's plugin, so the next use reconnects (`reset`).
    pub(crate) fn drop_plugin(&self, mount: &str, name: &str) {
        self.plugins.lock().expect("plugin registry poisoned").remove(&(mount.to_string(), name.to_string()));
    }

    pub(crate) fn build_plugin(&self, connection: &ConnectionWritten) -> Result<Arc<dyn DatabasePlugin>, RequestError> {
        if let Some(factory) = &self.plugin_factory {
            return (factory.0)(connection).map_err(|e| RequestError::invalid(format!("connection: {e}")));
        }
        let keys = self.keys.as_ref().ok_or_else(|| RequestError::PermissionDenied("no master key".into()))?;
        let password = match &connection.password {
            Some(sealed) => {
                let context = connection_context(&connection.mount, &connection.name);
                let bytes = keys.unseal(&context, sealed).map_err(|e| RequestError::Corrupt(e.to_string()))?;
                String::from_utf8(bytes).map_err(|_| RequestError::Corrupt("root password is not UTF-8".into()))?
            }
            None => String::new(),
        };
        let url = template::render_connection_url(&connection.connection_url, &connection.username, &password)
            .map_err(|e| RequestError::invalid(format!("connection_url: {e}")))?;
        let settings = PostgresSettings {
            connection_url: url,
            max_open_connections: connection.max_open_connections,
            max_idle_connections: connection.max_idle_connections,
            max_connection_lifetime_ms: connection.max_connection_lifetime_ms,
            password_authentication: if connection.password_authentication == "scram-sha-256" {
                PasswordAuthentication::ScramSha256
            } else {
                PasswordAuthentication::Password
            },
            scram_iterations: connection.scram_iterations,
            ..PostgresSettings::default()
        };
        let plugin = PostgresPlugin::new(&settings).map_err(|e| RequestError::invalid(format!("connection: {e}")))?;
        Ok(Arc::new(plugin))
    }

    /// Runs an issue plan: the intent's fsync overlaps the creation SQL; COMMIT
    /// waits for it. Returns the outcome event and the reply.
    pub(crate) async fn run_issue(&self, plan: IssuePlan) -> Result<Handled, RequestError> {
        let plugin = self.plugin_for(&plan.connection)?;
        let lease_id = plan.started.lease_id.clone();
        let username = plan.started.username.clone();
        // While the creation runs the lease is `Issuing`: the expirer must leave it
        // alone even past its expiry (a database slower than the TTL), or its
        // DROP ROLE would run before the CREATE commits and the role would outlive
        // the forgotten lease (I2).
        let in_flight = InFlight::claim(&self.revocations_in_flight, &lease_id);
        let pending =
            self.submit(vec![plan.started.clone().into()]).await.map_err(|e| RequestError::Io(e.to_string()))?;
        let intent_durable = AtomicBool::new(false);
        let gate = Box::pin(async {
            pending.durable().await.map_err(|e| e.to_string())?;
            intent_durable.store(true, Ordering::SeqCst);
            Ok(())
        });
        let user = NewUser {
            username: &username,
            password: &plan.password,
            expiration: &plan.expiration,
            statements: &plan.creation_statements,
        };
        match plugin.create_user(user, gate).await {
            Ok(()) => {
                let data = json!({ "username": username, "password": plan.password });
                let response = Response {
                    lease_id: lease_id.clone(),
                    lease_duration: plan.lease_duration_s,
                    renewable: plan.started.renewable,
                    ..Response::with_json(data)
                };
                Ok(Handled { events: vec![IssueCompleted { lease_id }.into()], response })
            }
            Err(e) if !intent_durable.load(Ordering::SeqCst) => {
                // Rolled back before COMMIT: no user exists; the outcome says so.
                self.fail_issue_intent(&lease_id, &e).await;
                match e {
                    // The intent could not be made durable (disk full, I/O error):
                    // the log's failure, not the database's (I6).
                    PluginError::Aborted(cause) => Err(RequestError::Io(cause)),
                    e => Err(database_error(e)),
                }
            }
            Err(e) => {
                // COMMIT's fate is unknown: the user may exist. Revoke it now (or
                // leave it to the revocation workers) — never leave it untracked (I2).
                drop(in_flight);
                let plan =
                    self.with_state(|s| s.leases.get(&lease_id).map(|l| plan_revoke(s, l, RevokeReason::Recovery)));
                if let Some(plan) = plan {
                    let _ = self.run_revoke(plan).await;
                }
                Err(database_error(e))
            }
        }
    }

    /// Renew: intent, `VALID UNTIL` in the database, outcome (with the audit record).
    pub(crate) async fn run_renew(&self, plan: RenewPlan) -> Result<Handled, RequestError> {
        let plugin = self.plugin_for(&plan.connection)?;
        let lease_id = plan.lease.lease_id.to_string();
        // One operation on a lease at a time: the expirer must not revoke a lease
        // under a renewal in flight (a database slower than the time left), or the
        // caller would be told of an expiry the lease no longer has (I3).
        let Some(_in_flight) = InFlight::claim(&self.revocations_in_flight, &lease_id) else {
            return Err(RequestError::Busy(format!("{lease_id} is being revoked or renewed; retry shortly")));
        };
        let started = RenewStarted { lease_id: lease_id.clone(), expire_time_ms: plan.expire_time_ms };
        self.append(vec![started.into()]).await.map_err(|e| RequestError::Io(e.to_string()))?;
        let expiration = template::expiration_text(plan.expire_time_ms + EXPIRATION_MARGIN_MS);
        match plugin.renew_user(&plan.lease.username, &expiration, &plan.statements).await {
            Ok(()) => {
                let response = Response {
                    lease_id: lease_id.clone(),
                    lease_duration: plan.lease_duration_s,
                    renewable: true,
                    warnings: plan.warning.map(|w| vec![w]),
                    ..Response::default()
                };
                // Logged while the lease is still claimed, so the expirer next sees
                // the new expiry (the request's audit record follows).
                let done = RenewCompleted { lease_id, expire_time_ms: plan.expire_time_ms };
                self.append(vec![done.into()]).await.map_err(|e| RequestError::Io(e.to_string()))?;
                Ok(Handled { events: vec![], response })
            }
            Err(e) => {
                // The old expiry stands (the caller never got the new TTL).
                let failed = RenewFailed { lease_id, error: e.to_string() };
                let _ = self.append(vec![failed.into()]).await;
                Err(database_error(e))
            }
        }
    }

    /// Rotate the root password: the intent carries both passwords (sealed), so
    /// whatever happens after the SQL, the password that works is found and logged.
    pub(crate) async fn run_rotate_root(&self, plan: RotatePlan) -> Result<Handled, RequestError> {
        let plugin = self.plugin_for(&plan.connection)?;
        self.append(vec![plan.started.clone().into()]).await.map_err(|e| RequestError::Io(e.to_string()))?;
        let rotated = plugin
            .rotate_root(&plan.connection.username, &plan.new_password, &plan.connection.root_rotation_statements)
            .await;
        let outcome = self.settle_rotation(&plan.connection, &plan.started).await?;
        match (rotated, outcome) {
            (Ok(()), Event::RotateRootCompleted(_)) => Ok(Handled::default()),
            (Err(e), _) => Err(database_error(e)),
            (Ok(()), _) => Err(RequestError::Database(
                "the rotation statements ran but neither the old nor the new root password logs in".into(),
            )),
        }
    }

    /// Finds which of a rotation's passwords works (new first) and logs it.
    pub(crate) async fn settle_rotation(
        &self,
        connection: &ConnectionWritten,
        started: &crate::event::RotateRootStarted,
    ) -> Result<Event, RequestError> {
        let mut outcome = Event::RotateRootFailed(crate::event::RotateRootFailed {
            mount: started.mount.clone(),
            name: started.name.clone(),
            error: "neither the old nor the new root password logs in".into(),
        });
        for candidate in [&started.new_password, &started.old_password] {
            let trial = ConnectionWritten { password: Some(candidate.clone()), ..connection.clone() };
            let works = match self.build_plugin(&trial) {
                Ok(plugin) => plugin.verify().await.is_ok(),
                Err(_) => false,
            };
            if works {
                outcome = Event::RotateRootCompleted(crate::event::RotateRootCompleted {
                    mount: started.mount.clone(),
                    name: started.name.clone(),
                    password: candidate.clone(),
                });
                break;
            }
        }
        self.append(vec![outcome.clone()]).await.map_err(|e| RequestError::Io(e.to_string()))?;
        // The next use rebuilds the pool from the password that works.
        self.drop_plugin(&started.mount, &started.name);
        Ok(outcome)
    }

    /// Finishes what a crash interrupted, by DESIGN.md's recovery table: an issue
    /// intent without outcome is revoked (the caller never saw the password); a
    /// revocation in progress runs again (it is idempotent); a renewal without
    /// outcome keeps the old expiry (the fold already does); a root rotation finds
    /// the password that works. Call once after opening, before serving.
    /// Revocations that fail stay recorded and are retried by the expirer.
    pub async fn recover(&self) -> Result<Recovered, RequestError> {
        let rotations = self.recover_rotations().await?;
        let plans: Vec<RevokePlan> = self.with_state(|s| {
            s.leases
                .values()
                .filter_map(|l| match l.status {
                    crate::state::LeaseStatus::Issuing => Some(plan_revoke(s, l, RevokeReason::Recovery)),
                    crate::state::LeaseStatus::Revoking(reason) => Some(plan_revoke(s, l, reason)),
                    crate::state::LeaseStatus::Active => None,
                })
                .collect()
        });
        let mut recovered = Recovered { rotations, ..Recovered::default() };
        for plan in plans {
            match self.run_revoke(plan).await {
                Ok(()) => recovered.revoked += 1,
                Err(RequestError::Io(e)) => return Err(RequestError::Io(e)),
                Err(_) => recovered.revoke_failed += 1,
            }
        }
        Ok(recovered)
    }

    /// Finishes root rotations that a crash interrupted; part of [`Engine::recover`].
    pub async fn recover_rotations(&self) -> Result<usize, RequestError> {
        let pending: Vec<_> = self.with_state(|s| {
            s.rotations
                .values()
                .filter_map(|r| s.connections.get(&(r.mount.clone(), r.name.clone())).map(|c| (c.clone(), r.clone())))
                .collect()
        });
        for (connection, started) in &pending {
            self.settle_rotation(connection, started).await?;
        }
        Ok(pending.len())
    }

    /// Records that an issue rolled back. The intent was enqueued first, so this
    /// outcome lands after it in the log even if the intent is not applied yet.
    async fn fail_issue_intent(&self, lease_id: &str, error: &PluginError) {
        let failed = crate::event::IssueFailed { lease_id: lease_id.to_string(), error: error.to_string() };
        if let Err(e) = self.append(vec![failed.into()]).await {
            tracing::error!(error = %e, lease_id, "cannot record a failed issue; recovery will revoke it");
        }
    }

    /// `revoke-force`: every lease is revoked as usual; a lease the database
    /// refuses to drop is then forgotten (`RevokeForced` with the refusal), so
    /// the audit tells a dropped user from one that may still exist. The outcomes
    /// ride in the request's append; their claims are held until it is durable.
    pub(crate) async fn run_revoke_force(
        &self,
        plans: Vec<RevokePlan>,
    ) -> Result<(Handled, Vec<InFlight>), RequestError> {
        let mut events = Vec::with_capacity(plans.len());
        let mut claims = Vec::with_capacity(plans.len());
        let mut forced = Vec::new();
        let mut busy = Vec::new();
        for plan in plans {
            let lease_id = plan.lease.lease_id.to_string();
            match self.revoke_to_outcome(plan).await {
                Ok((claim, completed)) => {
                    claims.push(claim);
                    events.push(completed);
                }
                // Another revocation of it is running; it finishes that one.
                Err(RequestError::Busy(_)) => busy.push(lease_id),
                // Nothing could be logged: stop, and say so (I6).
                Err(RequestError::Io(e)) => return Err(RequestError::Io(e)),
                Err(refusal) => {
                    events.push(
                        crate::event::RevokeForced { lease_id: lease_id.clone(), error: refusal.to_string() }.into(),
                    );
                    forced.push(lease_id);
                }
            }
        }
        let mut warnings = Vec::new();
        if !forced.is_empty() {
            warnings.push(format!(
                "{} lease(s) forgotten although the database refused to drop their users, which may still log in: {}",
                forced.len(),
                listed(&forced)
            ));
        }
        if !busy.is_empty() {
            warnings.push(format!(
                "{} lease(s) left to the revocation already running for them: {}",
                busy.len(),
                listed(&busy)
            ));
        }
        let response = Response { warnings: (!warnings.is_empty()).then_some(warnings), ..Response::default() };
        Ok((Handled { events, response }, claims))
    }

    /// Revokes one lease now: intent, database, outcome. A failure is recorded as
    /// an attempt (retried later) and returned with the database's own message.
    pub(crate) async fn run_revoke(&self, plan: RevokePlan) -> Result<(), RequestError> {
        let (_claim, completed) = self.revoke_to_outcome(plan).await?;
        self.append(vec![completed]).await.map_err(|e| RequestError::Io(e.to_string()))?;
        Ok(())
    }

    /// A revocation up to its outcome: the intent made durable, the database user
    /// dropped. On success returns the `RevokeCompleted` event, for the caller to
    /// append — a request appends it with its audit record, one fsync instead of
    /// two — together with the claim, to hold until that append is durable so no
    /// other revocation of the lease starts meanwhile. A failure is logged here.
    pub(crate) async fn revoke_to_outcome(&self, plan: RevokePlan) -> Result<(InFlight, Event), RequestError> {
        let lease_id = plan.lease.lease_id.to_string();
        // One revocation of a lease at a time: the expirer and an explicit revoke
        // must not race each other's DROP ROLE.
        let Some(in_flight) = InFlight::claim(&self.revocations_in_flight, &lease_id) else {
            return Err(RequestError::Busy(format!("a revocation of {lease_id} is already running; retry shortly")));
        };
        let started = RevokeStarted { lease_id: lease_id.clone(), reason: plan.reason };
        self.append(vec![started.into()]).await.map_err(|e| RequestError::Io(e.to_string()))?;
        let result = match &plan.connection {
            Some(connection) => match self.plugin_for(connection) {
                Ok(plugin) => plugin
                    .revoke_user(&plan.lease.username, &plan.statements, plan.terminate_sessions)
                    .await
                    .map_err(database_error),
                Err(e) => Err(e),
            },
            None => Err(RequestError::Database(format!(
                "connection \"{}\" of {} no longer exists; write it again to revoke, or use revoke-force",
                plan.lease.connection, plan.lease.mount
            ))),
        };
        match result {
            Ok(()) => Ok((in_flight, RevokeCompleted { lease_id }.into())),
            Err(e) => {
                let e = with_revocation_hint(e);
                let attempt = plan.lease.revoke_attempts + 1;
                let failed = RevokeFailed {
                    lease_id,
                    attempt,
                    error: e.to_string(),
                    next_attempt_time_ms: self.clock().now_ms() + self.expiry_options().backoff_ms(attempt) as i64,
                };
                let _ = self.append(vec![Event::RevokeFailed(failed)]).await;
                Err(e)
            }
        }
    }
}

/// The first few ids of a list, for a warning of bounded length.
fn listed(ids: &[String]) -> String {
    const SHOWN_MAX: usize = 10;
    let shown = ids.iter().take(SHOWN_MAX).map(String::as_str).collect::<Vec<_>>().join(", ");
    match ids.len().checked_sub(SHOWN_MAX) {
        Some(more) if more > 0 => format!("{shown} and {more} more"),
        _ => shown,
    }
}

/// Looks a lease up by id for a single revocation.
pub(crate) fn lease_for_revoke(state: &State, lease_id: &str) -> Result<RevokePlan, RequestError> {
    let lease = state.leases.get(lease_id).ok_or_else(|| RequestError::not_found("lease not found"))?;
    Ok(plan_revoke(state, lease, RevokeReason::Explicit))
}

/// `allowed_roles` globs: `*` matches any run of characters (also none); other
/// characters match themselves. Empty = no role (Vault's default).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn allowed_role_globs() {
        assert!(glob_match("*", "anything"));
        assert!(glob_match("app-*", "app-readonly"));
        assert!(glob_match("app-*-ro", "app-x-ro"));
        assert!(!glob_match("app-*", "other"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("", "x"));
    }
}
