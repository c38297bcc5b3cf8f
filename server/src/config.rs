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
//! }
//! api_addr  = "https://lessor.example.com:8200"
//! log_level = "info"
//! ```
//!
//! Anything else is refused with the name of what is not understood, so a
//! setting copied from a Vault config never silently does nothing.

use std::path::PathBuf;

use hcl::{Block, Body, Expression};

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
}

/// The configuration file, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub listeners: Vec<ListenerConfig>,
    /// `storage "file" { path }`: the data directory.
    pub data_dir: PathBuf,
    pub api_addr: Option<String>,
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub log_level: Option<String>,
    /// `telemetry { unauthenticated_metrics_access = true }`.
    pub metrics_unauthenticated: bool,
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
                    return Err(invalid(
                        "storage \"postgresql\" is not available yet; use storage \"file\" { path = \"DIR\" }",
                    ));
                }
                ("storage", other) => {
                    return Err(invalid(format!("storage {other:?}: use storage \"file\" {{ path = \"DIR\" }}")));
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
        Ok(Config { listeners, data_dir, api_addr, log_level, metrics_unauthenticated })
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

fn listener(block: &Block) -> Result<ListenerConfig, ConfigError> {
    let mut address = "127.0.0.1:8200".to_string();
    let mut cert = None;
    let mut key = None;
    let mut tls_disable = false;
    for attribute in block.body().attributes() {
        match attribute.key() {
            "address" => address = string(attribute.expr(), "listener.address")?,
            "tls_cert_file" => cert = Some(PathBuf::from(string(attribute.expr(), "listener.tls_cert_file")?)),
            "tls_key_file" => key = Some(PathBuf::from(string(attribute.expr(), "listener.tls_key_file")?)),
            "tls_disable" => tls_disable = boolean(attribute.expr(), "listener.tls_disable")?,
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
    Ok(ListenerConfig { address, tls })
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
        assert!(matches!(pg, Err(ConfigError::Invalid(m)) if m.contains("postgresql")));
        assert!(matches!(Config::parse("listener \"tcp\" {"), Err(ConfigError::Syntax(_))));
    }
}
