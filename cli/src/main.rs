//! `lessor`: the command-line tool. Operators get Vault's CLI (`secrets`, `read`,
//! `write`, `lease`, `token`, `policy`) over a data directory; auditors get
//! `lessor audit …` over the log alone; newcomers start with `lessor dev`.
//!
//! Every command is a thin call into `lessor-engine`; exit status 0 is success, 1
//! a local error (bad flags or input, nothing was sent), 2 an error the engine
//! returned — as Vault's CLI.

mod audit;
mod data;
mod dev;
mod flags;
mod log_admin;
mod logging;
mod operator;
mod output;
mod run;
mod server;
mod session;
mod term;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lessor_engine::{LogStore, PgLogOptions};

use output::Format;
use session::Location;
use term::errln;

/// Replay allocates a few short strings per event; mimalloc keeps that cheap
/// (glibc's malloc costs a third of replay throughput here; see the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dynamic, short-lived database credentials from an event-sourced engine.
///
/// Flags may be written Vault's way (`-path=db`) or with two dashes.
#[derive(Debug, Parser)]
#[command(name = "lessor", version, arg_required_else_help = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
pub struct Global {
    /// The data directory (log, snapshots, master.key).
    #[arg(short = 'd', long = "data-dir", env = "LESSOR_DATA_DIR", global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The token to authenticate with.
    #[arg(long, env = "LESSOR_TOKEN", global = true, hide_env_values = true, value_name = "T")]
    token: Option<String>,
    /// The master key file (default: <DIR>/master.key).
    #[arg(long = "master-key-file", env = "LESSOR_MASTER_KEY_FILE", global = true, value_name = "FILE")]
    master_key_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, env = "LESSOR_FORMAT", global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The log in PostgreSQL instead of the data directory (which keeps the
    /// master key, head file and snapshots): postgresql://ROLE:PASSWORD@HOST/DB.
    #[arg(long = "log-url", env = "LESSOR_LOG_URL", global = true, hide_env_values = true, value_name = "URL")]
    log_url: Option<String>,
    /// The log's stream in PostgreSQL (with -log-url): one per engine identity.
    #[arg(long = "stream", env = "LESSOR_STREAM", global = true, value_name = "NAME")]
    stream: Option<String>,
}

impl Global {
    fn location(&self) -> Result<Location, Failure> {
        let data_dir = self.data_dir.clone().ok_or_else(|| {
            Failure::Local(
                "no data directory: pass -d DIR or set LESSOR_DATA_DIR (`lessor init -d DIR` creates one)".into(),
            )
        })?;
        Ok(Location { data_dir, key_file: self.master_key_file.clone(), log_store: self.log_store()? })
    }

    /// `-log-url` and `-stream`, both or neither.
    fn log_store(&self) -> Result<LogStore, Failure> {
        match (&self.log_url, &self.stream) {
            (None, None) => Ok(LogStore::Directory),
            (Some(url), Some(stream)) => Ok(LogStore::PostgreSql(PgLogOptions::new(url.clone(), stream.clone()))),
            (Some(_), None) => Err(Failure::Local(
                "-log-url needs -stream (or LESSOR_STREAM): the stream of this engine's log, e.g. the application's \
                 name"
                    .into(),
            )),
            (None, Some(_)) => Err(Failure::Local(
                "-stream needs -log-url (or LESSOR_LOG_URL): the PostgreSQL database the stream is in".into(),
            )),
        }
    }

