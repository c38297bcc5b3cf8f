//! TLS for the PostgreSQL plugin, as libpq's `sslmode` means it: tokio-postgres
//! knows only disable / prefer / require, so `sslmode` and `sslrootcert` are lifted
//! out of the URL here and become a rustls configuration (ring) with one of two
//! verifiers: none at all (`prefer`, and `require` without a CA), or the chain
//! without the host name (`verify-ca`, and `require` with a CA, as libpq does).
//! `verify-full` is rustls's own verification.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;

use super::PluginError;
use super::postgres::config_error;

/// TLS parameters lifted out of the URL (tokio-postgres knows only disable /
/// prefer / require).
pub(super) struct TlsParams {
    pub(super) mode: String,
    pub(super) root_cert: Option<String>,
}

/// A PostgreSQL URL read as the plugin reads it (libpq's `sslmode` and
/// `sslrootcert` included): the driver's configuration and its TLS connector,
/// for connections other than a mount's (the log in PostgreSQL).
pub(crate) fn client_config(
    url: &str,
) -> Result<(tokio_postgres::Config, tokio_postgres_rustls::MakeRustlsConnect), PluginError> {
    use std::str::FromStr;
    let (url, params) = take_tls_params(url);
    let mut config =
        tokio_postgres::Config::from_str(&url).map_err(|e| config_error(format!("not a valid PostgreSQL URL: {e}")))?;
    let (mode, client) = tls_config(&params)?;
    config.ssl_mode(mode);
    Ok((config, tokio_postgres_rustls::MakeRustlsConnect::new(client)))
}

/// Splits `sslmode` and `sslrootcert` off the URL's query string.
pub(super) fn take_tls_params(url: &str) -> (String, TlsParams) {
    let mut params = TlsParams { mode: "prefer".into(), root_cert: None };
    let Some((base, query)) = url.split_once('?') else { return (url.to_string(), params) };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => params.mode = v.to_string(),
            Some(("sslrootcert", v)) => params.root_cert = Some(percent_decode(v)),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    (url, params)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

pub(super) fn tls_config(params: &TlsParams) -> Result<(SslMode, ClientConfig), PluginError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let roots = || -> Result<RootCertStore, PluginError> {
        let path = params.root_cert.as_deref().ok_or_else(|| {
            config_error(format!("sslmode={} needs sslrootcert=<path to the CA certificate>", params.mode))
        })?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| config_error(format!("sslrootcert {path}: {e}")))? {
            roots.add(cert.map_err(|e| config_error(format!("sslrootcert {path}: {e}")))?).map_err(config_error)?;
        }
        Ok(roots)
    };
    let no_verify = || NoVerification(provider.clone());
    let (mode, config) = match params.mode.as_str() {
        "disable" => (
            SslMode::Disable,
            builder.dangerous().with_custom_certificate_verifier(Arc::new(no_verify())).with_no_client_auth(),
        ),
        "allow" | "prefer" => (
            SslMode::Prefer,
            builder.dangerous().with_custom_certificate_verifier(Arc::new(no_verify())).with_no_client_auth(),
        ),
        "require" if params.root_cert.is_none() => (
            SslMode::Require,
            builder.dangerous().with_custom_certificate_verifier(Arc::new(no_verify())).with_no_client_auth(),
        ),
        "require" | "verify-ca" => {
            let inner =
                rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots()?), provider.clone())
                    .build()
                    .map_err(config_error)?;
            let verifier = Arc::new(ChainOnly(inner));
            (SslMode::Require, builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth())
        }
        "verify-full" => (SslMode::Require, builder.with_root_certificates(roots()?).with_no_client_auth()),
        other => {
            return Err(config_error(format!(
                "sslmode={other} is not supported; use disable, prefer, require, verify-ca or verify-full"
            )));
        }
    };
    Ok((mode, config))
}

/// `sslmode=require` without a CA: encrypt, do not verify (libpq's meaning).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to the given CA; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_params_are_lifted_out_of_the_url() {
        let (url, p) =
            take_tls_params("postgresql://u:p@h:5432/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&x=1");
        assert_eq!(url, "postgresql://u:p@h:5432/db?x=1");
        assert_eq!((p.mode.as_str(), p.root_cert.as_deref()), ("verify-full", Some("/tmp/ca.pem")));
        let (url, p) = take_tls_params("postgresql://u:p@h/db");
        assert_eq!((url.as_str(), p.mode.as_str()), ("postgresql://u:p@h/db", "prefer"));
    }

    #[test]
    fn unsupported_sslmode_and_missing_root_cert_are_config_errors() {
        let p = TlsParams { mode: "verify-full".into(), root_cert: None };
        assert!(tls_config(&p).unwrap_err().to_string().contains("sslrootcert"));
        let p = TlsParams { mode: "bogus".into(), root_cert: None };
        assert!(tls_config(&p).unwrap_err().to_string().contains("not supported"));
    }
}
