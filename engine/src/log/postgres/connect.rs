//! One connection to the log's database, with TLS as a mount's connection has it.

use std::time::Duration;

/// How long a connection attempt to the log's database may take.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Connects to `url` (libpq's `sslmode` and `sslrootcert` understood) as
/// `application_name`; the connection's task runs on the current runtime.
pub async fn connect(url: &str, application_name: &str) -> Result<tokio_postgres::Client, String> {
    let (mut config, tls) = crate::plugin::client_config(url).map_err(|e| e.to_string())?;
    config.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
    config.application_name(application_name);
    let (client, connection) =
        config.connect(tls).await.map_err(|e| format!("cannot connect to the log's database: {}", error_text(e)))?;
    tokio::spawn(async move {
        // The client reports a lost connection on its next call.
        let _ = connection.await;
    });
    Ok(client)
}

/// A driver error as one line: the server's message with its detail and hint,
/// or the client-side cause chain (the plugin's reading of it).
pub fn error_text(e: tokio_postgres::Error) -> String {
    crate::plugin::db_error(e).to_string()
}
