//! A harness-started cluster.

use std::fmt::Write as _;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sql::{SQL_TIMEOUT, block_on, execute, query, query_rows, quote_ident, quote_literal};
use crate::test_db::{Superuser, TestDb};
use crate::util::{
    clean_env, database_name, find_binaries, find_program, free_port, make_root_dir, process_alive, quote_conf,
    random_hex, run, run_as, write_file,
};
use crate::{ADMIN_ROLE, SUPERUSER};

/// Waiting for the server to accept connections, and for one command to finish.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// initdb on a slow CI machine.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// Ports tried when the chosen free port is taken before the server binds it.
const PORT_ATTEMPTS: usize = 5;

/// The PostgreSQL server binaries in use.
#[derive(Debug, Clone)]
pub(crate) struct PgBin {
    pub(crate) dir: PathBuf,
    pub(crate) version: String,
    pub(crate) sort_key: (u32, u32),
}

impl PgBin {
    fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Who runs initdb and the server.
#[derive(Debug, Clone)]
pub(crate) enum RunAs {
    /// The test process's own user (not root).
    Current,
    /// Root switching to an unprivileged user.
    User { name: String, uid: u32, gid: u32, switch: Switch },
}

#[derive(Debug, Clone)]
pub(crate) enum Switch {
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

/// A running PostgreSQL cluster started by the harness. From [`private_cluster`](crate::private_cluster) it is
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

    /// Starts a new cluster (the body of [`private_cluster`](crate::private_cluster) and of the shared server).
    pub(crate) fn start_new() -> Result<Cluster, String> {
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
