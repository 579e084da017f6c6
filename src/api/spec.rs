//! `Plugin.spec`: what a plugin author declares. Every field is optional unless the
//! plugin cannot run without it; the operator applies defaults when it builds the
//! children and never writes them back, so GitOps tools see no drift.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::PluginStatus;

/// What the plugin runs and what it may do.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "plugins.chat.dev",
    version = "v1alpha1",
    kind = "Plugin",
    plural = "plugins",
    shortname = "plg",
    category = "chat",
    namespaced,
    status = "PluginStatus",
    doc = "A third-party chat plugin, run in its own pods behind a broker sidecar that enforces its permissions on every call.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Permitted","type":"boolean","jsonPath":".status.permissions.permitted"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".status.replicas"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","priority":1,"jsonPath":".status.endpoint"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.rateLimits) || self.rateLimits.all(r, r.scope == 'kv:read' ? has(self.permissions) && has(self.permissions.database) : r.scope == 'kv:write' ? has(self.permissions) && has(self.permissions.database) && self.permissions.database.access == 'ReadWrite' : has(self.permissions) && has(self.permissions.chatApi) && self.permissions.chatApi.exists(g, g.scope == r.scope))",
     "message": "every rateLimits[].scope must be granted in permissions.chatApi (kv:read by permissions.database, kv:write by permissions.database with access ReadWrite)",
     "fieldPath": ".rateLimits"}
]))]
pub struct PluginSpec {
    /// Container image of the plugin, e.g. `registry.example/weather@sha256:...`. Pin it by
    /// digest for reproducible rollouts. A reference no registry could serve (uppercase
    /// in the repository, a bad tag or digest, spaces) is refused.
    #[schemars(length(min = 1, max = 512))]
    #[schemars(extend("x-kubernetes-validations" = super::image::cel_rules()))]
    pub image: String,

    /// TCP port the plugin serves HTTP on inside its pod. 9080, 9081 and 9090 belong to
    /// the broker sidecar.
    #[schemars(range(min = 1, max = 65535))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!(self in [9080, 9081, 9090])", "message": "port 9080, 9081 and 9090 are used by the broker sidecar; choose another port"}
    ]))]
    pub port: i32,

    /// Number of plugin pods. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: Option<i32>,

    /// Scale the plugin to zero while keeping its configuration. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,

    /// CPU, memory and ephemeral storage for the plugin container. Defaults: requests
    /// 50m / 64Mi / 16Mi, limits 500m / 128Mi / 128Mi. A limit may not be below its
    /// request. /scratch's size is added to the ephemeral-storage limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<PluginResources>,

    /// Time limits of one invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,

    /// How many invocations may run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,

    /// Environment variables of the plugin container. Values come inline or from a key of
    /// a Secret or ConfigMap in the Plugin's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<PluginEnvVar>,

    /// What the plugin may do. Nothing is granted unless listed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Permissions>,

    /// Per-scope token-bucket limits on the plugin's chat-API calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["scope"]))]
    pub rate_limits: Vec<RateLimit>,
}

/// CPU, memory and ephemeral-storage requests and limits of the plugin container.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.requests) || !has(self.limits) || !has(self.requests.cpu) || !has(self.limits.cpu) || quantity(string(self.limits.cpu)).compareTo(quantity(string(self.requests.cpu))) >= 0",
     "message": "resources.limits.cpu must be at least resources.requests.cpu"},
    {"rule": "!has(self.requests) || !has(self.limits) || !has(self.requests.memory) || !has(self.limits.memory) || quantity(string(self.limits.memory)).compareTo(quantity(string(self.requests.memory))) >= 0",
     "message": "resources.limits.memory must be at least resources.requests.memory"},
    {"rule": "!has(self.requests) || !has(self.limits) || !has(self.requests.ephemeralStorage) || !has(self.limits.ephemeralStorage) || quantity(string(self.limits.ephemeralStorage)).compareTo(quantity(string(self.requests.ephemeralStorage))) >= 0",
     "message": "resources.limits.ephemeralStorage must be at least resources.requests.ephemeralStorage"}
]))]
pub struct PluginResources {
    /// What the scheduler reserves for the plugin container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    /// The most the plugin container may use; over the memory limit it is OOM-killed, over
    /// the ephemeral-storage limit its pod is evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

/// An amount of CPU, memory and ephemeral storage, as Kubernetes quantities (`250m`, `1`, `128Mi`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU, in cores (`1`, `0.5`) or millicores (`500m`). At most 8 cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "isQuantity(string(self)) && quantity(string(self)).isGreaterThan(quantity('0')) && quantity(string(self)).compareTo(quantity('8')) <= 0",
         "message": "cpu must be a quantity above 0 and at most 8, such as 250m or 1"}
    ]))]
    pub cpu: Option<Quantity>,
    /// Memory in bytes, usually with a suffix (`64Mi`, `1Gi`). At least 4Mi, at most 16Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('4Mi')) >= 0 && quantity(string(self)).compareTo(quantity('16Gi')) <= 0",
         "message": "memory must be a quantity from 4Mi to 16Gi, such as 128Mi"}
    ]))]
    pub memory: Option<Quantity>,
    /// Local disk in bytes (`128Mi`) for the container's logs; the root filesystem is
    /// read-only, and /scratch has its own size. At least 1Mi, at most 64Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('1Mi')) >= 0 && quantity(string(self)).compareTo(quantity('64Gi')) <= 0",
         "message": "ephemeralStorage must be a quantity from 1Mi to 64Gi, such as 128Mi"}
    ]))]
    pub ephemeral_storage: Option<Quantity>,
}

/// Time limits of one invocation.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Longest one invocation may run before the broker answers 504. Default 10, at most 900.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 900))]
    pub request_seconds: Option<i32>,
}

