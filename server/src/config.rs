//! `lessor server -config=FILE`: Vault's configuration file shape, the parts
//! lessor honours.
//!
//! ```hcl
//! storage "file" { path = "/var/lib/lessor" }
//! listener "tcp" {
//!   address       = "0.0.0.0:8200"
//!   tls_cert_file = "/etc/lessor/tls.crt"
//!   tls_key_file  = "/etc/lessor/tls.key"
//!   # tls_disable = true   # plain HTTP: only behind a TLS-terminating proxy
//!   http_read_header_timeout    = "10s"   # Vault's names and defaults
//!   http_idle_timeout           = "5m"
//!   max_request_size            = 33554432
//!   max_request_duration        = "90s"
//!   max_connections             = 4096    # lessor's own
//!   max_connections_per_address = 512
//!   max_requests_in_flight      = 1024
//! }
//! api_addr  = "https://lessor.example.com:8200"
//! log_level = "info"
//! ```
//!
//! Anything else is refused with the name of what is not understood, so a
//! setting copied from a Vault config never silently does nothing.
//!
//! The limits sit in `listener "tcp"`, where Vault has them, but lessor applies
//! one set to the whole server: two listeners that give one of them different
//! values are refused, naming it. Durations are written as Vault writes them: a
//! number of seconds or a string such as `"10s"`, `"1m30s"`, `"500ms"`.

use std::path::PathBuf;
use std::time::Duration;

use hcl::{Block, Body, Expression};
use lessor_engine::request::parse_duration_ms;

use crate::listen::ConnectionLimits;
use crate::service::RequestLimits;
use crate::tls::TlsFiles;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the config file is not valid HCL: {0}")]
    Syntax(String),
    #[error("config: {0}")]
    Invalid(String),
}

/// A `listener "tcp"` block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `address`, default `127.0.0.1:8200` (Vault's).
    pub address: String,
    /// `None` only with `tls_disable = true`.
    pub tls: Option<TlsFiles>,
    /// The limits this block sets; [`Config::limits`] has the server's.
    pub limits: Limits,
}

/// The limits a `listener "tcp"` block may set; `None`: not set there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `http_read_header_timeout`.
    pub header_read_timeout: Option<Duration>,
    /// `http_idle_timeout`.
    pub idle_timeout: Option<Duration>,
    /// `max_request_size`, bytes.
    pub body_bytes_max: Option<usize>,
    /// `max_request_duration`.
    pub request_duration_max: Option<Duration>,
    /// `max_connections`.
    pub connections_max: Option<usize>,
    /// `max_connections_per_address`.
    pub connections_per_address_max: Option<usize>,
    /// `max_requests_in_flight`.
    pub requests_in_flight_max: Option<usize>,
}

impl Limits {
    /// Sets what this names on the server's limits, the rest left as they are.
    pub fn apply(&self, connections: &mut ConnectionLimits, requests: &mut RequestLimits) {
        if let Some(v) = self.header_read_timeout {
            connections.header_read_timeout = v;
        }
        if let Some(v) = self.idle_timeout {
            connections.idle_timeout = v;
        }
        if let Some(v) = self.body_bytes_max {
            requests.body_bytes_max = v;
        }
        if let Some(v) = self.request_duration_max {
            connections.request_duration_max = v;
        }
        if let Some(v) = self.connections_max {
            connections.connections_max = v;
        }
        if let Some(v) = self.connections_per_address_max {
            connections.connections_per_address_max = v;
        }
        if let Some(v) = self.requests_in_flight_max {
            connections.requests_in_flight_max = v;
        }
    }

