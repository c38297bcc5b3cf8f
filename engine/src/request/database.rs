//! `<mount>/config/*` and `<mount>/roles/*`: connections and roles of a database
//! mount, in Vault's shapes. Writing a connection with `verify_connection` (the
//! default) connects first, so the handler returns a [`Plan`] the pipeline runs
//! outside the state lock.

use serde_json::{Value, json};

use super::handler::{Ctx, Handled, Plan};
use super::input::Input;
use super::{Operation, RequestError, Response};
use crate::event::{ConnectionDeleted, ConnectionWritten, RoleDeleted, RoleWritten};
use crate::lease;
use crate::plugin::postgres::{self, MAX_OPEN_CONNECTIONS_DEFAULT};
use crate::plugin::scram::{SCRAM_ITERATIONS_DEFAULT, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN};
use crate::state::State;
use crate::text::statements::normalize_statement_list;
use crate::text::template::{self, StatementVars};

/// Longest connection or role name, in bytes.
pub(super) const OBJECT_NAME_BYTES_MAX: usize = 128;
/// Most pooled connections a connection may ask for.
pub(super) const MAX_OPEN_CONNECTIONS_MAX: u64 = 1024;

/// `<rest>` of a path under a database mount, split into its handler and name.
fn split_rest(rest: &str) -> (&str, &str) {
    let rest = rest.trim_end_matches('/');
    rest.split_once('/').unwrap_or((rest, ""))
}

pub(crate) fn plan(ctx: &Ctx<'_>, mount: &str, rest: &str, input: Input) -> Result<Plan, RequestError> {
    let (kind, name) = split_rest(rest);
    match (kind, name, ctx.operation) {
        ("config", "", Operation::List | Operation::Read) => Ok(Plan::Done(list(ctx.state, mount, input, true)?)),
        ("roles", "", Operation::List | Operation::Read) => Ok(Plan::Done(list(ctx.state, mount, input, false)?)),
        ("config" | "roles", "", _) => Err(unsupported(ctx, mount, rest, "list")),
        ("config", name, op) => {
            validate_name("connection", name)?;
            match op {
                Operation::Create | Operation::Update => write_connection(ctx, mount, name, input),
                Operation::Read => Ok(Plan::Done(read_connection(ctx.state, mount, name, input)?)),
                Operation::Delete => {
                    input.finish()?;
                    let event = ConnectionDeleted { mount: mount.into(), name: name.into() };
                    Ok(Plan::Done(Handled { events: vec![event.into()], ..Handled::default() }))
                }
                Operation::List => Err(unsupported(ctx, mount, rest, "create, update, read or delete")),
            }
        }
        ("roles", name, op) => {
            validate_name("role", name)?;
            match op {
                Operation::Create | Operation::Update => Ok(Plan::Done(write_role(ctx.state, mount, name, input)?)),
                Operation::Read => Ok(Plan::Done(read_role(ctx.state, mount, name, input)?)),
                Operation::Delete => {
                    input.finish()?;
                    let event = RoleDeleted { mount: mount.into(), name: name.into() };
                    Ok(Plan::Done(Handled { events: vec![event.into()], ..Handled::default() }))
                }
                Operation::List => Err(unsupported(ctx, mount, rest, "create, update, read or delete")),
            }
        }
        ("creds", role, Operation::Read) if !role.is_empty() => {
            input.finish()?;
            Ok(Plan::Issue(Box::new(lease::plan_issue(
                ctx.state,
                &ctx.caller.token,
                ctx.asked,
                ctx.now_ms,
                ctx.lease_count_max,
                mount,
                role,
            )?)))
        }
        ("creds", role, _) if !role.is_empty() => Err(unsupported(ctx, mount, rest, "read")),
        ("rotate-root", name, Operation::Create | Operation::Update) if !name.is_empty() => {
            input.finish()?;
            Ok(Plan::RotateRoot(Box::new(lease::plan_rotate_root(ctx.state, ctx.keys, mount, name)?)))
        }
        ("reset", name, Operation::Create | Operation::Update) if !name.is_empty() => {
            input.finish()?;
            let connection = ctx
                .state
                .connections
                .get(&(mount.to_string(), name.to_string()))
                .ok_or_else(|| RequestError::not_found(format!("no connection named \"{name}\" in {mount}")))?;
            Ok(Plan::Reset(Box::new(connection.clone())))
        }
        ("rotate-root" | "reset", name, _) if !name.is_empty() => Err(unsupported(ctx, mount, rest, "update")),
        _ => Err(RequestError::not_found(format!(
            "no handler for \"{mount}{rest}\": a database mount serves config/, roles/, creds/, rotate-root/ and reset/"
        ))),
    }
}

