//! The Plugin and PluginPolicy CRDs, installed from the Rust types, and the PluginPolicy
//! that lets the tests' namespaces have what the tests ask for.

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

/// Installs (or updates) the Plugin and PluginPolicy CRDs from the Rust types, waits
/// until they serve, and applies [`OPEN_TEST_POLICY`].
pub async fn install_crd(client: &Client) {
    install(client, plugin_operator::api::crd()).await;
    install(client, plugin_operator::api::policy_crd()).await;
    let policies: Api<plugin_operator::api::PluginPolicy> = Api::all(client.clone());
    let scopes: Vec<_> = plugin_operator::api::ChatScope::NAMES
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
    eventually(
        "the open test PluginPolicy to apply",
        Duration::from_secs(30),
        || async {
            policies
                .patch(
                    OPEN_TEST_POLICY,
                    &PatchParams::apply(CRD_FIELD_MANAGER).force(),
                    &Patch::Apply(&open),
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