    /// One set from every listener's: a setting given by several must agree.
    fn merge(listeners: &[ListenerConfig]) -> Result<Limits, ConfigError> {
        fn one<T: PartialEq + Copy + std::fmt::Debug>(
            listeners: &[ListenerConfig],
            name: &str,
            get: impl Fn(&Limits) -> Option<T>,
        ) -> Result<Option<T>, ConfigError> {
            let mut found: Option<T> = None;
            for value in listeners.iter().filter_map(|l| get(&l.limits)) {
                match found {
                    Some(seen) if seen != value => {
                        return Err(invalid(format!(
                            "listener \"tcp\": {name} differs between listeners ({seen:?} and {value:?}); lessor \
                             applies one value to the whole server, so give the same one (or set it once)"
                        )));
                    }
                    _ => found = Some(value),
                }
            }
            Ok(found)
        }
        Ok(Limits {
            header_read_timeout: one(listeners, "http_read_header_timeout", |l| l.header_read_timeout)?,
            idle_timeout: one(listeners, "http_idle_timeout", |l| l.idle_timeout)?,
            body_bytes_max: one(listeners, "max_request_size", |l| l.body_bytes_max)?,
            request_duration_max: one(listeners, "max_request_duration", |l| l.request_duration_max)?,
            connections_max: one(listeners, "max_connections", |l| l.connections_max)?,
            connections_per_address_max: one(listeners, "max_connections_per_address", |l| {
                l.connections_per_address_max
            })?,
            requests_in_flight_max: one(listeners, "max_requests_in_flight", |l| l.requests_in_flight_max)?,
        })
    }
}

/// The configuration file, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    /// `storage "file" { path }`: the data directory; with `storage
    /// "postgresql"`, its `path`: the directory that keeps the master key, the
    /// head file and the snapshot cache.
    pub data_dir: PathBuf,
    /// `storage "postgresql" { connection_url, stream, path }`: the log in
    /// PostgreSQL.
    pub postgresql: Option<PostgresqlStorage>,
    pub api_addr: Option<String>,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub log_level: Option<String>,
    /// `telemetry { unauthenticated_metrics_access = true }`.
    pub metrics_unauthenticated: bool,
    /// The server's limits, from the listener blocks.
    pub limits: Limits,
}

/// `storage "postgresql"`: where the log's rows are. Its `Debug` masks the
/// URL's password.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresqlStorage {
    pub connection_url: String,
    pub stream: String,
}

impl std::fmt::Debug for PostgresqlStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The engine's own options mask it.
        std::fmt::Debug::fmt(&self.options(), f)
    }
}

impl PostgresqlStorage {
    /// The engine's options for this log.
    pub fn options(&self) -> lessor_engine::PgLogOptions {
        lessor_engine::PgLogOptions::new(self.connection_url.clone(), self.stream.clone())
    }
}

const LOG_LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

impl Config {
    pub fn read(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Config::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let body: Body = hcl::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let mut listeners = Vec::new();
        let mut data_dir = None;
        let mut postgresql = None;
        let mut api_addr = None;
        let mut log_level = None;
        let mut metrics_unauthenticated = false;
        for attribute in body.attributes() {
            match attribute.key() {
                "api_addr" => api_addr = Some(string(attribute.expr(), "api_addr")?),
                "log_level" => {
                    let level = string(attribute.expr(), "log_level")?.to_ascii_lowercase();
                    if !LOG_LEVELS.contains(&level.as_str()) {
                        return Err(invalid(format!("log_level \"{level}\": use one of {}", LOG_LEVELS.join(", "))));
                    }
                    log_level = Some(level);
                }
                // Vault settings that have no meaning for one lessor node.
                "ui" | "disable_mlock" | "cluster_addr" | "cluster_name" => {}
                other => return Err(invalid(format!("unknown setting \"{other}\""))),
            }
        }
        for block in body.blocks() {
            match (block.identifier(), labels(block).as_slice()) {
                ("listener", ["tcp"]) => listeners.push(listener(block)?),
                ("listener", other) => {
                    return Err(invalid(format!("listener {other:?}: only listener \"tcp\" is supported")));
                }
                ("storage", ["file"]) => {
                    if data_dir.is_some() {
                        return Err(invalid("more than one storage block; give one"));
                    }
                    data_dir = Some(storage_file(block)?);
                }
                ("storage", ["postgresql"]) => {
                    if data_dir.is_some() {
                        return Err(invalid("more than one storage block; give one"));
                    }
                    let (dir, pg) = storage_postgresql(block)?;
                    data_dir = Some(dir);
                    postgresql = Some(pg);
                }
                ("storage", other) => {
                    return Err(invalid(format!(
                        "storage {other:?}: use storage \"file\" {{ path = \"DIR\" }} or storage \"postgresql\" \
                         {{ connection_url = \"…\", stream = \"NAME\", path = \"DIR\" }}"
                    )));
                }
                ("telemetry", []) => {
                    for attribute in block.body().attributes() {
                        match attribute.key() {
                            "unauthenticated_metrics_access" => {
                                metrics_unauthenticated = boolean(attribute.expr(), "unauthenticated_metrics_access")?
                            }
                            "disable_hostname" | "prometheus_retention_time" => {}
                            other => return Err(invalid(format!("telemetry: unknown setting \"{other}\""))),
                        }
                    }
                }
                (other, _) => return Err(invalid(format!("unknown block \"{other}\""))),
            }
        }
        if listeners.is_empty() {
            return Err(invalid("no listener: add listener \"tcp\" { address = \"127.0.0.1:8200\" … }"));
        }
        let data_dir = data_dir.ok_or_else(|| invalid("no storage: add storage \"file\" { path = \"DIR\" }"))?;
        let limits = Limits::merge(&listeners)?;
        Ok(Config { listeners, data_dir, postgresql, api_addr, log_level, metrics_unauthenticated, limits })
    }
}

