//! `Engine`: the log, the state folded from it, and snapshots, put together.
//!
//! Open = newest valid snapshot + replay of the records after it: the one fold
//! ([`crate::fold`]) that `audit state` runs too. Every durable batch is applied to
//! the state on the log's writer thread, in LSN order, before any appender hears
//! back (I1, I4).

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use crate::auth::keys::{KEY_FILE_NAME, KeyError, Keys, MasterKey};
use crate::auth::tokens::{self, TokenSecret};
use crate::clock::{Clock, SystemClock};
use crate::event::{Entry, Event, Lsn};
use crate::fold;
use crate::log::format::Chain;
use crate::log::storage::{FsStorage, LockError, Storage};
use crate::log::{self, AppendError, Appended, Log, LogOpenError, LogOptions, ScanError, WriterStats, snapshot};
use crate::state::State;

/// How an engine is opened.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub log: LogOptions,
    /// Write a snapshot after this many events since the last one; 0 = only when
    /// [`Engine::snapshot`] is called.
    pub snapshot_every_events: u64,
    /// Besides the two newest snapshots, keep the oldest one in every stretch of
    /// this many LSNs as history, so forensic replay of an old instant
    /// (`audit state --at`) starts near it instead of at LSN 1. Each costs the
    /// state's size on disk; 0 = keep only the two newest.
    pub snapshot_history_every_events: u64,
    pub clock: Arc<dyn Clock>,
    /// The master key, supplied by the embedder; takes precedence over `key_file`.
    pub master_key: Option<MasterKey>,
    /// The master key file; by default `<dir>/master.key`. Without any key the
    /// engine opens for reading (forensics) and refuses requests.
    pub key_file: Option<PathBuf>,
    /// Open a directory without a log as a new, empty one. [`Engine::init`] sets
    /// it; a plain open of a missing or empty directory is an error, so a typo in a
    /// path never silently starts an empty engine.
    pub create_if_missing: bool,
    /// Pacing of expirations and revocation retries.
    pub expiry: crate::expiry::ExpiryOptions,
    /// Plugins from here instead of PostgreSQL (fault injection in tests).
    pub plugin_factory: Option<crate::plugin::PluginFactory>,
    /// The signed head file that catches a rollback of the log (`docs/DESIGN.md`, §6.6);
    /// [`Engine::open`] and [`Engine::init`] set it beside the key (`<key
    /// file>.head` for a key kept elsewhere, else `<dir>/HEAD`). `None`: no head
    /// is kept (storage that is not a directory).
    pub head_file: Option<PathBuf>,
    /// Where the log lives: segment files in the data directory (the
    /// default), or rows in PostgreSQL.
    pub log_store: LogStore,
}

/// Where an engine's log lives.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum LogStore {
    /// Segment files in the data directory.
    #[default]
    Directory,
    /// A stream of rows in PostgreSQL (`docs/DESIGN.md` §11). The data
    /// directory still holds the master key, the head file and the snapshot
    /// cache (and its lock: one engine per directory).
    PostgreSql(PgLogOptions),
}

/// The log in PostgreSQL, as an engine opens it.
#[derive(Clone)]
#[non_exhaustive]
pub struct PgLogOptions {
    /// `postgresql://ROLE:PASSWORD@HOST:5432/DB` (`sslmode`, `sslrootcert` as
    /// libpq reads them), logging in as the engines' role.
    pub url: String,
    /// The stream: one per engine identity (1–128 letters, digits, `.`, `_`, `-`).
    pub stream: String,
    /// Where this engine serves, named to standbys and fenced engines.
    pub api_addr: String,
    /// The owner's lease on the stream (database clock) and how often it is renewed.
    pub lease: std::time::Duration,
    pub renew_every: std::time::Duration,
}

