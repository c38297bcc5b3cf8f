//! Hosting an engine: a runtime, the engine, recovery, the expirer, and an
//! orderly shutdown — the start-up and shutdown every embedder needs, in one
//! place. The C API, the CLI and the tests stand on it; a Rust embedder who uses
//! it cannot forget [`Engine::recover`] or the expirer and silently lose expiry.
//! An embedder that serves from a tokio runtime of its own runs the same expirer
//! loop as an [`Expirer`] task, after [`Engine::recover`].
//!
//! Shutdown stops the expirer only between its passes, so the revocations a pass
//! started finish (or fail, recorded) before the engine closes; past
//! [`HostOptions::expirer_grace`] they are interrupted, which is safe — their
//! intents are durable and the next open's recovery finishes them — and
//! [`Closed::interrupted`] says so.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};

use crate::lease::{LeaseError, Recovered};
use crate::{Engine, EngineOptions, OpenError};

/// How long closing waits, by default, for the revocations the expirer is running.
pub const EXPIRER_GRACE_DEFAULT: Duration = Duration::from_secs(10);

/// Called with each new failure of the expirer to record its revocations (the
/// log failed); it retries every tick.
pub type ExpirerWarning = Arc<dyn Fn(&LeaseError) + Send + Sync>;

/// How a [`Host`] runs its engine.
#[derive(Clone)]
pub struct HostOptions {
    /// Worker threads of the host's tokio runtime.
    pub worker_threads: usize,
    /// Run [`Engine::recover`] at start, before the expirer and before anything
    /// is served. Off only where the caller runs recovery itself — tests that
    /// look at the state recovery starts from, inject faults first, or count
    /// what it did — and then runs `host.block_on(host.engine().recover())`
    /// before serving: without it, an interrupted issue's user stays in the
    /// database until its lease expires, and an interrupted root rotation is
    /// never settled.
    pub recover: bool,
    /// Run the expirer in the background. Off only where a caller drives
    /// [`Engine::expire_due`] itself (deterministic tests), or starts it later
    /// ([`Host::start_expirer`]).
    pub expirer: bool,
    /// How long [`Host::close`] waits for the revocations a pass is running.
    pub expirer_grace: Duration,
    /// Hears the expirer's failures; by default they go to `tracing`.
    pub expirer_warning: Option<ExpirerWarning>,
}

impl Default for HostOptions {
    fn default() -> Self {
        HostOptions {
            worker_threads: 2,
            recover: true,
            expirer: true,
            expirer_grace: EXPIRER_GRACE_DEFAULT,
            expirer_warning: None,
        }
    }
}

impl std::fmt::Debug for HostOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostOptions")
            .field("worker_threads", &self.worker_threads)
            .field("recover", &self.recover)
            .field("expirer", &self.expirer)
            .field("expirer_grace", &self.expirer_grace)
            .field("expirer_warning", &self.expirer_warning.is_some())
            .finish()
    }
}

/// Why a [`Host`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Recovery could not record what it did (the log failed).
    #[error("cannot finish interrupted operations: {0}")]
    Recover(#[source] LeaseError),
}

/// What [`Host::close`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closed {
    /// Revocations the expirer was running did not finish within the grace and
    /// were interrupted: their intents are logged, and the next open finishes them.
    pub interrupted: bool,
}

/// An engine with its runtime, recovered, its expirer running. Dropping it (or
/// [`Host::close`]) shuts down in order: the expirer after its pass, then the
/// engine, durable, with the directory lock released.
pub struct Host {
    /// The runtime the host made, or `None` for one started inside a runtime of
    /// the caller's ([`Host::start_in`]).
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    engine: Option<Arc<Engine>>,
    expirer: Option<Expirer>,
    grace: Duration,
    recovered: Recovered,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("engine", &self.engine.is_some())
            .field("expirer", &self.expirer.is_some())
            .field("recovered", &self.recovered)
            .finish()
    }
}

/// The expirer running as a task: a pass ([`Engine::expire_due`]) at once, then
/// one every tick, and the log's signature tick when idle. A [`Host`] runs one;
/// an embedder serving from a tokio runtime of its own spawns it after
/// [`Engine::recover`] and stops it ([`Expirer::stop`]) before closing the engine.
/// Dropped without [`Expirer::stop`], the loop ends by itself, unwaited for, once
/// a pass finds nothing more due.
pub struct Expirer {
    task: tokio::task::JoinHandle<()>,
    /// `true`: stop after the pass in progress.
    stop: watch::Sender<bool>,
    /// Run a pass now instead of at the next tick.
    kick: Arc<Notify>,
    progress: watch::Receiver<Progress>,
}

impl std::fmt::Debug for Expirer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expirer").field("progress", &*self.progress.borrow()).finish()
    }
}

/// Which passes the expirer started and settled (found nothing more due).
#[derive(Clone, Debug, Default)]
struct Progress {
    started: u64,
    settled: u64,
    /// The settled pass could not record its revocations (the log failed).
    error: Option<LeaseError>,
}

