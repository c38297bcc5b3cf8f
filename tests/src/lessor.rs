//! An initialized engine for cross-crate tests: a temporary data directory, the
//! root token, and a runtime to drive requests from synchronous tests.

use lessor_engine::request::{Operation, RequestError, Response};
use lessor_engine::{Engine, EngineOptions};
use serde_json::{Value, json};

use crate::pg::TestDb;

#[derive(Debug)]
pub struct Lessor {
    pub dir: tempfile::TempDir,
    engine: Option<std::sync::Arc<Engine>>,
    pub root: String,
    pub rt: tokio::runtime::Runtime,
}

impl Lessor {
    pub fn new() -> Lessor {
        Lessor::with_options(EngineOptions { snapshot_every_events: 0, ..EngineOptions::default() })
    }

    pub fn with_options(options: EngineOptions) -> Lessor {
        let dir = tempfile::tempdir().expect("temp dir");
        let (engine, root) = Engine::init(dir.path(), options).expect("init");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        Lessor { dir, engine: Some(std::sync::Arc::new(engine)), root: root.expose().to_string(), rt }
    }

    pub fn engine(&self) -> &std::sync::Arc<Engine> {
        self.engine.as_ref().expect("engine open")
    }

    /// Closes the engine (draining its log) and opens the directory again, as a
    /// restart would.
    pub fn reopen(&mut self) {
        self.close();
        self.open();
    }

    /// Closes the engine and releases the directory (another process may open it).
    pub fn close(&mut self) {
        let engine = std::sync::Arc::into_inner(self.engine.take().expect("engine open")).expect("engine shared");
        engine.close();
    }

    /// Opens the directory again after [`Lessor::close`].
    pub fn open(&mut self) {
        let options = EngineOptions { snapshot_every_events: 0, ..EngineOptions::default() };
        self.engine = Some(std::sync::Arc::new(Engine::open(self.dir.path(), options).expect("open")));
    }

    pub fn request_as(&self, token: &str, op: Operation, path: &str, data: Value) -> Result<Response, RequestError> {
        self.rt.block_on(self.engine().request(token, op, path, data))
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
