//! `lessor run`: hosts the engine in the foreground — recovery, then the expirer
//! revoking leases as they expire — until SIGINT or SIGTERM. While it runs it
//! holds the directory lock, so other commands say which process has it.

use std::process::ExitCode;

use crate::Failure;
use crate::session::{Location, Session};
use crate::term::errln;

pub fn run(location: &Location) -> Result<ExitCode, Failure> {
    let session = Session::open(location).map_err(Failure::Engine)?;
    // The handlers first, the banner after: whoever waits for the banner may
    // signal at once, and a signal before the handlers would kill the process
    // uncleanly (the default disposition).
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = session.block_on(async {
        Ok::<_, std::io::Error>((signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?))
    })?;
    let (leases, last_lsn) = (session.engine().with_state(|s| s.leases.len()), session.engine().last_lsn());
    errln!(
        "lessor {} running on {} (pid {}): {}, log at LSN {last_lsn}. Stop with Ctrl-C or SIGTERM.",
        env!("CARGO_PKG_VERSION"),
        location.data_dir.display(),
        std::process::id(),
        crate::term::count(leases, "lease", "leases"),
    );
    let signal = session.block_on(async {
        tokio::select! {
            _ = term.recv() => Ok::<_, std::io::Error>("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    })?;
    errln!("{signal}: stopping the expirer and flushing the log");
    session.close();
    errln!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}
