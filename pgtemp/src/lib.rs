//! Throwaway PostgreSQL for tests, benches and `lessor dev`: one real server per process, one database per user of it.
//!
//! ```no_run
//! use lessor_pgtemp as pg;
//!
//! let db = pg::database("issue_and_revoke");
//! // Hand these to the engine as a connection's `connection_url` / root credentials:
//! let template = db.url_template(); // postgresql://{{username}}:{{password}}@127.0.0.1:PORT/DB
//! let (user, password) = (db.admin_username(), db.admin_password());
//! # let _ = (template, user, password);
//! // ... issue a credential with the engine, with a username template unique to this test
//! // (`issue-{{random 16}}`), then assert on the server as its superuser:
//! assert_eq!(db.roles_with_prefix("issue-").len(), 1);
//! let n = db.superuser_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'issue-%'");
//! assert_eq!(n.as_deref(), Some("0"));
//! ```
//!
//! # What is started
//!
//! The first call to [`database`] in a test binary starts a private cluster (`initdb` +
//! `pg_ctl`, the highest PostgreSQL version found in `$LESSOR_TEST_PG_BINDIR`, on `PATH`
//! or in `/usr/lib/postgresql/*/bin`) in a fresh temporary directory (in `/dev/shm` when it
//! has 2 GiB free, as `CREATE DATABASE` is ~5x faster on tmpfs; else in `$TMPDIR`;
//! `LESSOR_TEST_PG_TMPDIR` overrides):
//!
//! * TCP on `127.0.0.1` only, on a free port; password authentication (SCRAM-SHA-256)
//!   for every TCP connection; `trust` over a unix socket in a private directory, which
//!   only the harness uses (as the bootstrap superuser `postgres`).
//! * TLS (`ssl = on`) with a throwaway CA and a server certificate for `localhost` /
//!   `127.0.0.1` when the `openssl` command is available ([`tls_available`],
//!   [`TestDb::ca_cert_path`]); without `openssl` the server runs without TLS.
//! * An admin role [`ADMIN_ROLE`] (`LOGIN CREATEROLE`, *not* a superuser, random
//!   password): the least privilege a real deployment gives lessor's connection user.
//!   Every test database is `OWNED` by it, so it can create tables and grant on them.
//! * `fsync`, `synchronous_commit` and `full_page_writes` off; `max_connections = 200`.
//!
//! When the test process runs as root, `initdb` and the server run as the `postgres` OS
//! user (PostgreSQL refuses to run as root), switched to with `runuser` (or `su`); the
//! temporary directories are owned by that user.
//!
//! # Teardown
//!
//! A static is never dropped, so the shared cluster is stopped by a *watchdog*: a small
//! `sh` child, in its own process group and ignoring SIGINT/SIGTERM/SIGHUP, that blocks
//! reading a pipe whose only writer is the test process. When the test process exits,
//! normally, by a panic or by SIGKILL, the kernel closes the pipe; the watchdog then
//! runs `pg_ctl stop -m immediate`, SIGKILLs a postmaster that survived that, and removes
//! the temporary directory. Nothing is left running, and no `atexit` hook is needed.
//! A [`private_cluster`] has a watchdog too, and its `Drop` stops the server and waits
//! for the watchdog to finish the cleanup.
//!
//! # Sharing
//!
//! Databases are per test, but *roles are cluster-wide*: every test of a binary sees the
//! roles of all the others. Assert on roles with a prefix unique to the test (for example
//! the database name, [`TestDb::dbname`], inside the username template), not on
//! `LIKE 'v-%'` over the whole cluster, unless the test has a [`private_cluster`].
//! Stopping a server ([`Cluster::stop`]) needs `&mut Cluster`, which only a
//! [`private_cluster`] gives: outage tests cannot take the shared server down.
//!
//! # Using an existing server: `LESSOR_TEST_DATABASE_URL`
//!
//! When `LESSOR_TEST_DATABASE_URL` is set (for example
//! `postgresql://lessor_ci:secret@127.0.0.1:5432/postgres`), [`database`] starts nothing:
//! it creates each test database on that server through that URL, and the URL's user is
//! the admin the tests hand to the engine. That user needs `LOGIN CREATEDB CREATEROLE`
//! and should *not* be a superuser (the harness's own test checks this, as it mirrors a
//! real deployment). The URL must use a TCP host. In this mode the "superuser" helpers
//! run as that same user, [`tls_available`] is false, databases are dropped when their
//! [`TestDb`] is dropped, and roles the tests create are left behind.
//! [`private_cluster`] still starts a local server.
//!
//! # Missing PostgreSQL
//!
//! Is a loud failure, never a skip: the panic says `apt-get install -y postgresql`.

use std::fmt::Write as _;
use std::fs;
use std::future::Future;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

