//! Serving https: the certificate chain and key named by TLS_CERT_FILE and TLS_KEY_FILE,
//! read once at start.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An acceptor when both variables are set, None when neither is.
pub fn acceptor_from_env() -> Result<Option<TlsAcceptor>, BoxError> {
    let cert_file = std::env::var_os("TLS_CERT_FILE");
    let key_file = std::env::var_os("TLS_KEY_FILE");
    let (cert_file, key_file) = match (cert_file, key_file) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => return Err("set both TLS_CERT_FILE and TLS_KEY_FILE, or neither".into()),
    };
    let read = |what: &str, path: &std::ffi::OsStr, error: &dyn std::fmt::Display| {
        format!("{what} {}: {error}", path.to_string_lossy())
    };
    let chain = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read("TLS_CERT_FILE", &cert_file, &e))?;
    if chain.is_empty() {
        return Err(read("TLS_CERT_FILE", &cert_file, &"no certificate in it").into());
    }
    let key =
        PrivateKeyDer::from_pem_file(&key_file).map_err(|e| read("TLS_KEY_FILE", &key_file, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}
