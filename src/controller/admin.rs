//! The operator's admin port: `/healthz`, `/readyz` and `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::warn;

use super::metrics::Metrics;

/// What the admin endpoints report.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// Set once the operator is either reconciling with synced caches or standing by.
    pub ready: AtomicBool,
    /// Refreshes the per-condition Plugin gauge just before a scrape.
    pub before_scrape: Box<dyn Fn() + Send + Sync>,
}

/// Binds the admin port; serving runs in the background for the life of the process.
pub async fn serve(addr: SocketAddr, state: Arc<AdminState>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(respond(&state, &request)) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    warn!(%error, "admin connection failed");
                }
            });
        }
    });
    Ok(bound)
}

fn respond(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body, content_type) = match request.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n".to_string(), "text/plain"),
        "/readyz" if state.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "ready\n".into(), "text/plain")
        }
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting\n".into(),
            "text/plain",
        ),
        "/metrics" => {
            (state.before_scrape)();
            (
                StatusCode::OK,
                state.metrics.encode(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        }
        _ => (StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response is valid")
}
