//! The outbound listener (127.0.0.1 only): the plugin's door to the chat API.
//!
//! Each call is decided against the policy, rate-limited, size-checked, stripped of
//! the plugin's credentials, given the broker's, forwarded, and audited.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::{
    BodyRefusal, DeadlineBody, OnCut, ProxyBody, declared_length, limit_request_body,
    to_proxy_response,
};
use super::headers::{DECISION_ID, for_chat_api, override_in, strip_hop_by_hop};
use super::target::Target;
use super::upstream::{Dedicated, ForwardError, Forwarder, error_chain, tls_error};
use crate::broker::audit::{AuditLog, AuditRecord, DecisionId, DecisionIds, Outcome};
use crate::broker::decide::{Call, Decision, Denial, Verdict, decide};
use crate::broker::limits::retry_after_seconds;
use crate::broker::metrics::Metrics;
use crate::broker::reload::credential::Credential;
use crate::broker::reload::policy::{PolicyInForce, PolicyStore};

/// Everything the outbound listener needs, shared by all its connections.
#[derive(Debug)]
pub struct Outbound {
    pub policy: PolicyStore,
    pub credential: Arc<Credential>,
    pub target: Target,
    pub forwarder: Forwarder,
    /// What an https chat API's certificate is checked against (`--chat-api-ca-file` or
    /// the system's trust store), for the log line of a failed TLS handshake.
    pub trusted: String,
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub ids: DecisionIds,
    pub audit_log: AuditLog,
    /// The metrics label of calls that matched no scope.
    pub no_scope: Arc<String>,
}

impl Outbound {
    /// Handles one call of the plugin connection that `dedicated` belongs to.
    pub async fn handle(
        self: Arc<Self>,
        dedicated: Arc<Dedicated>,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let id = self.ids.next();
        let (mut parts, body) = request.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        let Some(in_force) = self.policy.current() else {
            let denial = Denial::PolicyNotLoaded;
            let subject = Subject {
                id,
                plugin: "",
                scope: None,
                audited: None,
                parts: &parts,
                started,
            };
            self.audit(&subject, Err(&denial));
            return to_proxy_response(denial.to_response(id));
        };
        let call = Call {
            method: parts.method.as_str(),
            path: parts.uri.path(),
        };
        let policy = &in_force.policy;
        let decision = decide(&call, policy);
        let subject = Subject {
            id,
            plugin: policy.plugin_id(),
            scope: decision.scope.map(|s| &s.name),
            audited: match decision.verdict {
                Verdict::AllowedByAudit(denial) => Some(denial.reason()),
                _ => None,
            },
            parts: &parts,
            started,
        };
        let deadline = started + self.timeout;
        let result = self
            .forward(
                id,
                &decision,
                &in_force,
                &parts,
                Sent { headers, body },
                &dedicated,
                deadline,
            )
            .await;
        self.audit(&subject, result.as_ref().map(|response| response.status()));
        let scope = subject.scope.cloned();
        match result {
            Ok(response) => {
                let status = response.status();
                response.map(|body| {
                    let cut = CutOff {
                        outbound: self.clone(),
                        id,
                        in_force: in_force.clone(),
                        scope,
                        parts,
                        status,
                        started,
                    };
                    DeadlineBody::new(body, deadline, cut).boxed()
                })
            }
            Err(denial) => to_proxy_response(denial.to_response(id)),
        }
    }

