//! The engine behind the server: none yet (a data directory not initialized,
//! waiting for `PUT sys/init`), or one hosted on the server's runtime
//! ([`Host::start_in`]: recovered, its expirer running).

use std::path::PathBuf;
use std::sync::Arc;

use lessor_engine::auth::tokens::TokenSecret;
use lessor_engine::log::postgres::{Owner, PgOpenError, StreamError};
use lessor_engine::log::storage::{FsStorage, LockError};
use lessor_engine::{Closed, Engine, EngineOptions, Host, HostError, HostOptions, InitError, LogStore, OpenError};
use tokio::sync::RwLock;

/// Why the server could not open or initialize its data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Init(#[from] InitError),
    #[error(transparent)]
    Host(#[from] HostError),
    /// The directory holds a log but no master key: the engine would open
    /// read-only and refuse every request.
    #[error(
        "the data directory {dir} has no master key: lessor server needs it to serve requests (the default is \
         <dir>/master.key; point `-master-key-file` or LESSOR_MASTER_KEY_FILE at it)"
    )]
    NoMasterKey { dir: String },
    #[error("cannot read the data directory {dir}: {source}")]
    Read { dir: String, source: std::io::Error },
    #[error("the data directory is already initialized")]
    AlreadyInitialized,
    /// A directory the engine would refuse (a symbolic link, writable by others,
    /// another user's, locked by another process), found at start rather than at
    /// `sys/init`.
    #[error(transparent)]
    Dir(#[from] LockError),
}

/// Where the engine lives and how it is opened.
#[derive(Clone, Debug)]
pub struct Storage {
    pub data_dir: PathBuf,
    /// `None`: `<data_dir>/master.key`.
    pub key_file: Option<PathBuf>,
    /// Where the log lives: the data directory, or a PostgreSQL stream (the
    /// directory then keeps the key, the head file and the snapshot cache).
    pub log_store: LogStore,
}

impl Storage {
    /// The data directory with its log in it.
    pub fn directory(data_dir: PathBuf, key_file: Option<PathBuf>) -> Storage {
        Storage { data_dir, key_file, log_store: LogStore::Directory }
    }

    fn options(&self) -> EngineOptions {
        EngineOptions { key_file: self.key_file.clone(), log_store: self.log_store.clone(), ..EngineOptions::default() }
    }
}

/// The engine slot. Requests take a clone of the engine's `Arc` and release the
/// lock at once, so an init never waits behind a slow request.
#[derive(Debug)]
pub(crate) struct Core {
    storage: Storage,
    host: RwLock<Option<Host>>,
    host_options: HostOptions,
    /// With the log in PostgreSQL: the engine holding the stream while this
    /// server waits to take it over (a standby); `None` otherwise.
    standby: std::sync::Mutex<Option<Owner>>,
}

impl Core {
    /// Opens the data directory if it was initialized; otherwise waits for
    /// `sys/init`. Runs on the server's runtime.
    pub(crate) async fn open(storage: Storage, host_options: HostOptions) -> Result<Core, CoreError> {
        let core = Core { storage, host: RwLock::new(None), host_options, standby: std::sync::Mutex::new(None) };
        // A log in PostgreSQL is initialized when its stream has records: the
        // open finds out (and claims the stream).
        let in_postgresql = matches!(core.storage.log_store, LogStore::PostgreSql(_));
        let initialized = in_postgresql
            || Engine::initialized(&core.storage.data_dir)
                .map_err(|e| CoreError::Read { dir: core.storage.data_dir.display().to_string(), source: e })?;
        let opened = if initialized {
            let options = core.storage.options();
            let dir = core.storage.data_dir.clone();
            match tokio::task::spawn_blocking(move || Engine::open(dir, options))
                .await
                .expect("opening the engine does not panic")
            {
                Err(OpenError::NotInitialized { .. }) if in_postgresql => None,
                Err(OpenError::Postgres(PgOpenError::Stream(StreamError::Held { active, .. }))) => {
                    tracing::info!(active = %active.owner, "the log's stream is held: serving as a standby");
                    *core.standby.lock().expect("standby lock") = Some(active);
                    return Ok(core);
                }
                other => Some(other?),
            }
        } else {
            None
        };
        if let Some(engine) = opened {
            if !engine.has_master_key() {
                return Err(CoreError::NoMasterKey { dir: core.storage.data_dir.display().to_string() });
            }
            let host = Host::start_in(engine, core.host_options.clone()).await?;
            *core.host.write().await = Some(host);
        } else {
            // Not initialized: the directory is checked (and made, 0700, if
            // missing) now, as the engine will at `sys/init`, so a server is not
            // left listening for an init that can only fail. The lock is let go:
            // `sys/init` takes it.
            let dir = core.storage.data_dir.clone();
            tokio::task::spawn_blocking(move || FsStorage::open(&dir).map(drop))
                .await
                .expect("checking the data directory does not panic")?;
        }
        Ok(core)
    }

