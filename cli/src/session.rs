//! One open engine for the length of a command: the same start-up an embedder gets
//! from `lessor_engine_open` (recovery, then the expirer), on a runtime of its own.
//!
//! The host's expirer runs the passes ([`Engine::expire_due`]), and a pass is
//! never cut short: closing waits (at most [`EXPIRER_GRACE`]) for the pass
//! in progress, so a command does not exit with a revocation it started half done
//! — whose retry the next command would then report. Warnings about revocations
//! are worded from what the log records (each lease's `RevokeFailed` attempts),
//! never from a count of calls that returned an error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lessor_engine::request::{Operation, RequestError, Response};
use lessor_engine::state::{LeaseStatus, State};
use lessor_engine::{Engine, EngineOptions, Host, HostError, HostOptions, LogStore};
use serde_json::Value;

use crate::term::{self, errln};

/// How long closing waits for the revocations the expirer's pass is running.
/// Past it they are interrupted: their intent is logged, and the next command (or
/// `lessor run`) finishes them.
pub const EXPIRER_GRACE: Duration = lessor_engine::EXPIRER_GRACE_DEFAULT;

/// Where the engine lives and how to unlock it, from the global flags.
#[derive(Clone, Debug)]
pub struct Location {
    pub data_dir: PathBuf,
    /// `LESSOR_MASTER_KEY_FILE`; `None` = `<data_dir>/master.key`.
    pub key_file: Option<PathBuf>,
    /// `-log-url` and `-stream`: the log in PostgreSQL; else the directory.
    pub log_store: LogStore,
}

impl Location {
    pub fn options(&self) -> EngineOptions {
        EngineOptions { key_file: self.key_file.clone(), log_store: self.log_store.clone(), ..EngineOptions::default() }
    }
}

/// An engine opened for a command, hosted ([`Host`]): recovered, its expirer
/// running. Dropping it (or [`Session::close`]) lets the expirer finish its pass,
/// then makes everything durable before the directory lock is released.
#[derive(Debug)]
pub struct Session {
    host: Option<Host>,
    /// Recorded revocation failures per lease when the command began (after
    /// recovery): what the closing report compares against.
    attempts_at_start: Attempts,
    grace: Duration,
}

/// `revoke_attempts` of every lease not active: the failures the log records.
type Attempts = HashMap<Arc<str>, u32>;

fn attempts(state: &State) -> Attempts {
    state
        .leases
        .iter()
        .filter(|(_, l)| !matches!(l.status, LeaseStatus::Active))
        .map(|(id, l)| (id.clone(), l.revoke_attempts))
        .collect()
}

/// The warning for revocations whose failure the log recorded since `before`
/// (a `RevokeFailed` that raised a lease's attempt count), or `None`. `when` says
/// when they ran ("during this command").
fn failure_report(state: &State, before: &Attempts, when: &str) -> Option<String> {
    let mut failed: Vec<_> = state
        .leases
        .iter()
        .filter(|(id, l)| {
            matches!(l.status, LeaseStatus::Revoking(_)) && l.revoke_attempts > before.get(*id).copied().unwrap_or(0)
        })
        .map(|(_, l)| l)
        .collect();
    failed.sort_by(|a, b| a.lease_id.cmp(&b.lease_id));
    let first = failed.first()?;
    let error = first.revoke_error.as_deref().unwrap_or("no error text recorded");
    let more = if failed.len() > 1 { format!(" (and {} more)", failed.len() - 1) } else { String::new() };
    let irrevocable = failed.iter().filter(|l| l.irrevocable).count();
    let irrevocable = if irrevocable > 0 {
        format!(
            "; {irrevocable} spent the retry budget and are irrevocable (`lessor read sys/leases type=irrevocable`; \
             `lessor lease revoke -prefix -force ID` forgets one the database refuses)"
        )
    } else {
        String::new()
    };
    Some(format!(
        "warning: {} revocation(s) failed {when}; the log records each failure (`lessor audit log --lease ID`) and \
         the expirer retries them with backoff{irrevocable}. {} (attempt {}): {}{more}",
        failed.len(),
        term::escape(&first.lease_id),
        first.revoke_attempts,
        term::escape(error),
    ))
}