/// How many invocations may run at once.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Concurrency {
    /// Invocations in flight per pod; more are refused with 503. Default 16, at most 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_in_flight: Option<i32>,
}

/// One environment variable of the plugin container.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.value) != has(self.valueFrom)", "message": "set exactly one of value and valueFrom"}
]))]
pub struct PluginEnvVar {
    /// Variable name: letters, digits and `_`, not starting with a digit. CHAT_API_URL,
    /// PLUGIN_ID, PLUGIN_PORT and names starting with BROKER_ or KUBERNETES_ are reserved.
    #[schemars(length(min = 1, max = 128))]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "!(self in ['CHAT_API_URL', 'PLUGIN_ID', 'PLUGIN_PORT']) && !self.startsWith('BROKER_') && !self.startsWith('KUBERNETES_')",
         "message": "this name is reserved: CHAT_API_URL, PLUGIN_ID, PLUGIN_PORT and names starting with BROKER_ or KUBERNETES_ are set by the operator"}
    ]))]
    pub name: String,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32768))]
    pub value: Option<String>,
    /// The value of one key of a Secret or ConfigMap in the Plugin's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvSource>,
}

/// Where an environment value comes from: exactly one of the two.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.secretKeyRef) != has(self.configMapKeyRef)", "message": "valueFrom takes exactly one of secretKeyRef and configMapKeyRef"}
]))]
pub struct EnvSource {
    /// A key of a Secret in the Plugin's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// A key of a ConfigMap in the Plugin's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// One key of a named Secret or ConfigMap.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the Secret or ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key whose value is used.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// When true, the pod starts even if the key is missing. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// What the plugin may do. Anything not granted here is refused by the broker (in
/// Enforce mode) or by the pod's NetworkPolicy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    /// Enforce refuses calls outside the grants; Audit logs calls outside the scope and
    /// channel grants and lets them through (for trying a plugin out). Routes outside the
    /// scope catalog, other plugins' key-value data, body sizes and rate limits are
    /// enforced in both modes. Default Enforce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PermissionMode>,
    /// Chat-API scopes the plugin may use, each optionally limited to some channels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["scope"]))]
    pub chat_api: Vec<ChatApiGrant>,
    /// Access to the plugin's own key-value space in the chat system, through the broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseAccess>,
    /// Writable scratch space. The root filesystem is always read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemAccess>,
    /// Network destinations the pod may reach besides the chat API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkAccess>,
}

/// Enforce, or Audit: calls outside the scope and channel grants are logged and let
/// through; routes outside the scope catalog, other plugins' key-value data, body sizes
/// and rate limits are enforced in both modes.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PermissionMode {
    /// Calls outside the grants are refused.
    #[default]
    Enforce,
    /// Calls outside the scope and channel grants are logged as would-be denials and go
    /// through; everything else is enforced as in Enforce mode.
    Audit,
}

/// One granted chat-API scope.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatApiGrant {
    /// A scope of the operator's ScopeCatalog (`kubectl get scopecatalogs -o yaml`
    /// lists them), such as `messages:read`. `kv:read` and `kv:write` come with
    /// `permissions.database`.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": format!("self.matches('{}')", super::scope_catalog::SCOPE_NAME_PATTERN), "message": "a scope is lower-case words joined by ':', '.', '_' or '-', such as messages:read; `kubectl get scopecatalogs -o yaml` lists them"},
        {"rule": "self != 'kv:read' && self != 'kv:write'", "message": "kv:read and kv:write are granted by permissions.database, not by permissions.chatApi"}
    ]))]
    pub scope: String,
    /// Channel ids the scope is limited to; empty or absent means every channel. Only
    /// meaningful for scopes whose calls name a channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "set", "items" = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"}))]
    pub channels: Vec<String>,
}

/// Access to the plugin's own key-value space.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccess {
    /// ReadOnly or ReadWrite.
    pub access: DatabaseAccessMode,
    /// Largest value the plugin may write, in bytes. Default 65536, at most 1048576.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub max_value_bytes: Option<i64>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DatabaseAccessMode {
    ReadOnly,
    ReadWrite,
}

/// Writable scratch space.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilesystemAccess {
    /// An empty directory at /scratch, deleted with the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<Scratch>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scratch {
    /// Most the scratch directory may hold (`64Mi`); the pod is evicted beyond it. At most 4Gi.
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "isQuantity(string(self)) && quantity(string(self)).compareTo(quantity('1Mi')) >= 0 && quantity(string(self)).compareTo(quantity('4Gi')) <= 0",
         "message": "scratch.sizeLimit must be a quantity from 1Mi to 4Gi, such as 64Mi"}
    ]))]
    pub size_limit: Quantity,
}

/// Network destinations the pod may reach.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAccess {
    /// Allowed egress besides the chat API and DNS. Everything else is denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub egress: Vec<EgressRule>,
}

/// One allowed egress destination.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// An IPv4 or IPv6 CIDR such as `203.0.113.0/24`.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "isCIDR(self)", "message": "cidr must be a CIDR such as 203.0.113.0/24"},
        {"rule": "!isCIDR(self) || cidr(self).prefixLength() > 0", "message": "cidr must not allow the whole internet (/0); name the networks the plugin needs"}
    ]))]
    pub cidr: String,
    /// TCP ports on that network; empty or absent means every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("items" = {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535}))]
    pub ports: Vec<i32>,
}

/// A token-bucket limit on one scope.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// A granted chat-API scope, or kv:read / kv:write.
    #[schemars(length(min = 1, max = 64))]
    pub scope: String,
    /// Sustained calls per minute.
    #[schemars(range(min = 1, max = 100000))]
    pub per_minute: i32,
    /// Calls allowed at once above the sustained rate. Default: one second's worth, at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: Option<i32>,
}
