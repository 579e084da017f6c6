//! Raw request-line bytes -> `http` parsing -> `decide`, under grants chosen by the
//! first input bytes. Beyond "never panics", every call `decide` forwards in Enforce
//! mode must also be allowed by a plain re-statement of the permission model.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plugin_operator::broker::{Call, CompiledPolicy, decide};
use plugin_operator::policy::{
    BrokerPolicy, EnforcementMode, InboundLimits, KNOWN_CHAT_SCOPES, KV_READ_SCOPE, KV_WRITE_SCOPE,
    ScopeGrant, default_catalog,
};

const SELF_SEGMENT: &str = "team-a.weather";
const CHANNELS: [&str; 3] = ["C1", "C2", "C3"];

fn scopes() -> Vec<&'static str> {
    let mut scopes = KNOWN_CHAT_SCOPES.to_vec();
    scopes.extend([KV_READ_SCOPE, KV_WRITE_SCOPE]);
    scopes
}

/// Two bytes per scope: granted?, and which channels (bitmask; none set = all).
fn policy_from(selector: &[u8], mode: EnforcementMode) -> BrokerPolicy {
    let grants = scopes()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| selector.get(2 * i).is_some_and(|b| b & 1 == 1))
        .map(|(i, scope)| {
            let mask = selector.get(2 * i + 1).copied().unwrap_or(0);
            ScopeGrant {
                scope: scope.into(),
                channels: CHANNELS
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| mask & (1 << bit) != 0)
                    .map(|(_, c)| (*c).into())
                    .collect(),
            }
        })
        .collect();
    BrokerPolicy {
        plugin_id: "team-a/weather".into(),
        mode,
        grants,
        rate_limits: vec![],
        max_request_bytes: 1024,
        kv_max_value_bytes: None,
        inbound: InboundLimits {
            request_timeout_seconds: 1,
            max_in_flight: 1,
            max_body_bytes: 1024,
        },
        catalog: default_catalog(),
    }
}

fn naive_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn oracle_allows(method: &str, path: &str, policy: &BrokerPolicy) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let Some(segments) = rest
        .split('/')
        .map(naive_decode)
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    if segments
        .iter()
        .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\\'))
    {
        return false;
    }
    for route in &policy.catalog {
        let template: Vec<&str> = route.path[1..].split('/').collect();
        if route.method != method
            || template.len() != segments.len()
            || !template
                .iter()
                .zip(&segments)
                .all(|(t, s)| t.starts_with('{') || *t == s.as_str())
        {
            continue;
        }
        let grants: Vec<&ScopeGrant> = policy
            .grants
            .iter()
            .filter(|g| g.scope == route.scope)
            .collect();
        if grants.is_empty() {
            return false;
        }
        let value_at = |name: &str| {
            template
                .iter()
                .position(|t| *t == name)
                .map(|i| &segments[i])
        };
        let all_channels = grants.iter().any(|g| g.channels.is_empty());
        if !all_channels {
            let Some(channel) = value_at("{channel}") else {
                return false;
            };
            if !grants.iter().any(|g| g.channels.contains(channel)) {
                return false;
            }
        }
        if value_at("{self}").is_some_and(|owner| owner != SELF_SEGMENT) {
            return false;
        }
        return true;
    }
    false
}

fuzz_target!(|data: &[u8]| {
    const SELECTOR: usize = 18;
    if data.len() < SELECTOR + 1 {
        return;
    }
    let (selector, rest) = data.split_at(SELECTOR);
    let mode = if selector[0] & 0x80 != 0 {
        EnforcementMode::Audit
    } else {
        EnforcementMode::Enforce
    };
    let policy = policy_from(selector, mode);
    let compiled = CompiledPolicy::compile(&policy).expect("generated policies are valid");

    // "METHOD SP request-target", as on the wire.
    let space = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
    let (method, target) = (&rest[..space], rest.get(space + 1..).unwrap_or_default());
    let Ok(method) = http::Method::from_bytes(method) else {
        return;
    };
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let call = Call {
        method: method.as_str(),
        path: uri.path(),
    };
    let decision = decide(&call, &compiled);
    if mode == EnforcementMode::Enforce && decision.forwards() {
        assert!(
            oracle_allows(call.method, call.path, &policy),
            "forwarded {} {} outside {:?}",
            call.method,
            call.path,
            policy.grants
        );
    }
    if decision.forwards() {
        assert!(plugin_operator::broker::check_path(call.path).is_ok());
    }
});
