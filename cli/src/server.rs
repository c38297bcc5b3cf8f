//! `lessor server`: Vault's HTTP API (crate `lessor-server`) in the foreground,
//! with Vault's flags: `-config=FILE` for a real deployment, `-dev` for a
//! throwaway one (temporary data directory, printed root token, plain HTTP on
//! 127.0.0.1:8200), and `-dev-database` for a throwaway PostgreSQL with the
//! database mount, a connection and the role `readonly` already written.
//!
//! SIGINT and SIGTERM drain requests in progress and close the engine; SIGHUP
//! reloads the TLS certificates.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use lessor_engine::Engine;
use lessor_engine::auth::tokens::TokenSecret;
use lessor_engine::request::Operation;
use lessor_server::{Config, ListenerOptions, Server, ServerOptions, Storage};
use serde_json::json;

use crate::Failure;
use crate::dev::{AdminUrl, CREATION, REVOCATION};
use crate::term::{errln, outln};

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// The configuration file (HCL, Vault's shape: listener "tcp", storage "file").
    #[arg(long, value_name = "FILE", conflicts_with = "dev")]
    pub config: Option<PathBuf>,
    /// A throwaway server: temporary data directory, root token printed, plain
    /// HTTP on 127.0.0.1:8200. Never for real secrets.
    #[arg(long)]
    pub dev: bool,
    /// The dev server's root token (default: a random one).
    #[arg(long = "dev-root-token-id", env = "VAULT_DEV_ROOT_TOKEN_ID", hide_env_values = true, requires = "dev")]
    pub dev_root_token_id: Option<String>,
    /// The dev server's address (port 0: a free port, printed).
    #[arg(long = "dev-listen-address", env = "VAULT_DEV_LISTEN_ADDRESS", requires = "dev")]
    pub dev_listen_address: Option<String>,
    /// With -dev: start a throwaway PostgreSQL and write the database mount, the
    /// connection `postgresql` and the role `readonly`.
    #[arg(long = "dev-database", requires = "dev")]
    pub dev_database: bool,
    /// Where the JSON access lines go: stderr, stdout, off, or a file (appended).
    #[arg(long = "access-log", default_value = "stderr", value_name = "WHERE")]
    pub access_log: String,
}

const DEV_CONNECTION: &str = "postgresql";
const DEV_ROLE: &str = "readonly";

fn access_sink(target: &str) -> Result<Option<Box<dyn Write + Send>>, Failure> {
    Ok(match target {
        "off" => None,
        "stderr" => Some(Box::new(std::io::stderr())),
        "stdout" => Some(Box::new(std::io::stdout())),
        path => {
            use std::os::unix::fs::OpenOptionsExt;
            // Private whatever the umask, and never through a symlink.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| Failure::Local(format!("-access-log {path}: cannot open it for appending: {e}")))?;
            Some(Box::new(file))
        }
    })
}

pub fn server(global: &crate::Global, args: ServerArgs) -> Result<ExitCode, Failure> {
    let access_log = access_sink(&args.access_log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(lessor_server::worker_threads())
        .thread_name("lessor-server")
        .enable_all()
        .build()
        .map_err(|e| Failure::Local(format!("cannot start the runtime: {e}")))?;
    if args.dev {
        crate::logging::init(None);
        return runtime.block_on(dev(args, access_log));
    }
    let Some(config_file) = &args.config else {
        return Err(Failure::Local(
            "give -config=FILE (listener \"tcp\" and storage \"file\" blocks, as Vault's) or -dev for a throwaway \
             server"
                .into(),
        ));
    };
    let config = Config::read(config_file).map_err(|e| Failure::Local(e.to_string()))?;
    crate::logging::init(config.log_level.as_deref());
    let listeners =
        config.listeners.iter().map(|l| ListenerOptions { address: l.address.clone(), tls: l.tls.clone() }).collect();
    let mut storage = Storage::directory(config.data_dir.clone(), global.master_key_file.clone());
    if let Some(pg) = &config.postgresql {
        let mut options = pg.options();
        options.api_addr = config.api_addr.clone().unwrap_or_default();
        storage.log_store = lessor_engine::LogStore::PostgreSql(options);
    }
    let mut options = ServerOptions::new(storage, listeners);
    options.access_log = access_log;
    options.metrics_unauthenticated = config.metrics_unauthenticated;
    config.limits.apply(&mut options.connection_limits, &mut options.request_limits);
    runtime.block_on(async {
        let server = Server::bind(options).await.map_err(|e| Failure::Local(e.to_string()))?;
        if server.engine().await.is_none() {
            outln!(
                "The data directory {} is not initialized: run `bao operator init` against this server (or stop it \
                 and run `lessor init -d DIR`).",
                config.data_dir.display()
            );
        }
        announce(&server, config.listeners.iter().map(|l| l.tls.is_some()));
        serve(server).await
    })
}

/// One line per listener, which scripts and tests read for the port.
fn announce(server: &Server, tls: impl Iterator<Item = bool>) {
    for (addr, tls) in server.local_addrs().into_iter().zip(tls) {
        outln!("lessor server listening on {}://{addr}", if tls { "https" } else { "http" });
    }
    let _ = std::io::stdout().flush();
}

/// Serves until SIGINT or SIGTERM; SIGHUP reloads the certificates.
async fn serve(server: Server) -> Result<ExitCode, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let signal_error = |e: std::io::Error| Failure::Local(format!("cannot listen for signals: {e}"));
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let reloader = server.tls_reloader();
    let reloads = tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            match reloader.reload() {
                Ok(()) => errln!("SIGHUP: reloaded the TLS certificates"),
                Err(e) => errln!("SIGHUP: kept the TLS certificates in use: {e}"),
            }
        }
    });
    let closed = server
        .run(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            errln!("shutting down: finishing requests in progress");
        })
        .await;
    reloads.abort();
    if closed.interrupted {
        errln!("revocations in progress were interrupted; the next start finishes them");
    }
    errln!("lessor server stopped");
    Ok(ExitCode::SUCCESS)
}

