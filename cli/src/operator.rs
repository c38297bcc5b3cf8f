//! The operator's commands, spelled as Vault's CLI spells them. Each builds one
//! request for the engine's pipeline and prints the reply the way Vault does.

use std::process::ExitCode;

use lessor_engine::Engine;
use lessor_engine::request::{ErrorKind, Operation, RequestError, Response};
use serde_json::{Value, json};

use crate::output::{self, Format};
use crate::session::Session;
use crate::term::{self, err, errln, out, outln};
use crate::{Failure, Global};

#[derive(Debug, clap::Subcommand)]
pub enum SecretsCommand {
    /// Enable a secrets engine (`database`) at a path.
    Enable(EnableArgs),
    /// List the enabled secrets engines.
    List,
    /// Disable the secrets engine at a path, revoking all of its leases.
    Disable { path: String },
}

#[derive(Debug, clap::Args)]
pub struct EnableArgs {
    /// Mount path (default: the engine type).
    #[arg(long)]
    pub path: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Default lease TTL for the mount (e.g. 1h).
    #[arg(long = "default-lease-ttl")]
    pub default_lease_ttl: Option<String>,
    /// Maximum lease TTL for the mount (e.g. 24h).
    #[arg(long = "max-lease-ttl")]
    pub max_lease_ttl: Option<String>,
    /// The engine type: `database`.
    pub engine_type: String,
}

