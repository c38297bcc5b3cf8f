//! The seed article's walkthrough (`shared/reference/seed-article.txt`) with
//! `lessor` in place of `vault`, run as written through the real binary against a
//! real PostgreSQL; then `lessor run`'s lock and clean shutdown, and `lessor dev`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use lessor_pgtemp as pg;

const LESSOR: &str = env!("CARGO_BIN_EXE_lessor");

/// The article's statements, verbatim.
const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"; ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";";
const REVOCATION: &str =
    "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";";

struct Shell<'a> {
    dir: &'a Path,
    token: String,
}

impl Shell<'_> {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(LESSOR);
        c.args(args).env("LESSOR_DATA_DIR", self.dir).env("LESSOR_TOKEN", &self.token).env_remove("LESSOR_FORMAT");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run lessor")
    }

    /// Runs and insists on exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "lessor {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The value of `key` in a Vault-style `Key Value` table.
fn field(table: &str, key: &str) -> String {
    table
        .lines()
        .find_map(|l| l.strip_prefix(key).filter(|rest| rest.starts_with(' ')).map(|rest| rest.trim().to_string()))
        .unwrap_or_else(|| panic!("no {key} in:\n{table}"))
}

fn root_token(init_output: &str) -> String {
    init_output.lines().find_map(|l| l.strip_prefix("Initial Root Token: ")).expect("root token").to_string()
}

