//! A policy compiled once when it loads: routes ordered for matching, grants and
//! limits indexed by scope, so deciding a call needs no allocation.
//!
//! A compiled policy never changes. The state that enforces it while calls come and go
//! (rate-limit buckets, in-flight permits) is kept apart, in `broker::limits`.

use std::sync::Arc;

use crate::policy::{
    BrokerPolicy, EnforcementMode, InboundLimits, KV_WRITE_SCOPE, PathTemplate, PolicyError,
    TemplateSegment,
};

/// Everything the broker enforces, ready to use. Immutable; shared behind an `Arc` and
/// replaced whole when the policy file changes.
#[derive(Debug)]
pub struct CompiledPolicy {
    plugin_id: String,
    self_segment: String,
    mode: EnforcementMode,
    scopes: Vec<Scope>,
    routes: Vec<Route>,
    inbound: InboundLimits,
}

/// One scope named by the catalog, a grant or a rate limit.
#[derive(Debug)]
pub struct Scope {
    pub name: Arc<String>,
    pub grant: Grant,
    pub rate_limit: Option<RateLimit>,
    /// The largest request body a call needing this scope may carry.
    pub max_body_bytes: u64,
}

/// A scope's rate limit: `burst` calls at once, refilled at `per_minute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_minute: u32,
    pub burst: u32,
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
    /// Validates and compiles `policy`.
    pub fn compile(policy: &BrokerPolicy) -> Result<Self, PolicyError> {
        policy.validate()?;
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
            let template = entry.template()?;
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
            scopes[index].rate_limit = Some(RateLimit {
                per_minute: limit.per_minute,
                burst: limit.burst,
            });
        }

        if let Some(kv_max) = policy.kv_max_value_bytes
            && let Some(kv_write) = scopes
                .iter_mut()
                .find(|s| s.name.as_str() == KV_WRITE_SCOPE)
        {
            kv_write.max_body_bytes = kv_write.max_body_bytes.min(kv_max);
        }

        Ok(Self {
            plugin_id: policy.plugin_id.clone(),
            self_segment: policy.self_segment(),
            mode: policy.mode,
            scopes,
            routes,
            inbound: policy.inbound.clone(),
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

    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    pub fn scope(&self, index: usize) -> &Scope {
        &self.scopes[index]
    }

    pub fn scope_named(&self, name: &str) -> Option<&Scope> {
        self.scopes.iter().find(|s| s.name.as_str() == name)
    }

    pub fn inbound(&self) -> &InboundLimits {
        &self.inbound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::decide::fixture::limited as policy;
    use crate::policy::{CatalogRoute, KV_READ_SCOPE};

    #[test]
    fn grants_of_one_scope_are_merged() {
        let compiled = CompiledPolicy::compile(&policy()).unwrap();
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
        let compiled = CompiledPolicy::compile(&policy()).unwrap();
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
        let me = CatalogRoute::new("GET", "/api/v1/users/me", "profile:read");
        p.catalog.push(me);
        let compiled = CompiledPolicy::compile(&p).unwrap();
        let position = |path: &str| {
            compiled
                .routes()
                .iter()
                .position(|r| r.template.to_string() == path)
                .unwrap()
        };
        assert!(position("/api/v1/users/me") < position("/api/v1/users/{user}"));
    }
}
