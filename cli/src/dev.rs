//! `lessor dev`: the guided tour a newcomer runs first. It starts a throwaway
//! PostgreSQL (or uses `--database-url`), initializes a temporary data directory and
//! walks the seed article's steps — enable, connection, role, issue, log in, renew,
//! revoke, audit — printing each as the command to copy, then cleans up. It asks
//! nothing and exits 0 only when every step worked.

use std::path::Path;
use std::process::ExitCode;

use lessor_engine::Engine;
use lessor_engine::request::{Operation, Response};
use serde_json::{Value, json};

use crate::Failure;
use crate::output;
use crate::session::{Location, Session};
use crate::term::{out, outln};

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Use this PostgreSQL instead of a throwaway one:
    /// `postgresql://USER:PASSWORD@HOST:PORT/DB`, a user with CREATEROLE that owns DB.
    #[arg(long = "database-url", env = "LESSOR_DEV_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Keep what the tour made instead of removing it: the data directory, and the
    /// throwaway PostgreSQL, still running (its port and the commands to use and
    /// to stop it are printed). With --database-url, the sample table too.
    #[arg(long)]
    pub keep: bool,
}

const CONNECTION: &str = "my-postgresql";
const ROLE: &str = "app-readonly";
pub(crate) const CREATION: &str = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
                        GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\"; \
                        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO \"{{name}}\";";
pub(crate) const REVOCATION: &str = "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM \"{{name}}\"; \
                          DROP ROLE IF EXISTS \"{{name}}\";";

/// An admin URL taken apart: what the connection config needs.
#[derive(Debug)]
pub(crate) struct AdminUrl {
    pub(crate) username: String,
    pub(crate) password: String,
    /// `postgresql://{{username}}:{{password}}@HOST:PORT/DB?…`
    pub(crate) template: String,
    /// `HOST:PORT/DB?…`
    rest: String,
}

impl AdminUrl {
    pub(crate) fn parse(url: &str) -> Result<AdminUrl, String> {
        let bad = || {
            "--database-url must look like postgresql://USER:PASSWORD@HOST:PORT/DB (percent-encode special characters)"
                .to_string()
        };
        let after_scheme =
            url.strip_prefix("postgresql://").or_else(|| url.strip_prefix("postgres://")).ok_or_else(bad)?;
        let (userinfo, rest) = after_scheme.rsplit_once('@').ok_or_else(bad)?;
        let (user, password) = userinfo.split_once(':').ok_or_else(bad)?;
        if user.is_empty() || rest.is_empty() {
            return Err(bad());
        }
        Ok(AdminUrl {
            username: percent_decode(user),
            password: percent_decode(password),
            template: format!("postgresql://{{{{username}}}}:{{{{password}}}}@{rest}"),
            rest: rest.to_string(),
        })
    }

