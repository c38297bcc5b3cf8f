//! lessor-server: Vault's HTTP API over a lessor engine, so the `vault` and
//! `bao` CLIs, hvac, Vault Agent, consul-template, Spring Cloud Vault, External
//! Secrets and the Terraform provider work unchanged against lessor.
//!
//! A thin layer: each HTTP request becomes one [`Engine::request`] (operation
//! from the method, path after `/v1/`, token from `X-Vault-Token` or
//! `Authorization: Bearer`, data from the JSON body or the query string) and
//! its reply Vault's envelope and status codes. Every decision — who may do
//! what, what is valid, what happens — is the engine's. The server adds what
//! only a network server needs: the unauthenticated `sys/health`,
//! `sys/seal-status`, `sys/leader` and `sys/init`; TLS; limits against hostile
//! clients; an access log; `sys/metrics`; a drain on shutdown.
//!
//! | file | holds |
//! |---|---|
//! | `decode.rs` | an HTTP request → an engine request |
//! | `encode.rs` | an engine reply or error → Vault's envelope and status |
//! | `service.rs` | one request answered, counted and logged |
//! | `sys.rs` | the endpoints the server answers itself |
//! | `core.rs` | the engine slot: not yet initialized, or hosted |
//! | `listen.rs` | connections, TLS handshakes, limits, drain |
//! | `tls.rs`, `config.rs`, `metrics.rs`, `access.rs` | what their names say |
//!
//! ```no_run
//! # async fn run() -> Result<(), lessor_server::ServerError> {
//! use lessor_server::{ListenerOptions, Server, ServerOptions, Storage};
//! let options = ServerOptions::new(
//!     Storage::directory("/var/lib/lessor".into(), None),
//!     vec![ListenerOptions { address: "127.0.0.1:8200".into(), tls: None }],
//! );
//! let server = Server::bind(options).await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod access;
mod config;
mod core;
mod decode;
mod encode;
mod listen;
mod metrics;
mod service;
mod sys;
mod tls;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use lessor_engine::auth::tokens::TokenSecret;
use lessor_engine::{Closed, Engine, HostOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{Config, ConfigError, Limits, ListenerConfig, PostgresqlStorage};
pub use core::{CoreError, Storage};
pub use listen::ConnectionLimits;
pub use service::RequestLimits;
pub use sys::VERSION;
pub use tls::{TlsError, TlsFiles};

use crate::access::AccessLog;
use crate::core::Core;
use crate::metrics::Metrics;
use crate::service::App;
use crate::tls::Tls;

/// The tokio workers `lessor server` runs: `TOKIO_WORKER_THREADS` when set
/// (tokio's own variable), else one fewer than the cores, and at least one.
/// The engine's log writer is a thread of its own that every batch wakes; a
/// core left to it, and fewer idle workers for each wake-up to rouse, made
/// issuance over HTTP 1.04–1.5 × faster on the 2-core machine (one worker
/// against two; the README's "Over Vault's HTTP API").
pub fn worker_threads() -> usize {
    let from_env = std::env::var("TOKIO_WORKER_THREADS").ok().and_then(|v| v.trim().parse::<usize>().ok());
    from_env
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).max(1))
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
}

/// One listener.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// `host:port`; port 0 picks a free one ([`Server::local_addrs`] tells).
    pub address: String,
    /// `None`: plain HTTP. The CLI allows it only in dev mode or with
    /// `tls_disable = true`, as Vault.
    pub tls: Option<TlsFiles>,
}

/// How to run a server.
pub struct ServerOptions {
    pub storage: Storage,
    pub listeners: Vec<ListenerOptions>,
    pub request_limits: RequestLimits,
    pub connection_limits: ConnectionLimits,
    /// Where the JSON access lines go; `None`: nowhere.
    pub access_log: Option<Box<dyn Write + Send>>,
    /// The root token `sys/init` creates (dev mode); `None`: a random one.
    pub dev_root_token: Option<TokenSecret>,
    /// `sys/metrics` without a token.
    pub metrics_unauthenticated: bool,
    pub host: HostOptions,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("storage", &self.storage)
            .field("listeners", &self.listeners)
            .field("request_limits", &self.request_limits)
            .field("connection_limits", &self.connection_limits)
            .field("access_log", &self.access_log.is_some())
            .field("dev_root_token", &self.dev_root_token)
            .field("metrics_unauthenticated", &self.metrics_unauthenticated)
            .field("host", &self.host)
            .finish()
    }
}

