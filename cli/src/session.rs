//! One open engine for the length of a command: the same start-up an embedder gets
//! from `lessor_engine_open` (recovery, then the expirer), on a runtime of its own.

use std::path::PathBuf;
use std::sync::Arc;

use lessor_engine::request::{Operation, RequestError, Response};
use lessor_engine::{Engine, EngineOptions};
use serde_json::Value;

use crate::term::errln;

/// Where the engine lives and how to unlock it, from the global flags.
#[derive(Clone, Debug)]
pub struct Location {
    pub data_dir: PathBuf,
    /// `LESSOR_MASTER_KEY_FILE`; `None` = `<data_dir>/master.key`.
    pub key_file: Option<PathBuf>,
}

impl Location {
    pub fn options(&self) -> EngineOptions {
        EngineOptions { key_file: self.key_file.clone(), ..EngineOptions::default() }
    }
}

/// An engine opened for a command. Dropping it (or [`Session::close`]) stops the
/// expirer and makes everything durable before the directory lock is released.
#[derive(Debug)]
pub struct Session {
    runtime: tokio::runtime::Runtime,
    engine: Option<Arc<Engine>>,
    expirer: Option<tokio::task::JoinHandle<()>>,
}

impl Session {
    /// Opens `location`, finishes what a crash interrupted and starts the expirer,
    /// so any command also revokes leases that expired while nothing ran.
    pub fn open(location: &Location) -> Result<Session, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lessor")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the runtime: {e}"))?;
        let engine = Engine::open(&location.data_dir, location.options())
            .map_err(|e| format!("cannot open {}: {e}", location.data_dir.display()))?;
        let engine = Arc::new(engine);
        let mut session = Session { runtime, engine: Some(engine.clone()), expirer: None };
        let recovered = session
            .runtime
            .block_on(engine.recover())
            .map_err(|e| format!("cannot finish interrupted operations: {e}"))?;
        if recovered.revoke_failed > 0 {
            errln!(
                "warning: {} interrupted revocation(s) failed and will be retried by the expirer",
                recovered.revoke_failed
            );
        }
        session.expirer = Some(session.runtime.spawn(engine.clone().run_expirer()));
        Ok(session)
    }

    pub fn engine(&self) -> &Arc<Engine> {
        self.engine.as_ref().expect("the engine lives until close")
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
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
        self.engine().with_state(|s| {
            s.leases.values().filter(|l| !matches!(l.status, lessor_engine::state::LeaseStatus::Active)).count()
        })
    }

    /// Runs the revocations a request only recorded (revoke-prefix, token and mount
    /// revocation queue them, as Vault does) so a one-shot command leaves none
    /// behind. Called only when the request added some (`pending_before`): leases
    /// already failing — a database outage — are left to the expirer's backoff
    /// rather than retried by every command. Failures stay recorded.
    pub fn finish_pending(&self, pending_before: usize) -> Result<(), String> {
        if self.pending_revocations() <= pending_before {
            return Ok(());
        }
        let recovered =
            self.block_on(self.engine().recover()).map_err(|e| format!("cannot finish revocations: {e}"))?;
        if recovered.revoke_failed > 0 {
            errln!(
                "warning: {} revocation(s) failed; they stay recorded and are retried (see `lessor lease list` and \
                 sys/leases?type=irrevocable)",
                recovered.revoke_failed
            );
        }
        Ok(())
    }

    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(expirer) = self.expirer.take() {
            expirer.abort();
            // Let the aborted task unwind so no revocation holds the engine.
            let _ = self.runtime.block_on(expirer);
        }
        if let Some(engine) = self.engine.take() {
            match Arc::try_unwrap(engine) {
                Ok(engine) => engine.close(),
                // A task still holds it: dropping our reference closes it when the
                // runtime (below) drops that task.
                Err(shared) => drop(shared),
            }
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shutdown();
    }
}
