//! The bounds step: a Plugin's spec against the PluginPolicies that select its
//! namespace. Pure: out come each excess (what was asked, which policy, what it allows)
//! and the spec narrowed to what every policy allows, which the broker and the
//! NetworkPolicy enforce at once while the Plugin is held. Admission refuses the same
//! excesses for new writes (charts/.../plugin-policy-admission.yaml); this check covers
//! the Plugins that were admitted before a policy narrowed.

pub mod cidr;
pub mod selector;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;

use super::desired::{DEFAULT_KV_MAX_VALUE_BYTES, plugin_resources};
use crate::api::quantity;
use crate::api::{
    AllowedObjects, ChatApiGrant, DatabaseAccessMode, KeyRef, PermissionMode, PluginPolicy,
    PluginSpec,
};
use crate::policy::{KV_READ_SCOPE, KV_WRITE_SCOPE};

pub use selector::{selecting, selects};

/// The largest `maxValueBytes` the Plugin CRD admits.
const CRD_MAX_VALUE_BYTES: i64 = 1_048_576;

/// One thing a Plugin asks for that a policy does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excess {
    /// Where in the spec, e.g. `permissions.chatApi[files:write]`.
    pub field: String,
    /// What the Plugin asks for there.
    pub asked: String,
    /// The policy that does not allow it (empty when no policy selects the namespace).
    pub policy: String,
    /// What that policy allows instead.
    pub allowed: String,
}

impl fmt::Display for Excess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.policy.is_empty() {
            return write!(f, "{}: {}", self.field, self.allowed);
        }
        write!(
            f,
            "{} {}: PluginPolicy {} allows {}",
            self.field, self.asked, self.policy, self.allowed
        )
    }
}

/// Labels of the ConfigMaps a Plugin's `env[].valueFrom` names that exist, for policies
/// that allow ConfigMaps by label (Secrets are allowed by name only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvObjects {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// The outcome of the check.
#[derive(Clone, Debug, PartialEq)]
pub struct Review {
    /// The names of the policies that apply.
    pub policies: Vec<String>,
    /// Every excess; empty when the Plugin is within every policy.
    pub excesses: Vec<Excess>,
    /// The spec narrowed to what every policy allows.
    pub granted: PluginSpec,
    /// The RuntimeClass the policies force onto the pods.
    pub runtime_class_name: Option<String>,
}

impl Review {
    pub fn permitted(&self) -> bool {
        self.excesses.is_empty()
    }

    /// Every excess in one message, for a condition or an Event.
    pub fn message(&self) -> String {
        let parts: Vec<String> = self.excesses.iter().map(Excess::to_string).collect();
        format!(
            "held: the Plugin asks for more than its PluginPolicy allows; what is still allowed is enforced: {}",
            parts.join("; ")
        )
    }
}

/// Checks `spec` against every one of `policies` (those that select its namespace).
/// With none, nothing is granted: the Plugin is held until an admin's policy selects
/// its namespace.
pub fn review(spec: &PluginSpec, policies: &[&PluginPolicy], env: &EnvObjects) -> Review {
    let mut granted = spec.clone();
    let mut excesses = vec![];
    if policies.is_empty() {
        granted.permissions = None;
        granted.rate_limits.clear();
        excesses.push(Excess {
            field: "metadata.namespace".into(),
            asked: String::new(),
            policy: String::new(),
            allowed: "no PluginPolicy selects this namespace, so nothing is allowed; ask the cluster's admins for one".into(),
        });
    }
    for policy in policies {
        let mut check = Check {
            policy,
            name: policy.name_any(),
            excesses: &mut excesses,
        };
        check.permissions(&mut granted);
        check.workload(&granted, env);
    }
    drop_ungranted_rate_limits(&mut granted);
    let mut classes: Vec<String> = policies
        .iter()
        .filter_map(|p| p.spec.runtime_class_name.clone())
        .collect();
    classes.dedup();
    if classes.len() > 1 {
        excesses.push(Excess {
            field: "runtimeClassName".into(),
            asked: String::new(),
            policy: String::new(),
            allowed: format!(
                "the PluginPolicies that select this namespace force different RuntimeClasses ({}); ask the cluster's admins to agree on one",
                classes.join(", ")
            ),
        });
    }
    Review {
        policies: policies.iter().map(|p| p.name_any()).collect(),
        excesses,
        granted,
        runtime_class_name: classes.into_iter().next(),
    }
}

/// One policy's check; each method records its excesses and narrows the grants.
struct Check<'a> {
    policy: &'a PluginPolicy,
    name: String,
    excesses: &'a mut Vec<Excess>,
}