/// An existing server's admin URL; when set, no cluster is started (module docs).
pub const ENV_DATABASE_URL: &str = "LESSOR_TEST_DATABASE_URL";
/// A directory holding `initdb` and `pg_ctl`, to use instead of searching for them.
pub const ENV_PG_BINDIR: &str = "LESSOR_TEST_PG_BINDIR";
/// A directory for the clusters' temporary directories (default: `/dev/shm` when it has
/// 2 GiB free, else the system temp dir).
pub const ENV_PG_TMPDIR: &str = "LESSOR_TEST_PG_TMPDIR";
/// The non-superuser admin role of a harness-started cluster.
pub const ADMIN_ROLE: &str = "lessor_admin";
/// The bootstrap superuser of a harness-started cluster (reachable over the socket only).
pub const SUPERUSER: &str = "postgres";

/// How to get PostgreSQL, for every "not found" message.
pub const INSTALL_HINT: &str = "install PostgreSQL's server binaries (Debian/Ubuntu: \
`apt-get install -y postgresql`; only initdb and pg_ctl are used, no service is needed), \
or set LESSOR_TEST_PG_BINDIR to a directory holding initdb and pg_ctl, or set \
LESSOR_TEST_DATABASE_URL to the admin URL of an existing server \
(a user with LOGIN CREATEDB CREATEROLE)";

/// Waiting for the server to accept connections, and for one command to finish.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// One SQL statement (or connection attempt) of the harness.
const SQL_TIMEOUT: Duration = Duration::from_secs(30);
/// initdb on a slow CI machine.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// `/dev/shm` is used for the clusters only with at least this much room.
const SHM_MIN_FREE: u64 = 2 << 30;
/// Ports tried when the chosen free port is taken before the server binds it.
const PORT_ATTEMPTS: usize = 5;

// ------------------------------------------------------------------------------------
// Module-level API: the shared server of this test binary.
// ------------------------------------------------------------------------------------

enum Shared {
    Local(Cluster),
    External(External),
}

static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();

fn shared() -> &'static Shared {
    let shared = SHARED.get_or_init(|| match std::env::var(ENV_DATABASE_URL) {
        Ok(url) if !url.trim().is_empty() => External::connect(url.trim()).map(Shared::External),
        _ => Cluster::start_new().map(|cluster| {
            eprintln!(
                "lessor-tests: PostgreSQL {} started in {:.2?} on 127.0.0.1:{} ({})",
                cluster.version(),
                cluster.startup_time(),
                cluster.port(),
                cluster.root_dir().display()
            );
            Shared::Local(cluster)
        }),
    });
    match shared {
        Ok(shared) => shared,
        Err(message) => panic!("lessor-tests: no PostgreSQL for the tests: {message}"),
    }
}

/// A fresh database for one test on the shared server of this test binary (started on
/// first use), owned by the admin role. Panics loudly when PostgreSQL is missing.
pub fn database(name_hint: &str) -> TestDb {
    match shared() {
        Shared::Local(cluster) => cluster.database(name_hint),
        Shared::External(external) => external.database(name_hint),
    }
}

/// Whether the shared server accepts TLS (`sslmode=require`, and verify-full against
/// [`ca_cert_path`] for host `localhost` or `127.0.0.1`).
pub fn tls_available() -> bool {
    match shared() {
        Shared::Local(cluster) => cluster.tls_available(),
        Shared::External(_) => false,
    }
}

/// The CA certificate (PEM) that signed the shared server's certificate, when TLS is on.
pub fn ca_cert_path() -> Option<PathBuf> {
    match shared() {
        Shared::Local(cluster) => cluster.ca_cert_path().map(Path::to_path_buf),
        Shared::External(_) => None,
    }
}

/// Starts a separate cluster owned by the caller, stopped and deleted when dropped.
/// For tests that stop or restart the server; it ignores `LESSOR_TEST_DATABASE_URL`.
/// Panics loudly when PostgreSQL is missing or does not start.
pub fn private_cluster() -> Cluster {
    match try_private_cluster() {
        Ok(cluster) => cluster,
        Err(message) => panic!("lessor-tests: could not start a private PostgreSQL cluster: {message}"),
    }
}

/// As [`private_cluster`], returning why the cluster did not start (the message
/// names the missing package) instead of panicking: for `lessor dev`.
pub fn try_private_cluster() -> Result<Cluster, String> {
    Cluster::start_new()
}

// ------------------------------------------------------------------------------------
// A database for one test.
// ------------------------------------------------------------------------------------

/// Where the harness's privileged connection goes.
#[derive(Debug, Clone)]
enum Superuser {
    /// The bootstrap superuser over the private unix socket (trust).
    Socket { dir: PathBuf, port: u16 },
    /// An existing server's admin URL (`LESSOR_TEST_DATABASE_URL`).
    Url(Box<Config>),
}

