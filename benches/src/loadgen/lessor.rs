//! The lessor side: the engine configured for the run (mount, connection, roles,
//! policy, token; optionally a plugin factory) and driven through its entry points.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lessor_engine::Engine;
use lessor_engine::plugin::postgres::{self, PasswordAuthentication};
use lessor_engine::plugin::{CommitGate, DatabasePlugin, NewUser, PluginError, PluginFuture};
use lessor_engine::request::Operation;
use lessor_engine::testing::open_gate;
use serde_json::{Value, json};

use super::args::LoadgenArgs;
use super::phase::Target;
use super::server::Server;
use super::statements::{ROLE_PREFIX, StatementSet};

/// lessor: the engine's typed entry points with an application token.
pub(crate) struct Lessor {
    pub(crate) engine: Arc<Engine>,
    pub(crate) token: String,
    pub(crate) creds_path: String,
}

impl Target for Lessor {
    async fn issue(&self) -> Result<String, String> {
        self.engine.issue(&self.token, &self.creds_path).await.map(|c| c.lease_id).map_err(|e| e.to_string())
    }

    async fn revoke(&self, lease_id: String) -> Result<(), String> {
        self.engine.revoke(&self.token, &lease_id).await.map_err(|e| e.to_string())
    }
}

/// Log events and fsyncs so far.
pub(crate) fn log_counts(engine: &Engine) -> (u64, u64) {
    let stats = engine.log_stats();
    (stats.events_written.load(Ordering::Relaxed), stats.batches_synced.load(Ordering::Relaxed))
}

/// Mount, connection, one role per set, a policy and an application token.
pub(crate) async fn configure(
    engine: &Engine,
    root: &str,
    server: &Server,
    run_id: &str,
    sets: &[StatementSet],
    workers: usize,
    args: &LoadgenArgs,
) -> Result<String, String> {
    let write = |path: String, data: Value| async move {
        engine.request(root, Operation::Update, &path, data).await.map_err(|e| format!("lessor: write {path}: {e}"))
    };
    write("sys/mounts/database".into(), json!({ "type": "database" })).await?;
    let mut connection = json!({
        "plugin_name": postgres::PLUGIN_NAME,
        "connection_url": server.url_template,
        "username": server.admin_user,
        "password": server.admin_password,
        "allowed_roles": "*",
        "max_open_connections": workers,
        "password_authentication": args.password_authentication,
        "username_template": format!("{ROLE_PREFIX}{run_id}-l-{{{{random 16}}}}"),
    });
    if args.password_authentication == "scram-sha-256" {
        connection["scram_iterations"] = json!(args.scram_iterations);
    }
    write("database/config/bench".into(), connection).await?;
    let mut policy = String::from("path \"sys/leases/revoke\" { capabilities = [\"update\"] }\n");
    for set in sets {
        write(format!("database/roles/{}", set.name), set.role_body()).await?;
        let _ = writeln!(policy, "path \"database/creds/{}\" {{ capabilities = [\"read\"] }}", set.name);
    }
    write("sys/policies/acl/bench".into(), json!({ "policy": policy })).await?;
    let token = write("auth/token/create".into(), json!({ "policies": ["bench"], "ttl": "24h" })).await?;
    token.auth.map(|a| a.client_token).ok_or_else(|| "lessor: auth/token/create returned no token".to_string())
}

/// The settings the engine builds lessor's plugin from for the connection
/// [`configure`] writes — its URL with the admin's credentials, a pool of
/// `workers`, the run's password handling — with `--grants`: the raw baseline's
/// plugin, and lessor's own when a factory builds it.
pub(crate) fn plugin_settings(
    server: &Server,
    workers: usize,
    mode: PasswordAuthentication,
    args: &LoadgenArgs,
) -> Result<postgres::PostgresSettings, String> {
    Ok(postgres::PostgresSettings {
        connection_url: server.admin_connection_url()?,
        max_open_connections: workers as u32,
        password_authentication: mode,
        scram_iterations: args.scram_iterations,
        serialize_shared_catalog_updates: args.grants == "serialize",
        ..postgres::PostgresSettings::default()
    })
}

/// lessor's plugin built as the engine would, but retrying colliding GRANTs
/// instead of serializing them (`--grants retry`), or waiting for the intent before
/// any SQL (`--intent-overlap off`).
pub(crate) fn plugin_factory(
    server: &Server,
    workers: usize,
    mode: PasswordAuthentication,
    args: &LoadgenArgs,
) -> Result<lessor_engine::plugin::PluginFactory, String> {
    let settings = plugin_settings(server, workers, mode, args)?;
    let overlap = args.intent_overlap == "on";
    Ok(lessor_engine::plugin::PluginFactory(Arc::new(move |_connection| {
        let plugin: Arc<dyn DatabasePlugin> = Arc::new(postgres::PostgresPlugin::new(&settings)?);
        Ok(if overlap { plugin } else { Arc::new(IntentFirst(plugin)) })
    })))
}

/// `--intent-overlap off`: the plugin waits for the intent to be durable before
/// it runs any creation SQL, as a write path without the overlap would.
#[derive(Debug)]
struct IntentFirst(Arc<dyn DatabasePlugin>);

impl DatabasePlugin for IntentFirst {
    fn verify(&self) -> PluginFuture<'_, ()> {
        self.0.verify()
    }

    fn create_user<'a>(&'a self, user: NewUser<'a>, gate: CommitGate<'a>) -> PluginFuture<'a, ()> {
        Box::pin(async move {
            gate.await.map_err(PluginError::Aborted)?;
            self.0.create_user(user, open_gate()).await
        })
    }

    fn renew_user<'a>(&'a self, username: &'a str, expiration: &'a str, s: &'a [String]) -> PluginFuture<'a, ()> {
        self.0.renew_user(username, expiration, s)
    }

    fn revoke_user<'a>(
        &'a self,
        username: &'a str,
        s: &'a [String],
        terminate: bool,
        gate: CommitGate<'a>,
    ) -> PluginFuture<'a, ()> {
        Box::pin(async move {
            gate.await.map_err(PluginError::Aborted)?;
            self.0.revoke_user(username, s, terminate, open_gate()).await
        })
    }

    fn rotate_root<'a>(&'a self, username: &'a str, password: &'a str, s: &'a [String]) -> PluginFuture<'a, ()> {
        self.0.rotate_root(username, password, s)
    }

    fn user_exists<'a>(&'a self, username: &'a str) -> PluginFuture<'a, bool> {
        self.0.user_exists(username)
    }
}
