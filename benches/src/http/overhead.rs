//! The HTTP layer's cost: the same requests, by the same number of callers, once
//! in-process ([`Engine::request`] on a tokio runtime, as `lessor server` runs
//! it) and once through `lessor server`; the CPU each spends per request
//! compared. In-process CPU is this process's (getrusage, taken while nothing
//! else of the bench runs); the server's is its process's (/proc/<pid>/stat), so
//! the HTTP clients' own work is not in it. The difference is what the server
//! adds around the engine: accepting and parsing HTTP, decoding the request,
//! encoding Vault's envelope, the access line, metrics, limits.
//!
//! Two paths: `auth/token/lookup-self`, which runs no SQL (token, ACL, and the
//! durable audit record every request leaves), so little but the HTTP layer
//! differs; and `database/creds/<role>`, the issue itself, where the PostgreSQL
//! client's work is on both sides and the difference is noisier.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lessor_engine::event::Operation;
use lessor_engine::{EXPIRER_GRACE_DEFAULT, Engine, EngineOptions, Expirer};
use serde_json::Value;

use super::drive::{Expect, Stop, run_clients, token_request};
use super::servers::ServerProcess;

/// One round of the overhead measurement: one path, one way, one concurrency.
#[derive(Clone, Debug)]
pub struct OverheadMeasurement {
    pub path: String,
    /// `in-process` or `http`.
    pub way: &'static str,
    pub clients: usize,
    pub round: usize,
    pub requests: usize,
    pub failed: usize,
    pub seconds: f64,
    /// CPU per request, µs: this process's (in-process) or the server's (http).
    pub cpu_us: f64,
    pub first_error: Option<String>,
}

impl OverheadMeasurement {
    pub fn per_s(&self) -> f64 {
        if self.seconds > 0.0 { self.requests as f64 / self.seconds } else { 0.0 }
    }
}

/// An engine in this process, configured as the server is.
pub(crate) struct InProcess {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) engine: Arc<Engine>,
    expirer: Option<Expirer>,
    pub(crate) root: String,
    pub(crate) token: String,
}

impl InProcess {
    /// `Engine::init` in `dir`, the expirer on a runtime of as many workers as
    /// `lessor server` gives its own, then `writes` and a token as root.
    pub(crate) fn start(dir: &Path, writes: &[(String, Value)]) -> Result<InProcess, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(lessor_server::worker_threads())
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
        let (engine, root) = Engine::init(dir, EngineOptions::default())
            .map_err(|e| format!("in-process: lessor init in {}: {e}", dir.display()))?;
        let engine = Arc::new(engine);
        let expirer = Expirer::spawn(engine.clone(), rt.handle(), None);
        let root = root.expose().to_string();
        let token = rt.block_on(async {
            for (path, data) in writes {
                engine
                    .request(&root, Operation::Update, path, data.clone())
                    .await
                    .map_err(|e| format!("in-process: write {path}: {e}"))?;
            }
            let created = engine
                .request(&root, Operation::Update, "auth/token/create", token_request())
                .await
                .map_err(|e| format!("in-process: auth/token/create: {e}"))?;
            created.auth.map(|a| a.client_token).ok_or_else(|| "in-process: no token".to_string())
        })?;
        Ok(InProcess { rt, engine, expirer: Some(expirer), root, token })
    }

    /// `count` reads of `path` by `callers` tasks; the lease ids of what they
    /// issued, and the measurement.
    pub(crate) fn run(
        &self,
        path: &str,
        callers: usize,
        count: usize,
    ) -> (Vec<String>, Duration, Duration, usize, Option<String>) {
        self.rt.block_on(async {
            let next = Arc::new(AtomicUsize::new(0));
            let cpu_before = crate::process_cpu();
            let start = Instant::now();
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let (engine, token, next, path) =
                        (self.engine.clone(), self.token.clone(), next.clone(), path.to_string());
                    tokio::spawn(async move {
                        let (mut leases, mut failed, mut first) = (Vec::new(), 0, None);
                        while next.fetch_add(1, Ordering::Relaxed) < count {
                            match engine.request(&token, Operation::Read, &path, Value::Null).await {
                                Ok(r) if !r.lease_id.is_empty() => leases.push(r.lease_id),
                                Ok(_) => {}
                                Err(e) => {
                                    failed += 1;
                                    first.get_or_insert(e.to_string());
                                }
                            }
                        }
                        (leases, failed, first)
                    })
                })
                .collect();
            let (mut leases, mut failed, mut first) = (Vec::new(), 0, None);
            for task in tasks {
                let (l, f, e) = task.await.expect("an in-process caller panicked");
                leases.extend(l);
                failed += f;
                if first.is_none() {
                    first = e;
                }
            }
            let elapsed = start.elapsed();
            (leases, elapsed, crate::process_cpu().saturating_sub(cpu_before), failed, first)
        })
    }

    /// Revokes `leases` as root (not measured).
    pub(crate) fn revoke(&self, leases: Vec<String>) -> usize {
        self.rt.block_on(async {
            let mut failed = 0;
            for lease in leases {
                if self.engine.revoke(&self.root, &lease).await.is_err() {
                    failed += 1;
                }
            }
            failed
        })
    }

    pub(crate) fn close(mut self) -> Result<(), String> {
        if let Some(expirer) = self.expirer.take() {
            self.rt.block_on(expirer.stop(EXPIRER_GRACE_DEFAULT));
        }
        match Arc::into_inner(self.engine) {
            Some(engine) => {
                engine.close();
                Ok(())
            }
            None => Err("in-process: the engine is still in use".into()),
        }
    }
}

