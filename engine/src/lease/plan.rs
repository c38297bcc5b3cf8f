//! Plans: what an issue, renewal, revocation or root rotation will do, decided
//! from the state under its lock (with Vault's TTL rules), so the database work
//! can run once the lock is released.

use super::{EXPIRATION_MARGIN_MS, LEASE_ID_RANDOM_CHARS, LEASE_TTL_MS_SYSTEM, LeaseError};
use crate::Secret;
use crate::auth::keys::{self, Keys, connection_context, random_base62_from};
use crate::event::{ConnectionWritten, IssueStarted, RevokeReason};
use crate::state::{Lease, State, Token};
use crate::text::password::PasswordPolicy;
use crate::text::template::{self, UsernameContext, UsernameTemplate};

/// Who asked for a lease operation: written into its intent, because the
/// caller may hear back (once the SQL committed) before the request's own
/// `RequestRecorded` is durable. Empty for the engine's own revocations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Asked {
    pub(crate) accessor: String,
    pub(crate) request_id: String,
    pub(crate) path: String,
}

/// Everything an issue needs once the state lock is released.
pub(crate) struct IssuePlan {
    pub(crate) started: IssueStarted,
    pub(crate) connection: ConnectionWritten,
    pub(crate) creation_statements: Vec<String>,
    pub(crate) password: Secret,
    pub(crate) expiration: String,
    pub(crate) lease_duration_s: u64,
}

/// A single revocation to run now.
#[derive(Debug)]
pub(crate) struct RevokePlan {
    pub(crate) lease: Lease,
    pub(crate) connection: Option<ConnectionWritten>,
    pub(crate) statements: Vec<String>,
    pub(crate) terminate_sessions: bool,
    pub(crate) reason: RevokeReason,
    pub(crate) asked: Asked,
}

impl std::fmt::Debug for IssuePlan {
    /// The intent, never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuePlan").field("started", &self.started).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RotatePlan {
    /// The intent (its passwords sealed), never the new password in the clear.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatePlan").field("started", &self.started).finish_non_exhaustive()
    }
}

fn ttl_or(primary: u64, fallback: u64) -> u64 {
    if primary > 0 { primary } else { fallback }
}

