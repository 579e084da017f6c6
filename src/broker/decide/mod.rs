//! The heart of the broker: may this call of the plugin go to the chat API?
//!
//! [`decide`] is pure and allocates nothing: it reads the compiled policy and the
//! request's method and path, and returns what to do. Rate limits, body sizes and
//! credentials are the caller's business; they need state or the body.
//!
//! - [`compiled`]: the policy as `decide` reads it, compiled once when it loads.
//! - [`path`]: request paths refused when ambiguous, then split into segments.
//! - [`denial`]: every reason the broker answers a call itself.

mod compiled;
mod denial;
#[cfg(test)]
pub mod fixture;
mod path;

pub use compiled::{CompiledPolicy, Grant, Route, Scope};
pub use denial::Denial;
pub use path::check_path;

use path::{CheckedPath, segment_equals};

use crate::policy::{EnforcementMode, TemplateSegment};

/// The parts of a plugin's request that decide it. `path` excludes the query.
#[derive(Clone, Copy, Debug)]
pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

#[derive(Debug)]
pub struct Decision<'a> {
    /// The catalog route the call matched, if any.
    pub route: Option<&'a Route>,
    /// The scope that route needs.
    pub scope: Option<&'a Scope>,
    pub verdict: Verdict<'a>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Within the grants: forward.
    Allow,
    /// Outside the grants (Enforce mode), or malformed (any mode): answer with the denial.
    Deny(Denial<'a>),
    /// Outside the grants, but the policy is in Audit mode: forward and log the denial.
    AllowedByAudit(Denial<'a>),
}

impl Decision<'_> {
    pub fn forwards(&self) -> bool {
        !matches!(self.verdict, Verdict::Deny(_))
    }
}

pub fn decide<'a>(call: &Call<'a>, policy: &'a CompiledPolicy) -> Decision<'a> {
    let path = match check_path(call.path) {
        Ok(path) => path,
        Err(problem) => {
            return Decision {
                route: None,
                scope: None,
                verdict: Verdict::Deny(Denial::MalformedPath(problem)),
            };
        }
    };
    let Some(route) = find_route(call.method, &path, policy) else {
        return Decision {
            route: None,
            scope: None,
            verdict: deny_or_audit(policy, Denial::UnknownRoute),
        };
    };
    let scope = policy.scope(route.scope);
    let verdict = match check_grant(route, scope, &path, policy) {
        Ok(()) => Verdict::Allow,
        Err(denial) => deny_or_audit(policy, denial),
    };
    Decision {
        route: Some(route),
        scope: Some(scope),
        verdict,
    }
}

fn deny_or_audit<'a>(policy: &CompiledPolicy, denial: Denial<'a>) -> Verdict<'a> {
    match policy.mode() {
        EnforcementMode::Enforce => Verdict::Deny(denial),
        EnforcementMode::Audit => Verdict::AllowedByAudit(denial),
    }
}

fn find_route<'a>(
    method: &str,
    path: &CheckedPath<'_>,
    policy: &'a CompiledPolicy,
) -> Option<&'a Route> {
    policy.routes().iter().find(|route| {
        let template = route.template.segments();
        route.method == method
            && template.len() == path.segment_count()
            && template
                .iter()
                .zip(path.segments())
                .all(|(expected, raw)| match expected {
                    TemplateSegment::Literal(text) => segment_equals(raw, text),
                    _ => true,
                })
    })
}

