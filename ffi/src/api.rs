//! The engine handle, credentials, and the operations.

use std::ffi::{CString, c_char};
use std::future::Future;
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock};

use ::lessor_engine::auth::keys::{KeyError, MasterKey};
use ::lessor_engine::log::FsyncPolicy;
use ::lessor_engine::log::postgres::{PgOpenError, StreamError};
use ::lessor_engine::log::storage::LockError;
use ::lessor_engine::request::{Operation, RequestError};
use ::lessor_engine::{
    Engine, EngineOptions, Host, HostError, HostOptions, InitError, LogStore, OpenError, PgLogOptions,
};
use serde_json::Value;
use zeroize::Zeroize;

use crate::error::{
    Failure, arg_str, c_string, finish, free_registered_box, lessor_error, not_null, opt_arg_str, string_out, write_out,
};
use crate::handle::{CREDENTIALS, ENGINES};
use crate::panic::ffi_panic_boundary;
use crate::status::lessor_status;

/// An open lessor engine: a data directory, its tokio runtime (two worker
/// threads) and its background expirer, which revokes leases as they expire.
///
/// Opaque. Created by `lessor_engine_open`, freed by `lessor_engine_free`.
/// Thread-safe: any number of threads may call lessor functions with the same
/// engine at once, and `lessor_engine_free` waits for the calls in flight.
/// Once freed, the pointer stays recognised: every call taking it returns
/// `LESSOR_INVALID_HANDLE`, and a second `lessor_engine_free` is a no-op (see
/// "Handles" above).
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct lessor_engine {
    /// `None` once freed. Every call holds the read lock while it uses the
    /// engine; `lessor_engine_free` takes the write lock, so it waits for them.
    /// The slot itself is never freed (see `handle`).
    live: RwLock<Option<Box<LiveEngine>>>,
}

/// What a `lessor_engine` owns until `lessor_engine_free`.
#[derive(Debug)]
struct LiveEngine {
    /// The engine with its runtime and expirer; dropped (in order: the expirer
    /// after its pass, then the engine, durable) by `lessor_engine_free`.
    host: Host,
}

impl LiveEngine {
    fn engine(&self) -> &Engine {
        self.host.engine()
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.host.block_on(future)
    }
}

/// A database credential: lease ID, username and password.
///
/// Opaque. Created by `lessor_issue`, freed by `lessor_credential_free`, which
/// overwrites the password with zeros. Immutable: readable from any thread.
/// A freed credential passed back is recognised (see "Handles" above) and
/// treated like NULL.
#[allow(non_camel_case_types)]
pub struct lessor_credential {
    lease_id: CString,
    username: CString,
    /// NUL-terminated; zeroized on drop.
    password: Vec<u8>,
    ttl_s: i64,
}

impl std::fmt::Debug for lessor_credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("lessor_credential")
            .field("lease_id", &self.lease_id)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("ttl_s", &self.ttl_s)
            .finish()
    }
}

impl Drop for lessor_credential {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

/// `"log": {"postgresql": URL, "stream": NAME, "api_addr": ADDR}`: the log in
/// PostgreSQL (`api_addr` optional).
fn parse_log_store(value: &Value) -> Result<LogStore, Failure> {
    let Value::Object(map) = value else {
        return Err(Failure::invalid(
            "option log must be an object: {\"postgresql\": \"postgresql://…\", \"stream\": \"NAME\"}",
        ));
    };
    let text = |key: &str| -> Result<Option<String>, Failure> {
        match map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Failure::invalid(format!("option log.{key} must be a string"))),
        }
    };
    if let Some(other) = map.keys().find(|k| !["postgresql", "stream", "api_addr"].contains(&k.as_str())) {
        return Err(Failure::invalid(format!("unknown option log.{other} (known: postgresql, stream, api_addr)")));
    }
    let url = text("postgresql")?
        .ok_or_else(|| Failure::invalid("option log needs \"postgresql\": the log database's URL"))?;
    let stream = text("stream")?.ok_or_else(|| {
        Failure::invalid("option log needs \"stream\": this engine's stream, e.g. the application's name")
    })?;
    let mut pg = PgLogOptions::new(url, stream);
    if let Some(api_addr) = text("api_addr")? {
        pg.api_addr = api_addr;
    }
    Ok(LogStore::PostgreSql(pg))
}