pub(crate) fn plan_issue(
    state: &State,
    token: &Token,
    asked: &Asked,
    now_ms: i64,
    lease_count_max: u64,
    mount: &str,
    role_name: &str,
) -> Result<IssuePlan, LeaseError> {
    let role = state
        .roles
        .get(&(mount.to_string(), role_name.to_string()))
        .ok_or_else(|| LeaseError::NotFound(format!("unknown role: {role_name}")))?;
    let connection = state.connections.get(&(mount.to_string(), role.db_name.clone())).ok_or_else(|| {
        LeaseError::NotFound(format!(
            "role \"{role_name}\" uses connection \"{}\", which does not exist; write {mount}config/{} first",
            role.db_name, role.db_name
        ))
    })?;
    if !connection.allowed_roles.iter().any(|pattern| glob_match(pattern, role_name)) {
        return Err(LeaseError::invalid(format!("\"{role_name}\" is not an allowed role")));
    }
    let global_max = lease_count_max;
    if global_max > 0 && state.leases.len() as u64 >= global_max {
        return Err(LeaseError::Busy(format!(
            "{} live leases reach the engine's lease_count_max of {global_max}; revoke some or raise the limit",
            state.leases.len()
        )));
    }
    if role.lease_count_max > 0 {
        let live = state.leases.values().filter(|l| *l.mount == *mount && *l.role == *role_name).count() as u64;
        if live >= role.lease_count_max {
            return Err(LeaseError::Busy(format!(
                "role \"{role_name}\" already has {live} live leases, its lease_count_max; revoke some or raise it"
            )));
        }
    }
    let mount_entry = state.mounts.get(mount);
    let mount_default = mount_entry.map_or(0, |m| m.default_lease_ttl_ms);
    let mount_max = mount_entry.map_or(0, |m| m.max_lease_ttl_ms);
    let max_ms = ttl_or(role.max_ttl_ms, ttl_or(mount_max, LEASE_TTL_MS_SYSTEM));
    let ttl_ms = ttl_or(role.default_ttl_ms, ttl_or(mount_default, LEASE_TTL_MS_SYSTEM)).min(max_ms);
    let now = now_ms;
    let mut expire_time_ms = now.saturating_add(ttl_ms as i64);
    let mut expire_time_max_ms = now.saturating_add(max_ms as i64);
    // A lease never outlives the token that asked for it.
    if let Some(token_expiry) = token.expire_time_ms {
        expire_time_ms = expire_time_ms.min(token_expiry);
        expire_time_max_ms = expire_time_max_ms.min(token_expiry);
    }
    let io = LeaseError::io;
    // One pool for the username's, the password's and the lease id's
    // randomness: one system call per issue, not one per block.
    let mut pool = keys::RandomPool::new();
    let mut fill = |buf: &mut [u8]| pool.fill(buf).expect("the OS random source failed");
    let username_template = if connection.username_template.is_empty() {
        UsernameTemplate::default()
    } else {
        UsernameTemplate::parse(&connection.username_template).map_err(|e| LeaseError::invalid(e.to_string()))?
    };
    let username = username_template
        .render(
            &UsernameContext { display_name: &token.display_name, role_name, unix_time_s: now.div_euclid(1000) },
            &mut template::random_source(&mut fill),
        )
        .map_err(|e| LeaseError::invalid(format!("username_template: {e}")))?;
    let policy = if connection.password_policy.is_empty() {
        PasswordPolicy::default()
    } else {
        PasswordPolicy::parse(&connection.password_policy).map_err(|e| LeaseError::invalid(e.to_string()))?
    };
    let password = Secret::new(crate::text::password::generate_password(&policy, &mut fill));
    let lease_id =
        format!("{mount}creds/{role_name}/{}", random_base62_from(LEASE_ID_RANDOM_CHARS, &mut pool).map_err(io)?);
    Ok(IssuePlan {
        started: IssueStarted {
            lease_id,
            mount: mount.to_string(),
            role: role_name.to_string(),
            connection: role.db_name.clone(),
            username,
            accessor: token.accessor.clone(),
            expire_time_ms,
            expire_time_max_ms,
            renewable: true,
            revocation_statements: role.revocation_statements.clone(),
            request_id: asked.request_id.clone(),
            path: asked.path.clone(),
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
        asked: Asked::default(),
    }
}

/// A renewal to run: the new expiry, already capped.
#[derive(Debug)]
pub(crate) struct RenewPlan {
    pub(crate) lease: Lease,
    pub(crate) connection: ConnectionWritten,
    pub(crate) statements: Vec<String>,
    pub(crate) expire_time_ms: i64,
    pub(crate) lease_duration_s: u64,
    pub(crate) warning: Option<String>,
    pub(crate) asked: Asked,
}

/// Vault's renewal rules: the new TTL counts from now (`increment`, else the
/// role's default TTL), capped at issue time + max TTL with a warning.
pub(crate) fn plan_renew(
    state: &State,
    now_ms: i64,
    lease: &Lease,
    increment_ms: Option<u64>,
    asked: &Asked,
) -> Result<RenewPlan, LeaseError> {
    let now = now_ms;
    // An `Issuing` lease may be renewed: its caller may hold the password (the
    // issue's outcome rides after the reply, or a crash lost it). An issue still
    // running holds the lease's claim, which the renewal waits for.
    if let crate::state::LeaseStatus::Revoking(_) = lease.status {
        return Err(LeaseError::invalid("lease is being revoked and cannot be renewed"));
    }
    if lease.expire_time_effective_ms() <= now {
        return Err(LeaseError::invalid("lease expired"));
    }
    if !lease.renewable {
        return Err(LeaseError::invalid("lease is not renewable"));
    }
    if now >= lease.expire_time_max_ms {
        return Err(LeaseError::invalid("past the max TTL, cannot renew"));
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
        LeaseError::Database(format!("connection \"{}\" of {} no longer exists", lease.connection, lease.mount))
    })?;
    Ok(RenewPlan {
        lease: lease.clone(),
        connection: connection.clone(),
        statements: role.map(|r| r.renew_statements.clone()).unwrap_or_default(),
        expire_time_ms,
        lease_duration_s: ((expire_time_ms - now) / 1000) as u64,
        warning,
        asked: asked.clone(),
    })
}

/// A root rotation: the new password, generated and sealed.
pub(crate) struct RotatePlan {
    pub(crate) connection: ConnectionWritten,
    pub(crate) started: crate::event::RotateRootStarted,
    pub(crate) new_password: Secret,
}

pub(crate) fn plan_rotate_root(state: &State, keys: &Keys, mount: &str, name: &str) -> Result<RotatePlan, LeaseError> {
    let connection = state
        .connections
        .get(&(mount.to_string(), name.to_string()))
        .ok_or_else(|| LeaseError::NotFound(format!("no connection named \"{name}\" in {mount}")))?;
    let old_password = connection.password.clone().ok_or_else(|| {
        LeaseError::invalid(format!("connection \"{name}\" has no root password to rotate; write one first"))
    })?;
    if connection.username.is_empty() {
        return Err(LeaseError::invalid(format!("connection \"{name}\" has no root username to rotate")));
    }
    let policy = if connection.password_policy.is_empty() {
        PasswordPolicy::default()
    } else {
        PasswordPolicy::parse(&connection.password_policy).map_err(|e| LeaseError::invalid(e.to_string()))?
    };
    let mut fill = |buf: &mut [u8]| keys::fill_random(buf).expect("the OS random source failed");
    let new_password = Secret::new(crate::text::password::generate_password(&policy, &mut fill));
    let sealed =
        keys.seal(&connection_context(mount, name), new_password.expose().as_bytes()).map_err(LeaseError::io)?;
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

/// Looks a lease up by id for a single revocation `asked` for.
pub(crate) fn lease_for_revoke(state: &State, lease_id: &str, asked: &Asked) -> Result<RevokePlan, LeaseError> {
    let lease = state.leases.get(lease_id).ok_or_else(|| LeaseError::NotFound("lease not found".into()))?;
    Ok(RevokePlan { asked: asked.clone(), ..plan_revoke(state, lease, RevokeReason::Explicit) })
}

/// `allowed_roles` globs: `*` matches any run of characters (also none); other
/// characters match themselves. Empty = no role (Vault's default).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
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
