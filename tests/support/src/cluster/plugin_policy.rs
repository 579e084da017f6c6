//! A PluginPolicy that selects one test namespace, a ScopeCatalog of a test's own, and
//! the shipped admission policies bound to one test namespace; each removed when dropped.

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use plugin_operator::api::{PluginPolicy, ScopeCatalog};
use serde_json::{Value, json};

use super::namespace::clean_up_from_drop;
use super::repo_path;

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

/// An admission policy the chart ships (charts/plugin-operator/files/) and a binding
/// like the chart's, renamed for one namespace and bound to it alone, so nobody else's
/// Plugins are refused.
pub struct ShippedAdmission {
    name: String,
}

impl ShippedAdmission {
    /// The PluginPolicy admission policy (plugin-policy-admission.yaml, which holds its
    /// binding too).
    pub async fn install(client: &Client, namespace: &str) -> Self {
        let path = repo_path("charts/plugin-operator/files/plugin-policy-admission.yaml");
        let text = std::fs::read_to_string(&path).expect("the shipped admission policy");
        let mut documents = serde_norway::Deserializer::from_str(&text).map(|document| {
            let value: serde_norway::Value = serde::Deserialize::deserialize(document).unwrap();
            serde_norway::from_value::<Value>(value).unwrap()
        });
        let (policy, binding) = (documents.next().unwrap(), documents.next().unwrap());
        Self::create(
            client,
            format!("plugin-policies-{namespace}"),
            namespace,
            policy,
            binding,
        )
        .await
    }

    /// The ScopeCatalog admission policy (scope-catalog-admission.yaml), with a binding
    /// that names `catalog` as templates/scope-catalog.yaml does.
    pub async fn install_scope_catalog(client: &Client, namespace: &str, catalog: &str) -> Self {
        let path = repo_path("charts/plugin-operator/files/scope-catalog-admission.yaml");
        let text = std::fs::read_to_string(&path).expect("the shipped scope admission policy");
        let policy: Value = serde_norway::from_str(&text).expect("one YAML document");
        let binding = json!({"spec": {
            "validationActions": ["Deny"],
            "paramRef": {"name": catalog, "parameterNotFoundAction": "Allow"}
        }});
        Self::create(
            client,
            format!("scope-catalog-{namespace}"),
            namespace,
            policy,
            binding,
        )
        .await
    }

    async fn create(
        client: &Client,
        name: String,
        namespace: &str,
        mut policy: Value,
        mut binding: Value,
    ) -> Self {
        policy["metadata"]["name"] = json!(name);
        binding["metadata"]["name"] = json!(name);
        binding["spec"]["policyName"] = json!(name);
        binding["spec"]["matchResources"] = json!({"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": namespace
        }}});
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(policy).unwrap();
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(binding).unwrap();
        Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .create(&PostParams::default(), &policy)
            .await
            .expect("the shipped admission policy is accepted");
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .expect("its binding is accepted");
        Self { name }
    }
}

impl Drop for ShippedAdmission {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up_from_drop(|client| async move {
            let params = DeleteParams::default();
            let _ = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
                .delete(&name, &params)
                .await;
            let _ = Api::<ValidatingAdmissionPolicy>::all(client)
                .delete(&name, &params)
                .await;
        });
    }
}

/// A ScopeCatalog of a test's own, removed when dropped.
pub struct TestCatalog {
    pub name: String,
    client: Client,
}

impl TestCatalog {
    /// A name for a catalog not created yet: the operator may be started on it first.
    pub fn named(client: &Client, namespace: &str) -> Self {
        Self {
            name: format!("test-{namespace}"),
            client: client.clone(),
        }
    }

    /// Creates or replaces the catalog's spec.
    pub async fn set(&self, spec: Value) {
        let object = json!({
            "apiVersion": "plugins.chat.dev/v1alpha1",
            "kind": "ScopeCatalog",
            "metadata": {"name": self.name},
            "spec": spec,
        });
        Api::<ScopeCatalog>::all(self.client.clone())
            .patch(
                &self.name,
                &PatchParams::apply("plugin-operator-tests").force(),
                &Patch::Apply(&object),
            )
            .await
            .unwrap_or_else(|e| panic!("applying ScopeCatalog {}: {e}", self.name));
    }
}

impl Drop for TestCatalog {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up_from_drop(|client| async move {
            let _ = Api::<ScopeCatalog>::all(client)
                .delete(&name, &DeleteParams::default())
                .await;
        });
    }
}