impl Superuser {
    fn config(&self, dbname: &str) -> Config {
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
    host: String,
    port: u16,
    dbname: String,
    admin_user: String,
    admin_password: String,
    /// `?…` of `LESSOR_TEST_DATABASE_URL`, or empty.
    url_query: String,
    superuser: Superuser,
    ca_cert: Option<PathBuf>,
    drop_on_drop: bool,
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

// ------------------------------------------------------------------------------------
// An existing server (LESSOR_TEST_DATABASE_URL).
// ------------------------------------------------------------------------------------

struct External {
    config: Config,
    host: String,
    port: u16,
    user: String,
    password: String,
    query: String,
    maintenance_db: String,
}

impl External {
    fn connect(url: &str) -> Result<External, String> {
        let config = Config::from_str(url).map_err(|e| format!("{ENV_DATABASE_URL} does not parse: {e}"))?;
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(_) => return Err(format!("{ENV_DATABASE_URL} must name a TCP host, not a unix socket")),
            None => return Err(format!("{ENV_DATABASE_URL} names no host")),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().ok_or_else(|| format!("{ENV_DATABASE_URL} names no user"))?.to_owned();
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .ok_or_else(|| format!("{ENV_DATABASE_URL} has no password"))?;
        let query = url.find('?').map(|i| url[i..].to_owned()).unwrap_or_default();
        let maintenance_db = config.get_dbname().unwrap_or("postgres").to_owned();
        let external = External { config, host, port, user, password, query, maintenance_db };
        let probe = external.superuser().config(&external.maintenance_db);
        block_on(query_rows(&probe, "SELECT 1"))
            .map_err(|e| format!("cannot use {ENV_DATABASE_URL} ({}): {e}", redact_url(url)))?;
        Ok(external)
    }

    fn superuser(&self) -> Superuser {
        Superuser::Url(Box::new(self.config.clone()))
    }

    fn database(&self, name_hint: &str) -> TestDb {
        let dbname = database_name(name_hint);
        let config = self.superuser().config(&self.maintenance_db);
        let sql = format!("CREATE DATABASE {}", quote_ident(&dbname));
        block_on(execute(&config, &sql)).unwrap_or_else(|e| panic!("{e} (the {ENV_DATABASE_URL} user needs CREATEDB)"));
        TestDb {
            host: self.host.clone(),
            port: self.port,
            dbname,
            admin_user: self.user.clone(),
            admin_password: self.password.clone(),
            url_query: self.query.clone(),
            superuser: self.superuser(),
            ca_cert: None,
            drop_on_drop: true,
        }
    }
}

// ------------------------------------------------------------------------------------
// A harness-started cluster.
// ------------------------------------------------------------------------------------

/// The PostgreSQL server binaries in use.
#[derive(Debug, Clone)]
struct PgBin {
    dir: PathBuf,
    version: String,
    sort_key: (u32, u32),
}

impl PgBin {
    fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Who runs initdb and the server.
#[derive(Debug, Clone)]
enum RunAs {
    /// The test process's own user (not root).
    Current,
    /// Root switching to an unprivileged user.
    User { name: String, uid: u32, gid: u32, switch: Switch },
}

#[derive(Debug, Clone)]
enum Switch {
    Runuser(PathBuf),
    Su(PathBuf),
}

impl RunAs {
    /// A command running `program` as this user, with a clean PostgreSQL environment.
    fn command(&self, program: &Path) -> Command {
        let mut command = match self {
            RunAs::Current => Command::new(program),
            RunAs::User { name, switch: Switch::Runuser(runuser), .. } => {
                let mut command = Command::new(runuser);
                command.arg("-u").arg(name).arg("--").arg(program);
                command
            }
            RunAs::User { name, switch: Switch::Su(su), .. } => {
                let mut command = Command::new(su);
                // `--` ends su's options: the program's own (`-D`, `--version`) pass through.
                command.args(["-s", "/bin/sh", "-c", "exec \"$0\" \"$@\"", "--"]).arg(name).arg(program);
                command
            }
        };
        clean_env(&mut command);
        command
    }

    fn chown(&self, path: &Path) -> Result<(), String> {
        match self {
            RunAs::Current => Ok(()),
            RunAs::User { uid, gid, name, .. } => std::os::unix::fs::chown(path, Some(*uid), Some(*gid))
                .map_err(|e| format!("chown {} to {name}: {e}", path.display())),
        }
    }
}

/// Watches the test process through a pipe; cleans up when the pipe closes (module docs).
#[derive(Debug)]
struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

const WATCHDOG_SCRIPT: &str = r#"
trap '' INT TERM HUP QUIT PIPE
root="$1"; data="$2"; shift 2
# Blocks until every writer of stdin is gone: the test process exited or was killed.
cat >/dev/null
"$@" >/dev/null 2>&1
if [ -f "$data/postmaster.pid" ]; then
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null)
  if [ -n "$pid" ] && [ "$(cat /proc/$pid/comm 2>/dev/null)" = postgres ]; then
    kill -KILL "$pid" 2>/dev/null
  fi
fi
rm -rf "$root"
"#;

/// `word` as one POSIX shell word.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=:+@%".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

/// TLS material of a cluster.
#[derive(Debug, Clone)]
struct TlsFiles {
    ca_cert: PathBuf,
    server_cert: PathBuf,
}

/// A running PostgreSQL cluster started by the harness. From [`private_cluster`] it is
/// owned by the test: stopped, and its directory deleted, when dropped.
#[derive(Debug)]
pub struct Cluster {
    bin: PgBin,
    run_as: RunAs,
    root: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    log: PathBuf,
    port: u16,
    tls: Option<TlsFiles>,
    admin_password: String,
    startup_time: Duration,
    watchdog: Option<Watchdog>,
    /// [`Cluster::keep`]: left running, files kept, when dropped.
    kept: bool,
}

/// A server [`Cluster::keep`] left running: where it is and how to stop it.
#[derive(Debug, Clone)]
pub struct KeptCluster {
    pub port: u16,
    /// Everything of the cluster (data, socket, log) is under this directory.
    pub root: PathBuf,
    /// The shell command that stops the server.
    pub stop_command: String,
}

impl Cluster {
    /// Leaves the server running after this value is dropped and this process
    /// exits: the watchdog is disarmed, nothing is stopped or deleted. Stop it
    /// with [`KeptCluster::stop_command`], then remove [`KeptCluster::root`].
    pub fn keep(mut self) -> KeptCluster {
        if let Some(mut watchdog) = self.watchdog.take() {
            // SIGKILL is the one signal its script does not ignore: it dies
            // before it can clean up.
            let _ = watchdog.child.kill();
            let _ = watchdog.child.wait();
        }
        self.kept = true;
        let mut stop = self.run_as.command(&self.bin.tool("pg_ctl"));
        stop.args(["stop", "-D"]).arg(&self.data);
        let words = std::iter::once(stop.get_program()).chain(stop.get_args());
        let stop_command = words.map(|w| shell_quote(&w.to_string_lossy())).collect::<Vec<_>>().join(" ");
        KeptCluster { port: self.port, root: self.root.clone(), stop_command }
    }

    /// Starts a new cluster (the body of [`private_cluster`] and of the shared server).
    fn start_new() -> Result<Cluster, String> {
        let started = Instant::now();
        let bin = find_binaries()?.clone();
        let run_as = run_as()?;
        let root = make_root_dir()?;
        let mut cluster = Cluster {
            data: root.join("data"),
            socket_dir: root.join("sock"),
            log: root.join("postgres.log"),
            root,
            bin,
            run_as,
            port: 0,
            tls: None,
            admin_password: random_hex(24),
            startup_time: Duration::ZERO,
            watchdog: None,
            kept: false,
        };
        // From here on, dropping `cluster` (also on an error) cleans everything up.
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        cluster.init()?;
        cluster.start_on_free_port()?;
        cluster.wait_ready()?;
        cluster.create_admin()?;
        cluster.startup_time = started.elapsed();
        Ok(cluster)
    }

    fn spawn_watchdog(&self) -> Result<Watchdog, String> {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(WATCHDOG_SCRIPT).arg("lessor-pg-watchdog").arg(&self.root).arg(&self.data);
        let stop = self.run_as.command(&self.bin.tool("pg_ctl"));
        command.arg(stop.get_program()).args(stop.get_args());
        command.args(["stop", "-m", "immediate", "-w", "-t", "10", "-D"]).arg(&self.data);
        clean_env(&mut command);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .current_dir("/")
            // Own process group: a Ctrl-C to the test's group does not reach it.
            .process_group(0);
        let mut child = command.spawn().map_err(|e| format!("cannot start the watchdog (/bin/sh): {e}"))?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    fn init(&mut self) -> Result<(), String> {
        for dir in [&self.root, &self.socket_dir] {
            self.run_as.chown(dir)?;
        }
        let mut initdb = self.run_as.command(&self.bin.tool("initdb"));
        initdb
            .arg("-D")
            .arg(&self.data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .current_dir(&self.root);
        run(&mut initdb, "initdb", INITDB_TIMEOUT)?;

        self.tls = self.make_tls()?;
        write_file(
            &self.data.join("pg_hba.conf"),
            "# lessor-tests: trust on the private socket (harness superuser), passwords over TCP\n\
             local all all trust\n\
             host  all all 127.0.0.1/32 scram-sha-256\n",
        )?;
        let mut conf = String::from("\n# --- lessor-tests ---\n");
        let _ = writeln!(conf, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(conf, "unix_socket_directories = {}", quote_conf(&self.socket_dir));
        let _ = writeln!(conf, "unix_socket_permissions = 0700");
        let _ = writeln!(conf, "max_connections = 200");
        let _ = writeln!(conf, "fsync = off\nsynchronous_commit = off\nfull_page_writes = off");
        let _ = writeln!(conf, "password_encryption = 'scram-sha-256'");
        let _ = writeln!(conf, "shared_buffers = '32MB'");
        let _ = writeln!(conf, "lc_messages = 'C'");
        let _ = writeln!(conf, "log_min_messages = 'warning'");
        if let Some(tls) = &self.tls {
            let key = tls.server_cert.with_file_name("server.key");
            let _ = writeln!(conf, "ssl = on");
            let _ = writeln!(conf, "ssl_cert_file = {}", quote_conf(&tls.server_cert));
            let _ = writeln!(conf, "ssl_key_file = {}", quote_conf(&key));
        }
        let path = self.data.join("postgresql.conf");
        let mut existing = fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        existing.push_str(&conf);
        write_file(&path, &existing)
    }

    /// A throwaway CA and a server certificate it signed for `localhost`/`127.0.0.1`,
    /// made with the `openssl` command; `None` when there is no `openssl`.
    fn make_tls(&self) -> Result<Option<TlsFiles>, String> {
        let Some(openssl) = find_program("openssl") else {
            return Ok(None);
        };
        let dir = self.root.join("tls");
        fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        write_file(
            &dir.join("openssl.cnf"),
            "[req]\n\
             distinguished_name = dn\n\
             prompt = no\n\
             [dn]\n\
             CN = lessor-tests throwaway CA\n\
             [ca]\n\
             basicConstraints = critical, CA:TRUE\n\
             keyUsage = critical, keyCertSign, cRLSign\n\
             subjectKeyIdentifier = hash\n\
             [leaf]\n\
             basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth\n\
             subjectAltName = DNS:localhost, IP:127.0.0.1\n\
             subjectKeyIdentifier = hash\n\
             authorityKeyIdentifier = keyid\n",
        )?;
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let openssl_cmd = |args: &[&str]| {
            let mut command = Command::new(&openssl);
            command.args(args).current_dir(&dir);
            clean_env(&mut command);
            command.env("OPENSSL_CONF", dir.join("openssl.cnf"));
            command
        };
        run(
            &mut openssl_cmd(
                &[
                    &["req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", "-days", "7"][..],
                    &ec[..],
                    &["-keyout", "ca.key", "-out", "ca.crt"][..],
                ]
                .concat(),
            ),
            "openssl req (CA)",
            SQL_TIMEOUT,
        )?;
        run(
            &mut openssl_cmd(
                &[
                    &["req", "-new", "-config", "openssl.cnf", "-subj", "/CN=localhost"][..],
                    &ec[..],
                    &["-keyout", "server.key", "-out", "server.csr"][..],
                ]
                .concat(),
            ),
            "openssl req (server)",
            SQL_TIMEOUT,
        )?;
        let serial = format!("0x{}", random_hex(8));
        run(
            &mut openssl_cmd(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial,
                "-days",
                "7",
                "-extfile",
                "openssl.cnf",
                "-extensions",
                "leaf",
                "-out",
                "server.crt",
            ]),
            "openssl x509 (sign server certificate)",
            SQL_TIMEOUT,
        )?;
        let key = dir.join("server.key");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {}: {e}", key.display()))?;
        for path in [&dir, &key, &dir.join("server.crt"), &dir.join("ca.crt")] {
            self.run_as.chown(path)?;
        }
        Ok(Some(TlsFiles { ca_cert: dir.join("ca.crt"), server_cert: dir.join("server.crt") }))
    }

    fn start_on_free_port(&mut self) -> Result<(), String> {
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port()?;
            match self.pg_ctl_start() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let log = self.log_tail(40);
                    let port_taken = log.contains("could not bind") || log.contains("could not create any TCP/IP");
                    last_error = e;
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(format!("{last_error}\n--- server log ({}) ---\n{}", self.log.display(), self.log_tail(40)))
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let mut pg_ctl = self.run_as.command(&self.bin.tool("pg_ctl"));
        pg_ctl
            .arg("start")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .args(["-w", "-t", &READY_TIMEOUT.as_secs().to_string()])
            .current_dir(&self.root);
        run(&mut pg_ctl, "pg_ctl start", READY_TIMEOUT + Duration::from_secs(10)).map(drop)
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        let mut pg_ctl = self.run_as.command(&self.bin.tool("pg_ctl"));
        pg_ctl
            .args(["stop", "-m", mode, "-w", "-t", &READY_TIMEOUT.as_secs().to_string(), "-D"])
            .arg(&self.data)
            .current_dir(&self.root);
        run(&mut pg_ctl, "pg_ctl stop", READY_TIMEOUT + Duration::from_secs(10)).map(drop)
    }

    /// Waits until the superuser can run a query over the socket.
    fn wait_ready(&self) -> Result<(), String> {
        let config = self.superuser().config("postgres");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match block_on(query_rows(&config, "SELECT 1")) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "PostgreSQL did not accept connections within {READY_TIMEOUT:?}: {e}\n--- server log ({}) ---\n{}",
                        self.log.display(),
                        self.log_tail(40)
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn create_admin(&self) -> Result<(), String> {
        // PostgreSQL 16+: a CREATEROLE role gets ADMIN OPTION on the roles it creates,
        // which is all it needs to alter, grant and drop them; 15 and older let CREATEROLE
        // manage every non-superuser role. Roles made by someone else (a test's
        // superuser) must be granted `WITH ADMIN OPTION` to the admin on 16+.
        let sql = format!(
            "CREATE ROLE {} LOGIN CREATEROLE NOSUPERUSER NOCREATEDB PASSWORD {}",
            quote_ident(ADMIN_ROLE),
            quote_literal(&self.admin_password)
        );
        block_on(execute(&self.superuser().config("postgres"), &sql))
            .map_err(|e| format!("creating the admin role: {e}"))
    }

    fn superuser(&self) -> Superuser {
        Superuser::Socket { dir: self.socket_dir.clone(), port: self.port }
    }

    /// A fresh database owned by the admin role, for one test.
    pub fn database(&self, name_hint: &str) -> TestDb {
        let dbname = database_name(name_hint);
        let sql = format!("CREATE DATABASE {} OWNER {}", quote_ident(&dbname), quote_ident(ADMIN_ROLE));
        if let Err(e) = block_on(execute(&self.superuser().config("postgres"), &sql)) {
            panic!("{e}\n--- server log ({}) ---\n{}", self.log.display(), self.log_tail(20));
        }
        TestDb {
            host: Ipv4Addr::LOCALHOST.to_string(),
            port: self.port,
            dbname,
            admin_user: ADMIN_ROLE.to_owned(),
            admin_password: self.admin_password.clone(),
            url_query: String::new(),
            superuser: self.superuser(),
            ca_cert: self.ca_cert_path().map(Path::to_path_buf),
            drop_on_drop: false,
        }
    }

    /// Runs `sql` as the bootstrap superuser in the `postgres` database. Panics on error.
    pub fn superuser_execute(&self, sql: &str) {
        block_on(execute(&self.superuser().config("postgres"), sql)).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs `sql` as the bootstrap superuser in the `postgres` database; rows as text.
    pub fn superuser_query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        block_on(query(&self.superuser().config("postgres"), sql)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `127.0.0.1`.
    pub fn host(&self) -> &str {
        "127.0.0.1"
    }

    /// The TCP port (kept across [`Self::stop`] / [`Self::start`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin role's name, [`ADMIN_ROLE`].
    pub fn admin_username(&self) -> &str {
        ADMIN_ROLE
    }

    /// The admin role's password.
    pub fn admin_password(&self) -> &str {
        &self.admin_password
    }

    /// The server version, e.g. `15.14`.
    pub fn version(&self) -> &str {
        &self.bin.version
    }

    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin.dir
    }

    /// The temporary directory holding everything of this cluster.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The private unix-socket directory (trust authentication: harness use only).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read(&self.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// How long the cluster took to start (initdb, certificates, start, admin role).
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// Whether the server has TLS on.
    pub fn tls_available(&self) -> bool {
        self.tls.is_some()
    }

    /// The throwaway CA certificate (PEM), for `sslrootcert` / verify-full.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// The server's certificate (PEM; CN and SAN `localhost`, SAN `127.0.0.1`).
    pub fn server_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.server_cert.as_path())
    }

    /// The postmaster's process id from `postmaster.pid`, while the server runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Whether the postmaster is running.
    pub fn is_running(&self) -> bool {
        self.postmaster_pid().is_some_and(process_alive)
    }

    /// Stops the server (`pg_ctl stop -m fast`: clients are disconnected, a clean
    /// shutdown). Only on a cluster the test owns: see the module docs.
    pub fn stop(&mut self) {
        self.pg_ctl_stop("fast").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the server like a crash (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&mut self) {
        self.pg_ctl_stop("immediate").unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts the stopped server again, on the same port, and waits until it is ready.
    /// Panics (with the server log) when the port was taken meanwhile or it fails.
    pub fn start(&mut self) {
        let result = self.pg_ctl_start().and_then(|()| self.wait_ready());
        if let Err(e) = result {
            panic!("{e}\n--- server log ({}) ---\n{}", self.log.display(), self.log_tail(40));
        }
    }

    /// [`Self::stop`] then [`Self::start`].
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if self.data.join("postmaster.pid").exists() {
            let _ = self.pg_ctl_stop("immediate");
        }
        // Closing the pipe lets the watchdog finish the cleanup; wait for it (bounded).
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let deadline = Instant::now() + READY_TIMEOUT;
            while Instant::now() < deadline {
                match watchdog.child.try_wait() {
                    Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                    _ => break,
                }
            }
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

// ------------------------------------------------------------------------------------
// TLS connectors for tests (rustls with the ring provider).
// ------------------------------------------------------------------------------------

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A connector for `sslmode=require` semantics: TLS, but any server certificate is
/// accepted (no verification at all, like libpq's `require`).
pub fn tls_connector_no_verify() -> MakeRustlsConnect {
    let provider = ring_provider();
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// A connector for `sslmode=verify-full` semantics: the server certificate must chain
/// to the CA in `ca_pem` and match the host name the client connects to.
pub fn tls_connector_verify_full(ca_pem: &Path) -> MakeRustlsConnect {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem).unwrap_or_else(|e| panic!("read {}: {e}", ca_pem.display())) {
        let cert = cert.unwrap_or_else(|e| panic!("parse {}: {e}", ca_pem.display()));
        roots.add(cert).unwrap_or_else(|e| panic!("add {} as a root: {e}", ca_pem.display()));
    }
    let config = ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// ------------------------------------------------------------------------------------
// SQL helpers.
// ------------------------------------------------------------------------------------

/// Runs `future` to completion on a private thread with its own runtime, so it works
/// from plain code and from inside any tokio runtime alike.
fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a tokio runtime for the PostgreSQL harness")
                .block_on(future)
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "?".to_owned(),
    };
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        host,
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("?")
    )
}

/// Connects (TLS accepted, certificate not verified, as `sslmode` in `config` says) and
/// spawns the connection on the current runtime.
async fn connect_spawned(config: &Config) -> Result<Client, String> {
    let connect = config.connect(tls_connector_no_verify());
    let (client, connection) = match tokio::time::timeout(SQL_TIMEOUT, connect).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(format!("connect to {}: {}", describe(config), error_text(&e))),
        Err(_) => return Err(format!("connect to {}: timed out after {SQL_TIMEOUT:?}", describe(config))),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn query_rows(config: &Config, sql: &str) -> Result<Vec<SimpleQueryMessage>, String> {
    let client = connect_spawned(config).await?;
    match tokio::time::timeout(SQL_TIMEOUT, client.simple_query(sql)).await {
        Ok(Ok(messages)) => Ok(messages),
        Ok(Err(e)) => Err(format!("{sql:?} as {}: {}", describe(config), error_text(&e))),
        Err(_) => Err(format!("{sql:?} as {}: timed out after {SQL_TIMEOUT:?}", describe(config))),
    }
}

async fn execute(config: &Config, sql: &str) -> Result<(), String> {
    query_rows(config, sql).await.map(drop)
}

async fn query(config: &Config, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let messages = query_rows(config, sql).await?;
    Ok(messages
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect())
}

fn first_value(rows: Vec<Vec<Option<String>>>, sql: &str) -> Option<String> {
    let row = rows.into_iter().next().unwrap_or_else(|| panic!("{sql:?} returned no row"));
    row.into_iter().next().unwrap_or_else(|| panic!("{sql:?} returned no column"))
}

/// The server's message (with its SQLSTATE) when there is one, else the error itself.
pub fn error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(inner) = source {
                let _ = write!(text, ": {inner}");
                source = inner.source();
            }
            text
        }
    }
}

/// `"name"` with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled (standard_conforming_strings is on).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

// ------------------------------------------------------------------------------------
// Small helpers.
// ------------------------------------------------------------------------------------

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random number generator");
    buf.iter().fold(String::with_capacity(bytes * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// `t_<hint>_<random>_<n>`: at most 63 bytes, lowercase, unique per process and run.
fn database_name(hint: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut clean: String =
        hint.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).take(40).collect();
    if clean.is_empty() {
        clean.push_str("db");
    }
    format!("t_{clean}_{}_{n}", random_hex(4))
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL userinfo).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

fn url_host(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}

fn redact_url(url: &str) -> String {
    // postgresql://user:secret@host → postgresql://user:***@host
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn quote_conf(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Removes the PG* variables (PGHOST, PGPORT, PGDATA, PGSSLMODE, …) that would steer
/// the tools elsewhere, and fixes the locale.
fn clean_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            command.env_remove(key);
        }
    }
    command.env("LC_ALL", "C");
}

/// Runs a command with a timeout; its output is the error on failure.
fn run(command: &mut Command, what: &str, timeout: Duration) -> Result<String, String> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("{what}: cannot run {:?}: {e}", command.get_program()))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stdout.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(pipe) = stderr.as_mut() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    });
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{what}: waiting for it: {e}")),
        }
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if status.success() {
        Ok(out)
    } else {
        Err(format!("{what} failed ({status}):\n{}{}", out.trim_end(), err.trim_end()))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind((IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
        .map_err(|e| format!("cannot bind 127.0.0.1:0 to pick a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("local_addr: {e}"))
}

/// Alive and not a zombie.
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next()).is_some_and(|s| s != "Z"),
        Err(_) => false,
    }
}

/// Whether a process is alive (not gone, not a zombie). For tests of teardown.
pub fn pid_alive(pid: u32) -> bool {
    process_alive(pid)
}

fn search_path() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    for extra in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    dirs
}

