//! The systems reached over Vault's HTTP API: OpenBao's `bao server` (started
//! here with raft storage, as `lessor-bench http` starts it), any running Vault or
//! OpenBao (`--vault-addr`), and `lessor server -config` (started here).
//!
//! Each gets the same API writes — a database mount, a connection to the
//! benchmark's PostgreSQL (through the latency proxy with `--rtt-ms`) with a pool
//! of the most workers, one role per statement set, a policy that may read their
//! creds and revoke leases, and an application token with it — and is driven with
//! that token: `GET /v1/<mount>/creds/<role>` to issue, `PUT
//! /v1/sys/leases/revoke` with the `lease_id` (sync) to revoke. Each worker uses a
//! keep-alive HTTP/1.1 connection of its own ([`Conn`], blocking, run on tokio's
//! blocking pool so a waiting worker does not hold a runtime thread); connections
//! are kept between requests and opened as more workers need them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::args::LoadgenArgs;
use super::phase::Target;
use super::report::System;
use super::server::Server;
use super::statements::{ROLE_PREFIX, StatementSet};
use crate::http::client::Conn;
use crate::http::servers::{ServerProcess, call_json, process_cpu_of, start_bao, start_lessor};

/// The Vault API writes that configure a server for a run: the mount, the
/// connection (usernames `v-<run>-<tag>-…`, so the run's cleanup finds them), one
/// role per set, and a policy `policy` that may read their creds and revoke.
#[allow(clippy::too_many_arguments)]
pub(crate) fn vault_writes(
    url_template: &str,
    server: &Server,
    mount: &str,
    policy: &str,
    run_id: &str,
    tag: &str,
    sets: &[StatementSet],
    workers: usize,
    password_authentication: &str,
) -> Vec<(String, Value)> {
    let mut writes = vec![
        (format!("sys/mounts/{mount}"), json!({ "type": "database" })),
        (
            format!("{mount}/config/bench"),
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": url_template,
                "username": server.admin_user,
                "password": server.admin_password,
                "allowed_roles": "*",
                "max_open_connections": workers,
                "max_idle_connections": workers,
                "password_authentication": password_authentication,
                "username_template": format!("{ROLE_PREFIX}{run_id}-{tag}-{{{{random 16}}}}"),
            }),
        ),
    ];
    let mut rules = String::from("path \"sys/leases/revoke\" { capabilities = [\"update\"] }\n");
    for set in sets {
        writes.push((format!("{mount}/roles/{}", set.name), set.role_body()));
        rules.push_str(&format!("path \"{mount}/creds/{}\" {{ capabilities = [\"read\"] }}\n", set.name));
    }
    writes.push((format!("sys/policies/acl/{policy}"), json!({ "policy": rules })));
    writes
}

/// A server under test, configured, with its application token.
pub(crate) struct ApiServer {
    pub(crate) system: System,
    addr: SocketAddr,
    /// Root (started here) or the given `--vault-token`.
    admin_token: String,
    app_token: String,
    mount: String,
    policy: String,
    /// For the record: what it is, its version, where its data is.
    pub(crate) description: String,
    /// The server process, when this run started it (its CPU is measured).
    process: Option<ServerProcess>,
    /// Idle keep-alive connections.
    idle: Mutex<Vec<Conn>>,
}

impl ApiServer {
    /// `bao server` with raft storage in `dir`, initialized and unsealed.
    pub(crate) fn start_openbao(bin: &Path, dir: &Path) -> Result<ApiServer, String> {
        let process = start_bao(bin, dir).map_err(|e| format!("openbao: {e}"))?;
        let description =
            format!("{} (bao server, raft storage in {}, no audit device)", process.version, dir.display());
        Ok(ApiServer::started(System::OpenBao, process, description))
    }

    /// `lessor server -config` with its data (and access log) in `dir`.
    pub(crate) fn start_lessor(bin: &Path, dir: &Path) -> Result<ApiServer, String> {
        let process = start_lessor(bin, dir, true).map_err(|e| format!("lessor-http: {e}"))?;
        let description = format!("{} (lessor server, data and access log in {})", process.version, dir.display());
        Ok(ApiServer::started(System::LessorHttp, process, description))
    }

