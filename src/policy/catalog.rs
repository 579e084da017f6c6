//! The scope catalog: which chat-API call needs which scope.

use serde::{Deserialize, Serialize};

use super::PolicyError;
use super::template::PathTemplate;

/// Reading the plugin's own key-value space (granted by `permissions.database`).
pub const KV_READ_SCOPE: &str = "kv:read";
/// Writing the plugin's own key-value space (granted by `permissions.database`).
pub const KV_WRITE_SCOPE: &str = "kv:write";

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

    pub fn new(method: &str, path: &str, scope: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            scope: scope.into(),
        }
    }
}

/// The sample chat API's routes ([`sample_scope_catalog`](crate::api::sample_scope_catalog)),
/// for tests and benchmarks; the operator compiles its ScopeCatalog's.
pub fn default_catalog() -> Vec<CatalogRoute> {
    crate::api::sample_scope_catalog().routes()
}
