//! The operator's admin port: `/healthz`, `/readyz` and `/metrics`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::{info, warn};

use super::metrics::Metrics;

/// What the admin endpoints report.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// Set once the operator is either reconciling with synced caches or standing by.
    pub ready: AtomicBool,
    /// Refreshes the per-condition Plugin gauge just before a scrape.
    pub before_scrape: Box<dyn Fn() + Send + Sync>,
    /// What the operator waits for while the API server does not answer.
    pub waiting: Waiting,
}

/// The watches that last failed, with their error: while any is listed the operator
/// waits for the API server, says so once in its log and in `/readyz` (503), and goes
/// on by itself when the watch answers again (the watches retry with backoff).
#[derive(Debug, Default)]
pub struct Waiting(Mutex<BTreeMap<String, String>>);

impl Waiting {
    /// The watch of `what` failed with `error`.
    pub fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        let mut map = self.lock();
        if !map.contains_key(what) {
            warn!(watch = what, %error, "waiting for the API server: a watch failed; retrying with backoff");
        }
        map.insert(what.to_string(), error.to_string());
    }

    /// The watch of `what` delivered an event.
    pub fn answered(&self, what: &str) {
        let mut map = self.lock();
        if map.remove(what).is_some() {
            info!(
                watch = what,
                "the API server answers again; the watch resumed"
            );
        }
    }

    /// `waiting for the API server: <watch>: <error>; ...`, or None when nothing waits.
    pub fn describe(&self) -> Option<String> {
        let map = self.lock();
        (!map.is_empty()).then(|| {
            let list: Vec<String> = map.iter().map(|(w, e)| format!("{w}: {e}")).collect();
            format!("waiting for the API server: {}", list.join("; "))
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
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
        "/readyz" => match state.waiting.describe() {
            Some(waiting) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{waiting}\n"),
                "text/plain",
            ),
            None if state.ready.load(Ordering::Relaxed) => {
                (StatusCode::OK, "ready\n".into(), "text/plain")
            }
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "starting\n".into(),
                "text/plain",
            ),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_watch_is_waited_for_until_it_answers_again() {
        let waiting = Waiting::default();
        assert_eq!(waiting.describe(), None);
        waiting.failed("deployments", &"connection refused");
        waiting.failed("plugins", &"connection refused");
        assert_eq!(
            waiting.describe().as_deref(),
            Some(
                "waiting for the API server: deployments: connection refused; \
                 plugins: connection refused"
            )
        );
        waiting.answered("deployments");
        waiting.answered("plugins");
        assert_eq!(waiting.describe(), None);
    }
}