fn unsupported(ctx: &Ctx<'_>, mount: &str, rest: &str, allowed: &str) -> RequestError {
    super::router::unsupported(ctx.operation, &format!("{mount}{rest}"), allowed)
}

fn validate_name(what: &str, name: &str) -> Result<(), RequestError> {
    if name.is_empty()
        || name.len() > OBJECT_NAME_BYTES_MAX
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(RequestError::invalid(format!(
            "{what} name \"{}\" must be 1 to {OBJECT_NAME_BYTES_MAX} characters of [A-Za-z0-9._-]",
            super::input::truncate(name, 64)
        )));
    }
    Ok(())
}

fn list(state: &State, mount: &str, input: Input, connections: bool) -> Result<Handled, RequestError> {
    input.finish()?;
    let keys: Vec<&String> = if connections {
        state.connections.keys().filter(|(m, _)| m == mount).map(|(_, n)| n).collect()
    } else {
        state.roles.keys().filter(|(m, _)| m == mount).map(|(_, n)| n).collect()
    };
    Ok(Handled { response: Response::with_json(json!({ "keys": keys })), ..Handled::default() })
}

fn statements(input: &mut Input, field: &str) -> Result<Option<Vec<String>>, RequestError> {
    let Some(items) = input.string_list_raw(field)? else { return Ok(None) };
    normalize_statement_list(&items).map(Some).map_err(|e| RequestError::invalid(format!("field \"{field}\": {e}")))
}

/// Renders every statement with harmless values, so a misspelt `{{variable}}`
/// or one this kind of statement cannot have is refused when written, not when a
/// lease needs it.
fn check_templates(field: &str, list: &[String], vars: &StatementVars<'_>) -> Result<(), RequestError> {
    for statement in list {
        template::render_statement(statement, vars)
            .map_err(|e| RequestError::invalid(format!("field \"{field}\": {e}")))?;
    }
    Ok(())
}

const PROBE_NAME: &str = "v-probe-name";
const PROBE_PASSWORD: &str = "Probe-Password-1";
const PROBE_EXPIRATION: &str = "2030-01-01 00:00:00+0000";