impl Check<'_> {
    fn excess(&mut self, field: impl Into<String>, asked: impl Into<String>, allowed: String) {
        self.excesses.push(Excess {
            field: field.into(),
            asked: asked.into(),
            policy: self.name.clone(),
            allowed,
        });
    }

    /// What the broker and the NetworkPolicy enforce; narrowed where it exceeds.
    fn permissions(&mut self, granted: &mut PluginSpec) {
        let Some(permissions) = granted.permissions.as_mut() else {
            return;
        };
        let bounds = &self.policy.spec;
        if permissions.mode == Some(PermissionMode::Audit) && bounds.allow_audit_mode != Some(true)
        {
            self.excess("permissions.mode", "Audit", "only Enforce".into());
            permissions.mode = Some(PermissionMode::Enforce);
        }
        let grants = std::mem::take(&mut permissions.chat_api);
        permissions.chat_api = grants
            .into_iter()
            .filter_map(|grant| self.chat_grant(grant))
            .collect();
        if let Some(database) = permissions.database.take() {
            permissions.database = self.database(database);
        }
        if let Some(network) = permissions.network.as_mut() {
            let rules = std::mem::take(&mut network.egress);
            network.egress = rules
                .into_iter()
                .filter(|rule| self.egress_allowed(&rule.cidr))
                .collect();
        }
    }

    fn chat_grant(&mut self, mut grant: ChatApiGrant) -> Option<ChatApiGrant> {
        let scope = grant.scope.as_str();
        let field = format!("permissions.chatApi[{scope}]");
        let Some(allowed) = self.policy.spec.chat_api.iter().find(|a| a.scope == scope) else {
            let scopes: Vec<&str> = self
                .policy
                .spec
                .chat_api
                .iter()
                .map(|a| a.scope.as_str())
                .collect();
            self.excess(
                field,
                "scope",
                format!("the scopes [{}]", scopes.join(", ")),
            );
            return None;
        };
        if allowed.channels.is_empty() {
            return Some(grant);
        }
        let allows = format!("channels [{}]", allowed.channels.join(", "));
        if grant.channels.is_empty() {
            self.excess(field, "on every channel", allows);
            grant.channels = allowed.channels.clone();
            return Some(grant);
        }
        let outside: Vec<String> = grant
            .channels
            .iter()
            .filter(|c| !allowed.channels.contains(c))
            .cloned()
            .collect();
        if outside.is_empty() {
            return Some(grant);
        }
        self.excess(
            field,
            format!("on channels [{}]", outside.join(", ")),
            allows,
        );
        grant.channels.retain(|c| allowed.channels.contains(c));
        (!grant.channels.is_empty()).then_some(grant)
    }

    fn database(
        &mut self,
        mut database: crate::api::DatabaseAccess,
    ) -> Option<crate::api::DatabaseAccess> {
        let Some(allowed) = self.policy.spec.database.clone() else {
            self.excess(
                "permissions.database",
                format!("{:?}", database.access),
                "no key-value access".into(),
            );
            return None;
        };
        if database.access == DatabaseAccessMode::ReadWrite
            && allowed.access == DatabaseAccessMode::ReadOnly
        {
            self.excess(
                "permissions.database.access",
                "ReadWrite",
                "ReadOnly".into(),
            );
            database.access = DatabaseAccessMode::ReadOnly;
        }
        let asked = database
            .max_value_bytes
            .unwrap_or(DEFAULT_KV_MAX_VALUE_BYTES as i64);
        let most = allowed.max_value_bytes.unwrap_or(CRD_MAX_VALUE_BYTES);
        if asked > most {
            self.excess(
                "permissions.database.maxValueBytes",
                asked.to_string(),
                format!("at most {most}"),
            );
            database.max_value_bytes = Some(most);
        }
        Some(database)
    }

    fn egress_allowed(&mut self, text: &str) -> bool {
        let field = "permissions.network.egress";
        let asked = format!("to {text}");
        let Some(bounds) = self.policy.spec.egress.clone() else {
            self.excess(field, asked, "no egress".into());
            return false;
        };
        let Some(net) = cidr::parse(text) else {
            self.excess(field, asked, "CIDRs only".into());
            return false;
        };
        let denied: Vec<IpNet> = bounds
            .denied
            .iter()
            .filter_map(|d| cidr::parse(d))
            .collect();
        if let Some(range) = denied.iter().find(|d| cidr::overlaps(d, &net)) {
            self.excess(
                field,
                asked,
                format!("nothing that overlaps the denied range {range}"),
            );
            return false;
        }
        let inside = bounds
            .allowed
            .iter()
            .filter_map(|a| cidr::parse(a))
            .any(|a| cidr::contains(&a, &net));
        if !inside {
            self.excess(
                field,
                asked,
                format!("egress within [{}]", bounds.allowed.join(", ")),
            );
        }
        inside
    }

    /// What shapes the pods: image, resources, replicas, env sources. These cannot be
    /// narrowed; the Plugin is held with its Deployment as it was.
    fn workload(&mut self, spec: &PluginSpec, env: &EnvObjects) {
        let bounds = self.policy.spec.clone();
        if let Some(images) = &bounds.images {
            if !images
                .repositories
                .iter()
                .any(|r| spec.image.starts_with(r))
            {
                self.excess(
                    "image",
                    spec.image.clone(),
                    format!("images from [{}]", images.repositories.join(", ")),
                );
            }
            if images.require_digest == Some(true) && !pinned_by_digest(&spec.image) {
                self.excess(
                    "image",
                    spec.image.clone(),
                    "only images pinned by digest (@sha256:<64 hex digits>)".into(),
                );
            }
        }
        if let Some(most) = bounds.max_replicas {
            let replicas = spec.replicas.unwrap_or(1);
            if replicas > most {
                self.excess("replicas", replicas.to_string(), format!("at most {most}"));
            }
        }
        if let Some(most) = &bounds.max_resources {
            self.resources(spec, most);
        }
        for var in &spec.env {
            let Some(source) = &var.value_from else {
                continue;
            };
            let allowed = bounds.env_sources.clone().unwrap_or_default();
            if let Some(key) = &source.secret_key_ref {
                let names = allowed.secrets.clone().map(AllowedObjects::from);
                self.env_object(&var.name, "Secret", key, names.as_ref(), &BTreeMap::new());
            }
            if let Some(key) = &source.config_map_key_ref {
                self.env_object(
                    &var.name,
                    "ConfigMap",
                    key,
                    allowed.config_maps.as_ref(),
                    &env.config_maps,
                );
            }
        }
    }

    fn resources(&mut self, spec: &PluginSpec, most: &crate::api::ResourceAmounts) {
        // A quantity the operator cannot read is reported by the validate step.
        let Ok(amounts) = plugin_resources(spec) else {
            return;
        };
        let checks = [
            ("resources.requests.cpu", &amounts.cpu_request, &most.cpu),
            ("resources.limits.cpu", &amounts.cpu_limit, &most.cpu),
            (
                "resources.requests.memory",
                &amounts.memory_request,
                &most.memory,
            ),
            (
                "resources.limits.memory",
                &amounts.memory_limit,
                &most.memory,
            ),
        ];
        for (field, asked, ceiling) in checks {
            let Some(Quantity(ceiling)) = ceiling else {
                continue;
            };
            let above = match (quantity::parse(asked), quantity::parse(ceiling)) {
                (Ok(asked), Ok(ceiling)) => asked > ceiling,
                _ => true,
            };
            if above {
                self.excess(field, asked.clone(), format!("at most {ceiling}"));
            }
        }
    }

    fn env_object(
        &mut self,
        variable: &str,
        kind: &str,
        key: &KeyRef,
        allowed: Option<&AllowedObjects>,
        existing: &BTreeMap<String, BTreeMap<String, String>>,
    ) {
        let allowed = allowed.cloned().unwrap_or_default();
        let by_name = allowed.names.contains(&key.name);
        let by_label = allowed.selector.as_ref().is_some_and(|s| {
            existing
                .get(&key.name)
                .is_some_and(|labels| selects(s, labels))
        });
        if by_name || by_label {
            return;
        }
        let mut allows = format!("{kind}s named [{}]", allowed.names.join(", "));
        if allowed.selector.is_some() {
            allows.push_str(" or with the policy's labels");
        }
        self.excess(
            format!("env[{variable}].valueFrom"),
            format!("{kind} {}", key.name),
            allows,
        );
    }
}

