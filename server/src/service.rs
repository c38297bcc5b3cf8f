//! One HTTP request to one reply: the server's own endpoints (`sys/health`,
//! `sys/seal-status`, `sys/leader`, `sys/init`, `sys/metrics`), else one
//! [`Engine::request`](lessor_engine::Engine::request). Nothing is decided here
//! that the engine decides: authentication, authorization, validation and every
//! effect are the engine's; this file only translates, counts and logs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use lessor_engine::auth::tokens::TokenSecret;
use lessor_engine::request::{Operation, RequestTrace};
use serde_json::{Value, json};

use crate::access::{AccessLine, AccessLog};
use crate::core::Core;
use crate::decode::{self, Call};
use crate::encode::{self, HttpResponse, Refusal};
use crate::metrics::{self, Metrics, Timed};
use crate::sys;

/// Limits on what one request may send.
#[derive(Clone, Debug)]
pub struct RequestLimits {
    /// Largest request body (Vault's default: 32 MiB).
    pub body_bytes_max: usize,
    /// How long a client may take to send its body once its headers are in.
    pub body_timeout: Duration,
    /// Longest request path (the engine's own limit on the path after `/v1/`
    /// is 512 bytes; this bounds the whole URI, query string included).
    pub uri_bytes_max: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { body_bytes_max: 32 << 20, body_timeout: Duration::from_secs(30), uri_bytes_max: 8 << 10 }
    }
}

/// Everything a request needs, shared by every connection.
#[derive(Debug)]
pub(crate) struct App {
    pub core: Core,
    pub metrics: Metrics,
    pub limits: RequestLimits,
    pub access: AccessLog,
    /// The root token `sys/init` gives a directory initialized through the API
    /// in dev mode (`-dev-root-token-id`); `None`: a random one.
    pub dev_root_token: Option<TokenSecret>,
    /// `sys/metrics` without a token (Vault's `unauthenticated_metrics_access`).
    pub metrics_unauthenticated: bool,
}

/// The request, answered; logged and counted.
pub(crate) async fn handle(app: Arc<App>, request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
    let started = Instant::now();
    let method = request.method().clone();
    let raw_path = request.uri().path().to_string();
    let token = decode::token(request.headers());
    let outcome = answer(&app, request).await;
    let (response, path, trace) = match outcome {
        Answered::Engine { response, path, trace } => (response, path, Some(trace)),
        Answered::Local { response, path } => (response, path, None),
    };
    let took = started.elapsed();
    let path = path.unwrap_or_else(|| decode::truncate(&raw_path, 256).to_string());
    let family = metrics::family(&path);
    app.metrics.request(family, response.status().as_u16());
    if app.access.enabled() {
        // The engine names the caller as its record does; a request the
        // server answered alone is looked up here (no record to point at).
        let (request_id, accessor) = match trace {
            Some(RequestTrace { request_id, accessor, .. }) => (request_id, accessor),
            None => match (token.is_empty(), app.core.engine().await) {
                (false, Some(engine)) => (None, engine.accessor_of(&token)),
                _ => (None, None),
            },
        };
        app.access.write(&AccessLine {
            request_id: request_id.as_deref(),
            remote: peer,
            method: method.as_str(),
            path: &path,
            accessor: accessor.as_deref(),
            status: response.status().as_u16(),
            duration: took,
        });
    }
    response
}

enum Answered {
    /// Through the engine, with what its audit record names.
    Engine { response: HttpResponse, path: Option<String>, trace: RequestTrace },
    /// Answered by the server alone.
    Local { response: HttpResponse, path: Option<String> },
}

fn refused(refusal: Refusal, path: Option<String>) -> Answered {
    Answered::Local { response: refusal.response(), path }
}

