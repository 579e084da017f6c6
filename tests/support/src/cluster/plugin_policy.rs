//! A PluginPolicy that selects one test namespace, removed when dropped.

use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use plugin_operator::api::PluginPolicy;
use serde_json::json;

use super::namespace::clean_up_from_drop;

/// A PluginPolicy named after the test's namespace that selects only that namespace.
pub struct TestPolicy {
    pub name: String,
    client: Client,
}

impl TestPolicy {
    /// Applies `spec` (without `namespaceSelector`, which is set to the namespace).
    pub async fn apply(client: &Client, namespace: &str, spec: serde_json::Value) -> Self {
        let policy = Self {
            name: format!("test-{namespace}"),
            client: client.clone(),
        };
        policy.set(namespace, spec).await;
        policy
    }

    /// Replaces the policy's spec: the way a test narrows or widens it.
    pub async fn set(&self, namespace: &str, mut spec: serde_json::Value) {
        spec["namespaceSelector"] =
            json!({"matchLabels": {"kubernetes.io/metadata.name": namespace}});
        let object = json!({
            "apiVersion": "plugins.chat.dev/v1alpha1",
            "kind": "PluginPolicy",
            "metadata": {"name": self.name},
            "spec": spec,
        });
        Api::<PluginPolicy>::all(self.client.clone())
            .patch(
                &self.name,
                &PatchParams::apply("plugin-operator-tests").force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| panic!("applying PluginPolicy {}: {e}", self.name));
    }
}

impl Drop for TestPolicy {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up_from_drop(|client| async move {
            let _ = Api::<PluginPolicy>::all(client)
                .delete(&name, &DeleteParams::default())
                .await;
        });
    }
}