    fn started(system: System, process: ServerProcess, description: String) -> ApiServer {
        ApiServer {
            system,
            addr: process.addr,
            admin_token: process.root_token.clone(),
            app_token: String::new(),
            mount: "database".into(),
            policy: "lessor-bench".into(),
            description,
            process: Some(process),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A running Vault or OpenBao at `url` (`http://host:port`), used with `token`.
    pub(crate) fn external(url: &str, token: &str, run_id: &str) -> Result<ApiServer, String> {
        let hostport = url.strip_prefix("http://").unwrap_or(url).trim_end_matches('/');
        let hostport = hostport.split('/').next().unwrap_or(hostport);
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("--vault-addr {url}: cannot resolve {hostport}: {e}"))?
            .next()
            .ok_or_else(|| format!("--vault-addr {url}: {hostport} resolves to no address"))?;
        let mut conn = Conn::connect(addr).map_err(|e| format!("--vault-addr {url}: cannot connect to {addr}: {e}"))?;
        let health =
            conn.call("GET", "/v1/sys/seal-status", None, None).map_err(|e| format!("--vault-addr {url}: {e}"))?;
        let status = health.json().map_err(|e| format!("--vault-addr {url}: sys/seal-status: {e}"))?;
        if status["sealed"] != json!(false) {
            return Err(format!("--vault-addr {url}: the server is sealed or not initialized: {status}"));
        }
        let description = format!(
            "the Vault API at {url} (version {}, storage {}, already running)",
            status["version"].as_str().unwrap_or("?"),
            status["storage_type"].as_str().unwrap_or("?")
        );
        Ok(ApiServer {
            system: System::OpenBao,
            addr,
            admin_token: token.to_string(),
            app_token: String::new(),
            mount: format!("lessor-bench-{run_id}"),
            policy: format!("lessor-bench-{run_id}"),
            description,
            process: None,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Writes the run's mount, connection, roles and policy, and creates the
    /// application token.
    pub(crate) fn configure(
        &mut self,
        server: &Server,
        run_id: &str,
        sets: &[StatementSet],
        workers: usize,
        args: &LoadgenArgs,
    ) -> Result<(), String> {
        let tag = if self.system == System::OpenBao { "o" } else { "h" };
        let mut writes = vault_writes(
            &server.url_template,
            server,
            &self.mount,
            &self.policy,
            run_id,
            tag,
            sets,
            workers,
            &args.password_authentication,
        );
        if self.system == System::LessorHttp && args.password_authentication == "scram-sha-256" {
            // lessor's own setting (Vault has none): the same verifier cost as the other lessor.
            writes[1].1["scram_iterations"] = json!(args.scram_iterations);
        }
        let name = self.system.name();
        let mut conn = self.connect()?;
        let admin = Some(self.admin_token.as_str());
        for (path, data) in &writes {
            call_json(&mut conn, "POST", path, admin, data).map_err(|e| format!("{name}: {e}"))?;
        }
        let token = call_json(
            &mut conn,
            "POST",
            "auth/token/create",
            admin,
            &json!({ "policies": [self.policy], "ttl": "24h" }),
        )
        .map_err(|e| format!("{name}: {e}"))?;
        self.app_token = token["auth"]["client_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{name}: auth/token/create returned no client_token: {token}"))?;
        Ok(())
    }

    fn connect(&self) -> Result<Conn, String> {
        Conn::connect(self.addr).map_err(|e| format!("{}: cannot connect to {}: {e}", self.system.name(), self.addr))
    }

    /// CPU of the server process so far, when this run started it.
    pub(crate) fn cpu(&self) -> Option<Duration> {
        self.process.as_ref().and_then(|p| process_cpu_of(p.pid()).ok())
    }

    /// One request with the application token on an idle connection (or a new
    /// one), on the blocking pool.
    async fn call(
        self: &Arc<Self>,
        method: &'static str,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<Value, String> {
        let server = self.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = server.idle.lock().expect("connection pool lock").pop();
            let mut conn = match pooled {
                Some(conn) => conn,
                None => server.connect()?,
            };
            let reply = conn
                .call(method, &path, Some(&server.app_token), body.as_deref())
                .map_err(|e| format!("{method} {path}: {e}"))?;
            // A connection that answered may serve the next request.
            server.idle.lock().expect("connection pool lock").push(conn);
            if !matches!(reply.status, 200 | 204) {
                return Err(format!("{method} {path}: status {}: {}", reply.status, reply.text()));
            }
            reply.json()
        })
        .await
        .map_err(|e| format!("an HTTP worker failed: {e}"))?
    }

    /// Undoes what the run wrote to a server it did not start (its leases go
    /// with the mount); stops a server it started.
    pub(crate) fn finish(self) -> Result<(), String> {
        if let Some(process) = self.process {
            process.stop(Duration::from_secs(30));
            return Ok(());
        }
        let mut conn = self.connect()?;
        let admin = Some(self.admin_token.as_str());
        let mut errors = Vec::new();
        if !self.app_token.is_empty() {
            let body = json!({ "token": self.app_token });
            if let Err(e) = call_json(&mut conn, "POST", "auth/token/revoke", admin, &body) {
                errors.push(e);
            }
        }
        for path in [format!("sys/mounts/{}", self.mount), format!("sys/policies/acl/{}", self.policy)] {
            let reply =
                conn.call("DELETE", &format!("/v1/{path}"), admin, None).map_err(|e| format!("DELETE {path}: {e}"));
            match reply {
                Ok(r) if matches!(r.status, 200 | 204) => {}
                Ok(r) => errors.push(format!("DELETE {path}: status {}: {}", r.status, r.text())),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("cleaning up on {}: {}", self.description, errors.join("; ")))
        }
    }
}

/// One statement set's role on an [`ApiServer`].
pub(crate) struct ApiTarget {
    pub(crate) server: Arc<ApiServer>,
    /// `/v1/<mount>/creds/<role>`.
    pub(crate) creds: String,
}

impl ApiTarget {
    pub(crate) fn new(server: Arc<ApiServer>, set: &StatementSet) -> ApiTarget {
        let creds = format!("/v1/{}/creds/{}", server.mount, set.name);
        ApiTarget { server, creds }
    }
}

impl Target for ApiTarget {
    async fn issue(&self) -> Result<String, String> {
        let body = self.server.call("GET", self.creds.clone(), None).await?;
        match body["lease_id"].as_str() {
            Some(lease) if !lease.is_empty() && body["data"]["username"].is_string() => Ok(lease.to_string()),
            _ => Err(format!("a credential without lease_id or username: {body}")),
        }
    }

    async fn revoke(&self, lease_id: String) -> Result<(), String> {
        let body = serde_json::to_vec(&json!({ "lease_id": lease_id, "sync": true })).expect("JSON encodes");
        self.server.call("PUT", "/v1/sys/leases/revoke".into(), Some(body)).await.map(drop)
    }
}