    /// The chat API's response head to an allowed call, its body still to come.
    #[allow(clippy::too_many_arguments)]
    async fn forward<'a>(
        &self,
        id: DecisionId,
        decision: &Decision<'a>,
        in_force: &'a PolicyInForce,
        parts: &Parts,
        Sent { headers, body }: Sent,
        dedicated: &Dedicated,
        deadline: Instant,
    ) -> Result<Response<Incoming>, Denial<'a>> {
        if let Some(via) = override_in(&headers, parts.uri.query()) {
            return Err(Denial::MethodOrPathOverride { via });
        }
        if let Verdict::Deny(denial) = decision.verdict {
            return Err(denial);
        }
        // `decide` forwards only calls that matched a route, in either mode; body sizes
        // and rate limits below hold in Audit mode as well.
        let (Some(route), Some(scope)) = (decision.route, decision.scope) else {
            return Err(Denial::UnknownRoute);
        };
        let limit = scope.max_body_bytes;
        let too_large = Denial::BodyTooLarge {
            scope: Some(scope.name.as_str()),
            limit,
        };
        if declared_length(&headers).is_some_and(|length| length > limit) {
            return Err(too_large);
        }
        if let Some(bucket) = in_force.limits.bucket(route.scope) {
            bucket
                .try_take(std::time::Instant::now())
                .map_err(|wait| Denial::RateLimited {
                    scope: scope.name.as_str(),
                    retry_after_seconds: retry_after_seconds(wait),
                })?;
        }
        let authorization = self
            .credential
            .authorization()
            .ok_or(Denial::CredentialUnavailable)?;

        let body = match tokio::time::timeout_at(
            deadline,
            limit_request_body(body, &headers, limit),
        )
        .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(BodyRefusal::TooLarge)) => return Err(too_large),
            Ok(Err(BodyRefusal::Unreadable(error))) => {
                tracing::debug!(decision_id = %id, %error, "the plugin's request body broke off");
                return Err(Denial::BodyUnreadable);
            }
            Err(_) => return Err(Denial::BodyUnreadable),
        };

        let uri = self
            .target
            .uri_for(parts.uri.path_and_query())
            .map_err(|_| Denial::UnforwardableTarget)?;
        let mut request = Request::new(body);
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = uri;
        let mut headers = for_chat_api(headers);
        headers.insert(header::AUTHORIZATION, authorization);
        headers.insert(DECISION_ID, id.header_value());
        *request.headers_mut() = headers;

        let response = match self.forwarder.send_on(dedicated, request, deadline).await {
            Ok(response) => response,
            Err(ForwardError::TimedOut) => return Err(Denial::UpstreamTimedOut),
            Err(ForwardError::Unreachable(error)) => {
                tracing::warn!(
                    decision_id = %id,
                    chat_api = %self.target,
                    error = %error_chain(error.as_ref()),
                    "chat API unreachable"
                );
                return Err(Denial::UpstreamUnavailable);
            }
            Err(ForwardError::Tls(error)) => {
                let error = error.as_ref();
                let cause = tls_error(error).map_or_else(|| error_chain(error), |e| e.to_string());
                tracing::warn!(
                    decision_id = %id,
                    chat_api = %self.target,
                    trusted = %self.trusted,
                    error = %cause,
                    "TLS handshake with the chat API failed"
                );
                return Err(Denial::UpstreamTlsFailed);
            }
        };
        let (mut head, body) = response.into_parts();
        strip_hop_by_hop(&mut head.headers);
        Ok(Response::from_parts(head, body))
    }

    /// Writes the audit line and counts the decision.
    fn audit(&self, subject: &Subject<'_>, result: Result<StatusCode, &Denial<'_>>) {
        let latency = subject.started.elapsed();
        let (outcome, reason, status) = match result {
            Ok(status) if subject.audited.is_some() => (Outcome::Audited, subject.audited, status),
            Ok(status) => (Outcome::Allowed, None, status),
            Err(denial) => (denial.outcome(), Some(denial.reason()), denial.status()),
        };
        let scope = subject
            .scope
            .map(|scope| scope.as_str())
            .or_else(|| result.err().and_then(Denial::scope));
        self.audit_log.record(&AuditRecord {
            id: subject.id,
            plugin: subject.plugin,
            scope,
            method: subject.parts.method.as_str(),
            path: subject.parts.uri.path(),
            outcome,
            reason,
            status: status.as_u16(),
            latency,
        });
        self.metrics
            .record_decision(subject.scope.unwrap_or(&self.no_scope), outcome, latency);
    }
}

/// An allowed call whose response body did not end by the call's deadline.
struct CutOff {
    outbound: Arc<Outbound>,
    id: DecisionId,
    in_force: Arc<PolicyInForce>,
    scope: Option<Arc<String>>,
    parts: Parts,
    /// The status the plugin already received.
    status: StatusCode,
    started: Instant,
}

impl OnCut for CutOff {
    /// A second audit line for the decision, and a count in the metrics.
    fn cut(self) {
        let outbound = &self.outbound;
        outbound.audit_log.record(&AuditRecord {
            id: self.id,
            plugin: self.in_force.policy.plugin_id(),
            scope: self.scope.as_deref().map(String::as_str),
            method: self.parts.method.as_str(),
            path: self.parts.uri.path(),
            outcome: Outcome::Failed,
            reason: Some(RESPONSE_CUT_OFF),
            status: self.status.as_u16(),
            latency: self.started.elapsed(),
        });
        outbound.metrics.record_response_cut_off();
    }
}

/// The reason of the audit line of a response cut off at the deadline.
const RESPONSE_CUT_OFF: &str = "UpstreamBodyTimedOut";

/// What the plugin sent beyond the method and path: forwarded once the call is allowed.
struct Sent {
    headers: HeaderMap,
    body: Incoming,
}

/// The call an audit line is about, gathered while it is handled.
struct Subject<'a> {
    id: DecisionId,
    plugin: &'a str,
    scope: Option<&'a Arc<String>>,
    /// In Audit mode, the reason the call would have been denied.
    audited: Option<&'static str>,
    parts: &'a Parts,
    started: Instant,
}