fn invalid(message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(message.into())
}

fn labels(block: &Block) -> Vec<&str> {
    block.labels().iter().map(|l| l.as_str()).collect()
}

fn string(expr: &Expression, name: &str) -> Result<String, ConfigError> {
    match expr {
        Expression::String(s) => Ok(s.clone()),
        _ => Err(invalid(format!("{name} must be a string"))),
    }
}

/// A boolean, also as Vault accepts it: `"true"`, `"false"`, `1`, `0`.
fn boolean(expr: &Expression, name: &str) -> Result<bool, ConfigError> {
    match expr {
        Expression::Bool(b) => Ok(*b),
        Expression::String(s) if s == "true" || s == "1" => Ok(true),
        Expression::String(s) if s == "false" || s == "0" => Ok(false),
        Expression::Number(n) if n.as_u64() == Some(1) => Ok(true),
        Expression::Number(n) if n.as_u64() == Some(0) => Ok(false),
        _ => Err(invalid(format!("{name} must be true or false"))),
    }
}

/// A duration as Vault's config takes one: a number of seconds, or a string
/// such as `"10s"`, `"1m30s"`, `"500ms"`; more than zero.
fn duration(expr: &Expression, name: &str) -> Result<Duration, ConfigError> {
    let hint = || invalid(format!("{name} must be a duration such as \"10s\", \"1m\" or a number of seconds"));
    let ms = match expr {
        Expression::Number(n) => n.as_u64().and_then(|s| s.checked_mul(1000)).ok_or_else(hint)?,
        Expression::String(s) => parse_duration_ms(s).map_err(|e| invalid(format!("{name} \"{s}\": {e}")))?,
        _ => return Err(hint()),
    };
    if ms == 0 {
        return Err(invalid(format!("{name} must be more than 0")));
    }
    Ok(Duration::from_millis(ms))
}

