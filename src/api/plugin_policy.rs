//! `PluginPolicy`: what a cluster's admins let the Plugins of some namespaces have. It is
//! cluster-scoped, so only those who may write cluster-scoped objects (admins) set it;
//! a Plugin's author asks, the policy bounds what is granted. Every Plugin must satisfy
//! every policy that selects its namespace (docs/permissions.md).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::{DatabaseAccessMode, ResourceAmounts};

/// The most that Plugins in the selected namespaces may have. A section left out grants
/// nothing (chat-API scopes, key-value access, egress, Secrets and ConfigMaps) or sets no
/// bound beyond the Plugin CRD's own (images, resources, replicas).
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "plugins.chat.dev",
    version = "v1alpha1",
    kind = "PluginPolicy",
    plural = "pluginpolicies",
    shortname = "plgpol",
    category = "chat",
    doc = "What the cluster's admins let the Plugins of some namespaces have. A Plugin must stay within every PluginPolicy that selects its namespace; one that does not is refused at admission, and held by the operator if it already exists.",
    printcolumn = r#"{"name":"Audit","type":"boolean","jsonPath":".spec.allowAuditMode"}"#,
    printcolumn = r#"{"name":"RuntimeClass","type":"string","jsonPath":".spec.runtimeClassName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PluginPolicySpec {
    /// Namespaces whose Plugins this policy bounds, by their labels. `{}` selects every
    /// namespace.
    pub namespace_selector: LabelSelector,
    /// Chat-API scopes a Plugin may be granted, each optionally limited to channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["scope"]))]
    pub chat_api: Vec<AllowedScope>,
    /// Access to the Plugin's own key-value space. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<AllowedDatabase>,
    /// Network destinations a Plugin may ask for. Absent: none besides the chat API and DNS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<AllowedEgress>,
    /// Where a Plugin's image may come from. Absent: any registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<AllowedImages>,
    /// The most a Plugin may request or limit, for both requests and limits (after the
    /// operator's defaults: requests 50m / 64Mi, limits 500m / 128Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_resources: Option<ResourceAmounts>,
    /// The most replicas a Plugin may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 50))]
    pub max_replicas: Option<i32>,
    /// Whether `permissions.mode: Audit` is allowed. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_audit_mode: Option<bool>,
    /// Secrets and ConfigMaps that `env[].valueFrom` may name. Absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_sources: Option<AllowedEnvSources>,
    /// A RuntimeClass put on every matching plugin pod (a sandbox such as gVisor or
    /// Kata, installed by the cluster's operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub runtime_class_name: Option<String>,
}

/// One chat-API scope a Plugin may be granted.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedScope {
    /// The scope's name, as in the Plugin's `permissions.chatApi[].scope`.
    #[schemars(length(min = 1, max = 64))]
    pub scope: String,
    /// Channels a Plugin's grant must stay within; empty or absent: every channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "set", "items" = {"type": "string", "minLength": 1, "maxLength": 64}))]
    pub channels: Vec<String>,
}

/// The most key-value access a Plugin may have.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedDatabase {
    /// ReadOnly or ReadWrite.
    pub access: DatabaseAccessMode,
    /// The largest `maxValueBytes` a Plugin may ask for (its default is 65536).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub max_value_bytes: Option<i64>,
}

/// Egress a Plugin may ask for: each of its CIDRs must lie inside an allowed one and
/// overlap no denied one (a sub-range of a denied range is denied, and so is a range
/// that contains one).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedEgress {
    /// CIDRs a Plugin's egress must lie within.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "allowed must hold CIDRs such as 203.0.113.0/24"}]}))]
    pub allowed: Vec<String>,
    /// CIDRs no Plugin may reach. Default: loopback and link-local (IPv4 and IPv6); add
    /// the cluster's pod and service ranges and the API server (the chart does).
    #[serde(default = "default_denied")]
    #[schemars(length(max = 64))]
    #[schemars(extend("items" = {"type": "string", "maxLength": 64, "x-kubernetes-validations": [{"rule": "isCIDR(self)", "message": "denied must hold CIDRs such as 10.96.0.0/12"}]}))]
    pub denied: Vec<String>,
}

/// Loopback and link-local, IPv4 and IPv6: never a Plugin's business.
pub fn default_denied() -> Vec<String> {
    ["127.0.0.0/8", "169.254.0.0/16", "::1/128", "fe80::/10"]
        .map(String::from)
        .to_vec()
}

/// Where images may come from.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedImages {
    /// Registries or repository prefixes, each ending in `/` (`registry.example/`,
    /// `registry.example/team-a/`); a Plugin's image must start with one of them.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("items" = {"type": "string", "minLength": 2, "maxLength": 255, "x-kubernetes-validations": [{"rule": "self.endsWith('/')", "message": "a repository prefix ends with '/', so that registry.example/ does not also allow registry.example.evil/"}]}))]
    pub repositories: Vec<String>,
    /// Whether the image must be pinned by digest (`...@sha256:<64 hex digits>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_digest: Option<bool>,
}

/// Secrets and ConfigMaps that `env[].valueFrom` may name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedEnvSources {
    /// Secrets of the Plugin's namespace, by name only: the operator has no right to read
    /// Secrets, so it cannot see their labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<AllowedNames>,
    /// ConfigMaps of the Plugin's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_maps: Option<AllowedObjects>,
}

/// Objects by name.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedNames {
    /// Allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub names: Vec<String>,
}

impl From<AllowedNames> for AllowedObjects {
    fn from(allowed: AllowedNames) -> Self {
        Self {
            names: allowed.names,
            selector: None,
        }
    }
}

/// Objects by name, or by their labels.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowedObjects {
    /// Allowed by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub names: Vec<String>,
    /// Allowed by labels. Admission sees only names, so a name outside `names` is let
    /// through at admission when a selector is set, and checked by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}