impl Expirer {
    /// Spawns the expirer loop for `engine` on `runtime`. `warning` hears each
    /// new failure to record revocations; by default it goes to `tracing`.
    pub fn spawn(engine: Arc<Engine>, runtime: &tokio::runtime::Handle, warning: Option<ExpirerWarning>) -> Expirer {
        let (stop, stopping) = watch::channel(false);
        let (report, progress) = watch::channel(Progress::default());
        let kick = Arc::new(Notify::new());
        let warn = warning.unwrap_or_else(|| {
            Arc::new(|e: &LeaseError| tracing::warn!(error = %e, "the expirer cannot record revocations; retrying"))
        });
        let task = runtime.spawn(expire(engine, stopping, kick.clone(), report, warn));
        Expirer { task, stop, kick, progress }
    }

    /// Runs a pass now and waits until the expirer has settled one that started
    /// after this call: every revocation due now (those a request only recorded,
    /// like revoke-prefix's, and retries whose backoff is over) has run or
    /// failed, recorded.
    pub async fn expire_now(&self) -> Result<(), LeaseError> {
        let mut progress = self.progress.clone();
        let after = progress.borrow().started;
        self.kick.notify_one();
        let settled = progress
            .wait_for(|p| p.settled > after)
            .await
            .map(|p| p.clone())
            .map_err(|_| LeaseError::Io("the expirer stopped".into()))?;
        settled.error.map_or(Ok(()), Err)
    }

    /// A receiver that turns `true` when stopping begins: for tests that hold a
    /// revocation until shutdown starts.
    #[doc(hidden)]
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Stops the loop after the pass in progress, waiting at most `grace` for
    /// the revocations it runs; past it they are interrupted (their intents are
    /// logged, and the next open's recovery finishes them). Returns whether
    /// revocations were interrupted.
    pub async fn stop(self, grace: Duration) -> bool {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_ok() {
            return false;
        }
        task.abort();
        // Let the aborted task unwind so no revocation holds the engine.
        let _ = task.await;
        tracing::warn!(
            grace_s = grace.as_secs_f64(),
            "revocations the expirer was running were interrupted; the next open finishes them"
        );
        true
    }
}

impl Host {
    /// Opens the data directory `dir` ([`Engine::open`]) and starts it ([`Host::start`]).
    pub fn open(dir: impl AsRef<Path>, engine: EngineOptions, options: HostOptions) -> Result<Host, HostError> {
        Host::start(Engine::open(dir, engine)?, options)
    }