impl PgLogOptions {
    /// `url` and `stream` with the defaults: a 15 s lease renewed every 5 s.
    pub fn new(url: impl Into<String>, stream: impl Into<String>) -> PgLogOptions {
        PgLogOptions {
            url: url.into(),
            stream: stream.into(),
            api_addr: String::new(),
            lease: std::time::Duration::from_secs(15),
            renew_every: std::time::Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for PgLogOptions {
    /// The URL's password is masked: options are printed in traces and errors.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLogOptions")
            .field("url", &crate::text::template::mask_url_password(&self.url))
            .field("stream", &self.stream)
            .field("api_addr", &self.api_addr)
            .field("lease", &self.lease)
            .field("renew_every", &self.renew_every)
            .finish()
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            log: LogOptions::default(),
            snapshot_every_events: 100_000,
            snapshot_history_every_events: snapshot::SNAPSHOT_HISTORY_EVERY_EVENTS_DEFAULT,
            clock: Arc::new(SystemClock),
            master_key: None,
            key_file: None,
            create_if_missing: false,
            expiry: crate::expiry::ExpiryOptions::default(),
            plugin_factory: None,
            head_file: None,
            log_store: LogStore::Directory,
        }
    }
}

/// Why an engine could not be opened. Messages name the file and the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Log(#[from] LogOpenError),
    #[error(
        "snapshot {snapshot} stands at LSN {snapshot_lsn} but the log ends at LSN {log_last_lsn}: \
         acknowledged records are missing from the log; restore the log segments from a copy"
    )]
    SnapshotBeyondLog { snapshot: String, snapshot_lsn: Lsn, log_last_lsn: Lsn },
    #[error("cannot read snapshots: {0}")]
    SnapshotIo(#[source] std::io::Error),
    #[error("{dir} holds no lessor data: initialize it first (`lessor init`, Engine::init)")]
    NotInitialized { dir: PathBuf },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("wrong master key: it does not match the key this data directory was initialized with")]
    WrongMasterKey,
    /// The log's first record names a checkpoint key the master key does not
    /// derive: its proofs were made by someone else (a log rewritten whole).
    #[error(
        "the log's public key is not this master key's: the log was rewritten by someone without the key; \
         restore the data directory from a copy and compare it with an exported checkpoint"
    )]
    ForeignPublicKey,
    /// The log ends before the head the engine last recorded: records it had made
    /// durable are gone.
    #[error(
        "the log ends at LSN {log_lsn} but {path} records that it reached LSN {head_lsn}: records were removed \
         (a deleted or cut segment, or an older copy put back); restore the newest segments — or, if this \
         directory was restored from a backup on purpose, remove {path} and open again"
    )]
    RolledBack { path: String, head_lsn: Lsn, log_lsn: Lsn },
    #[error("cannot write the head file {path}: {source}")]
    HeadIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The log in PostgreSQL could not be reached or claimed (another engine
    /// holds the stream: this one is a standby).
    #[error("the log in PostgreSQL: {0}")]
    Postgres(#[from] crate::log::postgres::storage::PgOpenError),
}

/// Why [`Engine::init`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    #[error("{dir} is already initialized; open it instead, or choose an empty directory")]
    AlreadyInitialized { dir: PathBuf },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot record the initialization: {0}")]
    Append(#[from] AppendError),
    /// [`Engine::init_with_storage`] on a storage that holds a log already.
    #[error("{storage} already holds a log; open it instead")]
    StorageInitialized { storage: String },
    /// [`Engine::init_with_storage`] without `options.master_key`: there is no
    /// directory to write a key file into.
    #[error(
        "initializing a log outside a data directory needs the master key in the options: generate one \
         (MasterKey::generate), keep it where the engine will find it, and pass it"
    )]
    NoMasterKey,
}

/// The state together with where in the log it stands.
#[derive(Debug)]
struct Applied {
    state: State,
    chain: Chain,
    events_since_snapshot: u64,
}

#[derive(Debug)]
struct Shared {
    applied: RwLock<Applied>,
    storage: Arc<dyn Storage>,
    /// Signs snapshots; `None` without the master key (unsigned snapshots, which a
    /// keyed open ignores).
    snapshot_keys: Option<Arc<Keys>>,
    /// One snapshot write at a time (background and explicit ones share file names).
    snapshot_writing: Mutex<()>,
    /// [`EngineOptions::snapshot_history_every_events`].
    snapshot_history_every_events: u64,
    /// Leases changed since the expirer last looked.
    lease_changes: Mutex<crate::expiry::expirer::LeaseChanges>,
    /// The key that signs the head file, and its path ([`log::head`]).
    head: Option<(Arc<Keys>, PathBuf)>,
}