async fn answer(app: &App, request: Request<Incoming>) -> Answered {
    let uri_bytes = request.uri().path().len() + request.uri().query().map_or(0, str::len);
    if uri_bytes > app.limits.uri_bytes_max {
        let message = format!("the request URI is {uri_bytes} bytes; at most {}", app.limits.uri_bytes_max);
        return refused(Refusal::new(StatusCode::URI_TOO_LONG, message), None);
    }
    let path = match decode::api_path(request.uri().path()) {
        Ok(path) => path,
        Err(refusal) => return refused(refusal, None),
    };
    let pairs = match decode::query_pairs(request.uri().query()) {
        Ok(pairs) => pairs,
        Err(refusal) => return refused(refusal, Some(path)),
    };
    let method = request.method().clone();
    let request_uri = request.uri().path_and_query().map_or("", |pq| pq.as_str()).to_string();
    let request_uri = request_uri.as_str();
    let trimmed = path.trim_end_matches('/');

    // The server's own endpoints, before any token.
    let initialized = app.core.engine().await.is_some();
    let standby = if initialized { None } else { app.core.standby() };
    let local = match (trimmed, &method) {
        ("sys/health", &Method::GET | &Method::HEAD) => {
            Some(sys::health(&method, initialized || standby.is_some(), standby.is_some(), &pairs))
        }
        ("sys/seal-status", &Method::GET) => Some(Ok(sys::seal_status(initialized))),
        ("sys/leader", &Method::GET) => Some(Ok(sys::leader(standby.as_ref()))),
        ("sys/init", &Method::GET) => Some(Ok(sys::init_status(initialized))),
        ("sys/health" | "sys/seal-status" | "sys/leader", _) => {
            Some(Err(Refusal::method_not_allowed(format!("{trimmed} takes GET"))))
        }
        _ => None,
    };
    if let Some(result) = local {
        return Answered::Local { response: result.unwrap_or_else(|r| r.response()), path: Some(path) };
    }
    // consul-template probes the UI's mount endpoint; lessor has no UI.
    if trimmed.starts_with("sys/internal/ui/mounts") {
        return refused(Refusal::not_found("lessor has no UI endpoints"), Some(path));
    }
    if method == Method::HEAD {
        return refused(Refusal::method_not_allowed("HEAD is answered only on sys/health"), Some(path));
    }
    if let Err(refusal) = decode::check_headers(request.headers()) {
        return refused(refusal, Some(path));
    }
    let token = decode::token(request.headers());
    let (list, query_data) = match decode::query_data(pairs) {
        Ok(q) => q,
        Err(refusal) => return refused(refusal, Some(path)),
    };
    let operation = match decode::operation(&method, list) {
        Ok(op) => op,
        Err(refusal) => return refused(refusal, Some(path)),
    };
    let data = if matches!(operation, Operation::Update | Operation::Create) {
        let body = request.into_body();
        match read_body(body, &app.limits).await {
            Ok(bytes) => match decode::body_data(&bytes) {
                Ok(data) => data,
                Err(refusal) => return refused(refusal, Some(path)),
            },
            Err(refusal) => return refused(refusal, Some(path)),
        }
    } else {
        query_data
    };

    if trimmed == "sys/init" {
        let response = sys::init(&app.core, &data, app.dev_root_token.clone()).await;
        return Answered::Local { response: response.unwrap_or_else(|r| r.response()), path: Some(path) };
    }
    let Some(engine) = app.core.engine().await else {
        if let Some(active) = app.core.standby() {
            return Answered::Local { response: sys::standby(&active, request_uri), path: Some(path) };
        }
        let refusal = Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the data directory is not initialized: run `bao operator init` (PUT /v1/sys/init) or `lessor init`",
        );
        return refused(refusal, Some(path));
    };
    if trimmed == "sys/metrics" {
        let response = metrics_endpoint(app, &engine, &token, operation).await;
        return Answered::Local { response, path: Some(path) };
    }

    let call = Call { operation, path, token, data };
    let timed = timed(&call);
    let started = Instant::now();
    let (result, trace) = engine.request_traced(&call.token, call.operation, &call.path, call.data).await;
    if let (Some(what), Ok(_)) = (timed, &result) {
        app.metrics.timed(what, started.elapsed());
    }
    match result {
        Ok(response) => {
            if response.queued {
                app.core.kick_expirer().await;
            }
            Answered::Engine { response: encode::reply(call.operation, &response), path: Some(call.path), trace }
        }
        Err(e) => Answered::Engine { response: encode::error_at(&call.path, &e), path: Some(call.path), trace },
    }
}

/// The lease operations with a latency histogram.
fn timed(call: &Call) -> Option<Timed> {
    let path = call.path.trim_end_matches('/');
    if path == "sys/leases/renew" || path == "sys/renew" {
        return Some(Timed::Renew);
    }
    if path == "sys/leases/revoke" || path.starts_with("sys/leases/revoke/") || path == "sys/revoke" {
        return Some(Timed::Revoke);
    }
    let mut segments = path.split('/');
    match (call.operation, segments.nth(1)) {
        (Operation::Read, Some("creds")) => Some(Timed::Issue),
        _ => None,
    }
}

/// Reads a body within the size cap and the time a client has to send it.
async fn read_body(body: Incoming, limits: &RequestLimits) -> Result<hyper::body::Bytes, Refusal> {
    let limited = Limited::new(body, limits.body_bytes_max);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => Err(Refusal::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {} s", limits.body_timeout.as_secs()),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} bytes, the server's limit", limits.body_bytes_max),
        )),
        Ok(Err(e)) => Err(Refusal::bad_request(format!("cannot read the request body: {e}"))),
    }
}

/// `GET sys/metrics`: Prometheus text for a token with `read` on `sys/metrics`
/// (the engine's own capability check, recorded as any request is), or for
/// anyone when the config allows it.
async fn metrics_endpoint(
    app: &App,
    engine: &lessor_engine::Engine,
    token: &str,
    operation: Operation,
) -> HttpResponse {
    if operation != Operation::Read {
        return Refusal::method_not_allowed("sys/metrics takes GET").response();
    }
    if !app.metrics_unauthenticated {
        let asked = engine
            .request(token, Operation::Update, "sys/capabilities-self", json!({ "paths": ["sys/metrics"] }))
            .await;
        let allowed = match &asked {
            Ok(response) => response
                .data
                .as_ref()
                .and_then(|d| d.get("sys/metrics"))
                .and_then(Value::as_array)
                .is_some_and(|caps| caps.iter().any(|c| c == "read" || c == "root")),
            Err(_) => false,
        };
        if let Err(e) = asked {
            return encode::error(&e);
        }
        if !allowed {
            return encode::errors(StatusCode::FORBIDDEN, &["permission denied: sys/metrics needs read"]);
        }
    }
    let text = app.metrics.render(Some(engine));
    let mut response = hyper::Response::new(http_body_util::Full::new(hyper::body::Bytes::from(text)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
