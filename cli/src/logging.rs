//! The server's own log on stderr: the engine's and the server's `tracing`
//! events (an expirer that cannot record revocations, a certificate reload
//! that failed, requests cut off at shutdown) at the configured `log_level`.
//! Nothing logged carries a secret: the engine's events name leases, accessors
//! and errors, never tokens or passwords.

use tracing::level_filters::LevelFilter;

/// Installs the stderr logger at `level` (`trace` … `error`; default `info`).
/// A second call (tests) leaves the first in place.
pub fn init(level: Option<&str>) {
    let filter = match level.unwrap_or("info") {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "warn" => LevelFilter::WARN,
        "error" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(filter)
        .with_target(false)
        .with_ansi(false)
        .try_init();
}
