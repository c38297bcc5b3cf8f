//! The throwaway-PostgreSQL harness (`lessor_tests::pg`) does what the database tests
//! rely on: least-privilege admin, per-test databases, SCRAM over TCP, TLS, teardown.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lessor_tests::pg::{self, TestDb};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

/// Whether the tests run against `LESSOR_TEST_DATABASE_URL` (whose user is the admin and
/// the "superuser" alike) rather than a harness-started cluster.
fn external() -> bool {
    std::env::var_os(pg::ENV_DATABASE_URL).is_some_and(|url| !url.is_empty())
}

fn text(value: &str) -> Option<String> {
    Some(value.to_owned())
}

/// Connects with `connector` and returns the client (connection spawned), or the error.
async fn connect<T>(config: &Config, connector: T) -> Result<tokio_postgres::Client, tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket> + Send,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as tokio_postgres::tls::TlsConnect<tokio_postgres::Socket>>::Future: Send,
{
    let (client, connection) = config.connect(connector).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[test]
fn admin_is_not_superuser_has_createrole_and_owns_the_database() {
    let db = pg::database("admin_privileges");
    let rows = db.admin_query(
        "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, \
                (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()) \
         FROM pg_roles WHERE rolname = current_user",
    );
    let admin = text(db.admin_username());
    let mut expected = vec![admin.clone(), text("f"), text("t"), text("f"), text("t"), admin];
    if external() {
        expected[3] = text("t"); // the LESSOR_TEST_DATABASE_URL user creates the databases
    }
    assert_eq!(rows, vec![expected]);
    // The public schema is usable by the admin: it can make fixtures and grant on them.
    db.admin_execute("CREATE TABLE fixture (id int); INSERT INTO fixture VALUES (1)");
    assert_eq!(db.superuser_scalar("SELECT count(*) FROM fixture"), text("1"));
}

#[test]
fn each_test_gets_a_distinct_database() {
    let (a, b) = (pg::database("distinct"), pg::database("distinct"));
    assert_ne!(a.dbname(), b.dbname());
    assert_eq!(a.admin_query("SELECT current_database()"), vec![vec![text(a.dbname())]]);
    assert_eq!(b.admin_query("SELECT current_database()"), vec![vec![text(b.dbname())]]);
    a.admin_execute("CREATE TABLE only_in_a (id int)");
    assert_eq!(a.superuser_scalar("SELECT to_regclass('only_in_a') IS NOT NULL"), text("t"));
    assert_eq!(b.superuser_scalar("SELECT to_regclass('only_in_a') IS NOT NULL"), text("f"));
}

#[test]
fn admin_created_role_logs_in_over_tcp_with_scram_and_can_be_managed() {
    let db = pg::database("scram_login");
    let user = format!("v-{}", db.dbname());
    db.admin_execute(&format!(
        "CREATE TABLE things (id int); INSERT INTO things VALUES (7);
         CREATE ROLE {u} WITH LOGIN PASSWORD 'correct horse' VALID UNTIL 'infinity';
         GRANT SELECT ON things TO {u};",
        u = pg::quote_ident(&user)
    ));
    // Stored as a SCRAM verifier (pg_authid needs a real superuser).
    if !external() {
        let sql = format!("SELECT rolpassword FROM pg_authid WHERE rolname = {}", pg::quote_literal(&user));
        let verifier = db.superuser_scalar(&sql);
        assert!(verifier.as_deref().is_some_and(|v| v.starts_with("SCRAM-SHA-256$")), "{verifier:?}");
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut config = db.login_config(&user, "correct horse");
        config.ssl_mode(SslMode::Disable);
        let client = connect(&config, NoTls).await.expect("the new role logs in over TCP");
        let row = client.query_one("SELECT current_user, (SELECT id FROM things)", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), user);
        assert_eq!(row.get::<_, i32>(1), 7);

        let wrong = db.login_config(&user, "wrong horse");
        let error = connect(&wrong, NoTls).await.expect_err("a wrong password is rejected");
        assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error}");

        let wrong_admin = db.login_config(db.admin_username(), "not the password");
        let error = connect(&wrong_admin, NoTls).await.expect_err("a wrong admin password is rejected");
        assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD), "{error}");
    });
    assert!(db.can_login(&user, "correct horse"));
    assert!(!db.can_login(&user, "wrong horse"));

    // What renewal and revocation need, as the (non-superuser) admin.
    db.admin_execute(&format!(
        "ALTER ROLE {u} VALID UNTIL '2999-01-01'; REVOKE ALL ON things FROM {u}; DROP ROLE {u};",
        u = pg::quote_ident(&user)
    ));
    assert!(!db.role_exists(&user));
}