impl ServerOptions {
    /// The defaults: Vault's limits, no access log, random root token.
    pub fn new(storage: Storage, listeners: Vec<ListenerOptions>) -> ServerOptions {
        ServerOptions {
            storage,
            listeners,
            request_limits: RequestLimits::default(),
            connection_limits: ConnectionLimits::default(),
            access_log: None,
            dev_root_token: None,
            metrics_unauthenticated: false,
            host: HostOptions::default(),
        }
    }
}

/// A server with its listeners bound and its engine open (or waiting for
/// `sys/init`), not yet serving.
#[derive(Debug)]
pub struct Server {
    app: Arc<App>,
    listeners: Vec<(TcpListener, Option<Arc<Tls>>)>,
    connection_limits: ConnectionLimits,
}

/// Reloads the listeners' TLS certificates (what SIGHUP does).
#[derive(Clone, Debug)]
pub struct TlsReloader {
    tls: Vec<Arc<Tls>>,
}

impl TlsReloader {
    /// Reads every listener's certificate and key again. A listener whose files
    /// fail keeps the ones it has; the first failure is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        let mut first = None;
        for tls in &self.tls {
            if let Err(e) = tls.reload() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Server {
    /// Opens the data directory (recovery, expirer) if it is initialized, loads
    /// the certificates and binds every listener. Runs on a tokio runtime.
    pub async fn bind(options: ServerOptions) -> Result<Server, ServerError> {
        let mut listeners = Vec::with_capacity(options.listeners.len());
        for listener in &options.listeners {
            let tls = listener.tls.clone().map(Tls::load).transpose()?.map(Arc::new);
            let bound = TcpListener::bind(&listener.address)
                .await
                .map_err(|source| ServerError::Bind { address: listener.address.clone(), source })?;
            listeners.push((bound, tls));
        }
        let core = Core::open(options.storage, options.host).await?;
        let app = App {
            core,
            metrics: Metrics::default(),
            limits: options.request_limits,
            access: AccessLog::new(options.access_log),
            dev_root_token: options.dev_root_token,
            metrics_unauthenticated: options.metrics_unauthenticated,
        };
        Ok(Server { app: Arc::new(app), listeners, connection_limits: options.connection_limits })
    }

    /// Where each listener listens, in the order given.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|(l, _)| l.local_addr().ok()).collect()
    }

    /// The engine, once the directory is initialized.
    pub async fn engine(&self) -> Option<Arc<Engine>> {
        self.app.core.engine().await
    }

    /// Initializes the data directory now (as `PUT sys/init` would), with the
    /// dev root token if one was given. Returns the root token.
    pub async fn init(&self) -> Result<TokenSecret, CoreError> {
        self.app.core.init(self.app.dev_root_token.clone()).await
    }

    /// A handle that reloads the certificates while the server runs.
    pub fn tls_reloader(&self) -> TlsReloader {
        TlsReloader { tls: self.listeners.iter().filter_map(|(_, t)| t.clone()).collect() }
    }

    /// Serves until `shutdown` completes; then stops accepting, lets requests
    /// in progress finish (bounded by the drain timeout), stops the expirer
    /// after its pass and closes the engine, durable.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Closed {
        let (stop, stopping) = watch::channel(false);
        let mut tasks = Vec::new();
        if self.app.core.in_postgresql() {
            tasks.push(tokio::spawn(keep_the_stream(self.app.clone(), stopping.clone())));
        }
        for (listener, tls) in self.listeners {
            let task = listen::serve(listener, tls, self.app.clone(), self.connection_limits.clone(), stopping.clone());
            tasks.push(tokio::spawn(task));
        }
        shutdown.await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
        self.app.core.close().await
    }
}

/// How often a server with its log in PostgreSQL checks its stream.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// With the log in PostgreSQL, every [`STREAM_POLL`] until the server stops: a
/// standby tries to take the stream over; an active server whose stream was
/// lost (taken over, lease lapsed, connection gone) closes its engine and
/// stands by — so service resumes by itself once the log database is back.
async fn keep_the_stream(app: Arc<App>, mut stopping: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STREAM_POLL) => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        if app.core.standby().is_some() {
            if app.core.try_take_over().await {
                tracing::warn!("took the log's stream: this server is active");
                println!("lessor server: took the log's stream; active");
            }
        } else if let Some(why) = app.core.demote_if_lost().await {
            println!("lessor server: lost the log's stream ({why}); standing by");
        }
    }
}
