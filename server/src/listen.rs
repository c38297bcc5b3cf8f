//! Connections: the accept loop, TLS, the limits that keep a hostile or broken
//! client from taking the server down, and the drain on shutdown.
//!
//! - Connections are capped globally and per client address; a connection over
//!   a cap gets one `503` (global) or `429` (per address) reply and is closed.
//! - Requests in flight are capped (load shedding): past the cap a request is
//!   answered `503` at once instead of queueing without bound.
//! - A client must finish its TLS handshake within the header timeout, and each
//!   request's head (request line and headers) within the header timeout of its
//!   first byte — of the connection's start, for the first request — so a
//!   client trickling its headers (slowloris) is cut off; its head must fit a
//!   bounded buffer. A connection idle between requests (no byte either way,
//!   no request being answered) is closed after the idle timeout. These are Go's
//!   `ReadHeaderTimeout` and `IdleTimeout`, as Vault has them. hyper's own
//!   header timeout cannot give them: its clock starts when the connection goes
//!   idle, so it would bound idle keep-alive connections by the header timeout
//!   (10 s) instead of the idle one (5 min); [`Watched`] and [`watchdog`] keep
//!   the two clocks here instead.
//! - A request is answered by a task of its own: a client that goes away, or a
//!   reply later than the request duration cap (answered `504`), never cuts an
//!   engine request half-done — it finishes, durable, and is logged.
//! - On shutdown the listener stops accepting, open connections finish the
//!   request in progress and close, and the requests still running finish,
//!   all bounded by the drain timeout.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::encode::{self, HttpResponse};
use crate::service::{self, App};
use crate::tls::Tls;

/// Limits on connections and requests in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections, in all (`max_connections`).
    pub connections_max: usize,
    /// Open connections from one client address (`max_connections_per_address`).
    pub connections_per_address_max: usize,
    /// Requests being answered at once; more are refused with 503
    /// (`max_requests_in_flight`).
    pub requests_in_flight_max: usize,
    /// Time a client has to finish its TLS handshake, and to send a request's
    /// head once it has started it (`http_read_header_timeout`, Vault's 10 s).
    pub header_read_timeout: Duration,
    /// How long a connection may sit idle between requests
    /// (`http_idle_timeout`, Vault's 5 min).
    pub idle_timeout: Duration,
    /// How long a client waits for its reply once its head is in; past it the
    /// reply is `504` and the request finishes unseen (`max_request_duration`,
    /// Vault's 90 s).
    pub request_duration_max: Duration,
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
            idle_timeout: Duration::from_secs(300),
            request_duration_max: Duration::from_secs(90),
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

/// What a connection did last, for its two clocks: the header timeout runs from
/// the first byte of a request head (or the connection's start) until the
/// request reaches the service; the idle timeout from the last byte either way
/// while no request is being answered.
#[derive(Debug)]
struct Activity(Mutex<Clocks>);

#[derive(Debug)]
struct Clocks {
    /// Requests of this connection being answered.
    busy: usize,
    /// The last byte read or written, or the last reply finished.
    last: Instant,
    /// When the head being read now began; `None` between requests.
    head_since: Option<Instant>,
}

impl Activity {
    fn new() -> Arc<Activity> {
        let now = Instant::now();
        // The first request's head is due within the header timeout of the start.
        Arc::new(Activity(Mutex::new(Clocks { busy: 0, last: now, head_since: Some(now) })))
    }

    fn clocks(&self) -> std::sync::MutexGuard<'_, Clocks> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) {
        let mut c = self.clocks();
        c.last = Instant::now();
        if c.busy == 0 && c.head_since.is_none() {
            c.head_since = Some(c.last);
        }
    }

    fn wrote(&self) {
        self.clocks().last = Instant::now();
    }

    /// When the connection is due to be closed, if nothing happens meanwhile;
    /// `None` while a request is being answered.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let c = self.clocks();
        match (c.busy, c.head_since) {
            (0, Some(since)) => Some(since + limits.header_read_timeout),
            (0, None) => Some(c.last + limits.idle_timeout),
            _ => None,
        }
    }
}

/// A request of the connection being answered; the idle clock restarts when it
/// is dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn enter(activity: &Arc<Activity>) -> Busy {
        let mut c = activity.clocks();
        c.busy += 1;
        c.head_since = None;
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut c = self.0.clocks();
        c.busy -= 1;
        c.last = Instant::now();
        c.head_since = None;
    }
}

/// Completes when the connection has overstayed: a head slower than the header
/// timeout, or idle longer than the idle timeout.
async fn watchdog(activity: &Activity, limits: &ConnectionLimits) {
    loop {
        match activity.deadline(limits) {
            // Answering: look again later (the reply's end restarts the clock).
            None => tokio::time::sleep(limits.header_read_timeout.min(limits.idle_timeout)).await,
            Some(deadline) if deadline <= Instant::now() => return,
            Some(deadline) => tokio::time::sleep_until(deadline).await,
        }
    }
}