/// Rounds of `path` in-process and over HTTP, alternated (ABBA), per concurrency.
#[allow(clippy::too_many_arguments)]
pub(crate) fn measure(
    inproc: &InProcess,
    server: &ServerProcess,
    http_token: &str,
    path: &str,
    expect: Expect,
    clients: &[usize],
    rounds: usize,
    requests: usize,
    out: &mut Vec<OverheadMeasurement>,
) -> Result<(), String> {
    let revoke_http = |leases: Vec<String>, c: usize| super::drive::revoke_all(server, leases, c);
    for &c in clients {
        // Warm-up of both ways, not measured.
        let (leases, ..) = inproc.run(path, c, 4 * c);
        inproc.revoke(leases);
        let warm = run_clients(server, http_token, path, expect, c, Stop::Count(4 * c))?;
        revoke_http(warm.issued.into_iter().map(|(l, _)| l).collect(), c)?;
        for round in 0..rounds {
            let order = if round % 2 == 0 { ["in-process", "http"] } else { ["http", "in-process"] };
            for way in order {
                let m = if way == "in-process" {
                    let (leases, elapsed, cpu, failed, first_error) = inproc.run(path, c, requests);
                    inproc.revoke(leases);
                    OverheadMeasurement {
                        path: path.to_string(),
                        way: "in-process",
                        clients: c,
                        round,
                        requests: requests - failed,
                        failed,
                        seconds: elapsed.as_secs_f64(),
                        cpu_us: cpu.as_secs_f64() * 1e6 / requests as f64,
                        first_error,
                    }
                } else {
                    let r = run_clients(server, http_token, path, expect, c, Stop::Count(requests))?;
                    revoke_http(r.issued.into_iter().map(|(l, _)| l).collect(), c)?;
                    OverheadMeasurement {
                        path: path.to_string(),
                        way: "http",
                        clients: c,
                        round,
                        requests: r.latencies.len(),
                        failed: r.failed,
                        seconds: r.elapsed.as_secs_f64(),
                        cpu_us: r.server_cpu.as_secs_f64() * 1e6 / requests as f64,
                        first_error: r.first_error,
                    }
                };
                out.push(m);
            }
        }
    }
    Ok(())
}
