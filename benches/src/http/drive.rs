//! Driving a server: configuring it through its API (the same requests for both
//! sides), then clients on threads, each on its own keep-alive connection,
//! issuing in a loop; revoking what a round issued.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::client::Conn;
use super::servers::{ServerProcess, call_json};
use crate::loadgen::api::vault_writes;
use crate::loadgen::server::Server;
use crate::loadgen::statements::StatementSet;

/// When a round ends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stop {
    Count(usize),
    After(Duration),
}

/// The configuration both sides get, as Vault API writes: the mount, the
/// connection (pool of `workers`, usernames `v-<run>-<tag>-…` so cleanup finds
/// them), the role, a policy that may read its creds (and revoke leases), and
/// (separately) an application token with that policy. The load generator's
/// systems over HTTP get the same ([`vault_writes`]).
pub(crate) fn config_writes(
    server: &Server,
    run_id: &str,
    tag: &str,
    set: &StatementSet,
    workers: usize,
    password_authentication: &str,
) -> Vec<(String, Value)> {
    let sets = std::slice::from_ref(set);
    vault_writes(&server.url_template, server, "database", "bench", run_id, tag, sets, workers, password_authentication)
}

/// The token-create request both sides get.
pub(crate) fn token_request() -> Value {
    json!({ "policies": ["bench"], "ttl": "24h" })
}

/// Writes `writes` through the server's API as root; returns an application token.
pub(crate) fn configure(server: &ServerProcess, writes: &[(String, Value)]) -> Result<String, String> {
    let mut conn = server.connect()?;
    let root = Some(server.root_token.as_str());
    let side = server.side.name();
    for (path, data) in writes {
        call_json(&mut conn, "POST", path, root, data).map_err(|e| format!("{side}: {e}"))?;
    }
    let token = call_json(&mut conn, "POST", "auth/token/create", root, &token_request())
        .map_err(|e| format!("{side}: {e}"))?;
    token["auth"]["client_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{side}: auth/token/create returned no client_token: {token}"))
}

/// What the clients of one round did.
#[derive(Debug, Default)]
pub(crate) struct ClientsResult {
    pub(crate) latencies: Vec<Duration>,
    /// (lease id, username) of each issue; empty for other requests.
    pub(crate) issued: Vec<(String, String)>,
    pub(crate) failed: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) elapsed: Duration,
    pub(crate) reconnects: usize,
    /// The server process's CPU during the round.
    pub(crate) server_cpu: Duration,
}

/// What a request's reply must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// A credential: `lease_id` and `data.username`.
    Credential,
    /// Any 200.
    Ok,
}

/// `clients` threads, each with its own connection (opened before the clock
/// starts), sending `GET path` as `token` until `stop`.
pub(crate) fn run_clients(
    server: &ServerProcess,
    token: &str,
    path: &str,
    expect: Expect,
    clients: usize,
    stop: Stop,
) -> Result<ClientsResult, String> {
    let conns = (0..clients).map(|_| server.connect()).collect::<Result<Vec<_>, _>>()?;
    let barrier = Arc::new(Barrier::new(clients + 1));
    let next = Arc::new(AtomicUsize::new(0));
    let path = format!("/v1/{path}");
    let threads: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let (barrier, next, path, token) = (barrier.clone(), next.clone(), path.clone(), token.to_string());
            std::thread::spawn(move || client_loop(conn, &barrier, &next, &path, &token, expect, stop))
        })
        .collect();
    let cpu_before = server.cpu()?;
    let start = Instant::now();
    barrier.wait();
    let mut result = ClientsResult::default();
    for thread in threads {
        let part = thread.join().map_err(|_| "a client thread panicked".to_string())?;
        result.latencies.extend(part.latencies);
        result.issued.extend(part.issued);
        result.failed += part.failed;
        result.reconnects += part.reconnects;
        if result.first_error.is_none() {
            result.first_error = part.first_error;
        }
    }
    result.elapsed = start.elapsed();
    result.server_cpu = server.cpu()?.saturating_sub(cpu_before);
    Ok(result)
}

fn client_loop(
    mut conn: Conn,
    barrier: &Barrier,
    next: &AtomicUsize,
    path: &str,
    token: &str,
    expect: Expect,
    stop: Stop,
) -> ClientsResult {
    let mut out = ClientsResult::default();
    barrier.wait();
    let deadline = match stop {
        Stop::After(d) => Some(Instant::now() + d),
        Stop::Count(_) => None,
    };
    loop {
        match (stop, deadline) {
            (Stop::Count(n), _) if next.fetch_add(1, Ordering::Relaxed) >= n => break,
            (_, Some(deadline)) if Instant::now() >= deadline => break,
            _ => {}
        }
        let t0 = Instant::now();
        let outcome = conn.call("GET", path, Some(token), None).map_err(|e| e.to_string()).and_then(|reply| {
            let elapsed = t0.elapsed();
            if reply.status != 200 {
                return Err(format!("status {}: {}", reply.status, reply.text()));
            }
            let issued = match expect {
                Expect::Ok => None,
                Expect::Credential => {
                    let body = reply.json()?;
                    match (body["lease_id"].as_str(), body["data"]["username"].as_str()) {
                        (Some(lease), Some(user)) if !lease.is_empty() => Some((lease.to_string(), user.to_string())),
                        _ => return Err(format!("a credential without lease_id or username: {}", reply.text())),
                    }
                }
            };
            Ok((elapsed, issued))
        });
        match outcome {
            Ok((elapsed, issued)) => {
                out.latencies.push(elapsed);
                out.issued.extend(issued);
            }
            Err(e) => {
                out.failed += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    out.reconnects = conn.reconnects;
    out
}

/// Revokes `leases` through `sys/leases/revoke` (sync) as root, `clients` at a
/// time; returns the failures.
pub(crate) fn revoke_all(server: &ServerProcess, leases: Vec<String>, clients: usize) -> Result<usize, String> {
    let total = leases.len();
    let leases = Arc::new(leases);
    let next = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients.clamp(1, total.max(1)))
        .map(|_| {
            let mut conn = server.connect()?;
            let (leases, next, root) = (leases.clone(), next.clone(), server.root_token.clone());
            Ok(std::thread::spawn(move || {
                let mut failed = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(lease) = leases.get(i) else { break };
                    let body = json!({ "lease_id": lease, "sync": true });
                    if call_json(&mut conn, "PUT", "sys/leases/revoke", Some(&root), &body).is_err() {
                        failed += 1;
                    }
                }
                failed
            }))
        })
        .collect::<Result<_, String>>()?;
    Ok(threads.into_iter().map(|t| t.join().unwrap_or(total)).sum())
}
