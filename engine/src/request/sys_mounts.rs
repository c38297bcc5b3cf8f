//! `sys/mounts`: enable, disable, list and tune secrets-engine mounts.

use serde_json::{Map, Value, json};

use super::handler::{Ctx, Handled};
use super::input::Input;
use super::router::Route;
use super::{Operation, RequestError, Response};
use crate::event::{Event, MountDisabled, MountEnabled, MountTuned, RevokeReason, RevokeStarted};
use crate::state::{LeaseStatus, Mount, State};

/// The only engine type lessor serves.
pub(super) const MOUNT_TYPE_DATABASE: &str = "database";
/// Path prefixes Vault reserves for itself.
const RESERVED_PREFIXES: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];
/// Longest mount path, in bytes.
pub(super) const MOUNT_PATH_BYTES_MAX: usize = 128;

pub(crate) fn handle(ctx: &Ctx<'_>, route: Route, input: Input) -> Result<Handled, RequestError> {
    match (route, ctx.operation) {
        (Route::Mounts, _) => {
            input.finish()?;
            let data: Map<String, Value> = ctx.state.mounts.values().map(|m| (m.path.clone(), mount_json(m))).collect();
            Ok(Handled { response: Response::with_data(data), ..Handled::default() })
        }
        (Route::Mount(path), Operation::Create | Operation::Update) => enable(ctx.state, path, input),
        (Route::Mount(path), Operation::Delete) => {
            input.finish()?;
            Ok(disable(ctx.state, &path))
        }
        (Route::Mount(path), _) => {
            input.finish()?;
            let mount = find(ctx.state, &path)?;
            Ok(Handled { response: Response::with_json(mount_json(mount)), ..Handled::default() })
        }
        (Route::MountTune(path), Operation::Read) => {
            input.finish()?;
            let mount = find(ctx.state, &path)?;
            Ok(Handled { response: Response::with_json(tune_json(mount)), ..Handled::default() })
        }
        (Route::MountTune(path), _) => tune(ctx.state, &path, input),
        (other, _) => unreachable!("sys/mounts handler got {other:?}"),
    }
}

fn find<'s>(state: &'s State, path: &str) -> Result<&'s Mount, RequestError> {
    state.mounts.get(path).ok_or_else(|| {
        RequestError::not_found(format!("no secrets engine is enabled at \"{path}\"; list them with `sys/mounts`"))
    })
}

fn secs(ms: u64) -> u64 {
    ms / 1000
}

fn tune_json(m: &Mount) -> Value {
    json!({
        "default_lease_ttl": secs(m.default_lease_ttl_ms),
        "max_lease_ttl": secs(m.max_lease_ttl_ms),
        "description": m.description,
    })
}

fn mount_json(m: &Mount) -> Value {
    json!({
        "type": m.mount_type,
        "description": m.description,
        "config": { "default_lease_ttl": secs(m.default_lease_ttl_ms), "max_lease_ttl": secs(m.max_lease_ttl_ms) },
    })
}

/// A mount path: segments of `[A-Za-z0-9_.-]`, not reserved, ending in `/`.
fn validate_path(path: &str) -> Result<(), RequestError> {
    let bare = path.trim_end_matches('/');
    if bare.is_empty() || path.len() > MOUNT_PATH_BYTES_MAX {
        return Err(RequestError::invalid(format!(
            "mount path must be 1 to {MOUNT_PATH_BYTES_MAX} bytes, such as \"database\" or \"db-prod\""
        )));
    }
    if !bare.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/')) {
        return Err(RequestError::invalid(format!(
            "mount path \"{bare}\" may contain only letters, digits, '_', '-', '.' and '/'"
        )));
    }
    if let Some(reserved) = RESERVED_PREFIXES.iter().find(|r| path.starts_with(*r)) {
        return Err(RequestError::invalid(format!("cannot mount under \"{reserved}\": it is reserved")));
    }
    Ok(())
}

