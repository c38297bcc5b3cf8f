//! Engine replies and errors in Vault's wire format: the response envelope,
//! 200 / 202 / 204 for success, and `{"errors": [...]}` with the status a Vault
//! client branches on.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use lessor_engine::request::{ErrorKind, Operation, RequestError, Response as EngineResponse};
use serde_json::{Value, json};

pub(crate) type Body = Full<Bytes>;
pub(crate) type HttpResponse = Response<Body>;

/// A request the server answers itself, with an error (bad HTTP, limits, an
/// endpoint outside the engine).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal { status, message: message.into() }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn method_not_allowed(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::METHOD_NOT_ALLOWED, message)
    }

    pub(crate) fn response(&self) -> HttpResponse {
        errors(self.status, &[self.message.as_str()])
    }
}

/// The HTTP status of an engine error, by its kind (never by its message).
pub(crate) fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        // The path exists but does not take the operation: Vault's 405.
        ErrorKind::UnsupportedOperation => StatusCode::METHOD_NOT_ALLOWED,
        // A third party (the database) failed: Vault's 502.
        ErrorKind::Database => StatusCode::BAD_GATEWAY,
        // Another request holds the lease; Vault's Go client retries 5xx but 501.
        ErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Io | ErrorKind::Corrupt => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An engine error as Vault's error reply.
pub(crate) fn error(e: &RequestError) -> HttpResponse {
    errors(status_of(e.kind()), &[e.to_string().as_str()])
}

/// An engine error on `path` as Vault's error reply. Vault answers an unknown
/// lease on the renew and lookup endpoints with 400 ("lease not found",
/// "invalid lease"), not 404; hvac and the CLIs branch on that status.
pub(crate) fn error_at(path: &str, e: &RequestError) -> HttpResponse {
    let path = path.trim_end_matches('/');
    let lease_endpoint = path == "sys/leases/lookup"
        || ["sys/leases/renew", "sys/renew"].iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
    if e.kind() == ErrorKind::NotFound && lease_endpoint {
        return errors(StatusCode::BAD_REQUEST, &[e.to_string().as_str()]);
    }
    error(e)
}

/// `{"errors": [...]}` with `status`.
pub(crate) fn errors(status: StatusCode, messages: &[&str]) -> HttpResponse {
    json_response(status, &json!({ "errors": messages }))
}

/// A JSON body with `status`.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body).expect("a JSON value always serializes");
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Replies carry passwords and tokens: no cache may keep them.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A reply without a body.
pub(crate) fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// An engine reply as Vault's: 202 for work queued, 204 for nothing to say, 404
/// with no errors for an empty list (as Vault), else 200 with the envelope.
pub(crate) fn reply(operation: Operation, response: &EngineResponse) -> HttpResponse {
    if response.queued {
        return empty(StatusCode::ACCEPTED);
    }
    if operation == Operation::List && list_is_empty(response) {
        return errors(StatusCode::NOT_FOUND, &[]);
    }
    if response.data.is_none() && response.auth.is_none() && response.warnings.is_none() && response.lease_id.is_empty()
    {
        return empty(StatusCode::NO_CONTENT);
    }
    json_response(StatusCode::OK, &envelope(response))
}

fn list_is_empty(response: &EngineResponse) -> bool {
    match response.data.as_ref().and_then(|d| d.get("keys")) {
        Some(Value::Array(keys)) => keys.is_empty(),
        None => true,
        Some(_) => false,
    }
}

/// Vault's response envelope. The `auth` block gains the fields Vault always
/// sends that lessor has no use for (no identity, no metadata), so clients that
/// read them find what they expect.
pub(crate) fn envelope(response: &EngineResponse) -> Value {
    let auth = response.auth.as_ref().map(|auth| {
        json!({
            "client_token": auth.client_token,
            "accessor": auth.accessor,
            "policies": auth.policies,
            "token_policies": auth.token_policies,
            "identity_policies": Value::Null,
            "metadata": Value::Null,
            "lease_duration": auth.lease_duration,
            "renewable": auth.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": auth.orphan,
            "mfa_requirement": Value::Null,
            "num_uses": 0,
        })
    });
    json!({
        "request_id": response.request_id,
        "lease_id": response.lease_id,
        "renewable": response.renewable,
        "lease_duration": response.lease_duration,
        "data": response.data,
        "wrap_info": Value::Null,
        "warnings": response.warnings,
        "auth": auth,
        "mount_type": "",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_lease_is_400_on_the_lease_endpoints_as_in_vault() {
        let gone = RequestError::NotFound("lease not found".into());
        for path in ["sys/leases/renew", "sys/renew", "sys/renew/database/creds/a/b", "sys/leases/lookup/"] {
            assert_eq!(error_at(path, &gone).status(), StatusCode::BAD_REQUEST, "{path}");
        }
        for path in ["database/roles/x", "sys/leases/renewal", "sys/policies/acl/x"] {
            assert_eq!(error_at(path, &gone).status(), StatusCode::NOT_FOUND, "{path}");
        }
        let denied = RequestError::PermissionDenied("no".into());
        assert_eq!(error_at("sys/leases/renew", &denied).status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn empty_replies_are_204_and_empty_lists_404() {
        let nothing = EngineResponse::default();
        assert_eq!(reply(Operation::Update, &nothing).status(), StatusCode::NO_CONTENT);
        assert_eq!(reply(Operation::List, &nothing).status(), StatusCode::NOT_FOUND);
        let queued = EngineResponse { queued: true, ..EngineResponse::default() };
        assert_eq!(reply(Operation::Update, &queued).status(), StatusCode::ACCEPTED);
        let mut data = serde_json::Map::new();
        data.insert("keys".into(), json!(["a"]));
        let listed = EngineResponse { data: Some(data), ..EngineResponse::default() };
        assert_eq!(reply(Operation::List, &listed).status(), StatusCode::OK);
    }

    #[test]
    fn envelope_has_every_field() {
        let value = envelope(&EngineResponse::default());
        for field in ["request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"]
        {
            assert!(value.get(field).is_some(), "{field}");
        }
        assert_eq!(value["lease_id"], "");
        assert_eq!(value["lease_duration"], 0);
        assert!(value["warnings"].is_null());
    }
}
