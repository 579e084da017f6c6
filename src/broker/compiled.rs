//! A policy compiled once when it loads: routes ordered for matching, grants, limits
//! and rate-limit buckets indexed by scope, so deciding a call needs no allocation.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;

use super::rate_limit::TokenBucket;
use crate::policy::{
    BrokerPolicy, EnforcementMode, InboundLimits, KV_WRITE_SCOPE, PathTemplate, PolicyError,
    TemplateSegment,
};

/// Everything the broker enforces, ready to use. Shared behind an `Arc` and replaced
/// whole when the policy file changes.
#[derive(Debug)]
pub struct CompiledPolicy {
    plugin_id: String,
    self_segment: String,
    mode: EnforcementMode,
    scopes: Vec<Scope>,
    routes: Vec<Route>,
    max_request_bytes: u64,
    inbound: InboundLimits,
    in_flight: Arc<Semaphore>,
}

/// One scope named by the catalog, a grant or a rate limit.
#[derive(Debug)]
pub struct Scope {
    pub name: Arc<String>,
    pub grant: Grant,
    pub rate_limit: Option<Arc<TokenBucket>>,
    /// The largest request body a call needing this scope may carry.
    pub max_body_bytes: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Grant {
    NotGranted,
    AllChannels,
    /// Only these channels, and only on routes that name a `{channel}`.
    Channels(Vec<String>),
}

#[derive(Debug)]
pub struct Route {
    pub method: String,
    pub template: PathTemplate,
    pub scope: usize,
    pub channel_at: Option<usize>,
    pub self_at: Option<usize>,
}

impl CompiledPolicy {
    /// Validates and compiles `policy`. Rate-limit buckets and the in-flight cap of
    /// `previous` are carried over where their limits did not change, so a reload
    /// neither refills a bucket nor forgets invocations in flight.
    pub fn compile(
        policy: &BrokerPolicy,
        previous: Option<&CompiledPolicy>,
    ) -> Result<Self, PolicyError> {
        policy.validate()?;
        let now = Instant::now();
        let mut scopes: Vec<Scope> = Vec::new();
        let scope_index = |name: &str, scopes: &mut Vec<Scope>| -> usize {
            if let Some(index) = scopes.iter().position(|s| s.name.as_str() == name) {
                return index;
            }
            scopes.push(Scope {
                name: Arc::new(name.to_owned()),
                grant: Grant::NotGranted,
                rate_limit: None,
                max_body_bytes: policy.max_request_bytes,
            });
            scopes.len() - 1
        };

        let mut routes = Vec::with_capacity(policy.catalog.len());
        for entry in &policy.catalog {
            let template =
                PathTemplate::parse(&entry.path).map_err(|source| PolicyError::BadTemplate {
                    method: entry.method.clone(),
                    path: entry.path.clone(),
                    source,
                })?;
            let position_of =
                |wanted: &TemplateSegment| template.segments().iter().position(|s| s == wanted);
            routes.push(Route {
                method: entry.method.clone(),
                channel_at: position_of(&TemplateSegment::Channel),
                self_at: position_of(&TemplateSegment::SelfId),
                scope: scope_index(&entry.scope, &mut scopes),
                template,
            });
        }
        // Most specific first: at the first position where two routes differ, a literal
        // wins over a placeholder.
        routes.sort_by_cached_key(|route| {
            route
                .template
                .segments()
                .iter()
                .map(TemplateSegment::is_placeholder)
                .collect::<Vec<_>>()
        });

        for grant in &policy.grants {
            let index = scope_index(&grant.scope, &mut scopes);
            let scope = &mut scopes[index];
            scope.grant = match (&scope.grant, grant.channels.is_empty()) {
                (Grant::AllChannels, _) | (_, true) => Grant::AllChannels,
                (Grant::Channels(existing), false) => {
                    let mut channels = existing.clone();
                    channels.extend(grant.channels.iter().cloned());
                    Grant::Channels(channels)
                }
                (Grant::NotGranted, false) => Grant::Channels(grant.channels.clone()),
            };
        }

        for limit in &policy.rate_limits {
            let index = scope_index(&limit.scope, &mut scopes);
            let carried_over = previous
                .and_then(|p| p.scope_named(&limit.scope))
                .and_then(|s| s.rate_limit.clone())
                .filter(|bucket| bucket.has_limits(limit.per_minute, limit.burst));
            scopes[index].rate_limit =
                Some(carried_over.unwrap_or_else(|| {
                    Arc::new(TokenBucket::new(limit.per_minute, limit.burst, now))
                }));
        }

        if let Some(kv_max) = policy.kv_max_value_bytes
            && let Some(kv_write) = scopes
                .iter_mut()
                .find(|s| s.name.as_str() == KV_WRITE_SCOPE)
        {
            kv_write.max_body_bytes = kv_write.max_body_bytes.min(kv_max);
        }

        let max_in_flight = policy.inbound.max_in_flight as usize;
        let in_flight = previous
            .filter(|p| p.inbound.max_in_flight == policy.inbound.max_in_flight)
            .map(|p| p.in_flight.clone())
            .unwrap_or_else(|| Arc::new(Semaphore::new(max_in_flight)));

        Ok(Self {
            plugin_id: policy.plugin_id.clone(),
            self_segment: policy.self_segment(),
            mode: policy.mode,
            scopes,
            routes,
            max_request_bytes: policy.max_request_bytes,
            inbound: policy.inbound.clone(),
            in_flight,
        })
    }