fn write_connection(ctx: &Ctx<'_>, mount: &str, name: &str, mut input: Input) -> Result<Plan, RequestError> {
    let existing = ctx.state.connections.get(&(mount.to_string(), name.to_string()));
    let plugin_name = match (input.string("plugin_name")?, existing) {
        (Some(p), _) => p,
        (None, Some(e)) => e.plugin_name.clone(),
        (None, None) => {
            return Err(RequestError::invalid(format!(
                "field \"plugin_name\" is required: use \"{}\"",
                postgres::PLUGIN_NAME
            )));
        }
    };
    if plugin_name != postgres::PLUGIN_NAME {
        return Err(RequestError::invalid(format!(
            "field \"plugin_name\": lessor supports \"{}\", not \"{plugin_name}\"",
            postgres::PLUGIN_NAME
        )));
    }
    let connection_url = input.string("connection_url")?.or_else(|| existing.map(|e| e.connection_url.clone()));
    let Some(connection_url) = connection_url.filter(|u| !u.is_empty()) else {
        return Err(RequestError::invalid(
            "field \"connection_url\" is required, e.g. postgresql://{{username}}:{{password}}@host:5432/db",
        ));
    };
    postgres::check_connection_url(&connection_url)
        .map_err(|e| RequestError::invalid(format!("field \"connection_url\" {e}")))?;
    let username = input.string("username")?.or_else(|| existing.map(|e| e.username.clone())).unwrap_or_default();
    let password = match input.string("password")? {
        Some(p) => Some(
            ctx.keys
                .seal(&crate::auth::keys::connection_context(mount, name), p.as_bytes())
                .map_err(|e| RequestError::Io(e.to_string()))?,
        ),
        None => existing.and_then(|e| e.password.clone()),
    };
    let allowed_roles =
        input.string_list("allowed_roles")?.or_else(|| existing.map(|e| e.allowed_roles.clone())).unwrap_or_default();
    let verify_connection = input.bool("verify_connection")?.unwrap_or(true);
    let max_open_connections = input
        .u64("max_open_connections", MAX_OPEN_CONNECTIONS_MAX)?
        .map(|v| v as u32)
        .or_else(|| existing.map(|e| e.max_open_connections))
        .unwrap_or(MAX_OPEN_CONNECTIONS_DEFAULT);
    let max_idle_connections = input
        .u64("max_idle_connections", MAX_OPEN_CONNECTIONS_MAX)?
        .map(|v| v as u32)
        .or_else(|| existing.map(|e| e.max_idle_connections))
        .unwrap_or(0);
    let max_connection_lifetime_ms = input
        .duration_ms("max_connection_lifetime")?
        .or_else(|| existing.map(|e| e.max_connection_lifetime_ms))
        .unwrap_or(0);
    let password_authentication = input
        .string("password_authentication")?
        .or_else(|| existing.map(|e| e.password_authentication.clone()))
        .unwrap_or_else(|| "password".into());
    if !matches!(password_authentication.as_str(), "password" | "scram-sha-256") {
        return Err(RequestError::invalid(
            "field \"password_authentication\" must be \"password\" or \"scram-sha-256\"",
        ));
    }
    let scram_iterations = scram_iterations(&mut input, &password_authentication)?
        .or_else(|| existing.map(|e| e.scram_iterations))
        .unwrap_or(SCRAM_ITERATIONS_DEFAULT);
    let root_rotation_statements = match statements(&mut input, "root_rotation_statements")? {
        Some(s) => s,
        None => existing.map(|e| e.root_rotation_statements.clone()).unwrap_or_default(),
    };
    check_templates(
        "root_rotation_statements",
        &root_rotation_statements,
        &StatementVars { name: Some(PROBE_NAME), password: Some(PROBE_PASSWORD), expiration: None },
    )?;
    let username_template = input
        .string("username_template")?
        .or_else(|| existing.map(|e| e.username_template.clone()))
        .unwrap_or_default();
    if !username_template.is_empty() {
        let invalid = |e: template::TemplateError| RequestError::invalid(format!("field \"username_template\": {e}"));
        let parsed = template::UsernameTemplate::parse(&username_template).map_err(invalid)?;
        // Rendered once with ordinary values (as Vault's plugins do when they
        // initialize): a template that cannot give a valid name for them, such
        // as one that is empty or holds a space, is refused now, not at issue.
        let probe = template::UsernameContext {
            display_name: "token-app",
            role_name: "app-readonly",
            unix_time_s: ctx.now_ms.div_euclid(1000),
        };
        parsed.render(&probe, &mut |n| "a".repeat(n)).map_err(invalid)?;
    }
    let password_policy =
        input.string("password_policy")?.or_else(|| existing.map(|e| e.password_policy.clone())).unwrap_or_default();
    if !password_policy.is_empty() {
        crate::text::password::PasswordPolicy::parse(&password_policy)
            .map_err(|e| RequestError::invalid(format!("field \"password_policy\": {e}")))?;
    }
    input.finish()?;
    let event = ConnectionWritten {
        mount: mount.into(),
        name: name.into(),
        plugin_name,
        connection_url,
        username,
        password,
        allowed_roles,
        verify_connection,
        max_open_connections,
        max_idle_connections,
        max_connection_lifetime_ms,
        password_authentication,
        root_rotation_statements,
        username_template,
        password_policy,
        scram_iterations,
    };
    if verify_connection {
        Ok(Plan::VerifyThenWrite(Box::new(event)))
    } else {
        Ok(Plan::Done(Handled { events: vec![event.into()], ..Handled::default() }))
    }
}

/// `scram_iterations`: the PBKDF2 rounds of the SCRAM-SHA-256 verifiers lessor
/// computes for this connection's users (and root rotations). PostgreSQL's 4096
/// by default; a lower count saves CPU on every issue (lessor's) and every login
/// (the server's), and costs no security for lessor's machine-generated passwords
/// (about 119 bits with the default policy: past guessing at any count — see
/// [`scram_sha256_verifier`](crate::plugin::scram::scram_sha256_verifier)).
/// Only lessor computes verifiers with `password_authentication=scram-sha-256`, so
/// the setting is refused with `password`, where the server hashes the password
/// itself at its own count.
fn scram_iterations(input: &mut Input, password_authentication: &str) -> Result<Option<u32>, RequestError> {
    let Some(value) = input.u64("scram_iterations", u64::from(SCRAM_ITERATIONS_MAX))? else { return Ok(None) };
    if value < u64::from(SCRAM_ITERATIONS_MIN) {
        return Err(RequestError::invalid(format!(
            "field \"scram_iterations\" must be between {SCRAM_ITERATIONS_MIN} and {SCRAM_ITERATIONS_MAX} \
             (PostgreSQL's default is {SCRAM_ITERATIONS_DEFAULT})"
        )));
    }
    if password_authentication != "scram-sha-256" {
        return Err(RequestError::invalid(
            "field \"scram_iterations\" applies only when lessor computes the verifier: set \
             password_authentication=scram-sha-256 too, or leave scram_iterations out",
        ));
    }
    Ok(Some(value as u32))
}