/// Options parsed from `options_json`.
fn parse_options(options_json: Option<&str>) -> Result<EngineOptions, Failure> {
    let mut options = EngineOptions::default();
    let Some(text) = options_json else { return Ok(options) };
    let value: Value =
        serde_json::from_str(text).map_err(|e| Failure::invalid(format!("options_json is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(Failure::invalid("options_json must be a JSON object"));
    };
    for (key, value) in map {
        match key.as_str() {
            "key_file" => {
                let path = value.as_str().ok_or_else(|| Failure::invalid("option key_file must be a string"))?;
                options.key_file = Some(PathBuf::from(path));
            }
            "master_key_hex" => {
                let hex = value.as_str().ok_or_else(|| Failure::invalid("option master_key_hex must be a string"))?;
                if hex.trim().len() != 64 {
                    return Err(Failure::invalid("option master_key_hex must be 64 hexadecimal characters"));
                }
                let key = MasterKey::from_slice(hex.as_bytes())
                    .map_err(|e| Failure::invalid(format!("option master_key_hex: {e}")))?;
                options.master_key = Some(key);
            }
            "segment_bytes_max" => {
                options.log.segment_bytes_max = value
                    .as_u64()
                    .ok_or_else(|| Failure::invalid("option segment_bytes_max must be a non-negative integer"))?;
            }
            "fsync" => {
                let names = || FsyncPolicy::ALL.map(|(_, n)| format!("\"{n}\"")).join(" or ");
                options.log.fsync = value
                    .as_str()
                    .and_then(FsyncPolicy::from_name)
                    .ok_or_else(|| Failure::invalid(format!("option fsync must be {}, not {value}", names())))?;
            }
            "log" => options.log_store = parse_log_store(&value)?,
            other => {
                return Err(Failure::invalid(format!(
                    "unknown option \"{other}\" in options_json (known: key_file, master_key_hex, segment_bytes_max, \
                     fsync, log)"
                )));
            }
        }
    }
    Ok(options)
}

fn key_failure(e: KeyError) -> Failure {
    let status = match &e {
        KeyError::WrongLength(_) | KeyError::Permissions { .. } => lessor_status::LESSOR_INVALID_ARGUMENT,
        _ => lessor_status::LESSOR_IO,
    };
    Failure::new(status, e.to_string())
}

fn open_failure(e: OpenError) -> Failure {
    let status = match &e {
        OpenError::Lock(LockError::Held { .. }) => lessor_status::LESSOR_BUSY,
        // A directory someone else could change, or a link where a file must be.
        OpenError::Lock(
            LockError::DirIsSymlink { .. }
            | LockError::DirWritableByOthers { .. }
            | LockError::OwnedByOther { .. }
            | LockError::HardLinked { .. }
            | LockError::NotRegularFile(_),
        ) => lessor_status::LESSOR_PERMISSION_DENIED,
        OpenError::Scan(_)
        | OpenError::SnapshotBeyondLog { .. }
        | OpenError::RolledBack { .. }
        | OpenError::ForeignPublicKey => lessor_status::LESSOR_CORRUPT,
        OpenError::NotInitialized { .. } => lessor_status::LESSOR_NOT_FOUND,
        OpenError::WrongMasterKey => lessor_status::LESSOR_PERMISSION_DENIED,
        // Another engine holds the log's stream: this one is a standby.
        OpenError::Postgres(PgOpenError::Stream(StreamError::Held { .. })) => lessor_status::LESSOR_BUSY,
        OpenError::Key(_) => {
            let OpenError::Key(k) = e else { unreachable!() };
            return key_failure(k);
        }
        _ => lessor_status::LESSOR_IO,
    };
    Failure::new(status, e.to_string())
}

/// `Host::open`'s failure, by variant.
fn host_failure(e: HostError) -> Failure {
    match e {
        HostError::Open(open) => open_failure(open),
        HostError::Recover(lease) => Failure::from(RequestError::from(lease)),
        other => Failure::new(lessor_status::LESSOR_IO, other.to_string()),
    }
}

/// `Engine::init`'s failure, by variant.
fn init_failure(e: InitError) -> Failure {
    match e {
        InitError::AlreadyInitialized { .. } | InitError::StorageInitialized { .. } => {
            Failure::new(lessor_status::LESSOR_ALREADY_INITIALIZED, e.to_string())
        }
        InitError::Open(open) => open_failure(open),
        InitError::Key(key) => key_failure(key),
        other => Failure::new(lessor_status::LESSOR_IO, other.to_string()),
    }
}

/// Initializes a new data directory `data_dir` (created if missing; it must not
/// already hold a lessor log) and returns its root token.
///
/// `options_json` may be NULL for the defaults, or a JSON object with any of:
/// `"key_file"` (path of the master key file; default `<data_dir>/master.key`,
/// created with mode 0600 when it does not exist), `"master_key_hex"` (the master
/// key as 64 hex characters, supplied by the embedder; no key file is written),
/// `"segment_bytes_max"` (log segment size, bytes; default 64 MiB), `"fsync"`
/// (`"always"`, the default: every acknowledged operation is on stable storage
/// first; `"never"`: no fsync until the engine is freed — an acknowledged
/// operation survives the process crashing but not a power loss, which can also
/// leave database users the log does not know; for development and tests only),
/// `"log"` (`{"postgresql": URL, "stream": NAME}`, optionally `"api_addr"`: the
/// log in a PostgreSQL stream instead of the directory, which keeps the master
/// key, the head file and the snapshot cache; a stream another engine holds is
/// `LESSOR_BUSY`).
/// An unknown key or a bad value is `LESSOR_INVALID_ARGUMENT`, and the message
/// names it.
///
/// On success `*root_token_out` receives the root token, a NUL-terminated string
/// that the caller owns and frees with `lessor_string_free`. It is shown only
/// once: lessor stores only a keyed hash of it. On failure `*root_token_out` is
/// untouched and, if `err_out` is not NULL, `*err_out` receives an error to free
/// with `lessor_error_free`. The engine is closed again before returning: open it
/// with `lessor_engine_open`. Thread-safe, but a directory is initialized once.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_init(
    data_dir: *const c_char,
    options_json: *const c_char,
    root_token_out: *mut *mut c_char,
    err_out: *mut *mut lessor_error,
) -> lessor_status {
    ffi_panic_boundary(|| {
        let result = (|| {
            let dir = arg_str(data_dir, "data_dir")?;
            let options = parse_options(opt_arg_str(options_json, "options_json")?)?;
            not_null(root_token_out, "root_token_out")?;
            let (engine, root) = Engine::init(dir, options).map_err(init_failure)?;
            let token = c_string(root.expose());
            engine.close();
            write_out(root_token_out, string_out(token));
            Ok(())
        })();
        finish(result, err_out)
    })
}

/// Opens the initialized data directory `data_dir`, finishes what a crash
/// interrupted (revokes credentials whose issue never completed), and starts the
/// background expirer.
///
/// `options_json` is as for `lessor_init` and may be NULL; with NULL the master
/// key is read from `<data_dir>/master.key`. The directory is locked: a second
/// open (in this or another process) fails with `LESSOR_BUSY` until the first
/// engine is freed.
///
/// On success `*engine_out` receives the engine, owned by the caller and freed
/// with `lessor_engine_free`. On failure `*engine_out` is untouched and, if
/// `err_out` is not NULL, `*err_out` receives an error. Do not call from inside a
/// Rust async runtime.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_engine_open(
    data_dir: *const c_char,
    options_json: *const c_char,
    engine_out: *mut *mut lessor_engine,
    err_out: *mut *mut lessor_error,
) -> lessor_status {
    ffi_panic_boundary(|| {
        let result = (|| {
            let dir = arg_str(data_dir, "data_dir")?;
            let options = parse_options(opt_arg_str(options_json, "options_json")?)?;
            not_null(engine_out, "engine_out")?;
            let host = Host::open(dir, options, HostOptions::default()).map_err(host_failure)?;
            let live = LiveEngine { host };
            // The slot is leaked on purpose: its address must never be reused, so
            // that a freed handle is always recognised (see `handle`).
            let slot: &'static lessor_engine =
                Box::leak(Box::new(lessor_engine { live: RwLock::new(Some(Box::new(live))) }));
            let ptr = std::ptr::from_ref(slot).cast_mut();
            write_out(engine_out, ENGINES.insert(ptr));
            Ok(())
        })();
        finish(result, err_out)
    })
}

