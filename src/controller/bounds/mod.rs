//! The bounds step: a Plugin's spec against the operator's ScopeCatalog and the
//! PluginPolicies that select its namespace. Pure: out come each excess (what was asked, which policy, what it allows)
//! and the spec narrowed to what every policy allows, which the broker and the
//! NetworkPolicy enforce at once while the Plugin is held. Admission refuses the same
//! excesses for new writes (charts/.../plugin-policy-admission.yaml); this check covers
//! the Plugins that were admitted before a policy narrowed.

mod catalog;
mod check;
pub mod cidr;
pub mod selector;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use kube::ResourceExt;

use super::desired::DEFAULT_KV_MAX_VALUE_BYTES;
use crate::api::status::reason;
use crate::api::{DatabaseAccessMode, PluginPolicy, PluginSpec};
use crate::policy::{KV_READ_SCOPE, KV_WRITE_SCOPE};
use check::Check;

pub use catalog::Catalog;
pub use check::pinned_by_digest;
pub use selector::{selecting, selects};

/// One thing a Plugin asks for that a policy does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Excess {
    /// Where in the spec, e.g. `permissions.chatApi[files:write]`.
    pub field: String,
    /// What the Plugin asks for there.
    pub asked: String,
    /// The policy that does not allow it (empty when the catalog does not define a scope
    /// or no policy selects the namespace).
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
    /// Every excess; empty when the Plugin is within the catalog and every policy.
    pub excesses: Vec<Excess>,
    /// The chat-API scopes the catalog does not define.
    pub unknown_scopes: Vec<String>,
    /// The spec narrowed to what every policy allows.
    pub granted: PluginSpec,
    /// The RuntimeClass the policies force onto the pods.
    pub runtime_class_name: Option<String>,
}

impl Review {
    pub fn permitted(&self) -> bool {
        self.excesses.is_empty()
    }

    /// The reason a held Plugin shows: `UnknownScope` when it names a scope the catalog
    /// does not define (whatever else it exceeds), `PermissionsDenied` otherwise.
    pub fn reason(&self) -> &'static str {
        if self.unknown_scopes.is_empty() {
            reason::PERMISSIONS_DENIED
        } else {
            reason::UNKNOWN_SCOPE
        }
    }

    /// Every excess in one message, for a condition or an Event.
    pub fn message(&self) -> String {
        let parts: Vec<String> = self.excesses.iter().map(Excess::to_string).collect();
        let what = if self.unknown_scopes.is_empty() {
            "its PluginPolicy allows"
        } else {
            "the ScopeCatalog and its PluginPolicy allow"
        };
        format!(
            "held: the Plugin asks for more than {what}; what is still allowed is enforced: {}",
            parts.join("; ")
        )
    }
}

/// Checks `spec` against `catalog`, then against every one of `policies` (those that
/// select its namespace). With no policy, nothing is granted: the Plugin is held until
/// an admin's policy selects its namespace.
pub fn review(
    spec: &PluginSpec,
    catalog: Catalog<'_>,
    policies: &[&PluginPolicy],
    env: &EnvObjects,
) -> Review {
    let mut granted = spec.clone();
    let mut excesses = vec![];
    let unknown_scopes = catalog::keep_defined_scopes(&mut granted, catalog, &mut excesses);
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
        unknown_scopes,
        granted,
        runtime_class_name: classes.into_iter().next(),
    }
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
