//! Pooled HTTP clients toward the chat API (outbound) and the plugin (inbound).

use std::path::Path;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::body::ProxyBody;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where calls go: scheme, host and an optional path prefix that is put before the
/// plugin's path.
#[derive(Clone, Debug)]
pub struct Target {
    scheme: Scheme,
    authority: Authority,
    path_prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} must be an absolute http:// or https:// URL without a query")]
    NotABaseUrl(String),
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("no trusted CA certificates found for {0}: {1}")]
    NoRoots(String, String),
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let bad = || TargetError::NotABaseUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let scheme = uri.scheme().cloned().ok_or_else(bad)?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS || uri.query().is_some() {
            return Err(bad());
        }
        let authority = uri.authority().cloned().ok_or_else(bad)?;
        if authority.as_str().contains('@') {
            return Err(bad());
        }
        Ok(Self {
            scheme,
            authority,
            path_prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    pub fn plugin(port: u16) -> Self {
        Self {
            scheme: Scheme::HTTP,
            authority: Authority::try_from(format!("127.0.0.1:{port}")).expect("valid authority"),
            path_prefix: String::new(),
        }
    }

    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// The URI of a call whose request target was `path_and_query`.
    pub fn uri_for(&self, path_and_query: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let builder = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone());
        let builder = match path_and_query {
            // The common case: no prefix, and the plugin's own path is reused as parsed.
            Some(path_and_query) if self.path_prefix.is_empty() => {
                builder.path_and_query(path_and_query.clone())
            }
            _ => {
                let path_and_query = path_and_query.map_or("/", PathAndQuery::as_str);
                builder.path_and_query(format!("{}{path_and_query}", self.path_prefix))
            }
        };
        builder.build()
    }
}

/// Why a forwarded call got no response.
#[derive(Debug)]
pub enum ForwardError {
    TimedOut,
    Unreachable(hyper_util::client::legacy::Error),
}

/// A pooled client with a deadline on each response head.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
}

impl Forwarder {
    /// A client for `target`. For https, the CA file if given, otherwise the system's
    /// trust store, decides which servers are trusted.
    pub fn new(target: &Target, ca_file: Option<&Path>) -> Result<Self, TargetError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        http.enforce_http(false);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TargetError::NoRoots(target.authority.to_string(), e.to_string()))?;
        let tls = match (ca_file, target.is_https()) {
            (Some(path), _) => builder
                .with_root_certificates(read_ca_file(path)?)
                .with_no_client_auth(),
            (None, true) => builder
                .with_native_roots()
                .map_err(|e| TargetError::NoRoots(target.authority.to_string(), e.to_string()))?
                .with_no_client_auth(),
            (None, false) => builder
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        };
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { client })
    }

    /// Sends `request`; gives up when no response head arrived by `deadline`.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<Incoming>, ForwardError> {
        match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(ForwardError::Unreachable(error)),
            Err(_) => Err(ForwardError::TimedOut),
        }
    }
}

fn read_ca_file(path: &Path) -> Result<RootCertStore, TargetError> {
    let failed = |reason: String| TargetError::CaFile {
        path: path.display().to_string(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(path).map_err(|e| failed(e.to_string()))? {
        let certificate = certificate.map_err(|e| failed(e.to_string()))?;
        roots.add(certificate).map_err(|e| failed(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(failed("no certificate in it".into()));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_path_prefix_is_put_before_the_call_path() {
        let target = Target::parse("http://chat-api.chat.svc:8080/base/").unwrap();
        let pq = PathAndQuery::from_static("/api/v1/users?limit=5");
        assert_eq!(
            target.uri_for(Some(&pq)).unwrap().to_string(),
            "http://chat-api.chat.svc:8080/base/api/v1/users?limit=5"
        );
    }

    #[test]
    fn without_a_prefix_the_call_path_is_kept_as_is() {
        let target = Target::parse("http://chat-api:8080").unwrap();
        let pq = PathAndQuery::from_static("/api/v1/users?limit=5");
        assert_eq!(
            target.uri_for(Some(&pq)).unwrap().to_string(),
            "http://chat-api:8080/api/v1/users?limit=5"
        );
        assert_eq!(
            target.uri_for(None).unwrap().to_string(),
            "http://chat-api:8080/"
        );
    }

    #[test]
    fn base_url_must_be_http_or_https_without_credentials() {
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("chat-api:8080").is_err());
        assert!(Target::parse("http://user:pw@chat-api/").is_err());
        assert!(Target::parse("http://chat-api/?a=1").is_err());
        assert!(Target::parse("https://chat-api").unwrap().is_https());
    }
}