fn find_program(name: &str) -> Option<PathBuf> {
    search_path().into_iter().map(|dir| dir.join(name)).find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The highest-version directory holding both `initdb` and `pg_ctl`: from
/// `LESSOR_TEST_PG_BINDIR` if set, else from `PATH` and `/usr/lib/postgresql/*/bin`.
fn find_binaries() -> Result<&'static PgBin, String> {
    static BIN: OnceLock<Result<PgBin, String>> = OnceLock::new();
    BIN.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os(ENV_PG_BINDIR).filter(|d| !d.is_empty()) {
            candidates.push(PathBuf::from(dir));
        } else {
            candidates.extend(search_path());
            if let Ok(entries) = fs::read_dir("/usr/lib/postgresql") {
                candidates.extend(entries.flatten().map(|e| e.path().join("bin")));
            }
        }
        let mut best: Option<PgBin> = None;
        let mut seen = Vec::new();
        for dir in candidates {
            let (initdb, pg_ctl) = (dir.join("initdb"), dir.join("pg_ctl"));
            if !is_executable(&initdb) || !is_executable(&pg_ctl) {
                continue;
            }
            // Resolve symlinks (Debian's /usr/local/bin links) to the real directory.
            let Some(real_dir) = fs::canonicalize(&initdb).ok().and_then(|p| p.parent().map(Path::to_path_buf)) else {
                continue;
            };
            if seen.contains(&real_dir) || !is_executable(&real_dir.join("pg_ctl")) {
                continue;
            }
            seen.push(real_dir.clone());
            let mut version_cmd = Command::new(real_dir.join("initdb"));
            version_cmd.arg("--version");
            clean_env(&mut version_cmd);
            let Ok(output) = run(&mut version_cmd, "initdb --version", Duration::from_secs(10)) else {
                continue;
            };
            // "initdb (PostgreSQL) 15.14 (Debian 15.14-0+deb12u1)"
            let version = output.split("(PostgreSQL)").nth(1).and_then(|v| v.split_whitespace().next()).unwrap_or("0");
            let mut parts = version.split('.').map(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>());
            let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let bin = PgBin { dir: real_dir, version: version.to_owned(), sort_key: (major, minor) };
            if best.as_ref().is_none_or(|b| bin.sort_key > b.sort_key) {
                best = Some(bin);
            }
        }
        best.ok_or_else(|| {
            let mut message = String::from("PostgreSQL's initdb and pg_ctl were not found");
            if let Some(dir) = std::env::var_os(ENV_PG_BINDIR).filter(|d| !d.is_empty()) {
                let _ = write!(message, " in {ENV_PG_BINDIR}={}", PathBuf::from(dir).display());
            } else {
                message.push_str(" on PATH or in /usr/lib/postgresql/*/bin");
            }
            let _ = write!(message, ": {INSTALL_HINT}");
            message
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

/// Root must hand the server to an unprivileged user: `postgres` (Debian's package
/// creates it), else `nobody`.
fn run_as() -> Result<RunAs, String> {
    if effective_uid() != 0 {
        return Ok(RunAs::Current);
    }
    let switch = if let Some(runuser) = find_program("runuser") {
        Switch::Runuser(runuser)
    } else if let Some(su) = find_program("su") {
        Switch::Su(su)
    } else {
        return Err("running as root, PostgreSQL must run as another user, but neither runuser nor su was found".into());
    };
    for name in ["postgres", "nobody"] {
        let id = |flag: &str| -> Option<u32> {
            let mut command = Command::new(find_program("id")?);
            command.arg(flag).arg(name);
            run(&mut command, "id", Duration::from_secs(10)).ok()?.trim().parse().ok()
        };
        if let (Some(uid), Some(gid)) = (id("-u"), id("-g"))
            && uid != 0
        {
            return Ok(RunAs::User { name: name.to_owned(), uid, gid, switch });
        }
    }
    Err(format!(
        "running as root, PostgreSQL must run as an unprivileged user, but there is no `postgres` \
         (nor `nobody`) user: {INSTALL_HINT} (the package creates the user)"
    ))
}

/// A fresh directory with a short name (the socket path must stay under ~100 bytes) in
/// `$LESSOR_TEST_PG_TMPDIR`, else in `/dev/shm` when it has room (tmpfs: `CREATE
/// DATABASE` is ~5x faster than on a disk), else in the system temp dir.
fn make_root_dir() -> Result<PathBuf, String> {
    let base = match std::env::var_os(ENV_PG_TMPDIR).filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None if free_bytes(Path::new("/dev/shm")).is_some_and(|free| free >= SHM_MIN_FREE) => PathBuf::from("/dev/shm"),
        None => {
            let tmp = std::env::temp_dir();
            if tmp.as_os_str().len() > 60 { PathBuf::from("/tmp") } else { tmp }
        }
    };
    let root = base.join(format!("lessor-pg-{}-{}", std::process::id(), random_hex(4)));
    fs::create_dir(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", root.display()))?;
    let sock = root.join("sock");
    fs::create_dir(&sock).map_err(|e| format!("create {}: {e}", sock.display()))?;
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("chmod {}: {e}", sock.display()))?;
    Ok(root)
}

/// Free bytes for an unprivileged user on the filesystem holding `path`.
#[allow(clippy::useless_conversion, reason = "the field types are u32 on some targets")]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` points to writable
    // memory for one `statvfs`, which the call fills in when it returns 0.
    if unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialized `stat`.
    let stat = unsafe { stat.assume_init() };
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}
