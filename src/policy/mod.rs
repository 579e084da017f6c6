//! The broker's policy: one definition, written by the operator into a ConfigMap
//! and read by the broker sidecar in every plugin pod.
//!
//! The operator compiles a `Plugin` spec into a [`BrokerPolicy`]; the broker loads it
//! from the mounted file and decides every call with it. Nothing here talks to
//! Kubernetes or the network.

mod catalog;
mod template;
mod validate;

pub use catalog::{CatalogRoute, KV_READ_SCOPE, KV_WRITE_SCOPE, default_catalog};
pub(crate) use template::is_pchar_byte;
pub use template::{
    CHANNEL_PLACEHOLDER, PathTemplate, SELF_PLACEHOLDER, TemplateError, TemplateSegment,
};
pub use validate::{PolicyError, validate_catalog};

use serde::{Deserialize, Serialize};

/// The file name of the policy inside the broker's policy ConfigMap.
pub const POLICY_FILE_NAME: &str = "policy.json";

/// Everything the broker of one plugin pod enforces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerPolicy {
    /// The plugin's identity, `<namespace>/<name>`; `{self}` in catalog paths must equal
    /// [`BrokerPolicy::self_segment`], so a plugin reaches only its own key-value data.
    pub plugin_id: String,
    /// Enforce denies calls outside the grants; Audit logs calls outside the scope and
    /// channel grants and lets them through. Unknown routes, other plugins' data, body
    /// sizes and rate limits are enforced in both modes.
    pub mode: EnforcementMode,
    /// The scopes this plugin may use, each optionally limited to some channels.
    pub grants: Vec<ScopeGrant>,
    /// Token-bucket limits per scope; a scope without an entry is not rate-limited.
    #[serde(default)]
    pub rate_limits: Vec<ScopeRateLimit>,
    /// Largest request body the plugin may send to the chat API.
    pub max_request_bytes: u64,
    /// Largest value the plugin may write to its key-value space.
    #[serde(default)]
    pub kv_max_value_bytes: Option<u64>,
    /// Limits on invocations of the plugin (the inbound side).
    pub inbound: InboundLimits,
    /// Maps (method, path template) to the scope a call needs; unknown routes are denied.
    pub catalog: Vec<CatalogRoute>,
}

impl BrokerPolicy {
    /// The single path segment that `{self}` stands for: `<namespace>.<name>`. Namespace
    /// names never contain a dot, so the first dot separates the two unambiguously.
    pub fn self_segment(&self) -> String {
        self.plugin_id.replace('/', ".")
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum EnforcementMode {
    #[default]
    Enforce,
    Audit,
}

/// One granted scope; an empty `channels` list means every channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeGrant {
    pub scope: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRateLimit {
    pub scope: String,
    pub per_minute: u32,
    pub burst: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundLimits {
    /// Execution time of one invocation; slower ones get 504.
    pub request_timeout_seconds: u32,
    /// Invocations in flight at once; more get 503.
    pub max_in_flight: u32,
    /// Largest invocation body; larger ones get 413.
    pub max_body_bytes: u64,
}

/// The broker's fixed ports inside every plugin pod. A plugin's own `spec.port` may not
/// use any of them (the CRD refuses it).
pub mod ports {
    /// Inbound (pod IP): the plugin's Service targets this; forwards to the plugin.
    pub const INBOUND: u16 = 9080;
    /// Outbound (127.0.0.1 only): the plugin's only door to the chat API.
    pub const OUTBOUND: u16 = 9081;
    /// Admin: /healthz, /readyz, /metrics.
    pub const ADMIN: u16 = 9090;
}