/// A connection's stream, telling its [`Activity`] of every byte.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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
    // Whole permits are taken back at the drain, at most u32::MAX at once.
    let in_flight_max = limits.requests_in_flight_max.min(u32::MAX as usize);
    let in_flight = Arc::new(Semaphore::new(in_flight_max));
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
        // Over a cap: one reply, then close, all within twice the header timeout.
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
            let serve = async {
                let Some(io) = handshake(stream, tls.as_deref(), &limits).await else { return };
                let mut builder = http1(&limits);
                builder.header_read_timeout(limits.header_read_timeout).keep_alive(false);
                let _ = builder.serve_connection(io, service).await;
            };
            let _ = tokio::time::timeout(limits.header_read_timeout * 2, serve).await;
        });
    }
    drop(listener);
    let drain = async {
        // Every open connection finishes its request in progress, then closes…
        graceful.shutdown().await;
        // …and the requests still running (their client gone, or answered 504)
        // finish too: each holds an in-flight permit until it has.
        let _ = in_flight.acquire_many(in_flight_max as u32).await;
    };
    if tokio::time::timeout(limits.drain_timeout, drain).await.is_err() {
        tracing::warn!(
            drain_s = limits.drain_timeout.as_secs_f64(),
            "requests still in progress at the end of the drain were cut off"
        );
    }
}

/// Either kind of stream a connection speaks HTTP over.
type Io = TokioIo<Watched<Stream>>;

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS handshake if the listener has TLS (within the header timeout); the
/// stream watched from then on.
async fn handshake(stream: TcpStream, tls: Option<&Tls>, limits: &ConnectionLimits) -> Option<Io> {
    let stream = match tls {
        None => Stream::Plain(stream),
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => Stream::Tls(Box::new(stream)),
                _ => return None,
            }
        }
    };
    Some(TokioIo::new(Watched { inner: stream, activity: Activity::new() }))
}

/// HTTP/1.1 with the head's size bounded.
fn http1(limits: &ConnectionLimits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).max_buf_size(limits.header_bytes_max.max(8192));
    builder
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
    let Some(io) = handshake(stream, tls.as_deref(), limits).await else { return };
    let activity = io.inner().activity.clone();
    let shed = Shed { app, peer, in_flight, activity: activity.clone(), duration_max: limits.request_duration_max };
    let mut builder = http1(limits);
    // The header and idle clocks are the watchdog's (hyper's would cut idle
    // connections at the header timeout).
    builder.header_read_timeout(None).keep_alive(true);
    let conn = watcher.watch(builder.serve_connection(io, shed));
    tokio::select! {
        _ = conn => {}
        // Overstayed: dropping the connection closes it.
        () = watchdog(&activity, limits) => {}
    }
}

/// The request service with load shedding: a request that finds every
/// in-flight permit taken is answered 503 at once, never queued.
#[derive(Clone)]
struct Shed {
    app: Arc<App>,
    peer: SocketAddr,
    in_flight: Arc<Semaphore>,
    activity: Arc<Activity>,
    duration_max: Duration,
}

impl hyper::service::Service<Request<Incoming>> for Shed {
    type Response = HttpResponse;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = Busy::enter(&self.activity);
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            self.app.metrics.shed();
            let response = encode::errors(
                StatusCode::SERVICE_UNAVAILABLE,
                &["the server is at its limit of requests in flight; retry"],
            );
            return Box::pin(std::future::ready(Ok(response)));
        };
        let (app, peer, duration_max) = (self.app.clone(), self.peer, self.duration_max);
        // A task of its own: hyper drops this future if the client goes away,
        // and an engine request must not be cut half-done.
        let answering = tokio::spawn(async move {
            let response = service::handle(app, request, peer).await;
            drop(permit);
            response
        });
        Box::pin(async move {
            let _busy = busy;
            Ok(match tokio::time::timeout(duration_max, answering).await {
                Ok(Ok(response)) => response,
                Ok(Err(panicked)) => {
                    tracing::error!(error = %panicked, "a request's task failed");
                    encode::errors(StatusCode::INTERNAL_SERVER_ERROR, &["internal error"])
                }
                Err(_) => {
                    let message = format!(
                        "the request did not finish within max_request_duration ({} s); it goes on, and its \
                         effect, if any, is kept",
                        duration_max.as_secs_f64()
                    );
                    encode::errors(StatusCode::GATEWAY_TIMEOUT, &[message.as_str()])
                }
            })
        })
    }
}
