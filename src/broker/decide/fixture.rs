//! The policies the broker's unit tests start from. (Integration tests, benchmarks and
//! fuzz targets build theirs with the test-support crate's `PolicyBuilder`.)

use crate::policy::{
    BrokerPolicy, EnforcementMode, InboundLimits, KV_READ_SCOPE, ScopeGrant, ScopeRateLimit,
    default_catalog,
};

/// A policy of `team-a/weather` with the default catalog and these grants (scope and
/// channels; no channel: every channel).
pub fn policy(mode: EnforcementMode, grants: &[(&str, &[&str])]) -> BrokerPolicy {
    BrokerPolicy {
        plugin_id: "team-a/weather".into(),
        mode,
        grants: grants
            .iter()
            .map(|(scope, channels)| ScopeGrant {
                scope: (*scope).into(),
                channels: channels.iter().map(|c| (*c).into()).collect(),
            })
            .collect(),
        rate_limits: vec![],
        max_request_bytes: 4096,
        kv_max_value_bytes: None,
        inbound: InboundLimits {
            request_timeout_seconds: 5,
            max_in_flight: 2,
            max_body_bytes: 1024,
        },
        catalog: default_catalog(),
    }
}

/// `messages:write` granted in two parts (C1, then C2) and rate-limited (60 a minute,
/// bursts of 10); key-value reads granted; key-value values capped at 100 bytes.
pub fn limited() -> BrokerPolicy {
    let mut policy = policy(
        EnforcementMode::Enforce,
        &[
            ("messages:write", &["C1"]),
            ("messages:write", &["C2"]),
            (KV_READ_SCOPE, &[]),
        ],
    );
    policy.rate_limits = vec![ScopeRateLimit {
        scope: "messages:write".into(),
        per_minute: 60,
        burst: 10,
    }];
    policy.kv_max_value_bytes = Some(100);
    policy
}