fn check_grant<'a>(
    route: &'a Route,
    scope: &'a Scope,
    path: &CheckedPath<'a>,
    policy: &'a CompiledPolicy,
) -> Result<(), Denial<'a>> {
    let scope_name = scope.name.as_str();
    match &scope.grant {
        Grant::NotGranted => return Err(Denial::ScopeNotGranted { scope: scope_name }),
        Grant::AllChannels => {}
        Grant::Channels(channels) => {
            let channel = route
                .channel_at
                .and_then(|index| path.segment(index))
                .ok_or(Denial::ChannelRequired { scope: scope_name })?;
            if !channels.iter().any(|c| segment_equals(channel, c)) {
                return Err(Denial::ChannelNotGranted {
                    scope: scope_name,
                    channel,
                });
            }
        }
    }
    if let Some(requested) = route.self_at.and_then(|index| path.segment(index))
        && !segment_equals(requested, policy.self_segment())
    {
        return Err(Denial::OtherPluginData {
            scope: scope_name,
            requested,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{KV_READ_SCOPE, KV_WRITE_SCOPE};
    use Denial::{
        ChannelNotGranted, ChannelRequired, OtherPluginData, ScopeNotGranted, UnknownRoute,
    };
    use EnforcementMode::{Audit, Enforce};
    use Verdict::{Allow, AllowedByAudit, Deny};

    fn policy(mode: EnforcementMode, grants: &[(&str, &[&str])]) -> CompiledPolicy {
        CompiledPolicy::compile(&fixture::policy(mode, grants)).unwrap()
    }

    fn verdict<'a>(policy: &'a CompiledPolicy, method: &'a str, path: &'a str) -> Verdict<'a> {
        decide(&Call { method, path }, policy).verdict
    }

    #[test]
    fn broker_allows_granted_scope() {
        let p = policy(Enforce, &[("messages:read", &[])]);
        let decision = decide(
            &Call {
                method: "GET",
                path: "/api/v1/channels/C1/messages",
            },
            &p,
        );
        assert_eq!(decision.verdict, Verdict::Allow);
        assert_eq!(decision.scope.unwrap().name.as_str(), "messages:read");
    }

    /// Asserts the verdict on a call written `"METHOD /path"`.
    #[track_caller]
    fn assert_verdict(policy: &CompiledPolicy, call: &str, expected: Verdict<'_>) {
        let (method, path) = call.split_once(' ').unwrap();
        assert_eq!(verdict(policy, method, path), expected, "{call}");
    }

    #[test]
    fn broker_denies_unlisted_scope() {
        let p = policy(Enforce, &[("messages:read", &[])]);
        let denial = ScopeNotGranted {
            scope: "messages:write",
        };
        assert_verdict(&p, "POST /api/v1/channels/C1/messages", Deny(denial));
    }

    #[test]
    fn broker_denies_channel_outside_the_grant() {
        let p = policy(Enforce, &[("messages:write", &["C1"])]);
        assert_verdict(&p, "POST /api/v1/channels/C1/messages", Allow);
        let denial = ChannelNotGranted {
            scope: "messages:write",
            channel: "C2",
        };
        assert_verdict(&p, "POST /api/v1/channels/C2/messages", Deny(denial));
    }

    #[test]
    fn channel_limited_grant_does_not_cover_routes_without_a_channel() {
        let p = policy(Enforce, &[("channels:read", &["C1"])]);
        assert_verdict(&p, "GET /api/v1/channels/C1", Allow);
        let scope = "channels:read";
        assert_verdict(&p, "GET /api/v1/channels", Deny(ChannelRequired { scope }));
    }

    #[test]
    fn broker_denies_another_plugins_key_value_data() {
        let p = policy(Enforce, &[(KV_WRITE_SCOPE, &[]), (KV_READ_SCOPE, &[])]);
        assert_verdict(&p, "PUT /api/v1/kv/team-a.weather/city", Allow);
        let denial = OtherPluginData {
            scope: KV_READ_SCOPE,
            requested: "team-b.weather",
        };
        assert_verdict(&p, "GET /api/v1/kv/team-b.weather/city", Deny(denial));
    }

    #[test]
    fn broker_denies_unknown_route_and_method() {
        let p = policy(Enforce, &[("messages:read", &[])]);
        for call in ["GET /api/v1/admin", "DELETE /api/v1/channels/C1/messages"] {
            assert_verdict(&p, call, Deny(UnknownRoute));
        }
    }

    #[test]
    fn audit_mode_forwards_what_enforce_mode_denies() {
        let p = policy(Audit, &[]);
        let scope = "messages:write";
        let denial = ScopeNotGranted { scope };
        assert_verdict(
            &p,
            "POST /api/v1/channels/C1/messages",
            AllowedByAudit(denial),
        );
        assert_verdict(&p, "GET /nowhere", AllowedByAudit(UnknownRoute));
    }

    #[test]
    fn audit_mode_still_refuses_malformed_paths() {
        let p = policy(Audit, &[(KV_READ_SCOPE, &[])]);
        assert!(matches!(
            verdict(&p, "GET", "/api/v1/kv/../other"),
            Verdict::Deny(Denial::MalformedPath(_))
        ));
    }
}
