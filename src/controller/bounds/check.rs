//! One policy's check of a spec: each excess it finds, and the grants narrowed to what
//! the policy allows (scopes, channels, key-value access, Audit mode, egress). What shapes
//! the pods (image, resources, replicas, env sources) can only be refused.

use std::collections::BTreeMap;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{EnvObjects, Excess, cidr, selects};
use crate::api::quantity;
use crate::api::{
    AllowedObjects, ChatApiGrant, DatabaseAccessMode, KeyRef, PermissionMode, PluginPolicy,
    PluginSpec,
};
use crate::controller::desired::{DEFAULT_KV_MAX_VALUE_BYTES, plugin_resources};

/// The largest `maxValueBytes` the Plugin CRD admits.
const CRD_MAX_VALUE_BYTES: i64 = 1_048_576;

/// One policy's check; each method records its excesses and narrows the grants.
pub(super) struct Check<'a> {
    pub policy: &'a PluginPolicy,
    pub name: String,
    pub excesses: &'a mut Vec<Excess>,
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
    pub fn permissions(&mut self, granted: &mut PluginSpec) {
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
    pub fn workload(&mut self, spec: &PluginSpec, env: &EnvObjects) {
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
            (
                "resources.requests.ephemeralStorage",
                &amounts.ephemeral_storage_request,
                &most.ephemeral_storage,
            ),
            (
                "resources.limits.ephemeralStorage",
                &amounts.ephemeral_storage_limit,
                &most.ephemeral_storage,
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
