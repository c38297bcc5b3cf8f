//! `lessor log …`: the log's store. `init-postgresql` creates (or brings up to
//! date) the tables of a log kept in PostgreSQL, run as the role that is to own
//! them, and grants the engines' role only what appending needs
//! (`docs/DESIGN.md` §11).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use lessor_engine::log::postgres::{InitOptions, SchemaError, init_schema};

use crate::Failure;
use crate::term::outln;

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Create the tables of a log kept in PostgreSQL, or bring them to this
    /// version; run as the role that is to own them (never the engines' role).
    InitPostgresql(InitPostgresqlArgs),
}

/// The log's database comes from the global `-log-url` (`LESSOR_LOG_URL`),
/// here as the tables' owner: postgresql://OWNER:PASSWORD@HOST:5432/DB.
#[derive(Args, Debug)]
pub struct InitPostgresqlArgs {
    /// The role the engines log in as: granted SELECT and INSERT on the log
    /// (never UPDATE, DELETE or TRUNCATE) and what streams and snapshots need.
    #[arg(long = "engine-role", value_name = "ROLE")]
    engine_role: Option<String>,
}

pub fn log(global: &crate::Global, command: LogCommand) -> Result<ExitCode, Failure> {
    match command {
        LogCommand::InitPostgresql(args) => {
            let url = global.log_url.as_deref().ok_or_else(|| {
                Failure::Local(
                    "no log database: pass -log-url=postgresql://OWNER:PASSWORD@HOST:5432/DB (or set \
                     LESSOR_LOG_URL), as the role that is to own the tables"
                        .into(),
                )
            })?;
            init_postgresql(url, args)
        }
    }
}

fn init_postgresql(log_url: &str, args: InitPostgresqlArgs) -> Result<ExitCode, Failure> {
    let options = match &args.engine_role {
        Some(role) => InitOptions::with_engine_role(role.clone()),
        None => InitOptions::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Local(format!("cannot start the runtime: {e}")))?;
    let report = runtime.block_on(init_schema(log_url, &options)).map_err(|e| match e {
        SchemaError::Role { .. } => Failure::Local(format!("-engine-role: {e}")),
        other => Failure::Engine(format!("-log-url: {other}")),
    })?;
    if report.version_before == report.version {
        outln!("The log's tables are at schema version {}: nothing to do.", report.version);
    } else if report.version_before == 0 {
        outln!("Created the log's tables (schema version {}).", report.version);
    } else {
        outln!("Migrated the log's tables from schema version {} to {}.", report.version_before, report.version);
    }
    match &report.engine_role {
        Some(role) => outln!(
            "Granted {role}: SELECT, INSERT on lessor_log (no UPDATE, DELETE or TRUNCATE); SELECT, INSERT, UPDATE \
             on lessor_stream; SELECT, INSERT, DELETE on lessor_snapshot."
        ),
        None => outln!("No engine role named (-engine-role): grant the engines' role its privileges by hand."),
    }
    Ok(ExitCode::SUCCESS)
}
