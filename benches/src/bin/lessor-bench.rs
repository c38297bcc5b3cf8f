//! `lessor-bench`: the issuance load generator (see `lessor_benches::loadgen`).
//!
//! ```text
//! cargo run --release -p lessor-benches --bin lessor-bench -- \
//!     --concurrency 1,2,4,8 --statements article,membership --rounds 3 --per-round 200
//! ```

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "lessor-bench", about = "Credentials per second through lessor against the same SQL run raw")]
struct Cli {
    #[command(flatten)]
    args: lessor_benches::loadgen::LoadgenArgs,
}

fn main() {
    let cli = Cli::parse();
    if cli.args.database_url.is_none() && std::env::var_os(lessor_pgtemp::ENV_PG_TMPDIR).is_none() {
        // The throwaway cluster would go to /dev/shm, where fsync costs nothing; a
        // real server's data is on disk, like lessor's log, so put it there.
        // SAFETY: nothing else runs yet (no runtime, no threads), so no other
        // thread can read the environment while it changes.
        unsafe { std::env::set_var(lessor_pgtemp::ENV_PG_TMPDIR, std::env::temp_dir()) };
    }
    match lessor_benches::loadgen::run(cli.args) {
        Ok(report) => {
            print!("{}", report.table());
            println!("wrote {} and {}", report.csv_path.display(), report.svg_path.display());
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