#[test]
fn the_article_walkthrough_runs_as_written() {
    let db = pg::database("walkthrough");
    db.admin_execute("CREATE TABLE inventory (item text); INSERT INTO inventory VALUES ('widgets')");
    let data = tempfile::tempdir().unwrap();
    let mut sh = Shell { dir: data.path(), token: String::new() };

    sh.token = root_token(&sh.ok(&["init"]));
    assert!(sh.token.starts_with("lsr."), "{}", sh.token);
    assert!(!sh.run(&["init"]).status.success(), "a second init must refuse");

    // 1) vault secrets enable database
    assert!(sh.ok(&["secrets", "enable", "database"]).contains("Enabled the database secrets engine at: database/"));
    assert!(sh.ok(&["secrets", "list"]).contains("database/"));

    // 2) the connection, with the article's sslmode=require when the server has TLS
    let sslmode = if db.tls_available() { "?sslmode=require" } else { "" };
    let url = format!("{}{sslmode}", db.url_template());
    let username = format!("username={}", db.admin_username());
    let password = format!("password={}", db.admin_password());
    sh.ok(&[
        "write",
        "database/config/my-postgresql",
        "plugin_name=postgresql-database-plugin",
        "allowed_roles=app-readonly",
        &format!("connection_url={url}"),
        &username,
        &password,
    ]);
    let config = sh.ok(&["read", "database/config/my-postgresql"]);
    assert!(!config.contains(db.admin_password()), "reading a config never shows the password:\n{config}");

    // 3) the role, statements verbatim
    sh.ok(&[
        "write",
        "database/roles/app-readonly",
        "db_name=my-postgresql",
        &format!("creation_statements={CREATION}"),
        &format!("revocation_statements={REVOCATION}"),
        "default_ttl=1h",
        "max_ttl=24h",
    ]);

    // 4) issue: the article's output shape, and the credential logs in
    let creds = sh.ok(&["read", "database/creds/app-readonly"]);
    assert!(creds.starts_with("Key "), "{creds}");
    let (lease, user, pass) = (field(&creds, "lease_id"), field(&creds, "username"), field(&creds, "password"));
    assert!(lease.starts_with("database/creds/app-readonly/"), "{creds}");
    assert_eq!(field(&creds, "lease_duration"), "1h");
    assert_eq!(field(&creds, "lease_renewable"), "true");
    assert!(user.starts_with("v-root-app-read"), "{user}");
    assert!(db.can_login(&user, &pass), "the issued credential must log in");

    // 5) the least-privilege policy, from a file, and a token for app-A
    let hcl = data.path().join("app-readonly.hcl");
    std::fs::write(&hcl, "path \"database/creds/app-readonly\" {\ncapabilities = [\"read\"]\n}\n").unwrap();
    assert!(
        sh.ok(&["policy", "write", "app-readonly", hcl.to_str().unwrap()]).contains("Uploaded policy: app-readonly")
    );
    assert!(sh.ok(&["policy", "list"]).lines().any(|l| l == "app-readonly"));
    let created = sh.ok(&["token", "create", "-policy=app-readonly", "-display-name=app-A"]);
    let app = Shell { dir: data.path(), token: field(&created, "token") };
    assert!(field(&created, "token_policies").contains("app-readonly"), "{created}");
    let app_creds = app.ok(&["read", "database/creds/app-readonly"]);
    assert!(field(&app_creds, "username").starts_with("v-token-ap-app-read"), "{app_creds}");
    let denied = app.run(&["read", "database/roles/app-readonly"]);
    assert_eq!(denied.status.code(), Some(2), "the app's token may only read creds");
    assert!(String::from_utf8_lossy(&denied.stderr).contains("permission denied"));

    // renew (Vault's CLI: lease renew), lookup, list
    let renewed = sh.ok(&["lease", "renew", "-increment=2h", &lease]);
    assert_eq!(field(&renewed, "lease_duration"), "2h");
    assert_eq!(field(&sh.ok(&["lease", "lookup", &lease]), "renewable"), "true");
    assert!(sh.ok(&["lease", "list", "database/creds/app-readonly/"]).lines().count() >= 4);

    // 6) revoke: the database user is gone, with the article's revocation statements
    assert!(sh.ok(&["lease", "revoke", &lease]).contains("Revoked lease"));
    assert!(!db.role_exists(&user), "{user} must be dropped by lease revoke");
    let app_user = field(&app_creds, "username");
    sh.ok(&["lease", "revoke", "-prefix", "database/creds/app-readonly"]);
    assert!(!db.role_exists(&app_user));

    // 7) rotate-root: the old root password stops working, issuing goes on
    assert!(sh.ok(&["write", "-f", "database/rotate-root/my-postgresql"]).contains("Success!"));
    assert!(!db.can_login(db.admin_username(), db.admin_password()), "rotate-root must change the password");
    let again = sh.ok(&["read", "-format=json", "database/creds/app-readonly"]);
    let json: serde_json::Value = serde_json::from_str(&again).expect("-format=json prints JSON");
    assert!(json["lease_id"].as_str().unwrap().starts_with("database/creds/app-readonly/"), "{again}");

    // The auditor's question, by the app's token (hashed locally): its issue is
    // there, the root's is not.
    let by_app = sh.ok(&["audit", "log", "-token", &app.token]);
    assert!(by_app.contains(&app_user), "{by_app}");
    assert!(!by_app.contains(&user), "{by_app}");

    // Errors: bad input is a local error (exit 1) naming the fix; an engine refusal is exit 2.
    let bad = sh.run(&["write", "database/roles/x", "novalue"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("key=value"));
    let missing = sh.run(&["read", "database/roles/nope"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn lessor_run_holds_the_directory_and_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut sh = Shell { dir: data.path(), token: String::new() };
    sh.token = root_token(&sh.ok(&["init"]));
    let mut run = sh.command(&["run"]).stderr(Stdio::piped()).spawn().expect("start lessor run");
    // Wait (without a clock) for the banner that says the engine is up.
    let mut stderr = std::io::BufReader::new(run.stderr.take().unwrap());
    let mut banner = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut banner).unwrap();
    assert!(banner.contains("running on"), "{banner}");

    let busy = sh.run(&["secrets", "list"]);
    assert_eq!(busy.status.code(), Some(2));
    let message = String::from_utf8_lossy(&busy.stderr);
    assert!(message.contains(&run.id().to_string()), "the refusal names the process holding the directory: {message}");

    // SAFETY: kill(2) on our own child, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(run.id() as i32, libc::SIGTERM) }, 0);
    let status = run.wait().unwrap();
    assert!(status.success(), "lessor run exits 0 on SIGTERM, got {status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("stopped cleanly"), "{rest}");
    sh.ok(&["secrets", "list"]);
}

#[test]
fn lessor_dev_runs_start_to_finish() {
    let out = Command::new(LESSOR).arg("dev").env_remove("LESSOR_DEV_DATABASE_URL").output().expect("run lessor dev");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lessor dev failed ({}):\n{stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "lessor secrets enable database",
        "lessor read database/creds/app-readonly",
        "lessor lease revoke",
        "lessor audit log",
        "Every step worked",
        // The article's role draws a warning, shown where it arises.
        "WARNING! The following warnings were returned from lessor:",
        "ON ALL TABLES",
        "VALID UNTIL is the lease's expiry plus 5 s",
        "Stopped the throwaway PostgreSQL",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
}

#[test]
fn lessor_dev_keep_leaves_a_running_server_and_says_how_to_stop_it() {
    let out = Command::new(LESSOR)
        .args(["dev", "--keep"])
        .env_remove("LESSOR_DEV_DATABASE_URL")
        .output()
        .expect("run lessor dev --keep");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let after = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{stdout}"))
            .trim()
            .to_string()
    };
    let port: u16 = after("PostgreSQL: still running on 127.0.0.1:").split(',').next().unwrap().parse().unwrap();
    let stop = after("stop it with:");
    let root = after("then remove its files: rm -rf");
    let data_dir = after("data directory:");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "nothing listens on {port}");
    assert!(Path::new(&data_dir).join("master.key").exists(), "the data directory is gone: {data_dir}");
    let stopped = Command::new("sh").arg("-c").arg(&stop).output().unwrap();
    assert!(stopped.status.success(), "{stop}: {}", String::from_utf8_lossy(&stopped.stderr));
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "still listening after {stop}");
    std::fs::remove_dir_all(root.trim_matches('\'')).unwrap();
    std::fs::remove_dir_all(data_dir).unwrap();
}

#[test]
fn lessor_dev_on_your_database_drops_its_table_and_claims_no_throwaway_server() {
    let db = pg::database("dev_external");
    let out = Command::new(LESSOR).args(["dev", "--database-url", &db.admin_url()]).output().expect("run lessor dev");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Dropped the sample table inventory"), "{stdout}");
    assert!(!stdout.contains("throwaway PostgreSQL"), "{stdout}");
    let table = db.admin_query("SELECT to_regclass('public.inventory')::text");
    assert_eq!(table, vec![vec![None]], "the sample table is still there");
}

#[test]
fn lessor_bench_runs_the_load_generator_beside_it() {
    let out = Command::new(LESSOR).args(["bench", "--help"]).output().expect("run lessor bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Usage: lessor-bench") && stdout.contains("--concurrency"), "{stdout}");
    let bad = Command::new(LESSOR).args(["bench", "--rounds=x"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--rounds"));
}