/// A count or a size: a positive integer, also written as a string.
fn positive(expr: &Expression, name: &str) -> Result<usize, ConfigError> {
    let n = match expr {
        Expression::Number(n) => n.as_u64(),
        Expression::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n.and_then(|n| usize::try_from(n).ok()) {
        Some(0) => Err(invalid(format!("{name} must be more than 0"))),
        Some(n) => Ok(n),
        None => Err(invalid(format!("{name} must be a positive whole number"))),
    }
}

fn listener(block: &Block) -> Result<ListenerConfig, ConfigError> {
    let mut address = "127.0.0.1:8200".to_string();
    let mut cert = None;
    let mut key = None;
    let mut tls_disable = false;
    let mut limits = Limits::default();
    for attribute in block.body().attributes() {
        let (name, expr) = (attribute.key(), attribute.expr());
        match name {
            "address" => address = string(expr, "listener.address")?,
            "tls_cert_file" => cert = Some(PathBuf::from(string(expr, "listener.tls_cert_file")?)),
            "tls_key_file" => key = Some(PathBuf::from(string(expr, "listener.tls_key_file")?)),
            "tls_disable" => tls_disable = boolean(expr, "listener.tls_disable")?,
            "http_read_header_timeout" => limits.header_read_timeout = Some(duration(expr, name)?),
            "http_idle_timeout" => limits.idle_timeout = Some(duration(expr, name)?),
            "max_request_duration" => limits.request_duration_max = Some(duration(expr, name)?),
            // Vault: 0 means its default, a negative number no limit; lessor
            // always has one, so only a positive size is taken.
            "max_request_size" => limits.body_bytes_max = Some(positive(expr, name)?),
            "max_connections" => limits.connections_max = Some(positive(expr, name)?),
            "max_connections_per_address" => limits.connections_per_address_max = Some(positive(expr, name)?),
            "max_requests_in_flight" => limits.requests_in_flight_max = Some(positive(expr, name)?),
            other => return Err(invalid(format!("listener \"tcp\": unknown setting \"{other}\""))),
        }
    }
    let tls = match (tls_disable, cert, key) {
        (true, None, None) => None,
        (true, _, _) => {
            return Err(invalid("listener \"tcp\": tls_disable = true with a certificate; give one or the other"));
        }
        (false, Some(cert_file), Some(key_file)) => Some(TlsFiles { cert_file, key_file }),
        (false, _, _) => {
            return Err(invalid(format!(
                "listener \"tcp\" at {address}: TLS needs tls_cert_file and tls_key_file; to serve plain HTTP \
                 (behind a TLS-terminating proxy only) set tls_disable = true"
            )));
        }
    };
    Ok(ListenerConfig { address, tls, limits })
}

fn storage_file(block: &Block) -> Result<PathBuf, ConfigError> {
    let mut path = None;
    for attribute in block.body().attributes() {
        match attribute.key() {
            "path" => path = Some(PathBuf::from(string(attribute.expr(), "storage.path")?)),
            other => return Err(invalid(format!("storage \"file\": unknown setting \"{other}\""))),
        }
    }
    path.ok_or_else(|| invalid("storage \"file\" needs path = \"DIR\""))
}

/// `storage "postgresql" { connection_url, stream, path }`: `path` is the local
/// directory for the master key, the head file and the snapshot cache.
fn storage_postgresql(block: &Block) -> Result<(PathBuf, PostgresqlStorage), ConfigError> {
    let (mut url, mut stream, mut path) = (None, None, None);
    for attribute in block.body().attributes() {
        match attribute.key() {
            "connection_url" => url = Some(string(attribute.expr(), "storage.connection_url")?),
            "stream" => stream = Some(string(attribute.expr(), "storage.stream")?),
            "path" => path = Some(PathBuf::from(string(attribute.expr(), "storage.path")?)),
            other => {
                return Err(invalid(format!(
                    "storage \"postgresql\": unknown setting \"{other}\" (known: connection_url, stream, path)"
                )));
            }
        }
    }
    let needs = |what: &str| invalid(format!("storage \"postgresql\" needs {what}"));
    let connection_url = url.ok_or_else(|| needs("connection_url = \"postgresql://ROLE:PASSWORD@HOST:5432/DB\""))?;
    let stream = stream.ok_or_else(|| needs("stream = \"NAME\" (this engine's stream)"))?;
    let path = path.ok_or_else(|| needs("path = \"DIR\" (the master key, head file and snapshot cache)"))?;
    Ok((path, PostgresqlStorage { connection_url, stream }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vaults_shape() {
        let config = Config::parse(
            r#"
            storage "file" { path = "/var/lib/lessor" }
            listener "tcp" {
              address = "0.0.0.0:8200"
              tls_cert_file = "/c.pem"
              tls_key_file = "/k.pem"
            }
            listener "tcp" {
              address = "127.0.0.1:8201"
              tls_disable = "true"
            }
            api_addr = "https://x:8200"
            log_level = "Info"
            "#,
        )
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/lessor"));
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(config.listeners[0].tls.as_ref().unwrap().cert_file, PathBuf::from("/c.pem"));
        assert_eq!(config.listeners[1].tls, None);
        assert_eq!(config.log_level.as_deref(), Some("info"));
    }

    #[test]
    fn refusals_name_the_setting() {
        let no_tls = Config::parse("storage \"file\" { path = \"/d\" }\nlistener \"tcp\" { address = \"x:1\" }");
        assert!(matches!(no_tls, Err(ConfigError::Invalid(m)) if m.contains("tls_disable")));
        let unknown = Config::parse("storage \"file\" { path = \"/d\" }\nlisten \"tcp\" {}");
        assert!(matches!(unknown, Err(ConfigError::Invalid(m)) if m.contains("listen")));
        let pg = Config::parse("storage \"postgresql\" {}\nlistener \"tcp\" { tls_disable = true }");
        assert!(matches!(pg, Err(ConfigError::Invalid(m)) if m.contains("connection_url")));
        let pg = Config::parse(
            "storage \"postgresql\" {\n connection_url = \"postgresql://r:pw@h/db\"\n path = \"/d\"\n}\n\
             listener \"tcp\" { tls_disable = true }",
        );
        assert!(matches!(pg, Err(ConfigError::Invalid(m)) if m.contains("stream")));
        let pg = Config::parse(
            "storage \"postgresql\" {\n connection_url = \"postgresql://r:s3cret@h/db\"\n stream = \"app\"\n \
             path = \"/d\"\n}\nlistener \"tcp\" { tls_disable = true }",
        )
        .unwrap();
        assert_eq!(pg.data_dir, PathBuf::from("/d"));
        let storage = pg.postgresql.as_ref().unwrap();
        assert_eq!((storage.connection_url.as_str(), storage.stream.as_str()), ("postgresql://r:s3cret@h/db", "app"));
        assert!(!format!("{pg:?}").contains("s3cret"), "the password is masked: {pg:?}");
        assert!(matches!(Config::parse("listener \"tcp\" {"), Err(ConfigError::Syntax(_))));
    }

    fn with_listener(settings: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!(
            "storage \"file\" {{ path = \"/d\" }}\nlistener \"tcp\" {{\ntls_disable = true\n{settings}\n}}"
        ))
    }

    #[test]
    fn limits_with_vaults_names() {
        let config = with_listener(
            r#"
            http_read_header_timeout = "1s"
            http_idle_timeout = "1m30s"
            max_request_size = 1024
            max_request_duration = 20
            max_connections = "100"
            max_connections_per_address = 4
            max_requests_in_flight = 1
            "#,
        )
        .unwrap();
        let (mut connections, mut requests) = (ConnectionLimits::default(), RequestLimits::default());
        config.limits.apply(&mut connections, &mut requests);
        assert_eq!(connections.header_read_timeout, Duration::from_secs(1));
        assert_eq!(connections.idle_timeout, Duration::from_secs(90));
        assert_eq!(connections.request_duration_max, Duration::from_secs(20));
        assert_eq!(requests.body_bytes_max, 1024);
        assert_eq!(connections.connections_max, 100);
        assert_eq!(connections.connections_per_address_max, 4);
        assert_eq!(connections.requests_in_flight_max, 1);
        // Unset: the defaults stay (Vault's 32 MiB body cap).
        let config = with_listener("").unwrap();
        let (mut connections, mut requests) = (ConnectionLimits::default(), RequestLimits::default());
        config.limits.apply(&mut connections, &mut requests);
        assert_eq!(requests.body_bytes_max, 32 << 20);
        assert_eq!(connections.idle_timeout, ConnectionLimits::default().idle_timeout);
    }

    #[test]
    fn bad_limits_name_the_setting() {
        for (setting, name) in [
            ("http_read_header_timeout = \"soon\"", "http_read_header_timeout"),
            ("http_idle_timeout = \"0s\"", "http_idle_timeout"),
            ("max_request_size = -1", "max_request_size"),
            ("max_request_size = 0", "max_request_size"),
            ("max_connections = true", "max_connections"),
            ("max_request_duration = \"10 parsecs\"", "max_request_duration"),
            ("http_write_timeout = \"10s\"", "http_write_timeout"),
        ] {
            match with_listener(setting) {
                Err(ConfigError::Invalid(m)) => assert!(m.contains(name), "{setting}: {m}"),
                other => panic!("{setting}: {other:?}"),
            }
        }
        let two = Config::parse(
            "storage \"file\" { path = \"/d\" }\n\
             listener \"tcp\" {\ntls_disable = true\nmax_request_size = 1\n}\n\
             listener \"tcp\" {\ntls_disable = true\nmax_request_size = 2\n}",
        );
        assert!(matches!(two, Err(ConfigError::Invalid(m)) if m.contains("max_request_size")));
    }
}
