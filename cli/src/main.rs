//! `lessor`: the command-line tool.
//!
//! For now it only answers `--version` and `--help`. The Vault-like subcommands
//! (mounts, connections, roles, leases, tokens) and the forensic tools over the log
//! (verify, replay, query, export) arrive later as `clap` subcommands on [`Cli`],
//! each a thin call into `lessor-engine`.

use clap::Parser;

/// Replay allocates a few short strings per event; mimalloc keeps that cheap
/// (glibc's malloc costs a third of replay throughput here; see the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Dynamic, short-lived database credentials from an event-sourced engine.
///
/// Subcommands arrive in later releases; this build only prints its version and help.
#[derive(Debug, Parser)]
#[command(name = "lessor", version, arg_required_else_help = true)]
struct Cli {}

fn main() {
    let Cli {} = Cli::parse();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