impl Session {
    /// Opens `location`, finishes what a crash interrupted and starts the expirer,
    /// so any command also revokes leases that expired while nothing ran.
    pub fn open(location: &Location) -> Result<Session, String> {
        Session::open_with(location, location.options(), EXPIRER_GRACE)
    }

    fn open_with(location: &Location, options: EngineOptions, grace: Duration) -> Result<Session, String> {
        let engine = Engine::open(&location.data_dir, options)
            .map_err(|e| format!("cannot open {}: {e}", location.data_dir.display()))?;
        let before = engine.with_state(attempts);
        // The expirer starts once recovery's failures are reported, so a failure
        // of its first pass counts as this command's.
        let host_options = HostOptions { expirer: false, expirer_grace: grace, ..HostOptions::default() };
        let mut host = Host::start(engine, host_options).map_err(|e| match e {
            HostError::Recover(e) => format!("cannot finish interrupted operations: {e}"),
            e => e.to_string(),
        })?;
        let engine = host.engine().clone();
        if let Some(warning) = engine
            .with_state(|s| failure_report(s, &before, "when retried at start-up (interrupted or failing before)"))
        {
            errln!("{warning}");
        }
        let attempts_at_start = engine.with_state(attempts);
        host.start_expirer(Some(Arc::new(|e| {
            errln!("warning: the expirer cannot record revocations ({e}); it retries every tick");
        })));
        Ok(Session { host: Some(host), attempts_at_start, grace })
    }

    fn host(&self) -> &Host {
        self.host.as_ref().expect("the host lives until close")
    }

    pub fn engine(&self) -> &Arc<Engine> {
        self.host().engine()
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.host().block_on(future)
    }

    /// One request through the engine's pipeline, as the C API's `lessor_request`.
    pub fn request(
        &self,
        token: &str,
        operation: Operation,
        path: &str,
        data: Value,
    ) -> Result<Response, RequestError> {
        self.block_on(self.engine().request(token, operation, path, data))
    }

    /// Leases whose revocation is recorded but not finished.
    pub fn pending_revocations(&self) -> usize {
        self.engine().with_state(|s| s.leases.values().filter(|l| !matches!(l.status, LeaseStatus::Active)).count())
    }

    /// Runs the revocations a request only recorded (revoke-prefix, token and mount
    /// revocation queue them, as Vault does) so a one-shot command leaves none
    /// behind: one expirer pass now, waited for ([`Host::expire_now`]). Called
    /// only when the request added some (`pending_before`). The expirer is the one
    /// runner of revocations, so none is raced. Failures stay recorded; the
    /// closing report names them.
    pub fn finish_pending(&self, pending_before: usize) -> Result<(), String> {
        if self.pending_revocations() <= pending_before {
            return Ok(());
        }
        self.host().expire_now().map_err(|e| format!("cannot finish revocations: {e}"))
    }

    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(mut host) = self.host.take() else { return };
        if host.stop_expirer() {
            errln!(
                "warning: revocations the expirer was running did not finish within {} s and were interrupted: \
                 the log holds their intent (RevokeStarted), and the next command or `lessor run` finishes them",
                self.grace.as_secs_f64()
            );
        }
        if let Some(warning) =
            host.engine().with_state(|s| failure_report(s, &self.attempts_at_start, "during this command"))
        {
            errln!("{warning}");
        }
        host.close();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    //! What a session reports about revocations. How closing treats the
    //! revocations the expirer runs (waits for them, up to the grace; past it
    //! they are interrupted, their intents left to the next open) is the host's,
    //! tested with it in `engine/tests/host.rs`.

    use lessor_engine::clock::ManualClock;
    use lessor_engine::state::LeaseStatus;
    use lessor_engine::testing::FaultInjectingPlugin;
    use serde_json::json;

    use super::*;

    const T0: i64 = 1_800_000_000_000;

    struct Fixture {
        dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        plugin: FaultInjectingPlugin,
        root: String,
        lease_id: String,
    }

    impl Fixture {
        fn location(&self) -> Location {
            Location { data_dir: self.dir.path().to_path_buf(), key_file: None, log_store: LogStore::Directory }
        }

        fn options(&self) -> EngineOptions {
            EngineOptions {
                clock: self.clock.clone(),
                plugin_factory: Some(self.plugin.factory()),
                ..self.location().options()
            }
        }

