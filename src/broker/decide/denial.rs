//! Every reason the broker answers a call itself instead of forwarding it, and the one
//! place where each becomes an HTTP status and a JSON body.

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use super::path::PathProblem;
use crate::broker::audit::{DecisionId, Outcome};

/// Why the broker answered instead of the chat API (outbound) or the plugin (inbound).
/// Borrowed text comes from the policy or the request being decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denial<'a> {
    #[error("malformed path: {0}")]
    MalformedPath(PathProblem),
    #[error("no route of the scope catalog matches this method and path")]
    UnknownRoute,
    #[error("the scope {scope} is not granted to this plugin")]
    ScopeNotGranted { scope: &'a str },
    #[error("the scope {scope} is not granted for the channel {channel}")]
    ChannelNotGranted { scope: &'a str, channel: &'a str },
    #[error("the scope {scope} is granted for some channels only, and this route names none")]
    ChannelRequired { scope: &'a str },
    #[error("{scope} reaches only this plugin's own data, not {requested}")]
    OtherPluginData { scope: &'a str, requested: &'a str },
    #[error("the rate limit of {scope} is used up; retry in {retry_after_seconds} s")]
    RateLimited {
        scope: &'a str,
        retry_after_seconds: u64,
    },
    #[error("the request body is larger than {limit} bytes")]
    BodyTooLarge { scope: Option<&'a str>, limit: u64 },
    #[error("the request body broke off or did not arrive in time")]
    BodyUnreadable,
    #[error(
        "{via} asks for another method or path than the request line's, which the broker decided on; send the call as what it is"
    )]
    MethodOrPathOverride { via: &'static str },
    #[error("the request target cannot be forwarded")]
    UnforwardableTarget,
    #[error("the broker has not loaded a policy yet")]
    PolicyNotLoaded,
    #[error("the broker has no credential for the chat API")]
    CredentialUnavailable,
    #[error("the chat API could not be reached")]
    UpstreamUnavailable,
    #[error(
        "TLS to the chat API failed: its certificate is not trusted (not from a CA the broker trusts, not for this name, or expired) or the handshake broke off; the broker's log names the cause"
    )]
    UpstreamTlsFailed,
    #[error("the chat API did not answer in time")]
    UpstreamTimedOut,
    #[error("the plugin already handles {limit} invocations")]
    TooManyInFlight { limit: u32 },
    #[error("the plugin did not answer within {seconds} s")]
    InvocationTimedOut { seconds: u32 },
    #[error("the plugin could not be reached")]
    PluginUnavailable,
}

