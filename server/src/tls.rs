//! The listener's TLS: a certificate chain and key from PEM files, swapped in
//! place on reload (SIGHUP), so a renewed certificate takes effect for new
//! connections without dropping the ones open. A reload that fails keeps the
//! certificate in use and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("tls_cert_file {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("tls_key_file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("tls_cert_file and tls_key_file do not go together: {0}")]
    Mismatch(String),
}

/// The files a listener's TLS comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The TLS configuration in use, replaceable.
#[derive(Debug)]
pub(crate) struct Tls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    pub(crate) fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let config = build(&files)?;
        Ok(Tls { files, current: RwLock::new(config) })
    }

    /// The configuration for a new connection.
    pub(crate) fn config(&self) -> Arc<ServerConfig> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Reads the files again; on success new connections use them.
    pub(crate) fn reload(&self) -> Result<(), TlsError> {
        let config = build(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(())
    }
}

fn read_private(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))
}

fn build(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_path = files.cert_file.display().to_string();
    let key_path = files.key_file.display().to_string();
    let cert_pem =
        read_private(&files.cert_file).map_err(|reason| TlsError::Cert { path: cert_path.clone(), reason })?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert { path: cert_path.clone(), reason: format!("not PEM certificates: {e}") })?;
    if chain.is_empty() {
        return Err(TlsError::Cert { path: cert_path, reason: "holds no PEM certificate".into() });
    }
    let key_pem = read_private(&files.key_file).map_err(|reason| TlsError::Key { path: key_path.clone(), reason })?;
    // The key's error never quotes the file: it is a secret.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Key {
        path: key_path.clone(),
        reason: "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
    })?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    // HTTP/1.1 only: every Vault client speaks it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