fn read_connection(state: &State, mount: &str, name: &str, input: Input) -> Result<Handled, RequestError> {
    input.finish()?;
    let c = state.connections.get(&(mount.to_string(), name.to_string())).ok_or_else(|| {
        RequestError::not_found(format!("no connection named \"{name}\" in {mount}; list them with {mount}config"))
    })?;
    // Never the password, not even sealed.
    let data = json!({
        "plugin_name": c.plugin_name,
        "connection_details": {
            // Logs written before literal passwords were refused may hold one.
            "connection_url": template::mask_url_password(&c.connection_url),
            "username": c.username,
            "max_open_connections": c.max_open_connections,
            "max_idle_connections": c.max_idle_connections,
            "max_connection_lifetime": format!("{}s", c.max_connection_lifetime_ms / 1000),
            "password_authentication": c.password_authentication,
            "scram_iterations": c.scram_iterations,
        },
        "allowed_roles": c.allowed_roles,
        "root_credentials_rotate_statements": as_written(&c.root_rotation_statements),
        "password_policy": c.password_policy,
        "username_template": c.username_template,
        "verify_connection": c.verify_connection,
    });
    Ok(Handled { response: Response::with_json(data), ..Handled::default() })
}

/// Warnings for roles that cannot work as written (measured traps, see README).
pub(crate) fn role_warnings(creation: &[String], revocation: &[String]) -> Vec<String> {
    let lower = |s: &String| s.to_ascii_lowercase();
    let mut warnings = Vec::new();
    let grants_default_privileges =
        creation.iter().map(lower).any(|s| s.contains("alter default privileges") && s.contains(" grant "));
    let revokes_default_privileges =
        revocation.iter().map(lower).any(|s| s.contains("alter default privileges") && s.contains(" revoke "));
    if grants_default_privileges && !revocation.is_empty() && !revokes_default_privileges {
        warnings.push(
            "creation_statements grant default privileges (ALTER DEFAULT PRIVILEGES … GRANT) but \
             revocation_statements never revoke them, so their DROP ROLE fails with \"role cannot be dropped \
             because some objects depend on it\"; lessor then finishes each revocation with its default \
             revocation (DROP OWNED, DROP ROLE). To make the statements complete on their own, add \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM \"{{name}}\"; before the DROP \
             ROLE, or leave revocation_statements empty to use lessor's default revocation"
                .to_string(),
        );
    }
    let grants_on_all_tables =
        creation.iter().map(lower).any(|s| s.contains("grant ") && s.contains(" on all tables "));
    if grants_on_all_tables {
        warnings.push(
            "creation_statements GRANT … ON ALL TABLES to each credential: every live credential adds an \
             entry to every table's ACL, so concurrent issues contend (\"tuple concurrently updated\"), each \
             grant slows as credentials accumulate, and at ~2,400 live credentials a table's ACL no longer \
             fits (\"row is too big\"); grant a pre-created group role instead: GRANT readers TO \"{{name}}\""
                .to_string(),
        );
    }
    warnings
}

