//! A database for one test.

use std::path::{Path, PathBuf};

use tokio_postgres::{Client, Config};

use crate::SUPERUSER;
use crate::sql::{SQL_TIMEOUT, block_on, connect_spawned, execute, first_value, query, quote_ident, quote_literal};
use crate::util::{percent_encode, url_host};

/// Where the harness's privileged connection goes.
#[derive(Debug, Clone)]
pub(crate) enum Superuser {
    /// The bootstrap superuser over the private unix socket (trust).
    Socket { dir: PathBuf, port: u16 },
    /// An existing server's admin URL (`LESSOR_TEST_DATABASE_URL`).
    Url(Box<Config>),
}

impl Superuser {
    pub(crate) fn config(&self, dbname: &str) -> Config {
        let mut config = match self {
            Superuser::Socket { dir, port } => {
                let mut config = Config::new();
                config.host_path(dir).port(*port).user(SUPERUSER);
                config
            }
            Superuser::Url(config) => (**config).clone(),
        };
        config.dbname(dbname).connect_timeout(SQL_TIMEOUT).application_name("lessor-tests");
        config
    }
}

/// One test's database. Cheap to create; on a harness-started cluster it lives until
/// the cluster goes; on `LESSOR_TEST_DATABASE_URL` it is dropped with this value.
#[derive(Debug)]
pub struct TestDb {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) dbname: String,
    pub(crate) admin_user: String,
    pub(crate) admin_password: String,
    /// `?…` of `LESSOR_TEST_DATABASE_URL`, or empty.
    pub(crate) url_query: String,
    pub(crate) superuser: Superuser,
    pub(crate) ca_cert: Option<PathBuf>,
    pub(crate) drop_on_drop: bool,
}

impl TestDb {
    /// `127.0.0.1` (or the host of `LESSOR_TEST_DATABASE_URL`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port of the server.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database's name: unique per test, `t_<hint>_<random>_<n>`.
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// The admin role (non-superuser, `LOGIN CREATEROLE`, owner of this database).
    pub fn admin_username(&self) -> &str {
        &self.admin_user
    }

    /// The admin role's password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// `postgresql://lessor_admin:PASSWORD@127.0.0.1:PORT/DBNAME`.
    pub fn admin_url(&self) -> String {
        self.url_for(&self.admin_user, &self.admin_password)
    }

    /// Vault-style connection URL template:
    /// `postgresql://{{username}}:{{password}}@127.0.0.1:PORT/DBNAME` (no `sslmode`, so
    /// the client default applies; append `?sslmode=…` as a test needs).
    pub fn url_template(&self) -> String {
        format!(
            "postgresql://{{{{username}}}}:{{{{password}}}}@{}:{}/{}{}",
            url_host(&self.host),
            self.port,
            self.dbname,
            self.url_query
        )
    }

    /// A URL for this database logging in as `user` with `password` (percent-encoded).
    pub fn url_for(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{}:{}@{}:{}/{}{}",
            percent_encode(user),
            percent_encode(password),
            url_host(&self.host),
            self.port,
            self.dbname,
            self.url_query
        )
    }

    /// A tokio-postgres config for this database over TCP as `user`/`password`
    /// (no TLS settings; add `ssl_mode` as needed).
    pub fn login_config(&self, user: &str, password: &str) -> Config {
        let mut config = Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.dbname)
            .user(user)
            .password(password)
            .connect_timeout(SQL_TIMEOUT)
            .application_name("lessor-tests");
        config
    }

    /// [`Self::login_config`] for the admin role.
    pub fn admin_config(&self) -> Config {
        self.login_config(&self.admin_user, &self.admin_password)
    }

    /// Config of the harness's privileged connection to this database (the bootstrap
    /// superuser over the private socket; the URL's user with `LESSOR_TEST_DATABASE_URL`).
    pub fn superuser_config(&self) -> Config {
        self.superuser.config(&self.dbname)
    }

    /// Whether this database's server accepts TLS.
    pub fn tls_available(&self) -> bool {
        self.ca_cert.is_some()
    }

    /// The CA certificate (PEM) for `sslrootcert` / verify-full, when TLS is on.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// Connects as the superuser on the caller's tokio runtime (the connection task is
    /// spawned there). Panics on failure.
    pub async fn superuser_client(&self) -> Client {
        connect_spawned(&self.superuser_config()).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Connects as the admin over TCP on the caller's tokio runtime. Panics on failure.
    pub async fn admin_client(&self) -> Client {
        connect_spawned(&self.admin_config()).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `sql` (one or more statements) as the superuser. Works from sync code and
    /// from inside a tokio runtime (it runs on a private thread). Panics on error.
    pub fn superuser_execute(&self, sql: &str) {
        let config = self.superuser_config();
        block_on(execute(&config, sql)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `sql` as the superuser and returns every row as text columns (NULL = None).
    pub fn superuser_query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let config = self.superuser_config();
        block_on(query(&config, sql)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The first column of the first row of `sql`, run as the superuser (`None` for
    /// NULL). Panics when there is no row.
    pub fn superuser_scalar(&self, sql: &str) -> Option<String> {
        first_value(self.superuser_query(sql), sql)
    }

    /// Runs `sql` as the admin role over TCP (e.g. to create fixture tables the admin
    /// owns and so can grant on). Panics on error.
    pub fn admin_execute(&self, sql: &str) {
        let config = self.admin_config();
        block_on(execute(&config, sql)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `sql` as the admin role over TCP and returns every row as text columns.
    pub fn admin_query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let config = self.admin_config();
        block_on(query(&config, sql)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether a role named exactly `name` exists (cluster-wide).
    pub fn role_exists(&self, name: &str) -> bool {
        let sql = format!("SELECT count(*) FROM pg_roles WHERE rolname = {}", quote_literal(name));
        self.superuser_scalar(&sql).as_deref() != Some("0")
    }

    /// Names of the roles starting with `prefix` (taken literally, not as a pattern),
    /// sorted.
    pub fn roles_with_prefix(&self, prefix: &str) -> Vec<String> {
        let sql = format!(
            "SELECT rolname FROM pg_roles WHERE left(rolname, {}) = {} ORDER BY rolname",
            prefix.chars().count(),
            quote_literal(prefix)
        );
        self.superuser_query(&sql).into_iter().filter_map(|row| row.into_iter().next().flatten()).collect()
    }

    /// Whether `user` can log in to this database over TCP with `password`.
    pub fn can_login(&self, user: &str, password: &str) -> bool {
        let config = self.login_config(user, password);
        block_on(async move { connect_spawned(&config).await.is_ok() })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.drop_on_drop {
            return;
        }
        // Best effort: a test's leftover connections are terminated (FORCE, PG 13+).
        let config = self.superuser.config("postgres");
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&self.dbname));
        let _ = block_on(execute(&config, &sql));
    }
}
