//! Pooled HTTP clients toward the chat API (outbound) and the plugin (inbound).

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tower_service::Service;

use super::body::ProxyBody;
use super::server::Slot;
use super::target::{Target, TargetError};
use crate::broker::BoxError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a forwarded call got no response.
#[derive(Debug)]
pub enum ForwardError {
    TimedOut,
    Unreachable(BoxError),
    /// The TLS handshake failed: the server's certificate was not trusted (not issued by
    /// a trusted CA, not for this name, expired), or TLS itself failed.
    Tls(BoxError),
}

impl ForwardError {
    /// A failure to connect or send: a TLS one when TLS is among its causes.
    fn failed(error: BoxError) -> Self {
        if tls_error(error.as_ref()).is_some() {
            Self::Tls(error)
        } else {
            Self::Unreachable(error)
        }
    }
}

/// A pooled client with a deadline on each response head, which can also hold one
/// connection per caller connection ([`Dedicated`]).
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    connector: HttpsConnector<HttpConnector>,
}

/// The connection to the target that belongs to one connection of the caller.
///
/// Requests on one HTTP/1.1 connection come one after another, so the requests of one
/// plugin connection can all go over one connection to the chat API, taken from here at
/// the start of a call and put back once its response head arrived. This spares the
/// shared pool's checkout and return on every call (a few percent of the broker's CPU).
/// The connection closes when the plugin's does, and holds the plugin connection's
/// [`Slot`] until it has closed, so a capped listener's cap bounds these too.
#[derive(Debug, Default)]
pub struct Dedicated {
    sender: Mutex<Option<SendRequest<ProxyBody>>>,
    slot: Slot,
}

impl Dedicated {
    pub fn new(slot: Slot) -> Self {
        Self {
            sender: Mutex::default(),
            slot,
        }
    }

    fn take(&self) -> Option<SendRequest<ProxyBody>> {
        self.lock().take().filter(|sender| !sender.is_closed())
    }

    fn put_back(&self, sender: SendRequest<ProxyBody>) {
        *self.lock() = Some(sender);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SendRequest<ProxyBody>>> {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
            .map_err(|e| TargetError::NoRoots(target.authority().to_string(), e.to_string()))?;
        let tls = match (ca_file, target.is_https()) {
            (Some(path), _) => builder
                .with_root_certificates(read_ca_file(path)?)
                .with_no_client_auth(),
            (None, true) => builder
                .with_native_roots()
                .map_err(|e| TargetError::NoRoots(target.authority().to_string(), e.to_string()))?
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
            .build(connector.clone());
        Ok(Self { client, connector })
    }

    /// Sends `request`; gives up when no response head arrived by `deadline`.
    pub async fn send(
        &self,
        request: Request<ProxyBody>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<Incoming>, ForwardError> {
        match tokio::time::timeout_at(deadline, self.client.request(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(ForwardError::failed(Box::new(error))),
            Err(_) => Err(ForwardError::TimedOut),
        }
    }

    /// Sends `request` over `dedicated`'s connection, opening one if there is none or it
    /// closed. A request the connection refused before sending any of it (the chat API
    /// had just closed an idle connection) is sent once more on a new connection.
    pub async fn send_on(
        &self,
        dedicated: &Dedicated,
        request: Request<ProxyBody>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<Incoming>, ForwardError> {
        let target = request.uri().clone();
        let request = origin_form(request);
        let attempt = async {
            let sender = match dedicated.take() {
                Some(sender) => sender,
                None => self.connect(&target, &dedicated.slot).await?,
            };
            let sent = match send_ready(sender, request).await {
                Err((_, Some(unsent))) => {
                    send_ready(self.connect(&target, &dedicated.slot).await?, unsent).await
                }
                sent => sent,
            };
            match sent {
                Ok((sender, response)) => {
                    dedicated.put_back(sender);
                    Ok(response)
                }
                Err((error, _)) => Err(ForwardError::failed(Box::new(error))),
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ForwardError::TimedOut),
        }
    }

    /// A new HTTP/1.1 connection to where `uri` points, driven by its own task, which
    /// holds `slot` until the connection has closed. The work is boxed: connecting is
    /// rare and its future large, and unboxed it would make every call's future (moved
    /// a few times per call) that much larger.
    async fn connect(
        &self,
        uri: &Uri,
        slot: &Slot,
    ) -> Result<SendRequest<ProxyBody>, ForwardError> {
        let slot = slot.clone();
        Box::pin(async move {
            let failed = ForwardError::failed;
            let mut connector = self.connector.clone();
            std::future::poll_fn(|cx| connector.poll_ready(cx))
                .await
                .map_err(failed)?;
            let io = connector.call(uri.clone()).await.map_err(failed)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|error| failed(Box::new(error)))?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "connection to the chat API ended with an error");
                }
                drop(slot);
            });
            Ok(sender)
        })
        .await
    }
}

/// `request` as sent on a connection of its own: the request target in origin form
/// (path and query) and `Host` naming the target, as a pooled client would send it.
fn origin_form(mut request: Request<ProxyBody>) -> Request<ProxyBody> {
    if let Some(authority) = request.uri().authority()
        && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
    {
        request.headers_mut().insert(http::header::HOST, host);
    }
    let path_and_query = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path_and_query);
    request
}

/// Waits until `sender` can take a request and sends it. On failure, gives the request
/// back if none of it was sent.
async fn send_ready(
    mut sender: SendRequest<ProxyBody>,
    request: Request<ProxyBody>,
) -> Result<(SendRequest<ProxyBody>, Response<Incoming>), (hyper::Error, Option<Request<ProxyBody>>)>
{
    if let Err(error) = sender.ready().await {
        return Err((error, Some(request)));
    }
    match sender.try_send_request(request).await {
        Ok(response) => Ok((sender, response)),
        Err(mut error) => {
            let unsent = error.take_message();
            Err((error.into_error(), unsent))
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

/// The TLS error among `error`'s causes. An I/O error's `source()` skips the error it
/// wraps (tokio-rustls wraps the TLS error in one, hyper-rustls that in another), so
/// what an I/O error wraps is looked at too.
pub fn tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// The error and its causes on one line; hyper-util's own message alone says little.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_on_its_own_connection_names_the_host_and_only_the_path() {
        let mut request = Request::new(super::super::body::empty());
        *request.uri_mut() = Uri::from_static("http://chat-api:8080/api/v1/users?limit=5");
        request
            .headers_mut()
            .insert(http::header::HOST, "attacker.invalid".parse().unwrap());
        let request = origin_form(request);
        assert_eq!(request.uri().to_string(), "/api/v1/users?limit=5");
        assert_eq!(request.headers()[http::header::HOST], "chat-api:8080");
    }

    #[test]
    fn a_tls_error_is_found_inside_the_io_errors_that_wrap_it() {
        let certificate =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let from_tls_stream = std::io::Error::new(std::io::ErrorKind::InvalidData, certificate);
        let from_connector: BoxError = Box::new(std::io::Error::other(from_tls_stream));
        let found = tls_error(from_connector.as_ref()).map(ToString::to_string);
        assert_eq!(
            found.as_deref(),
            Some("invalid peer certificate: UnknownIssuer")
        );
        assert!(matches!(
            ForwardError::failed(from_connector),
            ForwardError::Tls(_)
        ));

        let refused: BoxError =
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(tls_error(refused.as_ref()).is_none());
        assert!(matches!(
            ForwardError::failed(refused),
            ForwardError::Unreachable(_)
        ));
    }
}