    /// The engine holding the log's stream while this server is a standby.
    pub(crate) fn standby(&self) -> Option<Owner> {
        self.standby.lock().expect("standby lock").clone()
    }

    /// A standby's attempt to take the stream over: opens the engine (which
    /// claims the stream once its owner's lease has lapsed or its session is
    /// gone) and starts serving. Returns whether this server is now active.
    pub(crate) async fn try_take_over(&self) -> bool {
        if self.standby().is_none() {
            return true;
        }
        let (options, dir) = (self.storage.options(), self.storage.data_dir.clone());
        let opened = tokio::task::spawn_blocking(move || Engine::open(dir, options))
            .await
            .expect("opening the engine does not panic");
        match opened {
            Ok(engine) if engine.has_master_key() => match Host::start_in(engine, self.host_options.clone()).await {
                Ok(host) => {
                    *self.host.write().await = Some(host);
                    *self.standby.lock().expect("standby lock") = None;
                    true
                }
                Err(e) => {
                    tracing::error!(error = %e, "took the log's stream but cannot start serving");
                    false
                }
            },
            Ok(_) => {
                tracing::error!("took the log's stream but holds no master key; standing by");
                false
            }
            Err(OpenError::Postgres(PgOpenError::Stream(StreamError::Held { active, .. }))) => {
                *self.standby.lock().expect("standby lock") = Some(active);
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "standby: cannot take the log's stream over yet");
                false
            }
        }
    }

    /// Whether the log is in PostgreSQL (so this server may stand by).
    pub(crate) fn in_postgresql(&self) -> bool {
        matches!(self.storage.log_store, LogStore::PostgreSql(_))
    }

    /// An active server whose log's stream was lost (taken over, its lease
    /// lapsed, the log database's connection gone) closes its engine and
    /// stands by, to take the stream again when it can. Returns why it did.
    pub(crate) async fn demote_if_lost(&self) -> Option<String> {
        let why = self.engine().await?.log_unavailable()?;
        let host = self.host.write().await.take()?;
        tracing::error!(reason = %why, "the log's stream is lost: closing the engine and standing by");
        *self.standby.lock().expect("standby lock") = Some(Owner {
            owner: "unknown (this server lost the stream)".into(),
            epoch: 0,
            api_addr: String::new(),
            live: false,
        });
        host.close_in().await;
        Some(why)
    }

    /// The engine, if the directory is initialized.
    pub(crate) async fn engine(&self) -> Option<Arc<Engine>> {
        self.host.read().await.as_ref().map(|h| h.engine().clone())
    }

    /// Asks the expirer for a pass now (after a queued revocation).
    pub(crate) async fn kick_expirer(&self) {
        if let Some(host) = self.host.read().await.as_ref() {
            host.kick_expirer();
        }
    }

    /// `sys/init`: creates the data directory's key, policies and root token,
    /// and starts serving. `root` is a chosen root token (dev mode) or `None` for
    /// a random one. Returns the root token, shown once.
    pub(crate) async fn init(&self, root: Option<TokenSecret>) -> Result<TokenSecret, CoreError> {
        let mut slot = self.host.write().await;
        if slot.is_some() || self.standby().is_some() {
            return Err(CoreError::AlreadyInitialized);
        }
        let options = self.storage.options();
        let dir = self.storage.data_dir.clone();
        let (engine, root) = tokio::task::spawn_blocking(move || match root {
            Some(root) => Engine::init_with_root_token(dir, options, root.clone()).map(|e| (e, root)),
            None => Engine::init(dir, options),
        })
        .await
        .expect("initializing the engine does not panic")?;
        *slot = Some(Host::start_in(engine, self.host_options.clone()).await?);
        Ok(root)
    }

    /// Stops the expirer after its pass and closes the engine, durable.
    pub(crate) async fn close(&self) -> Closed {
        match self.host.write().await.take() {
            Some(host) => host.close_in().await,
            None => Closed::default(),
        }
    }
}