    fn login_url(&self, user: &str, password: &str) -> String {
        format!(
            "postgresql://{}:{}@{}",
            lessor_pgtemp::percent_encode(user),
            lessor_pgtemp::percent_encode(password),
            self.rest
        )
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Prints a step's heading and the command that does the same from a shell.
fn say(step: &str, command: &str) {
    outln!("\n==> {step}");
    if !command.is_empty() {
        outln!("$ {command}");
    }
}

fn failed(step: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Engine(format!("lessor dev: {step} failed: {e}"))
}

pub fn dev(args: DevArgs) -> Result<ExitCode, Failure> {
    // The throwaway cluster lives until the end of this function: dropping it stops
    // the server and deletes its files.
    let mut throwaway = None;
    let admin = match &args.database_url {
        Some(url) => AdminUrl::parse(url).map_err(Failure::Local)?,
        None => {
            say("Starting a throwaway PostgreSQL (initdb + pg_ctl on a free port)", "");
            let cluster = lessor_pgtemp::try_private_cluster().map_err(|e| failed("starting PostgreSQL", e))?;
            let db = cluster.database("lessor_dev");
            outln!("PostgreSQL {} on 127.0.0.1:{}, database {}", cluster.version(), cluster.port(), db.dbname());
            let admin = AdminUrl::parse(&db.admin_url()).map_err(Failure::Local)?;
            throwaway = Some((cluster, db));
            admin
        }
    };
    let data_dir = tempfile::Builder::new().prefix("lessor-dev-").tempdir()?;
    let result = tour(data_dir.path(), &admin);
    // A server the user brought keeps nothing of the tour's but what --keep asks.
    let external = args.database_url.is_some();
    if external && !args.keep {
        let dropped = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(admin_execute(&admin, "DROP TABLE IF EXISTS inventory")))
            .map_err(|e| format!("lessor dev: dropping the sample table failed: {e}"));
        if let Err(e) = dropped {
            crate::term::errln!("{e}");
        }
    }
    if !args.keep {
        return result.map(|()| {
            outln!(
                "\nEvery step worked. {}",
                if external {
                    "Dropped the sample table inventory and removed the data directory; your PostgreSQL is as it was \
                     (the tour's user was revoked)."
                } else {
                    "Stopped the throwaway PostgreSQL and removed it and the data directory."
                }
            );
            ExitCode::SUCCESS
        });
    }
    let kept_dir = data_dir.keep();
    let shown = |s: &str| shell_word(s);
    if result.is_ok() {
        outln!("\nEvery step worked.");
    }
    outln!("\nKept, for you to go on with:");
    outln!("  data directory: {}", kept_dir.display());
    outln!("    $ export LESSOR_DATA_DIR={}", shown(&kept_dir.display().to_string()));
    outln!("    $ lessor read database/creds/{ROLE}    (with LESSOR_TOKEN set to the root token above)");
    outln!("    remove it with: rm -rf {}", shown(&kept_dir.display().to_string()));
    match throwaway.take() {
        Some((cluster, db)) => {
            let dbname = db.dbname().to_string();
            drop(db);
            let kept = cluster.keep();
            outln!("  PostgreSQL: still running on 127.0.0.1:{}, database {dbname}", kept.port);
            outln!("    $ psql \"{}\" -c 'TABLE inventory'", admin.login_url(&admin.username, &admin.password));
            outln!("    stop it with: {}", kept.stop_command);
            outln!("    then remove its files: rm -rf {}", shown(&kept.root.display().to_string()));
        }
        None => outln!("  your PostgreSQL keeps the sample table inventory; drop it with: DROP TABLE inventory;"),
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// `word` as one POSIX shell word, for commands printed to copy.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=:+@%".contains(&b));
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', "'\\''")) }
}

/// The reply's warnings, in the tour's flow (stdout), as the CLI shows them.
fn show_warnings(response: &Response) {
    if let Some(w) = output::warnings(response) {
        out!("{w}");
    }
}

/// The walkthrough itself, against `admin`'s database, in `dir`.
fn tour(dir: &Path, admin: &AdminUrl) -> Result<(), Failure> {
    let location = Location { data_dir: dir.to_path_buf(), key_file: None, log_store: Default::default() };
    say("Initializing a data directory (log, master key, root token)", &format!("lessor init -d {}", dir.display()));
    let (engine, root) = Engine::init(dir, location.options()).map_err(|e| failed("init", e))?;
    engine.close();
    let token = root.expose().to_string();
    outln!("Initial Root Token: {token}");
    outln!("$ export LESSOR_DATA_DIR={} LESSOR_TOKEN={token}", dir.display());

    let session = Session::open(&location).map_err(|e| failed("opening the engine", e))?;
    let request = |step: &str, operation: Operation, path: &str, data: Value| -> Result<Response, Failure> {
        session.request(&token, operation, path, data).map_err(|e| failed(step, e))
    };

    say("Creating a table for the application to read", "psql -c 'CREATE TABLE inventory …'");
    session
        .block_on(admin_execute(
            admin,
            "CREATE TABLE IF NOT EXISTS inventory (item text PRIMARY KEY, count int NOT NULL); \
             INSERT INTO inventory VALUES ('widgets', 3), ('gears', 5) ON CONFLICT DO NOTHING",
        ))
        .map_err(|e| failed("creating the table", e))?;

    say("Enabling the database secrets engine", "lessor secrets enable database");
    request("secrets enable", Operation::Update, "sys/mounts/database", json!({"type": "database"}))?;
    outln!("Success! Enabled the database secrets engine at: database/");

    let config_path = format!("database/config/{CONNECTION}");
    say(
        "Configuring the connection (lessor connects and checks it now)",
        &format!(
            "lessor write {config_path} plugin_name=postgresql-database-plugin allowed_roles={ROLE} \
             connection_url=\"{}\" username=\"{}\" password=…",
            admin.template, admin.username
        ),
    );
    let config = json!({
        "plugin_name": "postgresql-database-plugin",
        "allowed_roles": ROLE,
        "connection_url": admin.template,
        "username": admin.username,
        "password": admin.password,
    });
    request("writing the connection", Operation::Update, &config_path, config)?;
    outln!("Success! Data written to: {config_path}");

    let role_path = format!("database/roles/{ROLE}");
    say(
        "Defining the role: a read-only user per credential, 1h TTL, 24h at most",
        &format!(
            "lessor write {role_path} db_name={CONNECTION} creation_statements=\"…\" revocation_statements=\"…\" \
             default_ttl=1h max_ttl=24h"
        ),
    );
    let role = json!({
        "db_name": CONNECTION,
        "creation_statements": CREATION,
        "revocation_statements": REVOCATION,
        "default_ttl": "1h",
        "max_ttl": "24h",
    });
    let written = request("writing the role", Operation::Update, &role_path, role)?;
    show_warnings(&written);
    outln!("Success! Data written to: {role_path}");

    let creds_path = format!("database/creds/{ROLE}");
    say("Issuing a credential: a new PostgreSQL user, just for this caller", &format!("lessor read {creds_path}"));
    let issued = request("issuing a credential", Operation::Read, &creds_path, Value::Null)?;
    show_warnings(&issued);
    out!("{}", output::table(&output::response_rows(&issued)));
    let field = |name: &str| {
        issued
            .data
            .as_ref()
            .and_then(|d| d.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| failed("issuing a credential", format!("the reply has no {name}")))
    };
    let (username, password, lease_id) = (field("username")?, field("password")?, issued.lease_id.clone());

    say(
        "Logging in as that user and reading the table",
        &format!("psql \"postgresql://{username}:…@{}\" -c 'SELECT …'", admin.rest),
    );
    let rows = session
        .block_on(login_and_count(&admin.login_url(&username, &password)))
        .map_err(|e| failed("logging in with the credential", e))?;
    outln!("connected as {username}; SELECT sum(count) FROM inventory → {rows}");

    say("Renewing the lease for 2 hours from now", &format!("lessor lease renew -increment=2h {lease_id}"));
    let before = session.block_on(valid_until(admin, &username)).map_err(|e| failed("reading pg_roles", e))?;
    let renewed = request(
        "renewing the lease",
        Operation::Update,
        "sys/leases/renew",
        json!({"lease_id": lease_id, "increment": "2h"}),
    )?;
    show_warnings(&renewed);
    out!("{}", output::table(&output::response_rows(&renewed)));
    let after = session.block_on(valid_until(admin, &username)).map_err(|e| failed("reading pg_roles", e))?;
    outln!("pg_roles.rolvaliduntil moved: {} → {}", before.as_deref().unwrap_or("-"), after.as_deref().unwrap_or("-"));
    outln!(
        "(VALID UNTIL is the lease's expiry plus 5 s, as Vault sets it: lessor drops the user at expiry, and \
         should it be down then, PostgreSQL itself refuses the password 5 s later.)"
    );
    if before == after {
        return Err(failed("renewing the lease", "VALID UNTIL did not move in pg_roles"));
    }

    say("Revoking the lease: the database user is dropped now", &format!("lessor lease revoke {lease_id}"));
    let revoked = request("revoking the lease", Operation::Update, "sys/leases/revoke", json!({"lease_id": lease_id}))?;
    show_warnings(&revoked);
    outln!("Success! Revoked lease: {lease_id}");
    let gone = session.block_on(valid_until(admin, &username));
    match gone {
        Err(e) if e.contains("no such role") => outln!("pg_roles has no {username} any more"),
        Err(e) => return Err(failed("checking pg_roles", e)),
        Ok(_) => return Err(failed("revoking the lease", format!("{username} is still in pg_roles"))),
    }
    if session.block_on(login_and_count(&admin.login_url(&username, &password))).is_ok() {
        return Err(failed("revoking the lease", "the revoked credential can still log in"));
    }
    outln!("logging in as {username} now fails, as it should");
    session.close();

    say("The audit trail: every step above, from the hash-chained log", "lessor audit log");
    audit(dir, &["log"]).map_err(|e| failed("the audit log", e))?;
    say("Checking the log's integrity: crcs, hash chain, signed checkpoints", "lessor audit verify");
    match audit(dir, &["verify"]).map_err(|e| failed("audit verify", e))? {
        code if code == ExitCode::SUCCESS => Ok(()),
        _ => Err(failed("audit verify", "the log did not verify")),
    }
}

/// Runs `lessor audit ARGS…` in-process, exactly as the command line would.
fn audit(dir: &Path, args: &[&str]) -> Result<ExitCode, String> {
    use clap::{Args, FromArgMatches};
    let command = crate::audit::AuditArgs::augment_args(clap::Command::new("audit"));
    let matches = command
        .try_get_matches_from(std::iter::once("audit").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    let parsed = crate::audit::AuditArgs::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let location = Location { data_dir: dir.to_path_buf(), key_file: None, log_store: Default::default() };
    crate::audit::run(&location, false, parsed)
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, String> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| lessor_pgtemp::error_text(&e))?;
    tokio::spawn(connection);
    Ok(client)
}

async fn admin_execute(admin: &AdminUrl, sql: &str) -> Result<(), String> {
    let client = connect(&admin.login_url(&admin.username, &admin.password)).await?;
    client.batch_execute(sql).await.map_err(|e| lessor_pgtemp::error_text(&e))
}

async fn login_and_count(url: &str) -> Result<i64, String> {
    let client = connect(url).await?;
    let row = client
        .query_one("SELECT sum(count)::bigint FROM inventory", &[])
        .await
        .map_err(|e| lessor_pgtemp::error_text(&e))?;
    Ok(row.get(0))
}

/// The role's `VALID UNTIL` as text; an error containing "no such role" when it is gone.
async fn valid_until(admin: &AdminUrl, role: &str) -> Result<Option<String>, String> {
    let client = connect(&admin.login_url(&admin.username, &admin.password)).await?;
    let rows = client
        .query("SELECT rolvaliduntil::text FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(|e| lessor_pgtemp::error_text(&e))?;
    match rows.first() {
        Some(row) => Ok(row.get(0)),
        None => Err(format!("no such role {role}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_url_splits_into_template_and_credentials() {
        let a = AdminUrl::parse("postgresql://admin:p%40ss@127.0.0.1:5432/app?sslmode=disable").unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("admin", "p@ss"));
        assert_eq!(a.template, "postgresql://{{username}}:{{password}}@127.0.0.1:5432/app?sslmode=disable");
        assert_eq!(a.login_url("v-x", "a b"), "postgresql://v-x:a%20b@127.0.0.1:5432/app?sslmode=disable");
        let e = AdminUrl::parse("127.0.0.1:5432").unwrap_err();
        assert!(e.contains("--database-url"), "{e}");
    }
}
