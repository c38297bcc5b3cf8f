//! An initialized engine for cross-crate tests: a temporary data directory, the
//! root token, and the engine hosted ([`Host`]: its runtime, an orderly close) to
//! drive requests from synchronous tests.
//!
//! The harness leaves recovery and expiry to each test: a reopened engine is not
//! recovered (tests look at what recovery starts from, or count what it does),
//! and no expirer runs until a test starts one ([`Lessor::start_expirer`]); the
//! others drive `Engine::recover` and `Engine::expire_due` step by step.

use std::sync::Arc;

use lessor_engine::request::{Operation, RequestError, Response};
use lessor_engine::{Engine, EngineOptions, Host, HostOptions};
use serde_json::{Value, json};

use crate::pg::TestDb;

#[derive(Debug)]
pub struct Lessor {
    /// Declared first, so dropped first: the engine closes into its directory
    /// before the directory is removed.
    host: Option<Host>,
    pub dir: tempfile::TempDir,
    pub root: String,
}

/// Hosted as the tests drive it: no recovery at open, no background expirer.
fn host_options() -> HostOptions {
    HostOptions { recover: false, expirer: false, ..HostOptions::default() }
}

impl Lessor {
    pub fn new() -> Lessor {
        Lessor::with_options(EngineOptions { snapshot_every_events: 0, ..EngineOptions::default() })
    }

    pub fn with_options(options: EngineOptions) -> Lessor {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, root) = Engine::init(dir.path(), options).expect("init");
        let host = Host::start(engine, host_options()).expect("host");
        Lessor { host: Some(host), dir, root: root.expose().to_string() }
    }

    fn host(&self) -> &Host {
        self.host.as_ref().expect("engine open")
    }

    fn host_mut(&mut self) -> &mut Host {
        self.host.as_mut().expect("engine open")
    }

    pub fn engine(&self) -> &Arc<Engine> {
        self.host().engine()
    }

    /// The host's runtime, to drive the engine's futures from a test.
    pub fn rt(&self) -> &tokio::runtime::Runtime {
        self.host().runtime()
    }

    /// Starts the host's background expirer (tests of what happens while it runs).
    pub fn start_expirer(&mut self) {
        self.host_mut().start_expirer(None);
    }

    /// Stops the background expirer after its pass in progress, as closing does;
    /// returns whether revocations were interrupted.
    pub fn stop_expirer(&mut self) -> bool {
        self.host_mut().stop_expirer()
    }

    /// Closes the engine (draining its log) and opens the directory again, as a
    /// restart would (without recovery: the test runs it).
    pub fn reopen(&mut self) {
        self.close();
        self.open();
    }

    /// Closes the engine and releases the directory (another process may open it).
    pub fn close(&mut self) {
        let mut host = self.host.take().expect("engine open");
        host.stop_expirer();
        // Only the host may hold the engine: a reference a test kept elsewhere
        // would keep the directory locked after this returns.
        assert_eq!(Arc::strong_count(host.engine()), 1, "engine shared");
        host.close();
    }

    /// Opens the directory again after [`Lessor::close`].
    pub fn open(&mut self) {
        let options = EngineOptions { snapshot_every_events: 0, ..EngineOptions::default() };
        self.host = Some(Host::open(self.dir.path(), options, host_options()).expect("open"));
    }

    /// Waits until the outcomes of the requests answered so far are durable
    /// and in the state ([`Engine::settle_outcomes`]): before a test reads the
    /// state directly.
    pub fn settle(&self) {
        self.rt().block_on(self.engine().settle_outcomes());
    }

    pub fn request_as(&self, token: &str, op: Operation, path: &str, data: Value) -> Result<Response, RequestError> {
        self.rt().block_on(self.engine().request(token, op, path, data))
    }

    pub fn request(&self, op: Operation, path: &str, data: Value) -> Result<Response, RequestError> {
        self.request_as(&self.root, op, path, data)
    }

    /// A root write that must succeed.
    pub fn write(&self, path: &str, data: Value) -> Response {
        self.request(Operation::Update, path, data).unwrap_or_else(|e| panic!("write {path}: {e}"))
    }

    pub fn read(&self, path: &str) -> Result<Response, RequestError> {
        self.request(Operation::Read, path, Value::Null)
    }

    /// Enables `database/` and writes connection `pg` to `db` as its admin role,
    /// allowing every role, with usernames `<prefix>-<random>` so a test can find
    /// its own roles on a shared cluster.
    pub fn connect(&self, db: &TestDb, prefix: &str, url_suffix: &str) {
        if self.read("sys/mounts/database").is_err() {
            self.write("sys/mounts/database", json!({"type": "database"}));
        }
        let extra = json!({
            "connection_url": format!("{}{url_suffix}", db.url_template()),
            "username_template": format!("{prefix}-{{{{random 16}}}}"),
        });
        self.write("database/config/pg", connection_json(db, extra));
    }
}

/// A connection to `db` as its admin role, allowing every role, with the fields of
/// `extra` (a JSON object) added or replaced.
pub fn connection_json(db: &TestDb, extra: Value) -> Value {
    let mut config = json!({
        "plugin_name": "postgresql-database-plugin",
        "connection_url": db.url_template(),
        "username": db.admin_username(),
        "password": db.admin_password(),
        "allowed_roles": "*",
    });
    if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
        config.extend(extra);
    }
    config
}

impl Default for Lessor {
    fn default() -> Self {
        Lessor::new()
    }
}