/// An open engine. Share it across threads and tasks behind an `Arc`.
#[derive(Debug)]
pub struct Engine {
    // The log, the state folded from it, and snapshots: this file.
    shared: Arc<Shared>,
    log: Log,
    log_options: LogOptions,
    /// Riding appends not yet durable ([`Engine::submit_riding`]).
    riding: Arc<std::sync::atomic::AtomicUsize>,
    /// The `application_name` of this run's database sessions,
    /// `lessor/<engine>/<run>`, and its `lessor/<engine>/` prefix: recovery
    /// tells an earlier run's sessions by it (`lease/recover.rs`).
    pub(crate) run_tag: (String, String),
    clock: Arc<dyn Clock>,
    snapshotter: Option<(std_mpsc::SyncSender<()>, JoinHandle<()>)>,
    /// `None` when opened without the master key: every request is refused and
    /// nothing is appended for it.
    pub(crate) keys: Option<Arc<Keys>>,
    /// Authorization's compiled ACLs and its `num_uses` lock (`auth/`).
    pub(crate) auth: crate::auth::AuthRuntime,
    /// The lease lifecycle's plugins and claims (`lease/`).
    pub(crate) lifecycle: crate::lease::Lifecycle,
    /// The expirer's wheel and its view of which leases are armed (`expiry/`).
    pub(crate) expirer: Mutex<crate::expiry::expirer::ExpirerState>,
    expiry: crate::expiry::ExpiryOptions,
}

/// The storage an engine's log lives on: the data directory itself, or the
/// log in PostgreSQL with the directory as its snapshot cache (the directory
/// keeps its lock). For PostgreSQL the segment never seals.
fn log_storage(dir: FsStorage, options: &mut EngineOptions) -> Result<Arc<dyn Storage>, OpenError> {
    match &options.log_store {
        LogStore::Directory => Ok(Arc::new(dir)),
        LogStore::PostgreSql(pg) => {
            // A batch is committed (made durable) where a file is fsync'd: skipping
            // that would acknowledge records that live only in this process.
            if options.log.fsync != log::FsyncPolicy::Always {
                return Err(OpenError::Log(LogOpenError::InvalidOption {
                    field: "log.fsync",
                    message: "a log in PostgreSQL commits every batch; fsync must be \"always\"".into(),
                }));
            }
            if pg.renew_every.is_zero() || pg.renew_every * 2 > pg.lease {
                return Err(OpenError::Log(LogOpenError::InvalidOption {
                    field: "log_store.renew_every",
                    message: format!(
                        "{:?} against a lease of {:?}: renew at least twice per lease, so one lost renewal \
                         does not lose the stream",
                        pg.renew_every, pg.lease
                    ),
                }));
            }
            let mut ownership = log::postgres::storage::Ownership::new(owner_id());
            ownership.api_addr.clone_from(&pg.api_addr);
            (ownership.lease, ownership.renew_every) = (pg.lease, pg.renew_every);
            let storage = log::postgres::storage::PgStorage::open(&pg.url, &pg.stream, Some(ownership), Arc::new(dir))?;
            options.log.segment_bytes_max = log::postgres::storage::PG_SEGMENT_BYTES_MAX;
            Ok(Arc::new(storage))
        }
    }
}

/// This run's name as a stream's owner: host, process and a random part, so
/// two runs never share one.
fn owner_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    let mut random = [0u8; 4];
    let _ = crate::auth::keys::fill_random(&mut random);
    format!("{}/{}/{}", if host.is_empty() { "host" } else { host }, std::process::id(), hex::encode(random))
}

impl Engine {
    /// Opens the data directory `dir`, taking its exclusive lock. The master key
    /// comes from `options.master_key`, else `options.key_file`, else
    /// `<dir>/master.key` if present (never read through a link). A directory
    /// someone else could change is refused ([`FsStorage::open`]).
    pub fn open(dir: impl AsRef<Path>, mut options: EngineOptions) -> Result<Engine, OpenError> {
        let dir = dir.as_ref();
        // With its log in PostgreSQL, a directory is only the key's, head's and
        // snapshots' home (made at first use): the stream says whether there is a log.
        let log_in_dir = matches!(options.log_store, LogStore::Directory);
        if log_in_dir && !options.create_if_missing && !dir.is_dir() {
            return Err(OpenError::NotInitialized { dir: dir.to_path_buf() });
        }
        if options.head_file.is_none() {
            options.head_file = Some(log::head::path_for(dir, options.key_file.as_deref()));
        }
        let storage = log_storage(FsStorage::open(dir)?, &mut options)?;
        if !options.create_if_missing && log::recovery::list_segments(storage.as_ref())?.is_empty() {
            return Err(OpenError::NotInitialized { dir: dir.to_path_buf() });
        }
        if options.master_key.is_none() {
            let default_file = dir.join(KEY_FILE_NAME);
            if let Some(file) = &options.key_file {
                options.master_key = Some(MasterKey::read_file(file)?);
            } else if default_file.symlink_metadata().is_ok() {
                // Inside the data directory: never through a link.
                options.master_key = Some(MasterKey::read_file_no_follow(&default_file)?);
            }
        }
        Engine::open_with_storage(storage, options)
    }