    pub fn plugin_id(&self) -> &str {
        &self.plugin_id
    }

    pub fn self_segment(&self) -> &str {
        &self.self_segment
    }

    pub fn mode(&self) -> EnforcementMode {
        self.mode
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn scope(&self, index: usize) -> &Scope {
        &self.scopes[index]
    }

    pub fn scope_named(&self, name: &str) -> Option<&Scope> {
        self.scopes.iter().find(|s| s.name.as_str() == name)
    }

    /// The body limit for calls that match no route (forwarded only in Audit mode).
    pub fn max_request_bytes(&self) -> u64 {
        self.max_request_bytes
    }

    pub fn inbound(&self) -> &InboundLimits {
        &self.inbound
    }

    /// Permits for invocations in flight; one is held for each until its response ends.
    pub fn in_flight(&self) -> &Arc<Semaphore> {
        &self.in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{CatalogRoute, KV_READ_SCOPE, ScopeGrant, ScopeRateLimit, default_catalog};

    fn policy() -> BrokerPolicy {
        BrokerPolicy {
            plugin_id: "team-a/weather".into(),
            mode: EnforcementMode::Enforce,
            grants: vec![
                ScopeGrant {
                    scope: "messages:write".into(),
                    channels: vec!["C1".into()],
                },
                ScopeGrant {
                    scope: "messages:write".into(),
                    channels: vec!["C2".into()],
                },
                ScopeGrant {
                    scope: KV_READ_SCOPE.into(),
                    channels: vec![],
                },
            ],
            rate_limits: vec![ScopeRateLimit {
                scope: "messages:write".into(),
                per_minute: 60,
                burst: 10,
            }],
            max_request_bytes: 4096,
            kv_max_value_bytes: Some(100),
            inbound: InboundLimits {
                request_timeout_seconds: 5,
                max_in_flight: 2,
                max_body_bytes: 1024,
            },
            catalog: default_catalog(),
        }
    }

    #[test]
    fn grants_of_one_scope_are_merged() {
        let compiled = CompiledPolicy::compile(&policy(), None).unwrap();
        assert_eq!(
            compiled.scope_named("messages:write").unwrap().grant,
            Grant::Channels(vec!["C1".into(), "C2".into()])
        );
        assert_eq!(
            compiled.scope_named(KV_READ_SCOPE).unwrap().grant,
            Grant::AllChannels
        );
        assert_eq!(
            compiled.scope_named("users:read").unwrap().grant,
            Grant::NotGranted
        );
    }

    #[test]
    fn kv_writes_are_capped_by_kv_max_value_bytes() {
        let compiled = CompiledPolicy::compile(&policy(), None).unwrap();
        assert_eq!(
            compiled.scope_named(KV_WRITE_SCOPE).unwrap().max_body_bytes,
            100
        );
        assert_eq!(
            compiled
                .scope_named("messages:write")
                .unwrap()
                .max_body_bytes,
            4096
        );
    }

    #[test]
    fn literal_routes_are_tried_before_placeholders() {
        let mut p = policy();
        p.catalog.push(CatalogRoute {
            method: "GET".into(),
            path: "/api/v1/users/me".into(),
            scope: "profile:read".into(),
        });
        let compiled = CompiledPolicy::compile(&p, None).unwrap();
        let position = |path: &str| {
            compiled
                .routes()
                .iter()
                .position(|r| r.template.to_string() == path)
                .unwrap()
        };
        assert!(position("/api/v1/users/me") < position("/api/v1/users/{user}"));
    }

    #[test]
    fn reload_keeps_buckets_whose_limits_did_not_change() {
        let first = CompiledPolicy::compile(&policy(), None).unwrap();
        let same = CompiledPolicy::compile(&policy(), Some(&first)).unwrap();
        let bucket = |c: &CompiledPolicy| {
            c.scope_named("messages:write")
                .unwrap()
                .rate_limit
                .clone()
                .unwrap()
        };
        assert!(Arc::ptr_eq(&bucket(&first), &bucket(&same)));
        assert!(Arc::ptr_eq(first.in_flight(), same.in_flight()));

        let mut changed = policy();
        changed.rate_limits[0].burst = 11;
        changed.inbound.max_in_flight = 3;
        let changed = CompiledPolicy::compile(&changed, Some(&first)).unwrap();
        assert!(!Arc::ptr_eq(&bucket(&first), &bucket(&changed)));
        assert!(!Arc::ptr_eq(first.in_flight(), changed.in_flight()));
    }
}