/// Stops the expirer once the revocations it is running finish (waiting at most
/// 10 s; past that they are interrupted and the next open finishes them), waits
/// for the log to be durable, releases the data directory and frees `engine`.
/// NULL is a no-op.
///
/// Calls on `engine` in flight in other threads are waited for (they finish
/// normally); a call that races with this one is either waited for or returns
/// `LESSOR_INVALID_HANDLE`, and every call afterwards returns
/// `LESSOR_INVALID_HANDLE`. Freeing an engine again is a no-op, as is a pointer
/// that no `lessor_engine_open` returned. When this returns (from any thread),
/// the directory is released. Leases stay recorded: the next `lessor_engine_open` resumes their
/// expiry. Must not be called from inside a call on the same engine.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_engine_free(engine: *mut lessor_engine) {
    ffi_panic_boundary(|| {
        let Some(slot) = engine_slot(engine) else { return };
        // The write lock waits for every call in flight (each holds the read lock).
        let mut live = slot.live.write().unwrap_or_else(PoisonError::into_inner);
        // Dropped with the lock held, so that a racing second free returns only
        // once the directory is released too. Nothing the engine runs calls back
        // into this API, so this cannot wait for itself.
        drop(live.take());
    })
}

/// The slot `engine` points to, if it is one (NULL or not from
/// `lessor_engine_open`: `None`). The slot may have been freed.
fn engine_slot(engine: *mut lessor_engine) -> Option<&'static lessor_engine> {
    if !ENGINES.contains(engine) {
        return None;
    }
    // SAFETY: `engine` is in ENGINES, which holds only addresses of slots leaked
    // by `lessor_engine_open`: valid for the rest of the process, and only ever
    // shared (the slot's state is behind its RwLock).
    Some(unsafe { &*engine })
}

