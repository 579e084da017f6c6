//! The scope catalog: which chat-API call needs which scope.

use serde::{Deserialize, Serialize};

use super::PolicyError;
use super::template::PathTemplate;

/// Reading the plugin's own key-value space (granted by `permissions.database`).
pub const KV_READ_SCOPE: &str = "kv:read";
/// Writing the plugin's own key-value space (granted by `permissions.database`).
pub const KV_WRITE_SCOPE: &str = "kv:write";

/// The chat-API scopes a Plugin may ask for in `permissions.chatApi`; the
/// [`ChatScope`](crate::api::ChatScope) table is their one definition.
pub const KNOWN_CHAT_SCOPES: &[&str] = crate::api::ChatScope::NAMES;

/// One route of the chat API. `path` is a template of `/`-separated segments where
/// `{name}` matches one segment: `{channel}` is checked against a grant's channel list,
/// `{self}` must be the plugin's own identity, any other name matches any segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogRoute {
    pub method: String,
    pub path: String,
    pub scope: String,
}

impl CatalogRoute {
    /// The route's path parsed as a template; a bad one is [`PolicyError::BadTemplate`].
    pub(crate) fn template(&self) -> Result<PathTemplate, PolicyError> {
        PathTemplate::parse(&self.path).map_err(|source| PolicyError::BadTemplate {
            method: self.method.clone(),
            path: self.path.clone(),
            source,
        })
    }

    pub(crate) fn new(method: &str, path: &str, scope: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            scope: scope.into(),
        }
    }
}

/// The catalog of the sample chat API; the operator's `--scope-catalog` replaces it.
pub fn default_catalog() -> Vec<CatalogRoute> {
    vec![
        CatalogRoute::new("GET", "/api/v1/channels", "channels:read"),
        CatalogRoute::new("GET", "/api/v1/channels/{channel}", "channels:read"),
        CatalogRoute::new(
            "GET",
            "/api/v1/channels/{channel}/messages",
            "messages:read",
        ),
        CatalogRoute::new(
            "POST",
            "/api/v1/channels/{channel}/messages",
            "messages:write",
        ),
        CatalogRoute::new(
            "POST",
            "/api/v1/channels/{channel}/messages/{message}/reactions",
            "reactions:write",
        ),
        CatalogRoute::new("GET", "/api/v1/users", "users:read"),
        CatalogRoute::new("GET", "/api/v1/users/{user}", "users:read"),
        CatalogRoute::new("GET", "/api/v1/files/{file}", "files:read"),
        CatalogRoute::new("POST", "/api/v1/channels/{channel}/files", "files:write"),
        CatalogRoute::new("GET", "/api/v1/kv/{self}", KV_READ_SCOPE),
        CatalogRoute::new("GET", "/api/v1/kv/{self}/{key}", KV_READ_SCOPE),
        CatalogRoute::new("PUT", "/api/v1/kv/{self}/{key}", KV_WRITE_SCOPE),
        CatalogRoute::new("DELETE", "/api/v1/kv/{self}/{key}", KV_WRITE_SCOPE),
    ]
}
