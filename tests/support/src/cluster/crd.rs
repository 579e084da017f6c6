//! The Plugin, PluginPolicy and ScopeCatalog CRDs, installed from the Rust types; the
//! sample chat API's ScopeCatalog under the operator's default name; and the
//! PluginPolicy that lets the tests' namespaces have what the tests ask for.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use super::eventually;

/// The field manager of every CRD apply by the tests and the benchmarks.
pub const CRD_FIELD_MANAGER: &str = "plugin-operator-tests";

/// The label every [`TestNamespace`](super::TestNamespace) carries unless told
/// otherwise, and the value [`OPEN_TEST_POLICY`] selects.
pub const TEST_POLICY_LABEL: (&str, &str) = ("plugins.chat.dev/test-policy", "open");

/// The PluginPolicy that selects the tests' namespaces and bounds nothing the tests ask
/// for, so that a test of something else is never held; a test of the policies adds a
/// narrower one for its own namespace (a Plugin must satisfy both).
pub const OPEN_TEST_POLICY: &str = "plugin-operator-tests-open";

/// The ScopeCatalog the tests' operators use (`--scope-catalog`): the sample chat API's.
/// Not the chart's `default`, so that `make demo` on the same cluster installs its own.
pub const TEST_SCOPE_CATALOG: &str = "plugin-operator-tests";

/// Installs (or updates) the Plugin, PluginPolicy and ScopeCatalog CRDs from the Rust
/// types, waits until they serve, and applies the sample chat API's ScopeCatalog as
/// [`TEST_SCOPE_CATALOG`] and [`OPEN_TEST_POLICY`].
pub async fn install_crd(client: &Client) {
    install(client, plugin_operator::api::crd()).await;
    install(client, plugin_operator::api::policy_crd()).await;
    install(client, plugin_operator::api::scope_catalog_crd()).await;
    let sample = plugin_operator::api::sample_scope_catalog();
    apply_until_served::<plugin_operator::api::ScopeCatalog>(
        client,
        "the tests' ScopeCatalog",
        TEST_SCOPE_CATALOG,
        serde_json::json!({
            "apiVersion": "plugins.chat.dev/v1alpha1",
            "kind": "ScopeCatalog",
            "metadata": {"name": TEST_SCOPE_CATALOG},
            "spec": sample,
        }),
    )
    .await;
    let scopes: Vec<_> = sample
        .chat_scope_names()
        .iter()
        .map(|scope| serde_json::json!({"scope": scope}))
        .collect();
    let open = serde_json::json!({
        "apiVersion": "plugins.chat.dev/v1alpha1",
        "kind": "PluginPolicy",
        "metadata": {"name": OPEN_TEST_POLICY},
        "spec": {
            "namespaceSelector": {"matchLabels": {TEST_POLICY_LABEL.0: TEST_POLICY_LABEL.1}},
            "chatApi": scopes,
            "database": {"access": "ReadWrite"},
            "egress": {"allowed": ["0.0.0.0/0", "::/0"], "denied": []},
            "allowAuditMode": true,
            "envSources": {"configMaps": {"selector": {}}}
        }
    });
    apply_until_served::<plugin_operator::api::PluginPolicy>(
        client,
        "the open test PluginPolicy",
        OPEN_TEST_POLICY,
        open,
    )
    .await;
}

/// Applies a cluster-scoped object of a CRD just installed, retrying while the API
/// server does not serve the kind yet.
async fn apply_until_served<K>(client: &Client, what: &str, name: &str, object: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    eventually(
        &format!("{what} to apply"),
        Duration::from_secs(30),
        || async {
            api.patch(
                name,
                &PatchParams::apply(CRD_FIELD_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .ok()
            .map(drop)
        },
    )
    .await;
}

async fn install(client: &Client, crd: CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(
        &name,
        &PatchParams::apply(CRD_FIELD_MANAGER).force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("the CRD applies");
    eventually("the CRD to be established", Duration::from_secs(30), || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let crd = crds.get(&name).await.ok()?;
            let conditions = crd.status?.conditions?;
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        }
    })
    .await;
}