    /// Creates a new data directory: the master key (written to a 0600 key file
    /// unless the embedder supplies one), the `default` policy, and the root token,
    /// whose secret is returned here once and stored only as a keyed hash.
    pub fn init(dir: impl AsRef<Path>, options: EngineOptions) -> Result<(Engine, TokenSecret), InitError> {
        Engine::init_inner(dir.as_ref(), options, None)
    }

    /// Whether `dir` holds a log ([`Engine::init`] ran there): a server that
    /// may be asked to initialize its directory looks first.
    pub fn initialized(dir: impl AsRef<Path>) -> std::io::Result<bool> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Ok(false);
        }
        Ok(std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .any(|e| log::format::parse_segment_name(&e.file_name().to_string_lossy()).is_some()))
    }

    /// The accessor of the token whose secret is `token`, if it exists (expired
    /// or not): for an access log line, which must name the caller without the
    /// secret. `None` without a master key.
    pub fn accessor_of(&self, token: &str) -> Option<String> {
        let hash = self.keys.as_ref()?.hash_token(token);
        self.with_state(|s| s.token_by_hash(&hash).map(|t| t.accessor.clone()))
    }

    /// Why the engine's log takes no more writes for good, if it does not: its
    /// stream in PostgreSQL was lost (taken over, lease lapsed, connection
    /// gone). Every request fails from then on; a host closes the engine and
    /// opens it again (`lessor server` does, as a standby).
    pub fn log_unavailable(&self) -> Option<String> {
        self.shared.storage.unavailable()
    }

    /// Whether the engine holds its master key; without it, it opened for
    /// reading (forensics) and refuses every request.
    pub fn has_master_key(&self) -> bool {
        self.keys.is_some()
    }

    /// [`Engine::init`] with a root token the caller chose
    /// ([`TokenSecret::chosen`]) instead of a random one: for throwaway
    /// development directories only (`lessor server -dev -dev-root-token-id`).
    pub fn init_with_root_token(
        dir: impl AsRef<Path>,
        options: EngineOptions,
        root: TokenSecret,
    ) -> Result<Engine, InitError> {
        Engine::init_inner(dir.as_ref(), options, Some(root)).map(|(engine, _)| engine)
    }

    fn init_inner(
        dir: &Path,
        mut options: EngineOptions,
        root: Option<TokenSecret>,
    ) -> Result<(Engine, TokenSecret), InitError> {
        if Engine::initialized(dir).map_err(|e| KeyError::Read { path: dir.display().to_string(), source: e })? {
            return Err(InitError::AlreadyInitialized { dir: dir.to_path_buf() });
        }
        // Creates the directory (0700) or refuses one others could change, before a
        // key is written into it; the lock is held from here on.
        let storage = log_storage(FsStorage::open(dir).map_err(OpenError::from)?, &mut options)?;
        if !log::recovery::list_segments(storage.as_ref()).map_err(OpenError::from)?.is_empty() {
            // A stream in PostgreSQL that holds a log already.
            return Err(InitError::StorageInitialized { storage: format!("{storage:?}") });
        }
        if options.master_key.is_none() {
            let file = options.key_file.clone().unwrap_or_else(|| dir.join(KEY_FILE_NAME));
            // A key file left by an init that stopped before its log was written is
            // reused: nothing was encrypted under any other key yet.
            let key = match (file.exists(), options.key_file.is_some()) {
                (true, true) => MasterKey::read_file(&file)?,
                (true, false) => MasterKey::read_file_no_follow(&file)?,
                (false, _) => MasterKey::generate()?,
            };
            if !file.exists() {
                key.write_new_file(&file)?;
            }
            options.master_key = Some(key);
        }
        options.create_if_missing = true;
        if options.head_file.is_none() {
            options.head_file = Some(log::head::path_for(dir, options.key_file.as_deref()));
        }
        let engine = Engine::open_with_storage(storage, options)?;
        let keys = engine.keys.clone().expect("init always has a key");
        let (root, events) = tokens::init_events(&keys, root)?;
        engine.log.append_blocking(engine.clock.now_ms(), events)?;
        Ok((engine, root))
    }

    /// [`Engine::init`] over any [`Storage`] (the log in PostgreSQL, in
    /// memory): the master key comes in `options.master_key` — there is no
    /// directory to write a key file into — and the storage must hold no log.
    pub fn init_with_storage(
        storage: Arc<dyn Storage>,
        mut options: EngineOptions,
    ) -> Result<(Engine, TokenSecret), InitError> {
        if options.master_key.is_none() {
            return Err(InitError::NoMasterKey);
        }
        if !log::recovery::list_segments(storage.as_ref()).map_err(OpenError::from)?.is_empty() {
            return Err(InitError::StorageInitialized { storage: format!("{storage:?}") });
        }
        options.create_if_missing = true;
        let engine = Engine::open_with_storage(storage, options)?;
        let keys = engine.keys.clone().expect("checked above: a key");
        let (root, events) = tokens::init_events(&keys, None)?;
        engine.log.append_blocking(engine.clock.now_ms(), events)?;
        Ok((engine, root))
    }

    /// Opens an engine over any [`Storage`] (in-memory, fault-injecting, …).
    pub fn open_with_storage(storage: Arc<dyn Storage>, options: EngineOptions) -> Result<Engine, OpenError> {
        let snapshots = snapshot::list_newest_first(storage.as_ref()).map_err(OpenError::SnapshotIo)?;
        // Snapshots must be the key holder's: checked under the key the master
        // key derives, or (read-only) the one the log's first record names.
        let keys = options.master_key.as_ref().map(Keys::derive);
        let public_key = match &keys {
            Some(keys) => Some(keys.checkpoint_public_key()),
            None if snapshots.is_empty() => None,
            None => log::recovery::first_public_key(storage.as_ref()),
        };
        // The batch MACs of the newest segment are checked with the master key.
        let mac_check = |message: &[u8], tag: &[u8]| keys.as_ref().is_some_and(|k| k.verify_batch_mac(message, tag));
        let mut source = OpenFold {
            storage: storage.as_ref(),
            public_key,
            mac_check: keys.as_ref().map(|_| &mac_check as log::proof::MacCheck<'_>),
        };
        let folded = fold::fold_from_newest_agreeing(&mut source, &snapshots, |_| false, &mut |_| {})?;
        let summary = folded.records.into_summary();
        debug_assert_eq!(folded.chain, summary.last_chain, "the fold folds every record the scan accepts");
        let applied = Applied { state: folded.state, chain: summary.last_chain, events_since_snapshot: 0 };
        Engine::start(storage, options, applied, &summary)
    }

    fn start(
        storage: Arc<dyn Storage>,
        options: EngineOptions,
        applied: Applied,
        summary: &log::ScanSummary,
    ) -> Result<Engine, OpenError> {
        let keys = options.master_key.as_ref().map(|k| Arc::new(Keys::derive(k)));
        let shared = Arc::new(Shared {
            applied: RwLock::new(applied),
            storage: storage.clone(),
            snapshot_keys: keys.clone(),
            snapshot_writing: Mutex::new(()),
            snapshot_history_every_events: options.snapshot_history_every_events,
            lease_changes: Mutex::default(),
            head: keys.clone().zip(options.head_file.clone()),
        });
        let snapshot_every = options.snapshot_every_events;
        let snapshotter = (snapshot_every > 0).then(|| spawn_snapshotter(shared.clone()));
        let trigger = snapshotter.as_ref().map(|(tx, _)| tx.clone());
        let sink_shared = shared.clone();
        let sink = Box::new(move |entries: &mut Vec<Entry>, chain: &Chain| {
            // A batch that logs a checkpoint (every seal, every interval) moves the head.
            let checkpointed = entries.iter().any(|e| matches!(e.event, Event::Checkpoint(_)));
            let head = entries.last().map(|e| log::head::Head { lsn: e.lsn, chain: *chain, ts_ms: e.ts_ms });
            if checkpointed && let Some(head) = head {
                sink_shared.write_head(&head);
            }
            let mut applied = sink_shared.applied.write().expect("state lock poisoned");
            applied.events_since_snapshot += entries.len() as u64;
            {
                let mut changes = sink_shared.lease_changes.lock().expect("lease changes lock poisoned");
                for id in entries.iter().filter_map(|e| e.event.lease_id()) {
                    changes.push(id);
                }
            }
            for entry in entries.drain(..) {
                applied.state.apply_owned(entry);
            }
            applied.chain = *chain;
            if snapshot_every > 0 && applied.events_since_snapshot >= snapshot_every {
                applied.events_since_snapshot = 0;
                if let Some(trigger) = &trigger {
                    // A snapshot already pending covers this one too.
                    let _ = trigger.try_send(());
                }
            }
        });
        if let (Some(keys), Some(init)) =
            (&keys, &shared.applied.read().expect("state lock poisoned").state.initialized)
            && keys.key_check() != init.key_check
        {
            return Err(OpenError::WrongMasterKey);
        }
        if let (Some(keys), Some(init)) =
            (&keys, &shared.applied.read().expect("state lock poisoned").state.initialized)
            && keys.checkpoint_public_key() != init.checkpoint_public_key
        {
            return Err(OpenError::ForeignPublicKey);
        }
        if let Some((keys, path)) = &shared.head {
            check_head(path, keys, summary)?;
        }
        let checkpointer = keys.as_ref().map(|keys| checkpointer(keys.clone(), &shared));
        let log = Log::start(storage, &options.log, summary, options.clock.now_ms(), sink, checkpointer)?;
        if let Some((keys, path)) = &shared.head {
            let head = shared.current_head();
            log::head::write(path, keys, &head)
                .map_err(|source| OpenError::HeadIo { path: path.display().to_string(), source })?;
        }
        let engine_tag = keys
            .as_ref()
            .map_or_else(|| "readonly".to_string(), |keys| hex::encode(&keys.checkpoint_public_key()[..4]));
        let run = crate::auth::keys::random_base62(8)?;
        let run_prefix = format!("lessor/{engine_tag}/");
        Ok(Engine {
            shared,
            log,
            riding: Arc::default(),
            run_tag: (format!("{run_prefix}{run}"), run_prefix),
            clock: options.clock.clone(),
            keys,
            auth: crate::auth::AuthRuntime::default(),
            lifecycle: crate::lease::Lifecycle::new(options.plugin_factory.clone()),
            expirer: Mutex::new(crate::expiry::expirer::ExpirerState::new(
                options.clock.now_ms(),
                options.expiry.tick_ms.max(1),
            )),
            expiry: options.expiry.clone(),
            log_options: options.log.clone(),
            snapshotter,
        })
    }

    /// Appends events exactly as given, bypassing authorization and validation.
    /// Returns once they are durable and applied. For tests, tools and simulation.
    #[cfg(any(test, feature = "testing"))]
    pub async fn append_unchecked(&self, events: Vec<Event>) -> Result<Appended, AppendError> {
        self.append(events).await
    }

    /// [`Engine::append_unchecked`] for code outside an async runtime.
    #[cfg(any(test, feature = "testing"))]
    pub fn append_unchecked_blocking(&self, events: Vec<Event>) -> Result<Appended, AppendError> {
        self.log.append_blocking(self.clock.now_ms(), events)
    }

    /// Seals `plaintext` under the engine's AEAD key (for tests that forge events).
    #[cfg(any(test, feature = "testing"))]
    pub fn seal_for_tests(&self, context: &str, plaintext: &[u8]) -> crate::event::Sealed {
        self.keys.as_ref().expect("no master key").seal(context, plaintext).expect("seal")
    }

    /// Seals `plaintext` under the engine's AEAD key and logs it as a connection's
    /// root password: lets I5 tests look for it at rest.
    #[cfg(any(test, feature = "testing"))]
    pub fn append_sealed_secret_for_tests(&self, context: &str, plaintext: &[u8]) -> Result<Appended, String> {
        let keys = self.keys.as_ref().ok_or("no master key")?;
        let sealed = keys.seal(context, plaintext).map_err(|e| e.to_string())?;
        let mut event = crate::testing::sample(crate::event::EventKind::ConnectionWritten);
        if let Event::ConnectionWritten(c) = &mut event {
            c.password = Some(sealed);
        }
        self.append_unchecked_blocking(vec![event]).map_err(|e| e.to_string())
    }

    /// Enqueues without waiting for durability (see [`Log::submit`]).
    pub(crate) async fn submit(&self, events: Vec<Event>) -> Result<log::Pending, AppendError> {
        self.log.submit(self.clock.now_ms(), events).await
    }

    /// Enqueues records nobody waits for, to ride the next batch; `hold` is
    /// dropped once they are durable or failed (see [`Log::submit_riding`]).
    pub(crate) async fn submit_riding(&self, events: Vec<Event>, hold: Box<dyn Send>) -> Result<(), AppendError> {
        /// Counts one riding append until it is durable or failed.
        struct Riding(Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Riding {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        self.riding.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let hold: Box<dyn Send> = Box::new((hold, Riding(self.riding.clone())));
        self.log.submit_riding(self.clock.now_ms(), events, hold).await.map(drop)
    }

    /// Waits until the outcomes of every issue, renewal and revocation
    /// answered before it are durable and in the state: those ride the next
    /// group commit after their replies (docs/DESIGN.md, "The write path"). An
    /// empty append takes them into a batch; it costs nothing when none rides.
    /// Lease lookups call it, so a caller that was just answered reads what it
    /// was told; call it before reading [`Engine::with_state`] for the same.
    pub async fn settle_outcomes(&self) {
        if self.riding.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            let _ = self.append(Vec::new()).await;
        }
    }

    /// Signs the log's MAC'd records if a signature is due now ([`Log::sign_tick`]).
    pub(crate) async fn sign_log_tick(&self) -> Result<(), AppendError> {
        self.log.sign_tick(self.clock.now_ms()).await
    }

    pub(crate) async fn append(&self, events: Vec<Event>) -> Result<Appended, AppendError> {
        self.log.append(self.clock.now_ms(), events).await
    }

    /// Runs `f` with the current state (read-locked: keep `f` short).
    pub fn with_state<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.applied.read().expect("state lock poisoned").state)
    }

    /// Digest of the current state.
    pub fn digest(&self) -> [u8; 32] {
        self.with_state(State::digest)
    }

    /// LSN of the last durable, applied event.
    pub fn last_lsn(&self) -> Lsn {
        self.with_state(|s| s.applied_lsn)
    }

    /// Writes a snapshot of the current state now. Returns its file name, or `None`
    /// when the log is empty.
    pub fn snapshot(&self) -> std::io::Result<Option<String>> {
        write_snapshot(&self.shared)
    }

    pub fn log_stats(&self) -> &WriterStats {
        self.log.stats()
    }

    pub fn log_options(&self) -> &LogOptions {
        &self.log_options
    }

    pub fn expiry_options(&self) -> &crate::expiry::ExpiryOptions {
        &self.expiry
    }

    pub(crate) fn take_lease_changes(&self) -> crate::expiry::expirer::LeaseChanges {
        std::mem::take(&mut *self.shared.lease_changes.lock().expect("lease changes lock poisoned"))
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Drains the log queue, stops background threads and releases the directory.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        // The writer's sink holds a snapshot trigger: stop the writer first, so the
        // snapshotter sees every trigger dropped and ends.
        self.log.shutdown();
        // A clean close moves the head to the very end.
        if self.shared.head.is_some() {
            let head = self.shared.current_head();
            self.shared.write_head(&head);
        }
        if let Some((tx, thread)) = self.snapshotter.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// Where the applied state stands.
    fn current_head(&self) -> log::head::Head {
        let applied = self.applied.read().expect("state lock poisoned");
        log::head::Head { lsn: applied.state.applied_lsn, chain: applied.chain, ts_ms: applied.state.applied_ts_ms }
    }

    /// Records the head; a failure is logged (the batch is durable already), and
    /// the next checkpoint or close writes it again.
    fn write_head(&self, head: &log::head::Head) {
        if let Some((keys, path)) = &self.head
            && let Err(e) = log::head::write(path, keys, head)
        {
            tracing::error!(path = %path.display(), error = %e, "cannot write the head file");
        }
    }
}