/// Whether `image` ends in `@sha256:` and 64 lower-case hex digits.
pub fn pinned_by_digest(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(name, digest)| {
        !name.is_empty()
            && digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Rate limits only for what is still granted.
fn drop_ungranted_rate_limits(spec: &mut PluginSpec) {
    let permissions = spec.permissions.clone().unwrap_or_default();
    let database = permissions.database.as_ref();
    spec.rate_limits.retain(|limit| match limit.scope.as_str() {
        KV_READ_SCOPE => database.is_some(),
        KV_WRITE_SCOPE => database.is_some_and(|d| d.access == DatabaseAccessMode::ReadWrite),
        scope => permissions
            .chat_api
            .iter()
            .any(|g| g.scope.as_str() == scope),
    });
}

/// The review as the Plugin's `status.permissions`.
pub fn permissions_status(review: &Review) -> crate::api::PermissionsStatus {
    let permissions = review.granted.permissions.clone().unwrap_or_default();
    let granted = crate::api::GrantedPermissions {
        mode: Some(format!("{:?}", permissions.mode.unwrap_or_default())),
        chat_api: permissions
            .chat_api
            .iter()
            .map(|g| match g.channels.as_slice() {
                [] => g.scope.as_str().to_string(),
                channels => format!("{} on {}", g.scope.as_str(), channels.join(", ")),
            })
            .collect(),
        database: permissions.database.as_ref().map(|d| {
            let bytes = d
                .max_value_bytes
                .unwrap_or(DEFAULT_KV_MAX_VALUE_BYTES as i64);
            format!("{:?}, values up to {bytes} bytes", d.access)
        }),
        egress: permissions
            .network
            .iter()
            .flat_map(|n| n.egress.iter().map(|rule| rule.cidr.clone()))
            .collect(),
    };
    crate::api::PermissionsStatus {
        permitted: review.permitted(),
        policies: review.policies.clone(),
        granted: Some(granted),
        denied: review.excesses.iter().map(Excess::to_string).collect(),
        runtime_class_name: review.runtime_class_name.clone(),
    }
}
