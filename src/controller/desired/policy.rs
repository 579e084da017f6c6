//! Compiles a Plugin's permissions into the broker's policy.

use super::ChildNames;
use crate::api::{DatabaseAccessMode, PermissionMode, Plugin};
use crate::policy::{
    BrokerPolicy, CatalogRoute, EnforcementMode, InboundLimits, KV_READ_SCOPE, KV_WRITE_SCOPE,
    ScopeGrant, ScopeRateLimit,
};

pub const DEFAULT_REQUEST_SECONDS: u32 = 10;
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 16;
pub const DEFAULT_KV_MAX_VALUE_BYTES: u64 = 65_536;
/// Largest body the plugin may send to the chat API, or receive as an invocation.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

/// The policy the broker of this Plugin's pods enforces.
pub fn broker_policy(
    plugin: &Plugin,
    names: &ChildNames,
    catalog: &[CatalogRoute],
) -> BrokerPolicy {
    let spec = &plugin.spec;
    let permissions = spec.permissions.clone().unwrap_or_default();
    let mut grants: Vec<ScopeGrant> = permissions
        .chat_api
        .iter()
        .map(|grant| ScopeGrant {
            scope: grant.scope.as_str().into(),
            channels: grant.channels.clone(),
        })
        .collect();
    if let Some(database) = &permissions.database {
        grants.push(ScopeGrant {
            scope: KV_READ_SCOPE.into(),
            channels: vec![],
        });
        if database.access == DatabaseAccessMode::ReadWrite {
            grants.push(ScopeGrant {
                scope: KV_WRITE_SCOPE.into(),
                channels: vec![],
            });
        }
    }
    let rate_limits = spec
        .rate_limits
        .iter()
        .map(|limit| {
            let per_minute = limit.per_minute.max(1) as u32;
            let burst = limit
                .burst
                .map(|b| b.max(1) as u32)
                .unwrap_or((per_minute / 60).max(1));
            ScopeRateLimit {
                scope: limit.scope.clone(),
                per_minute,
                burst,
            }
        })
        .collect();
    BrokerPolicy {
        plugin_id: names.plugin_id(),
        mode: match permissions.mode.unwrap_or_default() {
            PermissionMode::Enforce => EnforcementMode::Enforce,
            PermissionMode::Audit => EnforcementMode::Audit,
        },
        grants,
        rate_limits,
        max_request_bytes: MAX_BODY_BYTES,
        kv_max_value_bytes: permissions.database.as_ref().map(|database| {
            database
                .max_value_bytes
                .map(|b| b as u64)
                .unwrap_or(DEFAULT_KV_MAX_VALUE_BYTES)
        }),
        inbound: InboundLimits {
            request_timeout_seconds: spec
                .timeouts
                .as_ref()
                .and_then(|t| t.request_seconds)
                .map_or(DEFAULT_REQUEST_SECONDS, |s| s as u32),
            max_in_flight: spec
                .concurrency
                .as_ref()
                .and_then(|c| c.max_in_flight)
                .map_or(DEFAULT_MAX_IN_FLIGHT, |n| n as u32),
            max_body_bytes: MAX_BODY_BYTES,
        },
        catalog: catalog.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::desired::fixtures::{MINIMAL, plugin};
    use crate::policy::default_catalog;

    fn compile(extra: &str) -> BrokerPolicy {
        let p = plugin(&format!("{MINIMAL}{extra}"));
        broker_policy(&p, &ChildNames::of(&p).unwrap(), &default_catalog())
    }

    #[test]
    fn plugin_without_permissions_is_granted_nothing() {
        let policy = compile("");
        assert!(policy.grants.is_empty());
        assert_eq!(policy.mode, EnforcementMode::Enforce);
        assert_eq!(policy.kv_max_value_bytes, None);
        assert_eq!(policy.plugin_id, "team-a/weather");
    }

    #[test]
    fn chat_scopes_keep_their_channel_restrictions() {
        let policy = compile(
            "permissions:\n  chatApi:\n  - {scope: 'messages:read'}\n  - {scope: 'messages:write', channels: [C123]}\n",
        );
        assert_eq!(
            policy.grants,
            vec![
                ScopeGrant {
                    scope: "messages:read".into(),
                    channels: vec![]
                },
                ScopeGrant {
                    scope: "messages:write".into(),
                    channels: vec!["C123".into()]
                },
            ]
        );
    }

    #[test]
    fn read_only_database_grants_kv_read_but_not_kv_write() {
        let policy = compile("permissions:\n  database: {access: ReadOnly}\n");
        let scopes: Vec<_> = policy.grants.iter().map(|g| g.scope.as_str()).collect();
        assert_eq!(scopes, vec!["kv:read"]);
        assert_eq!(policy.kv_max_value_bytes, Some(DEFAULT_KV_MAX_VALUE_BYTES));
    }

    #[test]
    fn read_write_database_grants_both_kv_scopes_with_its_value_cap() {
        let policy =
            compile("permissions:\n  database: {access: ReadWrite, maxValueBytes: 1024}\n");
        let scopes: Vec<_> = policy.grants.iter().map(|g| g.scope.as_str()).collect();
        assert_eq!(scopes, vec!["kv:read", "kv:write"]);
        assert_eq!(policy.kv_max_value_bytes, Some(1024));
    }

    #[test]
    fn audit_mode_is_carried_into_the_policy() {
        assert_eq!(
            compile("permissions:\n  mode: Audit\n").mode,
            EnforcementMode::Audit
        );
    }

    #[test]
    fn rate_limit_without_burst_allows_one_seconds_worth() {
        let policy = compile(
            "permissions:\n  chatApi: [{scope: 'messages:write'}, {scope: 'messages:read'}]\nrateLimits:\n- {scope: 'messages:write', perMinute: 600}\n- {scope: 'messages:read', perMinute: 6}\n",
        );
        assert_eq!(
            policy.rate_limits[0],
            ScopeRateLimit {
                scope: "messages:write".into(),
                per_minute: 600,
                burst: 10
            }
        );
        assert_eq!(policy.rate_limits[1].burst, 1);
    }

    #[test]
    fn inbound_limits_default_and_follow_the_spec() {
        assert_eq!(
            compile("").inbound.request_timeout_seconds,
            DEFAULT_REQUEST_SECONDS
        );
        assert_eq!(compile("").inbound.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
        let policy = compile("timeouts: {requestSeconds: 3}\nconcurrency: {maxInFlight: 2}\n");
        assert_eq!(policy.inbound.request_timeout_seconds, 3);
        assert_eq!(policy.inbound.max_in_flight, 2);
    }

    #[test]
    fn the_catalogs_routes_are_embedded() {
        assert_eq!(compile("").catalog, default_catalog());
    }
}
