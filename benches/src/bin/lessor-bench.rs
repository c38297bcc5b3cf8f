//! `lessor-bench`: the issuance load generator (see `lessor_benches::loadgen`),
//! and with `http` the HTTP issuance benchmark, `lessor server` against OpenBao
//! (see `lessor_benches::http`).
//!
//! ```text
//! cargo run --release -p lessor-benches --bin lessor-bench -- \
//!     --concurrency 1,2,4,8 --statements article,membership --rounds 3 --per-round 200
//! scripts/bench-openbao      # raw, lessor, OpenBao (raft) and lessor server, same PostgreSQL
//! target/release/lessor-bench --systems raw,lessor --rtt-ms 1 --raw-client naive
//! cargo build --release -p lessor-cli -p lessor-benches
//! target/release/lessor bench http --clients 1,2,4,8 --duration 10 --rounds 3
//! ```

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "lessor-bench",
    about = "Credentials per second through lessor against the same SQL run raw (and OpenBao, lessor server: \
             --systems); `http`: lessor server against OpenBao",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    args: lessor_benches::loadgen::LoadgenArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Issuance over Vault's HTTP API: `lessor server` against OpenBao's `bao server` (raft), same PostgreSQL
    /// and role, keep-alive clients, rounds alternated; and the HTTP layer's CPU per request.
    Http(lessor_benches::http::HttpArgs),
}

fn main() {
    let cli = Cli::parse();
    let database_url = match &cli.command {
        Some(Sub::Http(args)) => args.database_url.is_some(),
        None => cli.args.database_url.is_some(),
    };
    if !database_url && std::env::var_os(lessor_pgtemp::ENV_PG_TMPDIR).is_none() {
        // The throwaway cluster would go to /dev/shm, where fsync costs nothing; a
        // real server's data is on disk, like lessor's log, so put it there.
        // SAFETY: nothing else runs yet (no runtime, no threads), so no other
        // thread can read the environment while it changes.
        unsafe { std::env::set_var(lessor_pgtemp::ENV_PG_TMPDIR, std::env::temp_dir()) };
    }
    match cli.command {
        Some(Sub::Http(args)) => http(args),
        None => loadgen(cli.args),
    }
}

fn loadgen(args: lessor_benches::loadgen::LoadgenArgs) {
    match lessor_benches::loadgen::run(args) {
        Ok(report) => {
            print!("{}", report.table());
            println!(
                "wrote {}, {} and {}",
                report.csv_path.display(),
                report.summary_csv_path.display(),
                report.svg_path.display()
            );
            if !report.leftover_roles.is_empty() {
                eprintln!("lessor-bench: {} roles of this run could not be dropped", report.leftover_roles.len());
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("lessor-bench: {e}");
            std::process::exit(1);
        }
    }
}

fn http(args: lessor_benches::http::HttpArgs) {
    match lessor_benches::http::run(args) {
        Ok(report) => {
            print!("{}", report.table());
            println!("wrote {} and {}", report.csv_path.display(), report.overhead_csv_path.display());
            let unsound = report
                .measurements
                .iter()
                .filter(|m| m.missing_users > 0 || m.revoke_failed > 0 || m.users_left > 0)
                .count();
            if unsound > 0 {
                eprintln!(
                    "lessor-bench http: {unsound} rounds handed out users that did not exist or were not revoked"
                );
            }
            if !report.leftover_roles.is_empty() {
                eprintln!("lessor-bench http: {} roles of this run could not be dropped", report.leftover_roles.len());
            }
            if unsound > 0 || !report.leftover_roles.is_empty() {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("lessor-bench http: {e}");
            std::process::exit(1);
        }
    }
}
