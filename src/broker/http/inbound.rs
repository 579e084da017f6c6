//! The inbound listener (pod IP): the target of the plugin's Service. Forwards each
//! invocation to the plugin on 127.0.0.1, within the policy's time limit (504),
//! in-flight cap (503) and body size (413).

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::body::{
    BodyRefusal, GuardedBody, ProxyBody, declared_length, incoming, limit_request_body,
    to_proxy_response,
};
use super::headers::strip_hop_by_hop;
use super::target::Target;
use super::upstream::{ForwardError, Forwarder, error_chain};
use crate::broker::audit::{DecisionIds, Outcome};
use crate::broker::decide::Denial;
use crate::broker::metrics::Metrics;
use crate::broker::reload::policy::{PolicyInForce, PolicyStore};

#[derive(Debug)]
pub struct Inbound {
    pub policy: PolicyStore,
    pub target: Target,
    pub forwarder: Forwarder,
    pub metrics: Arc<Metrics>,
    pub ids: DecisionIds,
}

/// Held while an invocation is in flight, until its response body ends.
struct InFlight {
    _permit: OwnedSemaphorePermit,
    gauge: Gauge,
}

impl InFlight {
    fn new(permit: OwnedSemaphorePermit, gauge: &Gauge) -> Self {
        gauge.inc();
        Self {
            _permit: permit,
            gauge: gauge.clone(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Inbound {
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<ProxyBody> {
        let started = Instant::now();
        let id = self.ids.next();
        let (parts, body) = request.into_parts();
        let result = match self.policy.current() {
            Some(in_force) => self.forward(&in_force, &parts, body).await,
            None => Err(Denial::PolicyNotLoaded),
        };
        let latency = started.elapsed();
        let (outcome, reason, status) = match &result {
            Ok(response) => (Outcome::Allowed, "", response.status()),
            Err(denial) => (denial.outcome(), denial.reason(), denial.status()),
        };
        tracing::info!(
            target: "broker::inbound",
            invocation_id = %id,
            method = parts.method.as_str(),
            path = parts.uri.path(),
            outcome = outcome.as_str(),
            reason,
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "invocation"
        );
        self.metrics.record_invocation(outcome, latency);
        result.unwrap_or_else(|denial| to_proxy_response(denial.to_response(id)))
    }

    async fn forward(
        &self,
        in_force: &PolicyInForce,
        parts: &Parts,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, Denial<'static>> {
        let limits = in_force.policy.inbound();
        let too_large = Denial::BodyTooLarge {
            scope: None,
            limit: limits.max_body_bytes,
        };
        if declared_length(&parts.headers).is_some_and(|length| length > limits.max_body_bytes) {
            return Err(too_large);
        }
        let permit = in_force
            .limits
            .in_flight()
            .clone()
            .try_acquire_owned()
            .map_err(|_| Denial::TooManyInFlight {
                limit: limits.max_in_flight,
            })?;
        let in_flight = InFlight::new(permit, self.metrics.invocations_in_flight());
        let timed_out = Denial::InvocationTimedOut {
            seconds: limits.request_timeout_seconds,
        };
        let deadline =
            Instant::now() + Duration::from_secs(u64::from(limits.request_timeout_seconds));

        let body = match tokio::time::timeout_at(
            deadline,
            limit_request_body(body, &parts.headers, limits.max_body_bytes),
        )
        .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(BodyRefusal::TooLarge)) => return Err(too_large),
            Ok(Err(BodyRefusal::Unreadable(_))) => return Err(Denial::BodyUnreadable),
            Err(_) => return Err(timed_out),
        };
        let uri = self
            .target
            .uri_for(parts.uri.path_and_query())
            .map_err(|_| Denial::UnforwardableTarget)?;
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = parts.headers.clone();
        strip_hop_by_hop(request.headers_mut());

        let response = match self.forwarder.send(request, deadline).await {
            Ok(response) => response,
            Err(ForwardError::TimedOut) => return Err(timed_out),
            // The plugin is reached over plain http: no TLS failure is told apart.
            Err(ForwardError::Unreachable(error) | ForwardError::Tls(error)) => {
                tracing::warn!(error = %error_chain(error.as_ref()), "plugin unreachable");
                return Err(Denial::PluginUnavailable);
            }
        };
        let (mut head, body) = response.into_parts();
        strip_hop_by_hop(&mut head.headers);
        let body = GuardedBody::new(incoming(body), deadline, in_flight);
        Ok(Response::from_parts(head, BodyExt::boxed(body)))
    }
}
