//! Connections: the accept loop, TLS, the limits that keep a hostile or broken
//! client from taking the server down, and the drain on shutdown.
//!
//! - Connections are capped globally and per client address; a connection over
//!   a cap gets one `503` (global) or `429` (per address) reply and is closed.
//! - Requests in flight are capped (load shedding): past the cap a request is
//!   answered `503` at once instead of queueing without bound.
//! - A client must finish its TLS handshake and each request's headers within a
//!   timeout (slowloris), its headers fit a bounded buffer, and a connection
//!   idle between requests is closed after the same timeout.
//! - On shutdown the listener stops accepting, open connections finish the
//!   request in progress (bounded by the drain timeout) and close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::encode::{self, HttpResponse};
use crate::service::{self, App};
use crate::tls::Tls;

/// Limits on connections and requests in flight.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// Open connections, in all.
    pub connections_max: usize,
    /// Open connections from one client address.
    pub connections_per_address_max: usize,
    /// Requests being answered at once; more are refused with 503.
    pub requests_in_flight_max: usize,
    /// Time a client has to finish its TLS handshake, and to send a request's
    /// headers (also how long a connection may sit idle between requests).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers), in bytes.
    pub header_bytes_max: usize,
    /// How long shutdown waits for requests in progress.
    pub drain_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            connections_max: 4096,
            connections_per_address_max: 512,
            requests_in_flight_max: 1024,
            header_read_timeout: Duration::from_secs(10),
            header_bytes_max: 64 << 10,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address; uncounted when dropped.
struct Counted {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn enter(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<Counted> {
        let mut map = table.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted { table: table.clone(), ip })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut map = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves `listener` until `stop` turns true, then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    app: Arc<App>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(limits.connections_max));
    let in_flight = Arc::new(Semaphore::new(limits.requests_in_flight_max));
    let per_address = Arc::new(PerAddress::default());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let refusal = match (
            connections.clone().try_acquire_owned(),
            PerAddress::enter(&per_address, peer.ip(), limits.connections_per_address_max),
        ) {
            (Ok(permit), Some(counted)) => {
                let watcher = graceful.watcher();
                let (app, tls, limits, in_flight) = (app.clone(), tls.clone(), limits.clone(), in_flight.clone());
                tokio::spawn(async move {
                    let _held = (permit, counted);
                    connection(stream, peer, tls, app, &limits, in_flight, watcher).await;
                });
                continue;
            }
            (Err(_), _) => (StatusCode::SERVICE_UNAVAILABLE, "the server has too many open connections; retry later"),
            (_, None) => (StatusCode::TOO_MANY_REQUESTS, "too many open connections from this address; reuse one"),
        };
        // Over a cap: one reply, then close (bounded by the header timeout).
        let (tls, limits) = (tls.clone(), limits.clone());
        let app = app.clone();
        tokio::spawn(async move {
            app.metrics.shed();
            let reply = move |_req: Request<Incoming>| async move {
                let mut response = encode::errors(refusal.0, &[refusal.1]);
                response
                    .headers_mut()
                    .insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
                Ok::<_, Infallible>(response)
            };
            let service = hyper::service::service_fn(reply);
            let _ = tokio::time::timeout(limits.header_read_timeout * 2, serve_io(stream, tls, &limits, service, None))
                .await;
        });
    }
    drop(listener);
    // Every open connection finishes its request in progress, then closes.
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            drain_s = limits.drain_timeout.as_secs_f64(),
            "requests still in progress at the end of the drain were cut off"
        );
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<Tls>>,
    app: Arc<App>,
    limits: &ConnectionLimits,
    in_flight: Arc<Semaphore>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    serve_io(stream, tls, limits, Shed { app, peer, in_flight }, Some(watcher)).await;
}

/// The request service with load shedding: a request that finds every
/// in-flight permit taken is answered 503 at once, never queued.
#[derive(Clone)]
struct Shed {
    app: Arc<App>,
    peer: SocketAddr,
    in_flight: Arc<Semaphore>,
}

impl hyper::service::Service<Request<Incoming>> for Shed {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.app.metrics.shed();
            let response = encode::errors(
                StatusCode::SERVICE_UNAVAILABLE,
                &["the server is at its limit of requests in flight; retry"],
            );
            return Box::pin(std::future::ready(Ok(response)));
        };
        let (app, peer) = (self.app.clone(), self.peer);
        Box::pin(async move {
            let response = service::handle(app, request, peer).await;
            drop(permit);
            Ok(response)
        })
    }
}

/// HTTP/1.1 over `stream` (TLS first, if configured) with `service`.
async fn serve_io<S>(
    stream: TcpStream,
    tls: Option<Arc<Tls>>,
    limits: &ConnectionLimits,
    service: S,
    watcher: Option<hyper_util::server::graceful::Watcher>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = HttpResponse>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.header_bytes_max.max(8192))
        .keep_alive(true);
    match tls {
        None => {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            match watcher {
                Some(w) => {
                    let _ = w.watch(conn).await;
                }
                None => {
                    let _ = conn.await;
                }
            }
        }
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            let Ok(Ok(stream)) = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await else {
                return;
            };
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            match watcher {
                Some(w) => {
                    let _ = w.watch(conn).await;
                }
                None => {
                    let _ = conn.await;
                }
            }
        }
    }
}
