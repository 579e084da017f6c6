//! `ScopeCatalog`: the chat API's scopes and the calls each one allows. It is
//! cluster-scoped and admin-owned: Plugins name scopes as strings, and only scopes the
//! operator's catalog defines are granted (checked at admission and on every
//! reconcile). The catalog is compiled into every broker's policy, so a change reaches
//! every running broker without a restart (docs/permissions.md).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{CatalogRoute, KV_READ_SCOPE, KV_WRITE_SCOPE};

/// The name a scope may have: lower-case words joined by `:`, `.`, `_` or `-`, such as
/// `messages:read` (the Plugin CRD checks its scopes with the same expression).
pub const SCOPE_NAME_PATTERN: &str = "^[a-z0-9]+([:._-][a-z0-9]+)*$";

/// The scopes of one chat API and the calls each allows.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "plugins.chat.dev",
    version = "v1alpha1",
    kind = "ScopeCatalog",
    plural = "scopecatalogs",
    shortname = "scopes",
    category = "chat",
    doc = "The chat API's scopes and the calls (method and path template) each one allows. Plugins may ask only for scopes of the catalog their operator uses; changing it reaches every broker."
)]
#[serde(rename_all = "camelCase")]
pub struct ScopeCatalogSpec {
    /// Every scope, with the calls it allows. `kv:read` and `kv:write` are granted by a
    /// Plugin's `permissions.database`, not by name; their routes must use `{self}`.
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub scopes: Vec<CatalogScope>,
}

/// One scope and the calls it allows.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogScope {
    /// The scope's name, as Plugins spell it in `permissions.chatApi[].scope`.
    #[schemars(length(min = 1, max = 64), regex(pattern = SCOPE_NAME_PATTERN))]
    pub name: String,
    /// What the scope lets a plugin do, for the people who grant it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
    /// The calls the scope allows.
    #[schemars(length(min = 1, max = 64))]
    pub routes: Vec<ScopeRoute>,
}

/// One chat-API call.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRoute {
    /// An upper-case HTTP method such as `GET`.
    #[schemars(length(min = 1, max = 16), regex(pattern = "^[A-Z]+$"))]
    pub method: String,
    /// A path template of `/`-separated segments, where `{name}` matches one segment:
    /// `{channel}` is checked against a grant's channels, `{self}` must be the plugin's
    /// own identity, any other name matches any segment.
    #[schemars(length(min = 1, max = 256), regex(pattern = "^/"))]
    pub path: String,
}

impl ScopeCatalogSpec {
    /// Every route, as the broker's policy lists them.
    pub fn routes(&self) -> Vec<CatalogRoute> {
        self.scopes
            .iter()
            .flat_map(|scope| {
                scope
                    .routes
                    .iter()
                    .map(|route| CatalogRoute::new(&route.method, &route.path, &scope.name))
            })
            .collect()
    }

    /// The scopes a Plugin may name in `permissions.chatApi`: every one but the
    /// key-value scopes, which `permissions.database` grants.
    pub fn chat_scope_names(&self) -> Vec<&str> {
        self.scopes
            .iter()
            .map(|scope| scope.name.as_str())
            .filter(|name| !is_key_value_scope(name))
            .collect()
    }

    /// Whether the catalog defines `name`.
    pub fn defines(&self, name: &str) -> bool {
        self.scopes.iter().any(|scope| scope.name == name)
    }
}

/// `kv:read` and `kv:write`: granted by `permissions.database`, never by name.
pub fn is_key_value_scope(name: &str) -> bool {
    name == KV_READ_SCOPE || name == KV_WRITE_SCOPE
}

/// The sample chat API's catalog: what the chart ships as the default ScopeCatalog
/// (charts/plugin-operator/files/sample-scope-catalog.yaml is generated from it).
pub fn sample_scope_catalog() -> ScopeCatalogSpec {
    let scope = |name: &str, description: &str, routes: &[(&str, &str)]| CatalogScope {
        name: name.into(),
        description: Some(description.into()),
        routes: routes
            .iter()
            .map(|(method, path)| ScopeRoute {
                method: (*method).into(),
                path: (*path).into(),
            })
            .collect(),
    };
    ScopeCatalogSpec {
        scopes: vec![
            scope(
                "channels:read",
                "List channels and read a channel's details.",
                &[
                    ("GET", "/api/v1/channels"),
                    ("GET", "/api/v1/channels/{channel}"),
                ],
            ),
            scope(
                "messages:read",
                "Read a channel's messages.",
                &[("GET", "/api/v1/channels/{channel}/messages")],
            ),
            scope(
                "messages:write",
                "Post messages to a channel.",
                &[("POST", "/api/v1/channels/{channel}/messages")],
            ),
            scope(
                "reactions:write",
                "React to a channel's messages.",
                &[(
                    "POST",
                    "/api/v1/channels/{channel}/messages/{message}/reactions",
                )],
            ),
            scope(
                "users:read",
                "List users and read a user's profile.",
                &[("GET", "/api/v1/users"), ("GET", "/api/v1/users/{user}")],
            ),
            scope(
                "files:read",
                "Download files.",
                &[("GET", "/api/v1/files/{file}")],
            ),
            scope(
                "files:write",
                "Upload files to a channel.",
                &[("POST", "/api/v1/channels/{channel}/files")],
            ),
            scope(
                KV_READ_SCOPE,
                "Read the plugin's own key-value space (granted by permissions.database).",
                &[
                    ("GET", "/api/v1/kv/{self}"),
                    ("GET", "/api/v1/kv/{self}/{key}"),
                ],
            ),
            scope(
                KV_WRITE_SCOPE,
                "Write the plugin's own key-value space (granted by permissions.database: ReadWrite).",
                &[
                    ("PUT", "/api/v1/kv/{self}/{key}"),
                    ("DELETE", "/api/v1/kv/{self}/{key}"),
                ],
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_catalog_lists_each_route_under_its_scope() {
        let routes = sample_scope_catalog().routes();
        assert_eq!(routes.len(), 13);
        assert!(routes.contains(&CatalogRoute::new(
            "POST",
            "/api/v1/channels/{channel}/messages",
            "messages:write"
        )));
        assert!(routes.contains(&CatalogRoute::new(
            "DELETE",
            "/api/v1/kv/{self}/{key}",
            KV_WRITE_SCOPE
        )));
    }

    #[test]
    fn key_value_scopes_are_not_for_permissions_chat_api() {
        let catalog = sample_scope_catalog();
        let names = catalog.chat_scope_names();
        assert!(!names.contains(&KV_READ_SCOPE));
        assert!(names.contains(&"messages:read"));
        assert!(catalog.defines(KV_READ_SCOPE));
        assert!(!catalog.defines("deploy:write"));
    }
}
