//! The admin listener: `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::body::{ProxyBody, full};
use crate::broker::metrics::Metrics;
use crate::broker::reload::credential::Credential;
use crate::broker::reload::policy::PolicyStore;

#[derive(Debug)]
pub struct Admin {
    pub policy: PolicyStore,
    pub credential: Arc<Credential>,
    pub metrics: Arc<Metrics>,
}

impl Admin {
    /// Ready once a policy is loaded and a credential is held: before that every
    /// outbound call would fail.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.policy.current().is_none() {
            return Err("no policy loaded");
        }
        if self.credential.authorization().is_none() {
            return Err("no chat API token loaded");
        }
        Ok(())
    }

    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
        }
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => match self.readiness() {
                Ok(()) => text(StatusCode::OK, "ready\n".into()),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            },
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.metrics.encode());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
