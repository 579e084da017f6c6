//! `Plugin.status`: what the operator observed, written only by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a Plugin. Conditions follow the Kubernetes conventions:
/// `Ready`, `Progressing` and `Degraded`, each with the generation it was computed from,
/// so `kubectl wait --for=condition=Ready` works; `Reconciling` and `Stalled` repeat
/// Progressing and Degraded under the names kstatus reads (Flux, Argo CD, kpt).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginStatus {
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing and Degraded, keyed on type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Plugin pods that exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Plugin pods whose plugin and broker are both ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Where the chat system invokes the plugin (through its broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// What the PluginPolicies that select the Plugin's namespace let it have: what it
    /// asked for is `spec.permissions`, what the broker and the NetworkPolicy grant is
    /// here, with each ask they refuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<PermissionsStatus>,
}

/// What was granted of what the Plugin asked for.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionsStatus {
    /// True when the Plugin is within every PluginPolicy that selects its namespace;
    /// false when it is held.
    pub permitted: bool,
    /// The PluginPolicies that select the Plugin's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// What the broker and the NetworkPolicy enforce: `spec.permissions` narrowed to what
    /// every policy allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<GrantedPermissions>,
    /// Each ask a policy refuses, with what the policy allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied: Vec<String>,
    /// The RuntimeClass a policy forces onto the plugin's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
}

/// The granted permissions, in the spec's words (without the spec's validation rules).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrantedPermissions {
    /// Enforce or Audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `scope` or `scope on C1, C2`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chat_api: Vec<String>,
    /// ReadOnly or ReadWrite, with the largest value in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Egress CIDRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<String>,
}

/// Condition types.
pub mod condition {
    /// Every pod is up to date and ready.
    pub const READY: &str = "Ready";
    /// A rollout is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// Something is wrong that will not fix itself; the reason says what.
    pub const DEGRADED: &str = "Degraded";
    /// Progressing, under the name kstatus reads (abnormal-true).
    pub const RECONCILING: &str = "Reconciling";
    /// Degraded, under the name kstatus reads (abnormal-true).
    pub const STALLED: &str = "Stalled";
}

/// Condition and Event reasons, one per situation a user must tell apart.
pub mod reason {
    pub const AVAILABLE: &str = "Available";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const PAUSED: &str = "Paused";
    pub const AS_EXPECTED: &str = "AsExpected";
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    pub const OOM_KILLED: &str = "OOMKilled";
    pub const UNSCHEDULABLE: &str = "Unschedulable";
    pub const POD_SECURITY_REJECTED: &str = "PodSecurityRejected";
    pub const QUOTA_EXCEEDED: &str = "QuotaExceeded";
    pub const POD_CREATE_FAILED: &str = "PodCreateFailed";
    pub const ROLLOUT_STALLED: &str = "RolloutStalled";
    /// The kubelet evicted a pod (a full /scratch, too much disk or memory).
    pub const EVICTED: &str = "Evicted";
    /// The spec passed the API server but cannot be built.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The operator's ScopeCatalog cannot be enforced; nothing changes until it is fixed.
    pub const INVALID_SCOPE_CATALOG: &str = "InvalidScopeCatalog";
    /// The API server refused a child; its message says why.
    pub const APPLY_FAILED: &str = "ApplyFailed";
    /// The object does not parse as a Plugin (Event only: it has no status to write).
    pub const MALFORMED_PLUGIN: &str = "MalformedPlugin";
    /// The Plugin asks for more than its PluginPolicies allow; it is held.
    pub const PERMISSIONS_DENIED: &str = "PermissionsDenied";
    /// The Plugin names a chat-API scope the operator's ScopeCatalog does not define;
    /// it is held like a Plugin whose permissions are denied.
    pub const UNKNOWN_SCOPE: &str = "UnknownScope";
    /// The chat API's CA bundle the operator mounts into brokers (its
    /// `--chat-api-ca-config-map`) is not in the Plugin's namespace, or lacks its key:
    /// the kubelet does not start the pods until it is there.
    pub const CHAT_API_CA_MISSING: &str = "ChatApiCaMissing";
    /// Reading what a PluginPolicy needs to decide failed (Event only).
    pub const READ_FAILED: &str = "ReadFailed";
    /// Writing the status failed (Event only).
    pub const STATUS_UPDATE_FAILED: &str = "StatusUpdateFailed";
}
