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
    /// Outside the grants (Enforce mode), or outside what any mode forwards (a malformed
    /// path, an unknown route, another plugin's data): answer with the denial.
    Deny(Denial<'a>),
    /// Outside the scope or channel grants, but the policy is in Audit mode: forward and
    /// log the denial.
    AllowedByAudit(Denial<'a>),
}

impl Decision<'_> {
    pub fn forwards(&self) -> bool {
        !matches!(self.verdict, Verdict::Deny(_))
    }
}

/// Decides `call` under `policy`.
///
/// Audit mode relaxes the grants only (the scope, and the channels of a grant): a call
/// outside them is forwarded as [`Verdict::AllowedByAudit`]. Isolation holds in every
/// mode: a malformed path, a route outside the catalog and another plugin's `{self}`
/// data are denied in Audit mode as in Enforce mode.
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
            verdict: Verdict::Deny(Denial::UnknownRoute),
        };
    };
    let scope = policy.scope(route.scope);
    // The grant is checked first, so Enforce mode names the scope's denial before a
    // `{self}` one; Audit mode goes on to the `{self}` check, which no mode relaxes.
    let verdict = match check_grant(route, scope, &path) {
        Err(denial) if policy.mode() == EnforcementMode::Enforce => Verdict::Deny(denial),
        grant => match check_own_data(route, scope, &path, policy) {
            Err(denial) => Verdict::Deny(denial),
            Ok(()) => grant.map_or_else(Verdict::AllowedByAudit, |()| Verdict::Allow),
        },
    };
    Decision {
        route: Some(route),
        scope: Some(scope),
        verdict,
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

/// The grant: the scope, and the channel if the grant is for some channels only. The
/// part of the decision that Audit mode relaxes.
fn check_grant<'a>(
    route: &'a Route,
    scope: &'a Scope,
    path: &CheckedPath<'a>,
) -> Result<(), Denial<'a>> {
    let scope_name = scope.name.as_str();
    match &scope.grant {
        Grant::NotGranted => Err(Denial::ScopeNotGranted { scope: scope_name }),
        Grant::AllChannels => Ok(()),
        Grant::Channels(channels) => {
            let channel = route
                .channel_at
                .and_then(|index| path.segment(index))
                .ok_or(Denial::ChannelRequired { scope: scope_name })?;
            if channels.iter().any(|c| segment_equals(channel, c)) {
                Ok(())
            } else {
                Err(Denial::ChannelNotGranted {
                    scope: scope_name,
                    channel,
                })
            }
        }
    }
}

/// A `{self}` segment must name this plugin: isolation between plugins, in every mode.
fn check_own_data<'a>(
    route: &'a Route,
    scope: &'a Scope,
    path: &CheckedPath<'a>,
    policy: &'a CompiledPolicy,
) -> Result<(), Denial<'a>> {
    match route.self_at.and_then(|index| path.segment(index)) {
        Some(requested) if !segment_equals(requested, policy.self_segment()) => {
            Err(Denial::OtherPluginData {
                scope: scope.name.as_str(),
                requested,
            })
        }
        _ => Ok(()),
    }
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
    fn audit_mode_forwards_calls_outside_the_scope_and_channel_grants() {
        let p = policy(Audit, &[("messages:write", &["C1"])]);
        let denial = ScopeNotGranted {
            scope: "messages:read",
        };
        assert_verdict(
            &p,
            "GET /api/v1/channels/C1/messages",
            AllowedByAudit(denial),
        );
        let scope = "messages:write";
        let denial = ChannelNotGranted {
            scope,
            channel: "C2",
        };
        assert_verdict(
            &p,
            "POST /api/v1/channels/C2/messages",
            AllowedByAudit(denial),
        );
        assert_verdict(&p, "POST /api/v1/channels/C1/messages", Allow);
    }

    #[test]
    fn audit_mode_denies_routes_outside_the_catalog() {
        let p = policy(Audit, &[]);
        for call in [
            "GET /nowhere",
            "GET /api/v1/admin",
            "DELETE /api/v1/channels/C1/messages",
            "GET /api/v1/kv/team-a.weather/city/more",
        ] {
            assert_verdict(&p, call, Deny(UnknownRoute));
        }
    }

    #[test]
    fn audit_mode_denies_another_plugins_key_value_data() {
        let requested = "team-b.weather";
        let denial = |scope| OtherPluginData { scope, requested };
        // Whether the scope is granted or not: the grant is what Audit relaxes, the
        // `{self}` check is not.
        for grants in [&[][..], &[(KV_READ_SCOPE, &[][..]), (KV_WRITE_SCOPE, &[])]] {
            let p = policy(Audit, grants);
            let read = "GET /api/v1/kv/team-b.weather/city";
            assert_verdict(&p, read, Deny(denial(KV_READ_SCOPE)));
            assert_verdict(
                &p,
                "GET /api/v1/kv/team-b.weather",
                Deny(denial(KV_READ_SCOPE)),
            );
            let write = "PUT /api/v1/kv/team-b.weather/city";
            assert_verdict(&p, write, Deny(denial(KV_WRITE_SCOPE)));
            let encoded = "DELETE /api/v1/kv/team-b%2Bweather/city";
            let requested = "team-b%2Bweather";
            let other = OtherPluginData {
                scope: KV_WRITE_SCOPE,
                requested,
            };
            assert_verdict(&p, encoded, Deny(other));
        }
        let p = policy(Audit, &[]);
        let own = "GET /api/v1/kv/team-a.weather/city";
        let not_granted = ScopeNotGranted {
            scope: KV_READ_SCOPE,
        };
        assert_verdict(&p, own, AllowedByAudit(not_granted));
    }

    #[test]
    fn enforce_mode_names_the_missing_scope_before_another_plugins_data() {
        let p = policy(Enforce, &[]);
        let denial = ScopeNotGranted {
            scope: KV_READ_SCOPE,
        };
        assert_verdict(&p, "GET /api/v1/kv/team-b.weather/city", Deny(denial));
    }

    #[test]
    fn audit_mode_still_refuses_malformed_paths() {
        let p = policy(Audit, &[(KV_READ_SCOPE, &[])]);
        assert!(matches!(
            verdict(&p, "GET", "/api/v1/kv/../other"),
            Verdict::Deny(Denial::MalformedPath(_))
        ));
    }

    /// Every call that Audit mode forwards is one Enforce mode forwards under the same
    /// grants plus a grant of its scope in every channel: Audit adds only grants.
    #[test]
    fn audit_mode_adds_only_grants() {
        let calls = [
            "GET /api/v1/channels",
            "GET /api/v1/channels/C1/messages",
            "POST /api/v1/channels/C2/messages",
            "GET /api/v1/kv/team-a.weather/city",
            "PUT /api/v1/kv/team-b.weather/city",
            "GET /api/v1/kv/team-a.weather",
            "GET /api/v1/users/U1",
            "GET /api/v1/admin",
            "GET /api/v1/kv/..",
        ];
        let audit = policy(Audit, &[("messages:write", &["C1"])]);
        for call in calls {
            let (method, path) = call.split_once(' ').unwrap();
            let decision = decide(&Call { method, path }, &audit);
            if !decision.forwards() {
                continue;
            }
            let scope = decision.scope.expect("a forwarded call has a scope");
            let widened = policy(
                Enforce,
                &[("messages:write", &["C1"]), (scope.name.as_str(), &[])],
            );
            assert_eq!(verdict(&widened, method, path), Allow, "{call}");
        }
    }
}
