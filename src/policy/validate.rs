//! Checks a [`BrokerPolicy`] before it is written (operator) or enforced (broker).

use super::template::{PathTemplate, TemplateError};
use super::{BrokerPolicy, CatalogRoute, KV_READ_SCOPE, KV_WRITE_SCOPE};

/// Why a policy cannot be enforced. Each message names the offending entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("pluginId {0:?} must be <namespace>/<name> of lowercase letters, digits, '-' and '.'")]
    BadPluginId(String),
    #[error("catalog route {method} {path}: method must be an uppercase HTTP method")]
    BadMethod { method: String, path: String },
    #[error("catalog route {method} {path}: {source}")]
    BadTemplate {
        method: String,
        path: String,
        source: TemplateError,
    },
    #[error("catalog route {method} {path}: the scope must not be empty")]
    EmptyRouteScope { method: String, path: String },
    #[error(
        "catalog route {method} {path}: {scope} is granted by permissions.database, so its routes must name the plugin's own space with {{self}}"
    )]
    KeyValueRouteWithoutSelf {
        method: String,
        path: String,
        scope: String,
    },
    #[error("catalog routes {method} {first} and {method} {second} cannot be told apart")]
    AmbiguousRoutes {
        method: String,
        first: String,
        second: String,
    },
    #[error("a grant has an empty scope")]
    EmptyGrantScope,
    #[error("the grant of {0:?} lists an empty channel")]
    EmptyChannel(String),
    #[error("the rate limit of {0:?} needs perMinute >= 1 and burst >= 1")]
    BadRateLimit(String),
    #[error("the scope {0:?} has more than one rate limit")]
    DuplicateRateLimit(String),
    #[error("inbound limits need requestTimeoutSeconds >= 1 and maxInFlight >= 1")]
    BadInboundLimits,
}

impl BrokerPolicy {
    /// Every problem that would make the broker refuse this policy; `Ok` means the
    /// broker will load it.
    pub fn validate(&self) -> Result<(), PolicyError> {
        validate_plugin_id(&self.plugin_id)?;
        validate_catalog(&self.catalog)?;
        for grant in &self.grants {
            if grant.scope.trim().is_empty() {
                return Err(PolicyError::EmptyGrantScope);
            }
            if grant.channels.iter().any(|c| c.is_empty()) {
                return Err(PolicyError::EmptyChannel(grant.scope.clone()));
            }
        }
        for (index, limit) in self.rate_limits.iter().enumerate() {
            if limit.per_minute == 0 || limit.burst == 0 {
                return Err(PolicyError::BadRateLimit(limit.scope.clone()));
            }
            if self.rate_limits[..index]
                .iter()
                .any(|l| l.scope == limit.scope)
            {
                return Err(PolicyError::DuplicateRateLimit(limit.scope.clone()));
            }
        }
        if self.inbound.request_timeout_seconds == 0 || self.inbound.max_in_flight == 0 {
            return Err(PolicyError::BadInboundLimits);
        }
        Ok(())
    }
}

/// Every problem that would make the broker refuse these routes: the check the
/// operator makes of a ScopeCatalog before compiling it into any policy.
pub fn validate_catalog(catalog: &[CatalogRoute]) -> Result<(), PolicyError> {
    let mut parsed: Vec<(&str, PathTemplate)> = Vec::with_capacity(catalog.len());
    for route in catalog {
        let is_method =
            !route.method.is_empty() && route.method.bytes().all(|b| b.is_ascii_uppercase());
        if !is_method {
            return Err(PolicyError::BadMethod {
                method: route.method.clone(),
                path: route.path.clone(),
            });
        }
        if route.scope.trim().is_empty() {
            return Err(PolicyError::EmptyRouteScope {
                method: route.method.clone(),
                path: route.path.clone(),
            });
        }
        let template = route.template()?;
        let key_value = route.scope == KV_READ_SCOPE || route.scope == KV_WRITE_SCOPE;
        if key_value && !route.path.split('/').any(|segment| segment == "{self}") {
            return Err(PolicyError::KeyValueRouteWithoutSelf {
                method: route.method.clone(),
                path: route.path.clone(),
                scope: route.scope.clone(),
            });
        }
        if let Some((_, earlier)) = parsed
            .iter()
            .find(|(method, earlier)| *method == route.method && earlier.same_shape(&template))
        {
            return Err(PolicyError::AmbiguousRoutes {
                method: route.method.clone(),
                first: earlier.to_string(),
                second: route.path.clone(),
            });
        }
        parsed.push((&route.method, template));
    }
    Ok(())
}

fn validate_plugin_id(id: &str) -> Result<(), PolicyError> {
    let is_name_part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    match id.split_once('/') {
        Some((namespace, name))
            if is_name_part(namespace) && !namespace.contains('.') && is_name_part(name) =>
        {
            Ok(())
        }
        _ => Err(PolicyError::BadPluginId(id.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{EnforcementMode, InboundLimits, ScopeRateLimit, default_catalog};

    fn policy() -> BrokerPolicy {
        BrokerPolicy {
            plugin_id: "team-a/weather".into(),
            mode: EnforcementMode::Enforce,
            grants: vec![],
            rate_limits: vec![],
            max_request_bytes: 1024,
            kv_max_value_bytes: None,
            inbound: InboundLimits {
                request_timeout_seconds: 10,
                max_in_flight: 4,
                max_body_bytes: 1024,
            },
            catalog: default_catalog(),
        }
    }

    #[test]
    fn default_catalog_policy_is_valid() {
        assert_eq!(policy().validate(), Ok(()));
    }

    #[test]
    fn plugin_id_without_namespace_is_refused() {
        let mut p = policy();
        p.plugin_id = "weather".into();
        assert!(matches!(p.validate(), Err(PolicyError::BadPluginId(_))));
    }

    #[test]
    fn routes_differing_only_in_placeholder_names_are_ambiguous() {
        let mut p = policy();
        p.catalog.push(CatalogRoute {
            method: "GET".into(),
            path: "/api/v1/users/{id}".into(),
            scope: "users:read".into(),
        });
        assert!(matches!(
            p.validate(),
            Err(PolicyError::AmbiguousRoutes { .. })
        ));
    }

    #[test]
    fn zero_rate_limit_is_refused() {
        let mut p = policy();
        p.rate_limits.push(ScopeRateLimit {
            scope: "messages:write".into(),
            per_minute: 0,
            burst: 1,
        });
        assert!(matches!(p.validate(), Err(PolicyError::BadRateLimit(_))));
    }

    #[test]
    fn a_key_value_route_must_stay_in_the_plugins_own_space() {
        let mut catalog = default_catalog();
        catalog.push(CatalogRoute::new(
            "GET",
            "/api/v1/kv-all/{plugin}/{key}",
            KV_READ_SCOPE,
        ));
        let error = validate_catalog(&catalog).unwrap_err();
        assert!(
            matches!(error, PolicyError::KeyValueRouteWithoutSelf { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("{self}"), "{error}");
    }
}