        fn lease(&self) -> Option<lessor_engine::state::Lease> {
            let engine = Engine::open(self.dir.path(), self.options()).unwrap();
            let lease = engine.with_state(|s| s.leases.get(self.lease_id.as_str()).cloned());
            engine.close();
            lease
        }
    }

    /// A data directory with one lease (TTL 1h) whose expiry has passed, on the
    /// fault-injecting database.
    fn expired_lease() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let plugin = FaultInjectingPlugin::default();
        let mut fixture = Fixture { dir, clock, plugin, root: String::new(), lease_id: String::new() };
        let (engine, root) = Engine::init(fixture.dir.path(), fixture.options()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ok = |path: &str, operation, data| {
            rt.block_on(engine.request(root.expose(), operation, path, data)).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        ok("sys/mounts/database", Operation::Update, json!({"type": "database"}));
        ok(
            "database/config/pg",
            Operation::Update,
            json!({"plugin_name": "postgresql-database-plugin", "allowed_roles": "*", "username": "admin",
                   "password": "pw", "connection_url": "postgresql://{{username}}:{{password}}@h/db"}),
        );
        ok(
            "database/roles/app",
            Operation::Update,
            json!({"db_name": "pg", "default_ttl": "1h", "creation_statements": "CREATE ROLE \"{{name}}\";"}),
        );
        fixture.lease_id = ok("database/creds/app", Operation::Read, Value::Null).lease_id;
        fixture.root = root.expose().to_string();
        engine.close();
        fixture.clock.advance_ms(2 * 3_600_000);
        fixture
    }

    #[test]
    fn a_revocation_handed_over_unfinished_is_not_reported_failed() {
        let f = expired_lease();
        // An intent without an outcome and without a recorded failure: what an
        // interrupted revocation leaves (engine/tests/host.rs), and what
        // revoke-prefix records for the expirer to run.
        let engine = Engine::open(f.dir.path(), f.options()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let path = "sys/leases/revoke-prefix/database/creds/app";
        rt.block_on(engine.request(&f.root, Operation::Update, path, json!({}))).unwrap();
        engine.close();
        let lease = f.lease().expect("still recorded");
        assert!(matches!(lease.status, LeaseStatus::Revoking(_)), "{lease:?}");
        assert_eq!(lease.revoke_attempts, 0, "no failure was recorded, so none may be reported");

        // The next command finishes it at start-up, and has no failure to report.
        let before = Engine::open(f.dir.path(), f.options()).unwrap();
        let attempts_before = before.with_state(attempts);
        before.close();
        let session = Session::open_with(&f.location(), f.options(), Duration::from_secs(600)).unwrap();
        assert_eq!(session.engine().with_state(|s| failure_report(s, &attempts_before, "at start-up")), None);
        session.close();
        assert_eq!(f.lease(), None);
        assert_eq!(f.plugin.db.lock().unwrap().revoked.len(), 1);
    }

    #[test]
    fn the_failure_warning_is_worded_from_the_recorded_failure() {
        let f = expired_lease();
        f.plugin.db.lock().unwrap().refuse_revokes = Some("role \"v-x\" cannot be dropped\u{1b}[2J".into());
        let session = Session::open_with(&f.location(), f.options(), Duration::from_secs(600)).unwrap();
        let start = session.attempts_at_start.clone();
        session.close(); // waits for the expirer's first pass: the refusal is recorded
        let engine = Engine::open(f.dir.path(), f.options()).unwrap();
        let warning = engine.with_state(|s| failure_report(s, &start, "during this command")).expect("a warning");
        // Unchanged attempts (an interruption, or a revocation someone else was
        // running) are not failures.
        let now = engine.with_state(attempts);
        assert_eq!(engine.with_state(|s| failure_report(s, &now, "during this command")), None);
        engine.close();
        assert!(
            warning.starts_with("warning: 1 revocation(s) failed during this command; the log records"),
            "{warning}"
        );
        assert!(
            warning.contains(&format!(
                "{} (attempt 1): database error: role \"v-x\" cannot be dropped\\x1b[2J",
                f.lease_id
            )),
            "{warning}"
        );
        assert!(!warning.contains('\u{1b}'), "{warning}");
    }
}