#[test]
fn urls_and_templates_point_at_the_test_database() {
    let db = pg::database("urls");
    let config = Config::from_str(&db.admin_url()).expect("admin_url parses");
    assert_eq!(config.get_user(), Some(db.admin_username()));
    assert_eq!(config.get_password(), Some(db.admin_password().as_bytes()));
    assert_eq!(config.get_dbname(), Some(db.dbname()));
    assert_eq!(config.get_ports(), &[db.port()]);
    let template = db.url_template();
    assert!(template.starts_with("postgresql://{{username}}:{{password}}@"), "{template}");
    let filled = template
        .replace("{{username}}", &pg::percent_encode(db.admin_username()))
        .replace("{{password}}", &pg::percent_encode(db.admin_password()));
    assert_eq!(filled, db.admin_url());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = connect(&config, NoTls).await.expect("admin_url connects");
        let row = client.query_one("SELECT current_database()", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), db.dbname());
    });
}

#[tokio::test]
async fn helpers_work_inside_a_tokio_runtime() {
    let db = pg::database("inside_runtime");
    // Sync helpers run on their own thread: no "runtime within a runtime" panic.
    assert_eq!(db.superuser_scalar("SELECT current_database()"), text(db.dbname()));
    let client = db.superuser_client().await;
    let row = client.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[]).await.unwrap();
    if !external() {
        assert!(row.get::<_, bool>(0), "the harness's own connection is a superuser");
    }
    let admin = db.admin_client().await;
    let row = admin.query_one("SELECT current_user", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), db.admin_username());
}

fn tls_db(hint: &str) -> Option<TestDb> {
    let db = pg::database(hint);
    if db.tls_available() {
        Some(db)
    } else {
        eprintln!(
            "NOTE: TLS checks not run: the server has no TLS (no `openssl` command, or LESSOR_TEST_DATABASE_URL)"
        );
        None
    }
}