fn write_role(state: &State, mount: &str, name: &str, mut input: Input) -> Result<Handled, RequestError> {
    let existing = state.roles.get(&(mount.to_string(), name.to_string()));
    let db_name = input.string("db_name")?.or_else(|| existing.map(|e| e.db_name.clone()));
    let Some(db_name) = db_name.filter(|d| !d.is_empty()) else {
        return Err(RequestError::invalid("field \"db_name\" is required: the connection this role uses"));
    };
    if !state.connections.contains_key(&(mount.to_string(), db_name.clone())) {
        return Err(RequestError::invalid(format!(
            "field \"db_name\": no connection named \"{db_name}\" in {mount}; write {mount}config/{db_name} first"
        )));
    }
    let keep = |field: Option<Vec<String>>, old: fn(&RoleWritten) -> &Vec<String>| {
        field.or_else(|| existing.map(|e| old(e).clone())).unwrap_or_default()
    };
    let creation_statements = keep(statements(&mut input, "creation_statements")?, |e| &e.creation_statements);
    if creation_statements.is_empty() {
        return Err(RequestError::invalid(
            "field \"creation_statements\" is required, e.g. CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD \
             '{{password}}' VALID UNTIL '{{expiration}}';",
        ));
    }
    let revocation_statements = keep(statements(&mut input, "revocation_statements")?, |e| &e.revocation_statements);
    let renew_statements = keep(statements(&mut input, "renew_statements")?, |e| &e.renew_statements);
    let rollback_statements = keep(statements(&mut input, "rollback_statements")?, |e| &e.rollback_statements);
    let default_ttl_ms = input.duration_ms("default_ttl")?.or_else(|| existing.map(|e| e.default_ttl_ms)).unwrap_or(0);
    let max_ttl_ms = input.duration_ms("max_ttl")?.or_else(|| existing.map(|e| e.max_ttl_ms)).unwrap_or(0);
    let terminate_sessions =
        input.bool("terminate_sessions")?.or_else(|| existing.map(|e| e.terminate_sessions)).unwrap_or(false);
    let lease_count_max =
        input.u64("lease_count_max", u64::MAX)?.or_else(|| existing.map(|e| e.lease_count_max)).unwrap_or(0);
    if let Some(kind) = input.string("credential_type")?
        && kind != "password"
    {
        return Err(RequestError::invalid(format!(
            "field \"credential_type\": lessor issues \"password\" credentials, not \"{kind}\""
        )));
    }
    input.finish()?;
    if max_ttl_ms > 0 && default_ttl_ms > max_ttl_ms {
        return Err(RequestError::invalid(
            "field \"default_ttl\": must not exceed max_ttl; lower default_ttl or raise max_ttl",
        ));
    }
    let all =
        StatementVars { name: Some(PROBE_NAME), password: Some(PROBE_PASSWORD), expiration: Some(PROBE_EXPIRATION) };
    let name_exp = StatementVars { name: Some(PROBE_NAME), password: None, expiration: Some(PROBE_EXPIRATION) };
    let name_only = StatementVars { name: Some(PROBE_NAME), password: None, expiration: None };
    check_templates("creation_statements", &creation_statements, &all)?;
    check_templates("renew_statements", &renew_statements, &name_exp)?;
    check_templates("revocation_statements", &revocation_statements, &name_only)?;
    check_templates("rollback_statements", &rollback_statements, &all)?;
    let warnings = role_warnings(&creation_statements, &revocation_statements);
    let event = RoleWritten {
        mount: mount.into(),
        name: name.into(),
        db_name,
        creation_statements,
        revocation_statements,
        renew_statements,
        rollback_statements,
        default_ttl_ms,
        max_ttl_ms,
        terminate_sessions,
        lease_count_max,
    };
    let response = Response { warnings: (!warnings.is_empty()).then_some(warnings), ..Response::default() };
    Ok(Handled { events: vec![event.into()], response, login: None })
}

/// Statements as a user writes them, each ending in `;` (they are kept split
/// and without it); writing them back gives the same list.
fn as_written(list: &[String]) -> Vec<String> {
    list.iter().map(|s| format!("{s};")).collect()
}

fn read_role(state: &State, mount: &str, name: &str, input: Input) -> Result<Handled, RequestError> {
    input.finish()?;
    let r = state.roles.get(&(mount.to_string(), name.to_string())).ok_or_else(|| {
        RequestError::not_found(format!("no role named \"{name}\" in {mount}; list them with {mount}roles"))
    })?;
    let data: Value = json!({
        "db_name": r.db_name,
        "creation_statements": as_written(&r.creation_statements),
        "revocation_statements": as_written(&r.revocation_statements),
        "renew_statements": as_written(&r.renew_statements),
        "rollback_statements": as_written(&r.rollback_statements),
        "default_ttl": r.default_ttl_ms / 1000,
        "max_ttl": r.max_ttl_ms / 1000,
        "terminate_sessions": r.terminate_sessions,
        "lease_count_max": r.lease_count_max,
        "credential_type": "password",
    });
    Ok(Handled { response: Response::with_json(data), ..Handled::default() })
}
