//! Arbitrary requests through the whole pipeline: `op \n path \n JSON data`, sent
//! with the root token (so every handler is reachable) to an engine whose
//! database plugin is the in-memory fault-injecting test double. No input may
//! panic; every error is bounded and never echoes the token; the engine keeps
//! answering and its state keeps folding.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use lessor_engine::request::Operation;
use lessor_engine::testing::FaultInjectingPlugin;
use lessor_engine::{Engine, EngineOptions};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The engine's log grows with every request: start over past this many.
const REQUESTS_PER_ENGINE_MAX: u32 = 50_000;

struct Harness {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    engine: Arc<Engine>,
    root: String,
    requests: u32,
}

impl Harness {
    fn new() -> Harness {
        // tmpfs when there is one: the log fsyncs every request.
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = tempfile::Builder::new().prefix("lessor-fuzz-").tempdir_in(base).unwrap();
        let options = EngineOptions {
            plugin_factory: Some(FaultInjectingPlugin::default().factory()),
            ..EngineOptions::default()
        };
        let (engine, root) = Engine::init(dir.path(), options).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Harness { _dir: dir, runtime, engine: Arc::new(engine), root: root.expose().to_string(), requests: 0 }
    }
}

static HARNESS: OnceLock<Mutex<Option<Harness>>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\n');
    let op = match parts.next().unwrap_or("").trim() {
        "create" => Operation::Create,
        "read" => Operation::Read,
        "delete" => Operation::Delete,
        "list" => Operation::List,
        _ => Operation::Update,
    };
    let path = parts.next().unwrap_or("");
    let body = parts.next().unwrap_or("");
    let data = match serde_json::from_str::<Value>(body) {
        Ok(v) => v,
        Err(_) if body.is_empty() => Value::Null,
        Err(_) => Value::String(body.to_string()),
    };

    let mut guard = HARNESS.get_or_init(|| Mutex::new(None)).lock().unwrap();
    if guard.as_ref().is_none_or(|h| h.requests >= REQUESTS_PER_ENGINE_MAX) {
        *guard = Some(Harness::new());
    }
    let h = guard.as_mut().unwrap();
    h.requests += 1;
    match h.runtime.block_on(h.engine.request(&h.root, op, path, data)) {
        Ok(response) => {
            let json = response.to_json();
            assert!(json.is_object());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.len() <= 4_096, "error of {} bytes: {message}", message.len());
            // Unless the input itself holds the token (the fuzzer learns it from
            // the comparisons it traces, and a path is echoed back as given).
            assert!(text.contains(&h.root) || !message.contains(&h.root), "an error echoes the token: {message}");
        }
    }
    // The state still folds and hashes.
    let _ = h.engine.digest();
});