/// Runs `f` with the live engine `engine`, keeping `lessor_engine_free` from
/// freeing it until `f` returns. NULL is `LESSOR_NULL_PARAMETER`; a freed
/// engine, or a pointer that is not an engine, is `LESSOR_INVALID_HANDLE`.
fn with_engine<R>(engine: *mut lessor_engine, f: impl FnOnce(&LiveEngine) -> Result<R, Failure>) -> Result<R, Failure> {
    not_null(engine, "engine")?;
    let slot = engine_slot(engine)
        .ok_or_else(|| Failure::invalid_handle("engine is not a lessor_engine returned by lessor_engine_open"))?;
    let live = slot.live.read().unwrap_or_else(PoisonError::into_inner);
    let live = live.as_deref().ok_or_else(|| Failure::invalid_handle("engine was freed by lessor_engine_free"))?;
    f(live)
}

/// Issues a new credential: reads `creds_path` (`<mount>/creds/<role>`, e.g.
/// `"database/creds/readonly"`) with `token`, which creates the database user.
///
/// On success `*credential_out` receives the credential, owned by the caller and
/// freed with `lessor_credential_free`. On failure it is untouched and, if
/// `err_out` is not NULL, `*err_out` receives an error (`LESSOR_PERMISSION_DENIED`
/// for a bad token, `LESSOR_NOT_FOUND` for an unknown role, `LESSOR_DATABASE` when
/// the database refused). Thread-safe; blocks the calling thread until done.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_issue(
    engine: *mut lessor_engine,
    token: *const c_char,
    creds_path: *const c_char,
    credential_out: *mut *mut lessor_credential,
    err_out: *mut *mut lessor_error,
) -> lessor_status {
    ffi_panic_boundary(|| {
        let result = with_engine(engine, |handle| {
            let token = arg_str(token, "token")?;
            let path = arg_str(creds_path, "creds_path")?;
            not_null(credential_out, "credential_out")?;
            let credential = handle.block_on(handle.engine().issue(token, path)).map_err(Failure::from)?;
            // One copy, with room for the NUL so it never reallocates; the
            // engine's `Secret` zeroes its own when `credential` drops.
            let mut password = Vec::with_capacity(credential.password.expose().len() + 1);
            password.extend_from_slice(credential.password.expose().as_bytes());
            if password.contains(&0) {
                password.zeroize();
                return Err(Failure::new(lessor_status::LESSOR_CORRUPT, "the issued password contains a NUL byte"));
            }
            password.push(0);
            let out = lessor_credential {
                lease_id: c_string(credential.lease_id.as_str()),
                username: c_string(credential.username.as_str()),
                password,
                ttl_s: i64::try_from(credential.lease_duration).unwrap_or(i64::MAX),
            };
            write_out(credential_out, CREDENTIALS.insert(Box::into_raw(Box::new(out))));
            Ok(())
        });
        finish(result, err_out)
    })
}