/// Refuses a log that ends before the head last recorded (a rollback); a head
/// that is missing or invalid is warned of loudly, since nothing then protects
/// the log from one until the new head is written.
fn check_head(path: &Path, keys: &Keys, summary: &log::ScanSummary) -> Result<(), OpenError> {
    let log_lsn = summary.next_lsn - 1;
    match log::head::read(path, &keys.checkpoint_public_key()) {
        Ok(Some(head)) if head.lsn > log_lsn => {
            Err(OpenError::RolledBack { path: path.display().to_string(), head_lsn: head.lsn, log_lsn })
        }
        Ok(Some(_)) => Ok(()),
        Ok(None) if summary.records > 0 => {
            tracing::warn!(
                path = %path.display(),
                "no head file: a rollback of the log to this point could not be detected; writing one now"
            );
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(problem) => {
            tracing::warn!(%problem, "ignoring the head file: a rollback of the log could not be detected; writing a new one");
            Ok(())
        }
    }
}

/// Signs checkpoints with the engine's key, continuing from the newest one logged.
fn checkpointer(keys: Arc<Keys>, shared: &Shared) -> log::Checkpointer {
    let last =
        shared.applied.read().expect("state lock poisoned").state.last_checkpoint.as_ref().map(|c| (c.lsn, c.ts_ms));
    log::Checkpointer {
        interval_ms: 0,
        last_lsn: last.map_or(0, |(lsn, _)| lsn),
        since_ts_ms: last.map(|(_, ts)| ts),
        sign: Box::new({
            let keys = keys.clone();
            move |lsn, chain, ts_ms| {
                Event::Checkpoint(crate::audit::SignedCheckpoint::sign(&keys, lsn, chain, ts_ms).to_event())
            }
        }),
        sign_batch: Box::new({
            let keys = keys.clone();
            move |lsn, chain| {
                let signature = keys.sign_checkpoint(&log::proof::message(lsn, chain)).to_vec();
                Event::BatchSigned(crate::event::BatchSigned { signature })
            }
        }),
        mac_batch: Box::new(move |lsn, chain| {
            let mac = keys.mac_batch(&log::proof::mac_message(lsn, chain)).to_vec();
            Event::BatchMac(crate::event::BatchMac { mac })
        }),
        signature_interval_ms: 0,
        last_signature_ts_ms: None,
    }
}

/// The engine's open as a fold ([`fold`]): every snapshot may be the base; the
/// records come from recovery's scan of the whole log, which applies the recovery
/// table (and trusts the chain a snapshot covers, row 3's note); a log that ends
/// before a snapshot has lost acknowledged records, and the open is refused.
struct OpenFold<'a> {
    storage: &'a dyn Storage,
    /// The key snapshots must be signed with.
    public_key: Option<[u8; 32]>,
    mac_check: Option<log::proof::MacCheck<'a>>,
}