#[tokio::test]
async fn sslmode_require_encrypts_the_connection() {
    let Some(db) = tls_db("tls_require") else { return };
    let mut config = db.admin_config();
    config.ssl_mode(SslMode::Require);
    let client = connect(&config, pg::tls_connector_no_verify()).await.expect("sslmode=require connects");
    let row = client.query_one("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    assert!(row.get::<_, bool>(0), "the session is encrypted");
    assert!(row.get::<_, String>(1).starts_with("TLSv1."));

    // And without TLS the same login works too (host rules cover both).
    config.ssl_mode(SslMode::Disable);
    let client = connect(&config, NoTls).await.expect("sslmode=disable connects");
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    assert!(!row.get::<_, bool>(0));
}

/// The admin's login with `host` as the name (TLS server name), for `hostaddr`.
fn with_host(db: &TestDb, host: &str) -> Config {
    let mut config = Config::new();
    config
        .host(host)
        .port(db.port())
        .dbname(db.dbname())
        .user(db.admin_username())
        .password(db.admin_password())
        .connect_timeout(Duration::from_secs(30));
    config
}

#[tokio::test]
async fn verify_full_against_the_harness_ca() {
    let Some(db) = tls_db("tls_verify_full") else { return };
    let ca = db.ca_cert_path().expect("a CA with TLS").to_path_buf();
    assert_eq!(pg::ca_cert_path(), Some(ca.clone()));

    // By DNS name (SAN DNS:localhost), reaching 127.0.0.1 (the server listens on IPv4 only).
    let mut by_name = with_host(&db, "localhost");
    by_name.hostaddr(IpAddr::V4(Ipv4Addr::LOCALHOST)).ssl_mode(SslMode::Require);
    let client = connect(&by_name, pg::tls_connector_verify_full(&ca)).await.expect("verify-full for localhost");
    let row = client.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap();
    assert!(row.get::<_, bool>(0));

    // By address (SAN IP:127.0.0.1).
    let mut by_ip = db.admin_config();
    by_ip.ssl_mode(SslMode::Require);
    connect(&by_ip, pg::tls_connector_verify_full(&ca)).await.expect("verify-full for 127.0.0.1");

    // A name the certificate does not carry is refused.
    let mut wrong_name = with_host(&db, "not-localhost.invalid");
    wrong_name.hostaddr(IpAddr::V4(Ipv4Addr::LOCALHOST)).ssl_mode(SslMode::Require);
    let error = connect(&wrong_name, pg::tls_connector_verify_full(&ca)).await.expect_err("name mismatch refused");
    assert!(pg::error_text(&error).contains("certificate"), "{}", pg::error_text(&error));

    // Trusting something other than the CA (here: the server's own leaf) is refused.
    let leaf = ca.with_file_name("server.crt");
    let error = connect(&by_ip, pg::tls_connector_verify_full(&leaf)).await.expect_err("unknown issuer refused");
    assert!(pg::error_text(&error).contains("certificate"), "{}", pg::error_text(&error));
}

#[test]
fn private_cluster_stops_starts_and_cleans_up_when_dropped() {
    let mut cluster = pg::private_cluster();
    eprintln!("private cluster: PostgreSQL {} started in {:.2?}", cluster.version(), cluster.startup_time());
    let db = cluster.database("private");
    db.admin_execute("CREATE TABLE survives (id int); INSERT INTO survives VALUES (42)");
    let pid = cluster.postmaster_pid().expect("a running postmaster");
    assert!(pg::pid_alive(pid));

    cluster.stop();
    assert!(!cluster.is_running());
    assert!(!db.can_login(db.admin_username(), db.admin_password()), "the server is down");
    cluster.start();
    assert!(cluster.is_running());
    assert_eq!(db.superuser_scalar("SELECT id FROM survives"), text("42"), "same port, same data");

    cluster.stop_immediate();
    cluster.start();
    let pid = cluster.postmaster_pid().expect("a running postmaster");
    let root = cluster.root_dir().to_path_buf();
    drop(db);
    drop(cluster);
    assert!(!pg::pid_alive(pid), "the postmaster {pid} is gone after drop");
    assert!(!root.exists(), "{} is removed after drop", root.display());
}

const SIGKILL_CHILD_ENV: &str = "LESSOR_PG_HARNESS_SIGKILL_CHILD";

/// Run only as the child of `watchdog_cleans_up_after_the_test_process_is_sigkilled`:
/// starts a private cluster, reports it and waits to be killed.
#[test]
fn sigkill_child() {
    if std::env::var_os(SIGKILL_CHILD_ENV).is_none() {
        return;
    }
    let cluster = pg::private_cluster();
    println!("READY {} {}", cluster.postmaster_pid().expect("a running postmaster"), cluster.root_dir().display());
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn watchdog_cleans_up_after_the_test_process_is_sigkilled() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigkill_child", "--nocapture", "--test-threads=1"])
        .env(SIGKILL_CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test sigkill_child ... " on the same line first.
            if let Some(at) = line.find("READY ") {
                let _ = tx.send(line[at + "READY ".len()..].trim().to_owned());
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(90));
    child.kill().unwrap(); // SIGKILL: no destructor, no panic hook runs in the child.
    child.wait().unwrap();
    let ready = ready.expect("the child started a cluster within 90 s");
    let (pid, root) = ready.split_once(' ').unwrap();
    let (pid, root): (u32, PathBuf) = (pid.parse().unwrap(), PathBuf::from(root));

    let deadline = Instant::now() + Duration::from_secs(30);
    while (pg::pid_alive(pid) || root.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!pg::pid_alive(pid), "the watchdog stopped postmaster {pid}");
    assert!(!root.exists(), "the watchdog removed {}", root.display());
}