/// Renews lease `lease_id` by `increment_s` seconds from now (0 = the role's
/// default TTL; negative is `LESSOR_INVALID_ARGUMENT`), capped by the role's max TTL.
///
/// On success `*ttl_s_out` receives the seconds the lease now has left. On
/// failure it is untouched and `*err_out` (if not NULL) receives an error.
/// Thread-safe; blocks the calling thread until done.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_renew(
    engine: *mut lessor_engine,
    token: *const c_char,
    lease_id: *const c_char,
    increment_s: i64,
    ttl_s_out: *mut i64,
    err_out: *mut *mut lessor_error,
) -> lessor_status {
    ffi_panic_boundary(|| {
        let result = with_engine(engine, |handle| {
            let token = arg_str(token, "token")?;
            let lease_id = arg_str(lease_id, "lease_id")?;
            not_null(ttl_s_out, "ttl_s_out")?;
            let increment = u64::try_from(increment_s)
                .map_err(|_| Failure::invalid(format!("increment_s must be 0 or positive, got {increment_s}")))?;
            let renewed = handle.block_on(handle.engine().renew(token, lease_id, increment)).map_err(Failure::from)?;
            write_out(ttl_s_out, i64::try_from(renewed.lease_duration).unwrap_or(i64::MAX));
            Ok(())
        });
        finish(result, err_out)
    })
}

/// Revokes lease `lease_id` now: drops its database user. A lease that is gone
/// already (revoked, expired, never issued) is `LESSOR_OK` with nothing to do,
/// as in Vault, so a retried revoke succeeds. Thread-safe; blocks the calling
/// thread until done. On failure `*err_out` (if not NULL) receives an error.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_revoke(
    engine: *mut lessor_engine,
    token: *const c_char,
    lease_id: *const c_char,
    err_out: *mut *mut lessor_error,
) -> lessor_status {
    ffi_panic_boundary(|| {
        let result = with_engine(engine, |handle| {
            let token = arg_str(token, "token")?;
            let lease_id = arg_str(lease_id, "lease_id")?;
            handle.block_on(handle.engine().revoke(token, lease_id)).map_err(Failure::from)?;
            Ok(())
        });
        finish(result, err_out)
    })
}

fn parse_operation(operation: &str) -> Result<Operation, Failure> {
    match operation {
        "create" => Ok(Operation::Create),
        "read" => Ok(Operation::Read),
        "update" | "write" => Ok(Operation::Update),
        "delete" => Ok(Operation::Delete),
        "list" => Ok(Operation::List),
        other => Err(Failure::invalid(format!(
            "unknown operation \"{other}\": use create, read, update (or write), delete or list"
        ))),
    }
}