impl<'a> fold::FoldSource for OpenFold<'a> {
    type Records = log::recovery::Scan<'a>;
    type Error = OpenError;

    fn load(&mut self, name: &str) -> Option<fold::Base> {
        match fold::load_snapshot(self.storage, name, self.public_key.as_ref()) {
            Ok(base) => Some(base),
            Err(problem) => {
                tracing::warn!(%problem, "ignoring snapshot");
                None
            }
        }
    }

    fn records(&mut self, base_lsn: Lsn) -> Result<Self::Records, OpenError> {
        // Every record is read (damage anywhere refuses the open); the snapshot's
        // own records are not re-hashed: the record at its LSN must carry the
        // chain it recorded (checked by the fold); `audit verify` walks the chain.
        Ok(log::recovery::Scan::new(self.storage, base_lsn, self.mac_check)?)
    }

    fn disagrees(
        &mut self,
        name: &str,
        base_lsn: Lsn,
        why: fold::Disagreement,
        records: &Self::Records,
    ) -> Result<(), OpenError> {
        match why {
            fold::Disagreement::ChainDiffers => {
                tracing::warn!(snapshot = %name, "snapshot does not match the log's chain; ignoring it");
                Ok(())
            }
            fold::Disagreement::LogEndsBefore => Err(OpenError::SnapshotBeyondLog {
                snapshot: name.to_string(),
                snapshot_lsn: base_lsn,
                log_last_lsn: records.summary().next_lsn - 1,
            }),
        }
    }