async fn dev(args: ServerArgs, access_log: Option<Box<dyn Write + Send>>) -> Result<ExitCode, Failure> {
    let data_dir = tempfile::Builder::new().prefix("lessor-server-dev-").tempdir()?;
    let address = args.dev_listen_address.clone().unwrap_or_else(|| "127.0.0.1:8200".into());
    // Without -dev-root-token-id, init makes a random one.
    let root = match &args.dev_root_token_id {
        Some(id) => Some(TokenSecret::chosen(id).map_err(|e| Failure::Local(format!("-dev-root-token-id: {e}")))?),
        None => None,
    };
    let storage = Storage::directory(data_dir.path().to_path_buf(), None);
    let mut options = ServerOptions::new(storage, vec![ListenerOptions { address, tls: None }]);
    options.access_log = access_log;
    options.dev_root_token = root;
    let server = Server::bind(options).await.map_err(|e| Failure::Local(e.to_string()))?;
    let root = server.init().await.map_err(|e| Failure::Local(format!("cannot initialize the dev directory: {e}")))?;
    let engine = server.engine().await.expect("initialized just now");
    // The throwaway PostgreSQL lives until the server stops.
    let database = if args.dev_database { Some(dev_database(&engine, root.expose()).await?) } else { None };
    let addr = server.local_addrs()[0];
    outln!("WARNING! dev mode is enabled: the data directory is temporary, the root token printed, and HTTP plain.");
    outln!("Never use it for real secrets.\n");
    outln!("You may need to set the following environment variables:\n");
    outln!("    $ export VAULT_ADDR='http://{addr}'");
    outln!("    $ export BAO_ADDR='http://{addr}'\n");
    outln!("Root Token: {}\n", root.expose());
    if let Some((_, db)) = &database {
        outln!("Database: a throwaway PostgreSQL ({}), connection {DEV_CONNECTION}, role {DEV_ROLE}:", db.dbname());
        outln!("    $ vault read database/creds/{DEV_ROLE}\n");
    }
    announce(&server, std::iter::once(false));
    let code = serve(server).await;
    drop(database);
    drop(data_dir);
    code
}

/// A throwaway cluster with the mount, connection and role written through the
/// engine as any client would.
async fn dev_database(
    engine: &Arc<Engine>,
    root: &str,
) -> Result<(lessor_pgtemp::Cluster, lessor_pgtemp::TestDb), Failure> {
    let failed = |step: &str, e: &dyn std::fmt::Display| Failure::Engine(format!("-dev-database: {step}: {e}"));
    let (cluster, db) = tokio::task::spawn_blocking(|| {
        let cluster = lessor_pgtemp::try_private_cluster()?;
        let db = cluster.database("lessor_dev");
        Ok::<_, String>((cluster, db))
    })
    .await
    .map_err(|e| failed("starting PostgreSQL", &e))?
    .map_err(|e| failed("starting PostgreSQL", &e))?;
    let admin = AdminUrl::parse(&db.admin_url()).map_err(Failure::Local)?;
    let steps = [
        ("enabling the mount", "sys/mounts/database", json!({"type": "database"})),
        (
            "writing the connection",
            "database/config/postgresql",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "allowed_roles": DEV_ROLE,
                "connection_url": admin.template,
                "username": admin.username,
                "password": admin.password,
            }),
        ),
        (
            "writing the role",
            "database/roles/readonly",
            json!({
                "db_name": DEV_CONNECTION,
                "creation_statements": CREATION,
                "revocation_statements": REVOCATION,
                "default_ttl": "1h",
                "max_ttl": "24h",
            }),
        ),
    ];
    for (step, path, data) in steps {
        engine.request(root, Operation::Update, path, data).await.map_err(|e| failed(step, &e))?;
    }
    Ok((cluster, db))
}
