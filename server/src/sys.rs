//! The endpoints the server answers itself, before any token: `sys/health`,
//! `sys/seal-status`, `sys/leader` (what `bao status`, hvac and load balancers
//! call first) and `sys/init` (what `bao operator init` sends to a directory not
//! yet initialized). lessor has no seal: it is unsealed once its directory is
//! initialized. It is the active node, unless its log is in PostgreSQL and
//! another engine holds the stream: then it stands by (`sys/health` 429,
//! `sys/leader` names the active) until it takes the stream over.

use hyper::{Method, StatusCode};
use lessor_engine::auth::tokens::TokenSecret;
use lessor_engine::clock::{Clock, SystemClock};
use serde_json::{Value, json};

use crate::core::{Core, CoreError};
use crate::encode::{HttpResponse, Refusal, empty, json_response};

/// The version every client sees: a semver (the Terraform provider parses it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A fixed cluster name: lessor is one node.
const CLUSTER_NAME: &str = "lessor";

/// Now, as the engine's system clock reads it, in RFC 3339.
pub(crate) fn now_rfc3339() -> String {
    lessor_engine::clock::rfc3339(SystemClock.now_ms())
}

/// `GET`/`HEAD sys/health`: 200 active, 429 standby (the log's stream held by
/// another engine), 501 not initialized; `activecode`, `standbycode`,
/// `uninitcode` and `standbyok` (a standby answers as active) override, as in
/// Vault; the seal codes never apply.
pub(crate) fn health(
    method: &Method,
    initialized: bool,
    standby: bool,
    query: &[(String, String)],
) -> Result<HttpResponse, Refusal> {
    let code =
        |name: &str, default: StatusCode| -> Result<StatusCode, Refusal> {
            match query.iter().find(|(k, _)| k == name) {
                None => Ok(default),
                Some((_, v)) => v.parse::<u16>().ok().and_then(|n| StatusCode::from_u16(n).ok()).ok_or_else(|| {
                    Refusal::bad_request(format!("query parameter \"{name}\" must be an HTTP status code"))
                }),
            }
        };
    for name in ["sealedcode", "perfstandbyokcode", "drsecondarycode", "performancestandbycode"] {
        code(name, StatusCode::OK)?;
    }
    let standby_ok = query.iter().any(|(k, v)| k == "standbyok" && (v.is_empty() || v == "true" || v == "1"));
    let status = if standby && !standby_ok {
        code("standbycode", StatusCode::TOO_MANY_REQUESTS)?
    } else if initialized {
        code("standbycode", StatusCode::OK)?;
        code("activecode", StatusCode::OK)?
    } else {
        code("standbycode", StatusCode::OK)?;
        code("uninitcode", StatusCode::NOT_IMPLEMENTED)?
    };
    if method == Method::HEAD {
        return Ok(empty(status));
    }
    let body = json!({
        "initialized": initialized,
        "sealed": false,
        "standby": standby,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": SystemClock.now_ms() / 1000,
        "version": VERSION,
        "cluster_name": CLUSTER_NAME,
        "cluster_id": "",
    });
    Ok(json_response(status, &body))
}

/// `GET sys/seal-status`.
pub(crate) fn seal_status(initialized: bool) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &json!({
            "type": "shamir",
            "initialized": initialized,
            "sealed": false,
            "t": 0,
            "n": 0,
            "progress": 0,
            "nonce": "",
            "version": VERSION,
            "build_date": "",
            "migration": false,
            "cluster_name": CLUSTER_NAME,
            "cluster_id": "",
            "recovery_seal": false,
            "storage_type": "file",
        }),
    )
}

/// `GET sys/leader`: no HA; this node is the only one.
pub(crate) fn leader(standby: Option<&lessor_engine::log::postgres::Owner>) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &json!({
            "ha_enabled": standby.is_some(),
            "is_self": standby.is_none(),
            "active_time": now_rfc3339(),
            "leader_address": standby.map_or("", |active| active.api_addr.as_str()),
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
            "raft_committed_index": 0,
            "raft_applied_index": 0,
        }),
    )
}

/// `GET sys/init`: whether the directory is initialized.
pub(crate) fn init_status(initialized: bool) -> HttpResponse {
    json_response(StatusCode::OK, &json!({ "initialized": initialized }))
}

/// A PGP field that asks for nothing: null, `""` or `[]`.
fn absent(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `PUT sys/init`: initializes the data directory and answers with the root
/// token, once. lessor keeps one master key file instead of Shamir shares, so
/// the reply has no unseal keys; the share counts are accepted and ignored, and
/// PGP-encrypted keys, which cannot be honoured, are refused.
pub(crate) async fn init(core: &Core, data: &Value, root: Option<TokenSecret>) -> Result<HttpResponse, Refusal> {
    if let Value::Object(fields) = data {
        for (field, value) in fields {
            match field.as_str() {
                "secret_shares" | "secret_threshold" | "stored_shares" | "recovery_shares" | "recovery_threshold" => {}
                // `bao operator init` sends `"root_token_pgp_key": ""` and empty lists.
                "pgp_keys" | "root_token_pgp_key" | "recovery_pgp_keys" if absent(value) => {}
                "pgp_keys" | "root_token_pgp_key" | "recovery_pgp_keys" => {
                    return Err(Refusal::bad_request(format!(
                        "field \"{field}\": lessor has no unseal keys to encrypt; send the request without it"
                    )));
                }
                other => {
                    return Err(Refusal::bad_request(format!(
                        "unknown field \"{}\"; sys/init accepts secret_shares and secret_threshold (ignored)",
                        crate::decode::truncate(other, 64)
                    )));
                }
            }
        }
    }
    match core.init(root).await {
        Ok(root) => {
            Ok(json_response(StatusCode::OK, &json!({ "keys": [], "keys_base64": [], "root_token": root.expose() })))
        }
        Err(CoreError::AlreadyInitialized) => Err(Refusal::bad_request("the data directory is already initialized")),
        Err(e) => Err(Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot initialize: {e}"))),
    }
}

/// An API request to a standby: 307 to the active engine's `api_addr` (what
/// Vault's standbys answer, and its clients follow), or 503 naming the active
/// engine when it gave no address.
pub(crate) fn standby(active: &lessor_engine::log::postgres::Owner, request_uri: &str) -> HttpResponse {
    let api_addr = active.api_addr.trim_end_matches('/');
    if !api_addr.is_empty()
        && let Ok(location) = hyper::header::HeaderValue::from_str(&format!("{api_addr}{request_uri}"))
    {
        let mut response = empty(StatusCode::TEMPORARY_REDIRECT);
        response.headers_mut().insert(hyper::header::LOCATION, location);
        return response;
    }
    let message = format!(
        "standby: the log's stream is held by {} (epoch {}); this server takes over when it stops",
        active.owner, active.epoch
    );
    crate::encode::errors(StatusCode::SERVICE_UNAVAILABLE, &[message.as_str()])
}
