//! One way to write a broker policy in tests, benchmark drivers and fuzz targets.

use plugin_operator::broker::CompiledPolicy;
use plugin_operator::policy::{
    BrokerPolicy, EnforcementMode, InboundLimits, ScopeGrant, ScopeRateLimit, default_catalog,
};

use super::PLUGIN_ID;

/// Builds a [`BrokerPolicy`] of [`PLUGIN_ID`]. It starts in Enforce mode with the
/// default catalog, no grant, no rate limit, 64 KiB request bodies both ways, and
/// invocations limited to 5 s and 8 in flight.
#[derive(Clone, Debug)]
#[must_use]
pub struct PolicyBuilder {
    policy: BrokerPolicy,
}

impl Default for PolicyBuilder {
    fn default() -> Self {
        Self {
            policy: BrokerPolicy {
                plugin_id: PLUGIN_ID.into(),
                mode: EnforcementMode::Enforce,
                grants: vec![],
                rate_limits: vec![],
                max_request_bytes: 64 * 1024,
                kv_max_value_bytes: None,
                inbound: InboundLimits {
                    request_timeout_seconds: 5,
                    max_in_flight: 8,
                    max_body_bytes: 64 * 1024,
                },
                catalog: default_catalog(),
            },
        }
    }
}

impl PolicyBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn mode(mut self, mode: EnforcementMode) -> Self {
        self.policy.mode = mode;
        self
    }

    /// Grants `scope` in `channels`; no channel: in every channel.
    pub fn grant(mut self, scope: &str, channels: &[&str]) -> Self {
        self.policy.grants.push(ScopeGrant {
            scope: scope.into(),
            channels: channels.iter().map(|c| (*c).into()).collect(),
        });
        self
    }

    /// [`PolicyBuilder::grant`] for each `(scope, channels)`.
    pub fn grants(self, grants: &[(&str, &[&str])]) -> Self {
        grants.iter().fold(self, |builder, (scope, channels)| {
            builder.grant(scope, channels)
        })
    }

    pub fn rate_limit(mut self, scope: &str, per_minute: u32, burst: u32) -> Self {
        self.policy.rate_limits.push(ScopeRateLimit {
            scope: scope.into(),
            per_minute,
            burst,
        });
        self
    }

    pub fn kv_max_value_bytes(mut self, bytes: u64) -> Self {
        self.policy.kv_max_value_bytes = Some(bytes);
        self
    }

    pub fn build(self) -> BrokerPolicy {
        self.policy
    }

    /// The policy compiled, as the broker enforces it; panics if it is invalid.
    pub fn compile(self) -> CompiledPolicy {
        CompiledPolicy::compile(&self.policy).expect("the built policy is valid")
    }
}

/// The policy most tests start from: [`PolicyBuilder`]'s defaults with these grants.
pub fn policy(grants: &[(&str, &[&str])]) -> BrokerPolicy {
    PolicyBuilder::new().grants(grants).build()
}