    fn thread_failed(source: std::io::Error) -> OpenError {
        OpenError::Log(LogOpenError::Io { file: "replay thread".into(), source })
    }
}

fn write_snapshot(shared: &Shared) -> std::io::Result<Option<String>> {
    let _writing = shared.snapshot_writing.lock().expect("snapshot lock poisoned");
    // Encode under the read lock (appends wait meanwhile), write after releasing it.
    let (lsn, ts_ms, chain, body) = {
        let applied = shared.applied.read().expect("state lock poisoned");
        if applied.state.applied_lsn == 0 {
            return Ok(None);
        }
        (applied.state.applied_lsn, applied.state.applied_ts_ms, applied.chain, applied.state.encode())
    };
    let sign = shared.snapshot_keys.as_ref().map(|keys| move |message: &[u8]| keys.sign_checkpoint(message));
    let signer = sign.as_ref().map(|f| f as snapshot::SnapshotSigner<'_>);
    snapshot::write(shared.storage.as_ref(), lsn, ts_ms, &chain, &body, shared.snapshot_history_every_events, signer)
        .map(Some)
}

fn spawn_snapshotter(shared: Arc<Shared>) -> (std_mpsc::SyncSender<()>, JoinHandle<()>) {
    let (tx, rx) = std_mpsc::sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("lessor-snapshotter".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                match write_snapshot(&shared) {
                    Ok(Some(name)) => tracing::debug!(%name, "snapshot written"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "snapshot failed; the log is intact, replay will be longer"),
                }
            }
        })
        .expect("spawning the snapshot thread");
    (tx, thread)
}