/// Performs any request, in Vault's shapes: `operation` is "create", "read",
/// "update" (or "write"), "delete" or "list"; `path` e.g. "sys/mounts/database";
/// `data_json` a JSON object, or NULL for none.
///
/// On success `*response_json_out` receives the response as a JSON object
/// (`request_id`, `lease_id`, `lease_duration`, `renewable`, `data`, `warnings`,
/// `auth`), a NUL-terminated string owned by the caller and freed with
/// `lessor_string_free` (which zeroizes it: it may hold secrets). On failure it
/// is untouched and `*err_out` (if not NULL) receives an error. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_request(
    engine: *mut lessor_engine,
    token: *const c_char,
    operation: *const c_char,
    path: *const c_char,
    data_json: *const c_char,
    response_json_out: *mut *mut c_char,
    err_out: *mut *mut lessor_error,
) -> lessor_status {
    ffi_panic_boundary(|| {
        let result = with_engine(engine, |handle| {
            let token = arg_str(token, "token")?;
            let operation = parse_operation(arg_str(operation, "operation")?)?;
            let path = arg_str(path, "path")?;
            let data = match opt_arg_str(data_json, "data_json")? {
                None => Value::Null,
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| Failure::invalid(format!("data_json is not valid JSON: {e}")))?,
            };
            not_null(response_json_out, "response_json_out")?;
            let response =
                handle.block_on(handle.engine().request(token, operation, path, data)).map_err(Failure::from)?;
            let mut json = response.to_json().to_string();
            let out = c_string(json.as_str());
            json.zeroize();
            write_out(response_json_out, string_out(out));
            Ok(())
        });
        finish(result, err_out)
    })
}

/// Runs `f` on the live credential `credential` (NULL, freed or not a
/// credential: `None`), with the credential kept from being freed meanwhile.
fn with_credential<R>(credential: *const lessor_credential, f: impl FnOnce(&lessor_credential) -> R) -> Option<R> {
    CREDENTIALS.with_live(credential, || {
        // SAFETY: `credential` is live in CREDENTIALS: it came from `Box::into_raw`
        // in `lessor_issue` and is not freed while the registry's lock is held.
        f(unsafe { &*credential })
    })
}

/// The lease ID of `credential` (for `lessor_renew` / `lessor_revoke`). Owned by
/// `credential`: valid until `lessor_credential_free`, do not free. NULL if
/// `credential` is NULL or not a live credential.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_credential_lease_id(credential: *const lessor_credential) -> *const c_char {
    ffi_panic_boundary(|| with_credential(credential, |c| c.lease_id.as_ptr()).unwrap_or(std::ptr::null()))
}

/// The database username of `credential`. Owned by `credential`: valid until
/// `lessor_credential_free`, do not free. NULL if `credential` is NULL or not a
/// live credential.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_credential_username(credential: *const lessor_credential) -> *const c_char {
    ffi_panic_boundary(|| with_credential(credential, |c| c.username.as_ptr()).unwrap_or(std::ptr::null()))
}

/// The database password of `credential`. Owned by `credential`: valid until
/// `lessor_credential_free`, which overwrites it with zeros; do not free. lessor
/// keeps no copy. NULL if `credential` is NULL or not a live credential.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_credential_password(credential: *const lessor_credential) -> *const c_char {
    ffi_panic_boundary(|| with_credential(credential, |c| c.password.as_ptr().cast()).unwrap_or(std::ptr::null()))
}

/// Seconds the credential's lease had left when it was issued; -1 if
/// `credential` is NULL or not a live credential.
#[unsafe(no_mangle)]
pub extern "C" fn lessor_credential_ttl_s(credential: *const lessor_credential) -> i64 {
    ffi_panic_boundary(|| with_credential(credential, |c| c.ttl_s).unwrap_or(-1))
}

/// Overwrites the password with zeros and frees `credential`. NULL is a no-op,
/// and so is a credential already freed (see "Handles" above). Does not revoke
/// the lease (see `lessor_revoke`).
#[unsafe(no_mangle)]
pub extern "C" fn lessor_credential_free(credential: *mut lessor_credential) {
    ffi_panic_boundary(|| free_registered_box(&CREDENTIALS, credential))
}
