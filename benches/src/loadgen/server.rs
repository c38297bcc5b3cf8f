//! The server under test (given, or a throwaway cluster), its connections, and the
//! cleanup of the roles a run created.

use lessor_engine::plugin::DatabasePlugin;
use lessor_engine::plugin::postgres::{PostgresPlugin, PostgresSettings};
use lessor_engine::text::template::render_connection_url;

use super::args::LoadgenArgs;
use super::statements::{READERS_ROLE, ROLE_PREFIX, StatementSet};

/// Where the server is, and how to reach it as the admin.
pub(crate) struct Server {
    /// `postgresql://{{username}}:{{password}}@host:port/db` for the systems'
    /// connections: the server's own address, or the latency proxy's once the run
    /// is [routed through one](Server::route_through).
    pub(crate) url_template: String,
    /// The same with the server's own address: the admin's work (setup, cleanup).
    pub(crate) direct_url_template: String,
    pub(crate) admin_user: String,
    pub(crate) admin_password: String,
    pub(crate) config: tokio_postgres::Config,
    /// Keeps a throwaway cluster alive for the run.
    _cluster: Option<lessor_pgtemp::Cluster>,
    pub(crate) description: String,
}

impl Server {
    /// `url_template` with the admin's credentials, rendered as the engine renders
    /// a connection's: the URL lessor's plugin connects with.
    pub(crate) fn admin_connection_url(&self) -> Result<String, String> {
        render_connection_url(&self.url_template, &self.admin_user, &self.admin_password)
            .map_err(|e| format!("the server's connection URL: {e}"))
    }

    /// `host:port` of the server, as its URL names it.
    pub(crate) fn host_port(&self) -> Result<&str, String> {
        self.direct_url_template
            .split_once('@')
            .and_then(|(_, rest)| rest.split(['/', '?']).next())
            .filter(|hp| !hp.is_empty())
            .ok_or_else(|| "the server's connection URL names no host".to_string())
    }

    /// The server's address, resolved.
    pub(crate) fn socket_addr(&self) -> Result<std::net::SocketAddr, String> {
        use std::net::ToSocketAddrs;
        let host_port = self.host_port()?;
        host_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve the PostgreSQL server {host_port}: {e}"))?
            .next()
            .ok_or_else(|| format!("the PostgreSQL server {host_port} resolves to no address"))
    }

    /// Points the systems' connections (`url_template`) at `proxy` instead.
    pub(crate) fn route_through(&mut self, proxy: std::net::SocketAddr) -> Result<(), String> {
        let host_port = self.host_port()?.to_string();
        let from = format!("@{host_port}");
        if self.direct_url_template.matches(&from).count() != 1 {
            return Err(format!("cannot route the connection URL through the proxy: no single {from} in it"));
        }
        self.url_template = self.direct_url_template.replacen(&from, &format!("@{proxy}"), 1);
        Ok(())
    }
}

pub(crate) fn start_server(args: &LoadgenArgs) -> Result<Server, String> {
    match &args.database_url {
        Some(url) => {
            let config: tokio_postgres::Config =
                url.parse().map_err(|e| format!("--database-url is not a PostgreSQL URL: {e}"))?;
            let user = config.get_user().ok_or("--database-url names no user")?.to_string();
            let password = config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .ok_or("--database-url has no password (lessor's connection needs one)")?;
            let (host, port) = match (config.get_hosts().first(), config.get_ports().first()) {
                (Some(tokio_postgres::config::Host::Tcp(h)), port) => (h.clone(), port.copied().unwrap_or(5432)),
                _ => return Err("--database-url must use a TCP host".into()),
            };
            let db = config.get_dbname().unwrap_or(&user).to_string();
            let url_template =
                format!("postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/{db}?sslmode=disable");
            Ok(Server {
                direct_url_template: url_template.clone(),
                url_template,
                admin_user: user,
                admin_password: password,
                config,
                _cluster: None,
                description: format!("server {host}:{port}/{db}"),
            })
        }
        None => {
            let cluster = lessor_pgtemp::private_cluster();
            // A real server keeps its data safe: the harness turns durability off
            // for test speed, so it goes back on (the server's defaults) here.
            // ALTER SYSTEM refuses to run in a (multi-statement) transaction.
            for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
                cluster.superuser_execute(&format!("ALTER SYSTEM SET {setting} = on"));
            }
            cluster.superuser_execute("SELECT pg_reload_conf()");
            let db = cluster.database("lessor_bench");
            let description =
                format!("throwaway PostgreSQL {} in {} (fsync on)", cluster.version(), cluster.root_dir().display());
            Ok(Server {
                url_template: db.url_template(),
                direct_url_template: db.url_template(),
                admin_user: db.admin_username().to_string(),
                admin_password: db.admin_password().to_string(),
                config: db.admin_config(),
                _cluster: Some(cluster),
                description,
            })
        }
    }
}

pub(crate) async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, String> {
    let (client, connection) =
        config.connect(tokio_postgres::NoTls).await.map_err(|e| format!("connecting to PostgreSQL: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// What every statement set needs in the database before a run: the group
/// role the membership set joins (created when missing), each set's setup SQL
/// (the tables), and SELECT on them for the group.
pub(crate) async fn prepare(admin: &tokio_postgres::Client, sets: &[StatementSet]) -> Result<(), String> {
    let exists = admin
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&READERS_ROLE])
        .await
        .map_err(|e| format!("looking for role {READERS_ROLE}: {e}"))?;
    if exists.is_none() {
        admin
            .batch_execute(&format!("CREATE ROLE {READERS_ROLE} NOLOGIN"))
            .await
            .map_err(|e| format!("CREATE ROLE {READERS_ROLE}: {e}"))?;
    }
    for set in sets {
        for sql in &set.setup {
            admin.batch_execute(sql).await.map_err(|e| format!("setup of {}: {sql}: {e}", set.name))?;
        }
    }
    admin
        .batch_execute(&format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READERS_ROLE}"))
        .await
        .map_err(|e| format!("granting {READERS_ROLE}: {e}"))
}

/// Drops every role of this run; returns those still there afterwards.
pub(crate) async fn cleanup(server: &Server, run_id: &str) -> Result<Vec<String>, String> {
    let admin = connect(&server.config).await?;
    // lessor's default revocation, through its plugin: whatever the role was
    // granted goes with it. A failure shows as a role still listed below.
    let direct = render_connection_url(&server.direct_url_template, &server.admin_user, &server.admin_password)
        .map_err(|e| format!("the server's connection URL: {e}"))?;
    let settings = PostgresSettings { connection_url: direct, ..PostgresSettings::default() };
    let plugin = PostgresPlugin::new(&settings).map_err(|e| format!("cleanup: building the PostgreSQL plugin: {e}"))?;
    for role in run_roles(&admin, run_id).await? {
        let _ = plugin.revoke_user(&role, &[], false, lessor_engine::testing::open_gate()).await;
    }
    run_roles(&admin, run_id).await
}

/// Roles of this run that exist.
pub async fn run_roles(admin: &tokio_postgres::Client, run_id: &str) -> Result<Vec<String>, String> {
    let pattern = format!("{ROLE_PREFIX}{run_id}-%");
    admin
        .query("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1", &[&pattern])
        .await
        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
        .map_err(|e| format!("listing the run's roles: {e}"))
}