    /// Hosts an opened engine: a runtime, [`Engine::recover`] (what a crash
    /// interrupted is finished before anything else runs), then the expirer —
    /// each unless [`HostOptions`] turns it off.
    pub fn start(engine: Engine, options: HostOptions) -> Result<Host, HostError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.worker_threads.max(1))
            .thread_name("lessor")
            .enable_all()
            .build()
            .map_err(HostError::Runtime)?;
        let engine = Arc::new(engine);
        let mut host = Host {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            engine: Some(engine.clone()),
            expirer: None,
            grace: options.expirer_grace,
            recovered: Recovered::default(),
        };
        if options.recover {
            host.recovered = host.block_on(engine.recover()).map_err(HostError::Recover)?;
        }
        if options.expirer {
            host.start_expirer(options.expirer_warning);
        }
        Ok(host)
    }

    /// Hosts an opened engine on the runtime this is called from, for a server
    /// that owns its runtime (and may have been serving before the engine
    /// existed): [`Engine::recover`], then the expirer, as [`Host::start`] does.
    /// Close it with [`Host::close_in`]; [`Host::block_on`] and [`Host::runtime`]
    /// are not for such a host. Dropped unclosed, its expirer is told to stop and
    /// the engine closes once the last request holding it ends.
    pub async fn start_in(engine: Engine, options: HostOptions) -> Result<Host, HostError> {
        let engine = Arc::new(engine);
        let mut host = Host {
            runtime: None,
            handle: tokio::runtime::Handle::current(),
            engine: Some(engine.clone()),
            expirer: None,
            grace: options.expirer_grace,
            recovered: Recovered::default(),
        };
        if options.recover {
            host.recovered = engine.recover().await.map_err(HostError::Recover)?;
        }
        if options.expirer {
            host.start_expirer(options.expirer_warning);
        }
        Ok(host)
    }

    /// [`Host::close`] for a host started with [`Host::start_in`]: stops the
    /// expirer after its pass (waiting at most the grace), then closes the
    /// engine, durable, on a blocking thread — or, if a request still holds it,
    /// when that request ends.
    pub async fn close_in(mut self) -> Closed {
        let interrupted = match self.expirer.take() {
            Some(expirer) => expirer.stop(self.grace).await,
            None => false,
        };
        if let Some(engine) = self.engine.take()
            && let Ok(engine) = Arc::try_unwrap(engine)
        {
            let _ = tokio::task::spawn_blocking(move || engine.close()).await;
        }
        Closed { interrupted }
    }

    /// Asks the expirer for a pass now, without waiting for it: after a request
    /// that only recorded revocations (a queued `sys/leases/revoke`).
    pub fn kick_expirer(&self) {
        if let Some(expirer) = &self.expirer {
            expirer.kick.notify_one();
        }
    }

    /// Starts the background expirer, if it is not running: for a host started
    /// with [`HostOptions::expirer`] off that wants it now (after looking at the
    /// recovered state first, say).
    pub fn start_expirer(&mut self, warning: Option<ExpirerWarning>) {
        if self.expirer.is_none() {
            self.expirer = Some(Expirer::spawn(self.engine().clone(), &self.handle, warning));
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        self.engine.as_ref().expect("the engine lives until the host closes")
    }

    /// What recovery did at start (nothing, with [`HostOptions::recover`] off).
    pub fn recovered(&self) -> Recovered {
        self.recovered
    }

    /// The host's runtime, to spawn work beside the engine.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until the host closes")
    }

    /// Runs `future` on the host's runtime. Not from inside an async context.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    /// Runs an expirer pass now and waits until the expirer has settled one that
    /// started after this call ([`Expirer::expire_now`]). Without a background
    /// expirer, runs the passes here.
    pub fn expire_now(&self) -> Result<(), LeaseError> {
        let Some(expirer) = &self.expirer else {
            let engine = self.engine().clone();
            return self.block_on(async move {
                while engine.expire_due().await?.more_due {}
                Ok(())
            });
        };
        self.block_on(expirer.expire_now())
    }

    /// A receiver that turns `true` when closing begins: for tests that hold a
    /// revocation until shutdown starts.
    #[doc(hidden)]
    pub fn stopping(&self) -> Option<watch::Receiver<bool>> {
        self.expirer.as_ref().map(Expirer::stopping)
    }

    /// Shuts down in order and says whether revocations were interrupted.
    pub fn close(mut self) -> Closed {
        self.shutdown()
    }

    /// Stops the expirer after the pass in progress (waiting at most the grace),
    /// leaving the engine open; returns whether revocations were interrupted.
    /// [`Host::close`] does this first; call it to look at the state the
    /// expirer left before closing.
    pub fn stop_expirer(&mut self) -> bool {
        let Some(expirer) = self.expirer.take() else { return false };
        self.block_on(expirer.stop(self.grace))
    }

    fn shutdown(&mut self) -> Closed {
        if self.runtime.is_none() {
            // Started in the caller's runtime and not closed with `close_in`:
            // nothing here may block. The expirer stops after its pass; the
            // engine closes when its last holder drops it.
            if let Some(expirer) = self.expirer.take() {
                let _ = expirer.stop.send(true);
            }
            self.engine.take();
            return Closed::default();
        }
        let closed = Closed { interrupted: self.stop_expirer() };
        if let Some(engine) = self.engine.take() {
            match Arc::try_unwrap(engine) {
                Ok(engine) => engine.close(),
                // A task still holds it: dropping the runtime (below) drops that
                // task and with it the last reference, which closes the engine.
                Err(shared) => drop(shared),
            }
        }
        drop(self.runtime.take());
        closed
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The expirer loop: a pass ([`Engine::expire_due`]) now, then one every tick or
/// when kicked, until `stop`. `stop` is looked at only between passes, so the
/// revocations a pass started finish (or fail, recorded) before the loop ends —
/// and the first pass always runs, so a short-lived host still revokes what
/// expired while nothing ran. An idle log's newest records get their signature
/// on this tick ([`crate::log::Log::sign_tick`]).
async fn expire(
    engine: Arc<Engine>,
    mut stop: watch::Receiver<bool>,
    kick: Arc<Notify>,
    report: watch::Sender<Progress>,
    warn: ExpirerWarning,
) {
    let tick = Duration::from_millis(engine.expiry_options().tick_ms.max(1));
    let mut pass = 0u64;
    let mut last_error: Option<LeaseError> = None;
    loop {
        pass += 1;
        report.send_modify(|p| p.started = pass);
        let result = engine.expire_due().await;
        let more_due = matches!(&result, Ok(r) if r.more_due);
        let error = result.err();
        if let Some(e) = error.as_ref().filter(|e| last_error.as_ref() != Some(*e)) {
            warn(e);
        }
        last_error.clone_from(&error);
        if !more_due {
            report.send_modify(|p| {
                p.settled = pass;
                p.error = error;
            });
        }
        if *stop.borrow() {
            return;
        }
        if more_due {
            continue;
        }
        if let Err(e) = engine.sign_log_tick().await {
            tracing::warn!(error = %e, "cannot sign the log's newest records; the next batch or close will");
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = kick.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