#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    /// Write with no data (e.g. `write -f database/rotate-root/NAME`).
    #[arg(short = 'f', long)]
    pub force: bool,
    pub path: String,
    /// `key=value`, `key=@file`, `key=-`, or one `@file.json` or `-`.
    pub data: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// Print only this field of the data.
    #[arg(long)]
    pub field: Option<String>,
    pub path: String,
    /// Query parameters as `key=value`.
    pub data: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct PathArgs {
    pub path: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum LeaseCommand {
    /// Renew a lease; the new TTL counts from now.
    Renew {
        /// Requested TTL from now (e.g. 1h); default: the role's default TTL.
        #[arg(long)]
        increment: Option<String>,
        id: String,
    },
    /// Revoke a lease, or every lease under a prefix.
    Revoke {
        /// Treat ID as a prefix and revoke every lease under it.
        #[arg(long)]
        prefix: bool,
        /// With -prefix: forget the leases even if the database refuses (sudo).
        #[arg(long)]
        force: bool,
        id: String,
    },
    /// Show a lease's issue time, expiry and TTL.
    Lookup { id: String },
    /// List lease ids under a prefix.
    List { prefix: String },
}

// The positional of `token lookup` and `token revoke` must not have the id
// `token`: that is the global `--token` (LESSOR_TOKEN), and clap fills one id
// from both — the command then authenticated as its argument, and with no
// argument revoked or looked up the caller's own token as if it were one.
// `id = "target"` keeps them apart (a test walks the whole command tree).
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a child token of the caller's.
    Create(TokenCreateArgs),
    /// Look up a token: TOKEN (auth/token/lookup), -accessor A
    /// (auth/token/lookup-accessor), or with no argument the one you authenticate
    /// with (auth/token/lookup-self).
    Lookup {
        /// Treat the argument as an accessor.
        #[arg(long)]
        accessor: bool,
        /// The token (or, with -accessor, the accessor) to look up; default: your own.
        #[arg(id = "target", value_name = "TOKEN")]
        target: Option<String>,
    },
    /// Revoke a token, its children and its leases: TOKEN (auth/token/revoke),
    /// -accessor A (auth/token/revoke-accessor), or -self for the one you
    /// authenticate with (auth/token/revoke-self).
    Revoke {
        /// Treat the argument as an accessor.
        #[arg(long)]
        accessor: bool,
        /// Revoke the token you authenticate with (-token / LESSOR_TOKEN).
        #[arg(long = "self")]
        self_: bool,
        /// The token (or, with -accessor, the accessor) to revoke.
        #[arg(id = "target", value_name = "TOKEN")]
        target: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct TokenCreateArgs {
    /// A policy for the token; repeat for several.
    #[arg(long)]
    pub policy: Vec<String>,
    #[arg(long)]
    pub ttl: Option<String>,
    #[arg(long = "explicit-max-ttl")]
    pub explicit_max_ttl: Option<String>,
    #[arg(long = "display-name")]
    pub display_name: Option<String>,
    /// Uses before the token is revoked (0 = unlimited).
    #[arg(long = "use-limit")]
    pub use_limit: Option<u64>,
    /// Create a token with no parent.
    #[arg(long)]
    pub orphan: bool,
    #[arg(long = "no-default-policy")]
    pub no_default_policy: bool,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub renewable: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Upload a policy from a file (or `-` for stdin).
    Write { name: String, file: String },
    /// Print a policy's rules.
    Read { name: String },
    /// List the policies.
    List,
    /// Delete a policy.
    Delete { name: String },
}

/// `lessor init`: creates the data directory and prints the root token once.
pub fn init(global: &Global) -> Result<ExitCode, Failure> {
    let location = global.location()?;
    let (engine, root) = Engine::init(&location.data_dir, location.options())
        .map_err(|e| Failure::Engine(format!("cannot initialize {}: {e}", location.data_dir.display())))?;
    engine.close();
    let key_file = location.key_file.clone().unwrap_or_else(|| location.data_dir.join("master.key"));
    match global.format {
        Format::Json => {
            let v = json!({ "root_token": root.expose(), "master_key_file": key_file.display().to_string() });
            outln!("{}", output::json(&v));
        }
        Format::Table => {
            outln!("Initial Root Token: {}", root.expose());
            outln!();
            outln!("The root token is shown only once: lessor stores only a keyed hash of it.");
            outln!("Master key: {} (keep a copy off this host; without it the log", key_file.display());
            outln!("can still be audited, but no credential can be issued).");
        }
    }
    if term::stdout_lost() {
        // Shown once and stored only as a hash: a root token that did not reach the
        // reader is gone. Say so (never with the token) rather than exit quietly.
        return Err(Failure::Local(format!(
            "the root token could not be written to stdout (the reader closed it), and it is shown only once: \
             {} is initialized but nobody holds its root token; remove that directory and run `lessor init` again \
             with stdout open",
            location.data_dir.display()
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the directory and sends one request; prints nothing.
fn send(global: &Global, operation: Operation, path: &str, data: Value) -> Result<Response, Failure> {
    send_raw(global, operation, path, data)?.map_err(|e| engine_error(operation, path, &e))
}

/// [`send`] for a command whose error should speak of what the user typed
/// (`revoking lease …`) rather than of the path it sends to.
fn send_as(global: &Global, operation: Operation, path: &str, data: Value, doing: &str) -> Result<Response, Failure> {
    send_raw(global, operation, path, data)?.map_err(|e| Failure::Engine(format!("{doing}: {e}")))
}

/// As [`send`], keeping the engine's error for callers that branch on its kind.
fn send_raw(
    global: &Global,
    operation: Operation,
    path: &str,
    data: Value,
) -> Result<Result<Response, RequestError>, Failure> {
    let token = global.token()?;
    let session = Session::open(&global.location()?).map_err(Failure::Engine)?;
    let pending_before = session.pending_revocations();
    let reply = session.request(token, operation, path, data);
    if reply.is_ok() {
        session.finish_pending(pending_before).map_err(Failure::Engine)?;
    }
    session.close();
    Ok(reply)
}

fn engine_error(operation: Operation, path: &str, e: &RequestError) -> Failure {
    let verb = match operation {
        Operation::Read => "reading",
        Operation::List => "listing",
        Operation::Delete => "deleting",
        Operation::Create | Operation::Update => "writing data to",
    };
    Failure::Engine(format!("{verb} {path}: {e}"))
}

/// Prints a reply in the chosen format; `success` is what a reply without data says.
fn print_response(global: &Global, response: &Response, success: &str) {
    print_warnings(global, response);
    match global.format {
        Format::Json => outln!("{}", output::json(&response.to_json())),
        Format::Table => {
            let rows = output::response_rows(response);
            if rows.is_empty() {
                outln!("{success}");
            } else {
                out!("{}", output::table(&rows));
            }
        }
    }
}

/// Vault's warning banner, on stderr, in table format; with `-format=json` the
/// warnings are only in the reply's `warnings` field, so stdout stays pure JSON.
fn print_warnings(global: &Global, response: &Response) {
    if global.format == Format::Table
        && let Some(w) = output::warnings(response)
    {
        err!("{w}");
    }
}

/// A `Success! …` line: table format only (with `-format=json` a command that
/// has no reply prints nothing, as Vault's does).
fn success(global: &Global, message: &str) {
    if global.format == Format::Table {
        outln!("{message}");
    }
}

fn print_list(global: &Global, response: &Response, empty: &str) -> ExitCode {
    let keys = output::list_keys(response);
    match global.format {
        Format::Json => outln!("{}", output::json(&json!(keys))),
        Format::Table if keys.is_empty() => {
            errln!("{empty}");
            return ExitCode::from(2);
        }
        Format::Table => out!("{}", output::keys(&keys)),
    }
    ExitCode::SUCCESS
}

pub fn secrets(global: &Global, command: SecretsCommand) -> Result<ExitCode, Failure> {
    match command {
        SecretsCommand::Enable(args) => {
            let path = args.path.clone().unwrap_or_else(|| args.engine_type.clone());
            let path = path.trim_matches('/');
            let mut data = json!({ "type": args.engine_type, "description": args.description });
            if let Some(ttl) = args.default_lease_ttl {
                data["default_lease_ttl"] = ttl.into();
            }
            if let Some(ttl) = args.max_lease_ttl {
                data["max_lease_ttl"] = ttl.into();
            }
            send(global, Operation::Update, &format!("sys/mounts/{path}"), data)?;
            success(global, &format!("Success! Enabled the {} secrets engine at: {path}/", args.engine_type));
        }
        SecretsCommand::List => {
            let response = send(global, Operation::Read, "sys/mounts", Value::Null)?;
            let data = response.data.clone().unwrap_or_default();
            match global.format {
                Format::Json => outln!("{}", output::json(&Value::Object(data))),
                Format::Table => {
                    let mut rows: Vec<(String, String)> = data
                        .iter()
                        .map(|(path, m)| {
                            let kind = term::escape(m.get("type").and_then(Value::as_str).unwrap_or(""));
                            let description = term::escape(m.get("description").and_then(Value::as_str).unwrap_or(""));
                            (term::escape(path).into_owned(), format!("{kind:<12}{description}"))
                        })
                        .collect();
                    rows.sort();
                    let width = rows.iter().map(|(p, _)| p.chars().count()).max().unwrap_or(4).max(4);
                    outln!("{:<width$}    {:<12}Description", "Path", "Type");
                    outln!("{:<width$}    {:<12}-----------", "----", "----");
                    for (path, rest) in rows {
                        outln!("{path:<width$}    {rest}");
                    }
                }
            }
        }
        SecretsCommand::Disable { path } => {
            let path = path.trim_matches('/').to_string();
            send(global, Operation::Delete, &format!("sys/mounts/{path}"), Value::Null)?;
            success(global, &format!("Success! Disabled the secrets engine (if it existed) at: {path}/"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn write(global: &Global, args: WriteArgs) -> Result<ExitCode, Failure> {
    if args.data.is_empty() && !args.force {
        return Err(Failure::Local(format!(
            "no data to write to {}: give key=value pairs, or -f to write without data",
            args.path
        )));
    }
    let data = crate::data::parse(&args.data, &mut std::io::stdin().lock()).map_err(Failure::Local)?;
    let response = send(global, Operation::Update, &args.path, data)?;
    print_response(global, &response, &format!("Success! Data written to: {}", args.path));
    Ok(ExitCode::SUCCESS)
}

pub fn read(global: &Global, args: ReadArgs) -> Result<ExitCode, Failure> {
    let data = crate::data::parse(&args.data, &mut std::io::stdin().lock()).map_err(Failure::Local)?;
    let data = if args.data.is_empty() { Value::Null } else { data };
    let response = match send_raw(global, Operation::Read, &args.path, data)? {
        Ok(response) => response,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            errln!("No value found at {}: {e}", args.path);
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(engine_error(Operation::Read, &args.path, &e)),
    };
    if let Some(field) = &args.field {
        let value = response
            .data
            .as_ref()
            .and_then(|d| d.get(field))
            .ok_or_else(|| Failure::Engine(format!("field \"{field}\" is not in the reply from {}", args.path)))?;
        outln!("{}", output::value(value));
        return Ok(ExitCode::SUCCESS);
    }
    print_response(global, &response, &format!("No data at {}", args.path));
    Ok(ExitCode::SUCCESS)
}

pub fn list(global: &Global, args: PathArgs) -> Result<ExitCode, Failure> {
    let response = send(global, Operation::List, &args.path, Value::Null)?;
    Ok(print_list(global, &response, &format!("No value found at {}", args.path)))
}

pub fn delete(global: &Global, args: PathArgs) -> Result<ExitCode, Failure> {
    send(global, Operation::Delete, &args.path, Value::Null)?;
    success(global, &format!("Success! Data deleted (if it existed) at: {}", args.path));
    Ok(ExitCode::SUCCESS)
}

pub fn lease(global: &Global, command: LeaseCommand) -> Result<ExitCode, Failure> {
    match command {
        LeaseCommand::Renew { increment, id } => {
            let mut data = json!({ "lease_id": id });
            if let Some(increment) = increment {
                data["increment"] = increment.into();
            }
            let doing = format!("renewing lease {id}");
            let response = send_as(global, Operation::Update, "sys/leases/renew", data, &doing)?;
            print_response(global, &response, "Success! Renewed the lease.");
        }
        LeaseCommand::Revoke { prefix, force, id } => {
            if force && !prefix {
                return Err(Failure::Local("-force works only with -prefix: lease revoke -prefix -force ID".into()));
            }
            let id = id.trim_start_matches('/');
            let (path, data) = match (prefix, force) {
                (true, true) => (format!("sys/leases/revoke-force/{id}"), Value::Null),
                (true, false) => (format!("sys/leases/revoke-prefix/{id}"), Value::Null),
                _ => ("sys/leases/revoke".to_string(), json!({ "lease_id": id })),
            };
            let doing = if prefix { format!("revoking leases under {id}") } else { format!("revoking lease {id}") };
            let response = send_as(global, Operation::Update, &path, data, &doing)?;
            print_warnings(global, &response);
            match (prefix, force) {
                (true, true) => success(global, &format!("Success! Force-revoked any leases with prefix: {id}")),
                (true, false) => success(global, &format!("Success! Revoked any leases with prefix: {id}")),
                _ => success(global, &format!("Success! Revoked lease: {id}")),
            }
        }
        LeaseCommand::Lookup { id } => {
            let response = send(global, Operation::Update, "sys/leases/lookup", json!({ "lease_id": id }))?;
            print_response(global, &response, "");
        }
        LeaseCommand::List { prefix } => {
            // A prefix is a path, as Vault's CLI makes it: `…/creds/app` lists
            // that role's leases.
            let prefix = format!("{}/", prefix.trim_matches('/'));
            let response = send(global, Operation::List, &format!("sys/leases/lookup/{prefix}"), Value::Null)?;
            return Ok(print_list(global, &response, &format!("No leases found under {prefix}")));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn token(global: &Global, command: TokenCommand) -> Result<ExitCode, Failure> {
    match command {
        TokenCommand::Create(args) => {
            let mut data = json!({
                "policies": args.policy,
                "no_parent": args.orphan,
                "no_default_policy": args.no_default_policy,
                "renewable": args.renewable,
            });
            for (field, value) in
                [("ttl", args.ttl), ("explicit_max_ttl", args.explicit_max_ttl), ("display_name", args.display_name)]
            {
                if let Some(v) = value {
                    data[field] = v.into();
                }
            }
            if let Some(uses) = args.use_limit {
                data["num_uses"] = uses.into();
            }
            let response = send(global, Operation::Update, "auth/token/create", data)?;
            print_response(global, &response, "");
        }
        TokenCommand::Lookup { accessor, target } => {
            let (path, data) = token_lookup_request(accessor, target)?;
            // As Vault's CLI: lookup-self is a GET (the default policy grants
            // read on it), the others a POST.
            let operation = if path.ends_with("lookup-self") { Operation::Read } else { Operation::Update };
            let response = send(global, operation, path, data)?;
            print_response(global, &response, "");
        }
        TokenCommand::Revoke { accessor, self_, target } => {
            let (path, data) = token_revoke_request(accessor, self_, target)?;
            send(global, Operation::Update, path, data)?;
            success(global, "Success! Revoked token (if it existed)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The request `token lookup` sends, as Vault's CLI chooses it. The caller always
/// authenticates with the global token; the argument is only the request's data.
fn token_lookup_request(accessor: bool, target: Option<String>) -> Result<(&'static str, Value), Failure> {
    Ok(match (accessor, target) {
        (true, Some(a)) => ("auth/token/lookup-accessor", json!({ "accessor": a })),
        (true, None) => {
            return Err(Failure::Local(
                "Not enough arguments: token lookup -accessor ACCESSOR (the accessor is shown as token_accessor)"
                    .into(),
            ));
        }
        (false, Some(t)) => ("auth/token/lookup", json!({ "token": t })),
        (false, None) => ("auth/token/lookup-self", Value::Null),
    })
}

/// The request `token revoke` sends. As in Vault, no argument is an error, never
/// the caller's own token: that takes -self.
fn token_revoke_request(accessor: bool, self_: bool, target: Option<String>) -> Result<(&'static str, Value), Failure> {
    Ok(match (self_, accessor, target) {
        (true, true, _) => {
            return Err(Failure::Local(
                "-self and -accessor cannot be used together: -self revokes the token you authenticate with".into(),
            ));
        }
        (true, false, None) => ("auth/token/revoke-self", Value::Null),
        (true, false, Some(_)) => {
            return Err(Failure::Local(
                "Too many arguments: -self takes no TOKEN (it revokes the one you authenticate with); to revoke \
                 another token, drop -self"
                    .into(),
            ));
        }
        (false, true, Some(a)) => ("auth/token/revoke-accessor", json!({ "accessor": a })),
        (false, false, Some(t)) => ("auth/token/revoke", json!({ "token": t })),
        (false, true, None) => {
            return Err(Failure::Local("Not enough arguments: token revoke -accessor ACCESSOR".into()));
        }
        (false, false, None) => {
            return Err(Failure::Local(
                "Not enough arguments: token revoke TOKEN, token revoke -accessor ACCESSOR, or token revoke -self \
                 to revoke the token you authenticate with"
                    .into(),
            ));
        }
    })
}

pub fn policy(global: &Global, command: PolicyCommand) -> Result<ExitCode, Failure> {
    match command {
        PolicyCommand::Write { name, file } => {
            let text = if file == "-" {
                crate::data::read_stdin().map_err(Failure::Local)?
            } else {
                crate::data::read_file(&file).map_err(Failure::Local)?
            };
            send(global, Operation::Update, &format!("sys/policy/{name}"), json!({ "policy": text }))?;
            success(global, &format!("Success! Uploaded policy: {name}"));
        }
        PolicyCommand::Read { name } => {
            let response = send(global, Operation::Read, &format!("sys/policy/{name}"), Value::Null)?;
            match global.format {
                Format::Json => outln!("{}", output::json(&response.to_json())),
                Format::Table => {
                    let rules = response.data.as_ref().and_then(|d| d.get("rules").or_else(|| d.get("policy")));
                    outln!("{}", rules.and_then(Value::as_str).unwrap_or_default().trim_end());
                }
            }
        }
        PolicyCommand::List => {
            let response = send(global, Operation::List, "sys/policy", Value::Null)?;
            let names = output::list_keys(&response);
            let names = if names.is_empty() {
                response
                    .data
                    .as_ref()
                    .and_then(|d| d.get("policies"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default()
            } else {
                names
            };
            match global.format {
                Format::Json => outln!("{}", output::json(&json!(names))),
                Format::Table => names.iter().for_each(|n| outln!("{}", term::escape(n))),
            }
        }
        PolicyCommand::Delete { name } => {
            send(global, Operation::Delete, &format!("sys/policy/{name}"), Value::Null)?;
            success(global, &format!("Success! Deleted policy: {name}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