    fn token(&self) -> Result<&str, Failure> {
        self.token.as_deref().ok_or_else(|| {
            Failure::Local("no token: pass -token=T or set LESSOR_TOKEN (`lessor init` prints the root token)".into())
        })
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Initialize a new data directory; prints the root token once.
    Init,
    /// Enable, list and disable secrets engines (mounts).
    Secrets {
        #[command(subcommand)]
        command: operator::SecretsCommand,
    },
    /// Write data to a path (`key=value`, `key=@file`, `key=-`, `@file.json`, `-`).
    Write(operator::WriteArgs),
    /// Read a path (reading `<mount>/creds/<role>` issues a credential).
    Read(operator::ReadArgs),
    /// List the keys under a path.
    List(operator::PathArgs),
    /// Delete a path.
    Delete(operator::PathArgs),
    /// Renew, revoke, look up and list leases.
    Lease {
        #[command(subcommand)]
        command: operator::LeaseCommand,
    },
    /// Create, look up and revoke tokens.
    Token {
        #[command(subcommand)]
        command: operator::TokenCommand,
    },
    /// Write, read, list and delete ACL policies.
    Policy {
        #[command(subcommand)]
        command: operator::PolicyCommand,
    },
    /// Serve Vault's HTTP API (so the vault/bao CLI, hvac, Agent, Terraform work
    /// unchanged): `-config=FILE`, or `-dev` for a throwaway server.
    Server(server::ServerArgs),
    /// Host the engine in the foreground (expirer and revocations) until SIGINT or SIGTERM.
    Run,
    /// The guided tour: a throwaway PostgreSQL and data directory; issue, log in,
    /// renew, revoke, audit; then clean up.
    Dev(dev::DevArgs),
    /// Forensic tools over the log (no master key needed).
    Audit(audit::AuditArgs),
    /// The log's store: `init-postgresql` creates the tables of a log kept in PostgreSQL.
    Log {
        #[command(subcommand)]
        command: log_admin::LogCommand,
    },
    /// The issuance load generator: lessor vs the same SQL run raw (runs the
    /// `lessor-bench` binary beside this one; `lessor bench --help` for its flags).
    #[command(disable_help_flag = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// How a command failed, which decides the exit status.
#[derive(Debug)]
pub enum Failure {
    /// Bad flags or input; nothing was sent to the engine (exit 1).
    Local(String),
    /// The engine refused or failed (exit 2).
    Engine(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Local(e.to_string())
    }
}

fn main() -> ExitCode {
    let args = flags::normalize_os(std::env::args_os());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return parse_failure(&e, &args),
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(Failure::Local(message)) => {
            errln!("Error: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Engine(message)) => {
            errln!("Error: {message}");
            ExitCode::from(2)
        }
    };
    // A reader that closed stdout (`| head`) ends the output quietly; a write
    // that failed otherwise (a full disk) lost output, which is an error.
    match term::stdout_failure() {
        Some(e) if code == ExitCode::SUCCESS => {
            errln!("Error: cannot write the output to stdout: {e}");
            ExitCode::from(1)
        }
        _ => code,
    }
}

/// Prints clap's error (or help) and picks the exit status; an argument that is not
/// UTF-8 is named, since clap's message does not say which one it was.
fn parse_failure(e: &clap::Error, args: &[std::ffi::OsString]) -> ExitCode {
    if e.kind() == clap::error::ErrorKind::InvalidUtf8 {
        let which = flags::not_utf8(args, std::env::vars_os()).unwrap_or_else(|| "an argument".into());
        errln!(
            "Error: {which} is not valid UTF-8: tokens, request paths, names and data must be UTF-8 text (only \
             the file and directory paths of -d, -master-key-file, -checkpoint and -out may be other bytes)"
        );
        return ExitCode::from(1);
    }
    if e.use_stderr() {
        // clap quotes the offending argument: escaped like everything else.
        term::print_err(&e.render().to_string());
        return ExitCode::from(1);
    }
    // Help and version: our own text, styled when stdout is a terminal; a closed
    // pipe is not a failure.
    let _ = e.print();
    ExitCode::SUCCESS
}

fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let global = &cli.global;
    match cli.command {
        Command::Init => operator::init(global),
        Command::Secrets { command } => operator::secrets(global, command),
        Command::Write(args) => operator::write(global, args),
        Command::Read(args) => operator::read(global, args),
        Command::List(args) => operator::list(global, args),
        Command::Delete(args) => operator::delete(global, args),
        Command::Lease { command } => operator::lease(global, command),
        Command::Token { command } => operator::token(global, command),
        Command::Policy { command } => operator::policy(global, command),
        Command::Run => run::run(&global.location()?),
        Command::Server(args) => server::server(global, args),
        Command::Log { command } => log_admin::log(global, command),
        Command::Dev(args) => dev::dev(args),
        Command::Bench { args } => bench(&args),
        Command::Audit(args) => {
            let location = global.location()?;
            let json = global.format == Format::Json;
            audit::run(&location, json, args).map_err(Failure::Engine)
        }
    }
}

/// Runs `lessor-bench` from the directory holding this binary (where cargo and
/// `scripts/install` put it), else from PATH. It is a separate binary because it
/// links the engine's test support, which the `lessor` binary does not ship.
fn bench(args: &[String]) -> Result<ExitCode, Failure> {
    let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("lessor-bench")));
    let program = sibling.filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("lessor-bench"));
    let status = std::process::Command::new(&program).args(args).status().map_err(|e| {
        Failure::Local(format!(
            "cannot run {}: {e}; build it with `cargo build --release -p lessor-benches --bin lessor-bench`",
            program.display()
        ))
    })?;
    Ok(ExitCode::from(status.code().unwrap_or(2).clamp(0, 255) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    /// clap keeps one value per id: an argument of a subcommand with a global's id
    /// (`token`, `format`, …) reads the global's value and hides it from the
    /// subcommand's help — `token revoke TOKEN` authenticated as TOKEN that way.
    #[test]
    fn no_subcommand_argument_shares_an_id_with_a_global_flag() {
        let globals: Vec<String> =
            Cli::command().get_arguments().filter(|a| a.is_global_set()).map(|a| a.get_id().to_string()).collect();
        assert!(globals.contains(&"token".to_string()), "{globals:?}");
        fn walk(command: &clap::Command, path: &str, globals: &[String]) {
            for arg in command.get_arguments().filter(|a| !a.is_global_set()) {
                let id = arg.get_id().as_str();
                assert!(!globals.iter().any(|g| g == id), "`{path}` has an argument with the global id {id:?}");
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), globals);
            }
        }
        walk(&Cli::command(), "lessor", &globals);
    }

    #[test]
    fn token_positionals_are_the_target_and_the_global_token_the_caller() {
        let parse = |s: &str| Cli::try_parse_from(flags::normalize(s.split(' ').map(str::to_string))).unwrap();
        let cli = parse("lessor -token=lsr.caller token revoke lsr.target");
        assert_eq!(cli.global.token.as_deref(), Some("lsr.caller"));
        assert!(matches!(
            cli.command,
            Command::Token { command: operator::TokenCommand::Revoke { target: Some(ref t), self_: false, accessor: false } }
                if t == "lsr.target"
        ));
        let cli = parse("lessor token lookup --token=lsr.caller");
        assert!(matches!(cli.command, Command::Token { command: operator::TokenCommand::Lookup { target: None, .. } }));
        assert_eq!(cli.global.token.as_deref(), Some("lsr.caller"));
    }

    #[test]
    fn vault_spelled_commands_parse() {
        let parse = |s: &str| Cli::try_parse_from(flags::normalize(s.split(' ').map(str::to_string)));
        let cli = parse("lessor secrets enable -path=db-prod database").unwrap();
        assert!(
            matches!(cli.command, Command::Secrets { command: operator::SecretsCommand::Enable(ref a) } if a.path.as_deref() == Some("db-prod"))
        );
        let cli = parse("lessor token create -policy=a -policy=b -ttl=1h -display-name=app-A -format=json").unwrap();
        assert_eq!(cli.global.format, Format::Json);
        assert!(
            matches!(cli.command, Command::Token { command: operator::TokenCommand::Create(ref a) } if a.policy == ["a", "b"])
        );
        assert!(parse("lessor write -f database/rotate-root/my-postgresql").is_ok());
        assert!(parse("lessor lease revoke -prefix -force database/creds/").is_ok());
        assert!(parse("lessor lease renew -increment=1h database/creds/x/y").is_ok());
        assert!(parse("lessor secrets enable").is_err(), "the engine type is required");
    }
}
