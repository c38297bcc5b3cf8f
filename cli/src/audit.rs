//! `lessor audit …`: forensic tools over the log. They need no master key (except
//! `audit hash` and `--token`, which hash a value with the engine's key) and never
//! take the directory lock, so they run beside a live engine.

use std::path::Path;
use std::process::ExitCode;

/// Forensic replay over a data directory.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Walk every segment: crcs, hash chain, signed checkpoints.
    Verify,
}

/// Runs one audit command against `data_dir`. `master_key_file` is the
/// `LESSOR_MASTER_KEY_FILE` the user gave, if any.
pub fn run(data_dir: &Path, master_key_file: Option<&Path>, args: AuditArgs) -> Result<ExitCode, String> {
    let _ = (data_dir, master_key_file, args);
    Err("audit commands are not built yet".to_string())
}