impl Denial<'_> {
    pub fn status(&self) -> StatusCode {
        match self {
            Denial::MalformedPath(_)
            | Denial::MethodOrPathOverride { .. }
            | Denial::BodyUnreadable
            | Denial::UnforwardableTarget => StatusCode::BAD_REQUEST,
            Denial::UnknownRoute
            | Denial::ScopeNotGranted { .. }
            | Denial::ChannelNotGranted { .. }
            | Denial::ChannelRequired { .. }
            | Denial::OtherPluginData { .. } => StatusCode::FORBIDDEN,
            Denial::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Denial::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Denial::PolicyNotLoaded
            | Denial::CredentialUnavailable
            | Denial::TooManyInFlight { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Denial::UpstreamUnavailable | Denial::UpstreamTlsFailed | Denial::PluginUnavailable => {
                StatusCode::BAD_GATEWAY
            }
            Denial::UpstreamTimedOut | Denial::InvocationTimedOut { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
        }
    }

    /// The variant's name: the `reason` of the JSON body and of the audit line.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::MalformedPath(_) => "MalformedPath",
            Denial::UnknownRoute => "UnknownRoute",
            Denial::ScopeNotGranted { .. } => "ScopeNotGranted",
            Denial::ChannelNotGranted { .. } => "ChannelNotGranted",
            Denial::ChannelRequired { .. } => "ChannelRequired",
            Denial::OtherPluginData { .. } => "OtherPluginData",
            Denial::RateLimited { .. } => "RateLimited",
            Denial::BodyTooLarge { .. } => "BodyTooLarge",
            Denial::BodyUnreadable => "BodyUnreadable",
            Denial::MethodOrPathOverride { .. } => "MethodOrPathOverride",
            Denial::UnforwardableTarget => "UnforwardableTarget",
            Denial::PolicyNotLoaded => "PolicyNotLoaded",
            Denial::CredentialUnavailable => "CredentialUnavailable",
            Denial::UpstreamUnavailable => "UpstreamUnavailable",
            Denial::UpstreamTlsFailed => "UpstreamTlsFailed",
            Denial::UpstreamTimedOut => "UpstreamTimedOut",
            Denial::TooManyInFlight { .. } => "TooManyInFlight",
            Denial::InvocationTimedOut { .. } => "InvocationTimedOut",
            Denial::PluginUnavailable => "PluginUnavailable",
        }
    }

    /// The scope the call needed, when one is known.
    pub fn scope(&self) -> Option<&str> {
        match *self {
            Denial::ScopeNotGranted { scope }
            | Denial::ChannelNotGranted { scope, .. }
            | Denial::ChannelRequired { scope }
            | Denial::OtherPluginData { scope, .. }
            | Denial::RateLimited { scope, .. } => Some(scope),
            Denial::BodyTooLarge { scope, .. } => scope,
            _ => None,
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self.status() {
            StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN => Outcome::Denied,
            StatusCode::TOO_MANY_REQUESTS => Outcome::RateLimited,
            StatusCode::PAYLOAD_TOO_LARGE => Outcome::TooLarge,
            _ => Outcome::Failed,
        }
    }

    fn error(&self) -> &'static str {
        match self.status() {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::BAD_GATEWAY => "bad_gateway",
            StatusCode::GATEWAY_TIMEOUT => "gateway_timeout",
            _ => "unavailable",
        }
    }

    /// The response the caller gets.
    pub fn to_response(&self, id: DecisionId) -> http::Response<bytes::Bytes> {
        let body = DenialBody {
            error: self.error(),
            reason: self.reason(),
            scope: self.scope(),
            message: self.to_string(),
            decision_id: id.to_string(),
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = http::Response::new(bytes::Bytes::from(json));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Denial::RateLimited {
            retry_after_seconds,
            ..
        } = self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
        }
        if matches!(
            self,
            Denial::TooManyInFlight { .. } | Denial::PolicyNotLoaded
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DenialBody<'a> {
    error: &'static str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    message: String,
    decision_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scope_is_a_403_naming_the_scope() {
        let denial = Denial::ScopeNotGranted {
            scope: "messages:write",
        };
        let response = denial.to_response(DecisionId::for_tests(7));
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "forbidden");
        assert_eq!(body["reason"], "ScopeNotGranted");
        assert_eq!(body["scope"], "messages:write");
        assert_eq!(body["decisionId"], DecisionId::for_tests(7).to_string());
    }

    #[test]
    fn rate_limited_is_a_429_with_retry_after() {
        let denial = Denial::RateLimited {
            scope: "messages:write",
            retry_after_seconds: 3,
        };
        let response = denial.to_response(DecisionId::for_tests(1));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }

    #[test]
    fn a_tls_failure_toward_the_chat_api_is_a_502_of_its_own() {
        let denial = Denial::UpstreamTlsFailed;
        let response = denial.to_response(DecisionId::for_tests(1));
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(denial.outcome(), Outcome::Failed);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["error"], "bad_gateway");
        assert_eq!(body["reason"], "UpstreamTlsFailed");
        assert_ne!(denial.reason(), Denial::UpstreamUnavailable.reason());
    }

    #[test]
    fn malformed_path_is_a_400_without_scope() {
        let denial = Denial::MalformedPath(PathProblem::DotSegment);
        let response = denial.to_response(DecisionId::for_tests(1));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
        assert!(body.get("scope").is_none());
        assert_eq!(body["reason"], "MalformedPath");
    }
}