fn ttls(input: &mut Input) -> Result<(Option<u64>, Option<u64>), RequestError> {
    let default = input.duration_ms("default_lease_ttl")?;
    let max = input.duration_ms("max_lease_ttl")?;
    if let (Some(d), Some(m)) = (default, max)
        && m > 0
        && d > m
    {
        return Err(RequestError::invalid(
            "field \"default_lease_ttl\": must not exceed max_lease_ttl; lower it or raise max_lease_ttl",
        ));
    }
    Ok((default, max))
}

/// Mount `config` fields Vault's clients send that lessor has no use for.
const MOUNT_CONFIG_DEFAULT_ONLY: &[&str] = &[
    "force_no_cache",
    "listing_visibility",
    "audit_non_hmac_request_keys",
    "audit_non_hmac_response_keys",
    "passthrough_request_headers",
    "allowed_response_headers",
    "plugin_version",
    "token_type",
    "options",
];

fn enable(state: &State, path: String, mut input: Input) -> Result<Handled, RequestError> {
    validate_path(&path)?;
    let mount_type = input.required_string("type", "the engine type, \"database\"")?;
    if mount_type != MOUNT_TYPE_DATABASE {
        return Err(RequestError::invalid(format!(
            "field \"type\": lessor serves only the \"database\" secrets engine, not \"{mount_type}\""
        )));
    }
    let description = input.string("description")?.unwrap_or_default();
    let (default_ttl, max_ttl) = match input.object("config")? {
        Some(mut config) => {
            let t = ttls(&mut config)?;
            config.default_only(MOUNT_CONFIG_DEFAULT_ONLY, &[])?;
            config.finish()?;
            t
        }
        None => (None, None),
    };
    // What `vault secrets enable` and hvac send besides: accepted at their
    // defaults (the CLI sends `options: {}` and `force_no_cache: false`; hvac
    // `plugin_name: null`, and a builtin engine's plugin is named by its type).
    input.default_only(&["local", "seal_wrap", "external_entropy_access", "options", "plugin_version"], &[])?;
    input.default_only(&["plugin_name"], &[MOUNT_TYPE_DATABASE])?;
    input.finish()?;
    if let Some(existing) = state.mounts.keys().find(|m| path.starts_with(m.as_str()) || m.starts_with(path.as_str())) {
        return Err(RequestError::invalid(format!("path is already in use at \"{existing}\"; choose another path")));
    }
    let event = MountEnabled {
        path,
        mount_type,
        description,
        default_lease_ttl_ms: default_ttl.unwrap_or(0),
        max_lease_ttl_ms: max_ttl.unwrap_or(0),
    };
    Ok(Handled { events: vec![event.into()], ..Handled::default() })
}

/// Disabling a mount starts revocation of every live lease under it (the
/// revocation workers finish the job) and removes its configuration.
fn disable(state: &State, path: &str) -> Handled {
    if !state.mounts.contains_key(path) {
        let warning = format!("no secrets engine was enabled at \"{path}\"; nothing was disabled");
        return Handled {
            response: Response { warnings: Some(vec![warning]), ..Response::default() },
            ..Handled::default()
        };
    }
    let mut events: Vec<Event> = state
        .leases
        .values()
        .filter(|l| *l.mount == *path && !matches!(l.status, LeaseStatus::Revoking(_)))
        .map(|l| RevokeStarted::by_engine(l.lease_id.to_string(), RevokeReason::MountDisabled).into())
        .collect();
    events.push(MountDisabled { path: path.to_string() }.into());
    Handled { events, ..Handled::default() }
}

fn tune(state: &State, path: &str, mut input: Input) -> Result<Handled, RequestError> {
    let mount = find(state, path)?;
    let (default, max) = ttls(&mut input)?;
    input.finish()?;
    let default_lease_ttl_ms = default.unwrap_or(mount.default_lease_ttl_ms);
    let max_lease_ttl_ms = max.unwrap_or(mount.max_lease_ttl_ms);
    if max_lease_ttl_ms > 0 && default_lease_ttl_ms > max_lease_ttl_ms {
        return Err(RequestError::invalid(
            "field \"default_lease_ttl\": must not exceed max_lease_ttl; lower it or raise max_lease_ttl",
        ));
    }
    let event = MountTuned { path: path.to_string(), default_lease_ttl_ms, max_lease_ttl_ms };
    Ok(Handled { events: vec![event.into()], ..Handled::default() })
}
