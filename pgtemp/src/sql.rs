//! SQL helpers.

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

use crate::tls::tls_connector_no_verify;

/// One SQL statement (or connection attempt) of the harness.
pub(crate) const SQL_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `future` to completion on a private thread with its own runtime, so it works
/// from plain code and from inside any tokio runtime alike.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a tokio runtime for the PostgreSQL harness")
                .block_on(future)
        });
        thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "?".to_owned(),
    };
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("?"),
        host,
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_dbname().unwrap_or("?")
    )
}

/// Connects (TLS accepted, certificate not verified, as `sslmode` in `config` says) and
/// spawns the connection on the current runtime.
pub(crate) async fn connect_spawned(config: &Config) -> Result<Client, String> {
    let connect = config.connect(tls_connector_no_verify());
    let (client, connection) = match tokio::time::timeout(SQL_TIMEOUT, connect).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(format!("connect to {}: {}", describe(config), error_text(&e))),
        Err(_) => return Err(format!("connect to {}: timed out after {SQL_TIMEOUT:?}", describe(config))),
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

pub(crate) async fn query_rows(config: &Config, sql: &str) -> Result<Vec<SimpleQueryMessage>, String> {
    let client = connect_spawned(config).await?;
    match tokio::time::timeout(SQL_TIMEOUT, client.simple_query(sql)).await {
        Ok(Ok(messages)) => Ok(messages),
        Ok(Err(e)) => Err(format!("{sql:?} as {}: {}", describe(config), error_text(&e))),
        Err(_) => Err(format!("{sql:?} as {}: timed out after {SQL_TIMEOUT:?}", describe(config))),
    }
}

pub(crate) async fn execute(config: &Config, sql: &str) -> Result<(), String> {
    query_rows(config, sql).await.map(drop)
}

pub(crate) async fn query(config: &Config, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let messages = query_rows(config, sql).await?;
    Ok(messages
        .into_iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect())
}

pub(crate) fn first_value(rows: Vec<Vec<Option<String>>>, sql: &str) -> Option<String> {
    let row = rows.into_iter().next().unwrap_or_else(|| panic!("{sql:?} returned no row"));
    row.into_iter().next().unwrap_or_else(|| panic!("{sql:?} returned no column"))
}

/// The server's message (with its SQLSTATE) when there is one, else the error itself.
pub fn error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(inner) = source {
                let _ = write!(text, ": {inner}");
                source = inner.source();
            }
            text
        }
    }
}

/// `"name"` with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with inner quotes doubled (standard_conforming_strings is on).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
