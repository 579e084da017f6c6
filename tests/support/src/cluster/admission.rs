//! A ValidatingAdmissionPolicy bound to one test namespace: a way to make the real API
//! server refuse a write (to see how the operator reports it), or to ask the API server's
//! own CEL a question.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::eventually;
use super::namespace::clean_up_from_drop;

/// Parameters of a dry-run create: the API server admits and answers, stores nothing.
pub fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..Default::default()
    }
}

/// Whether the API server would admit `pod` in `namespace` (a dry-run create); the
/// refusal's message when it would not.
pub async fn admit_pod(client: &Client, namespace: &str, pod: &Pod) -> Result<(), String> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&dry_run(), pod)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Panics unless the API server refuses `pod` in `namespace` for PodSecurity; `what` says
/// which pod it is.
pub async fn assert_pod_security_refuses(client: &Client, namespace: &str, pod: &Pod, what: &str) {
    let refusal = admit_pod(client, namespace, pod)
        .await
        .expect_err(&format!("{what} must be refused"));
    assert!(refusal.contains("violates PodSecurity"), "{refusal}");
}

/// A policy with `validations` on creates and updates of one core-group resource in one
/// namespace; removed when dropped.
pub struct NamespacePolicy {
    name: String,
}

impl NamespacePolicy {
    /// `resource` is a plural such as `services`; `validations` is the policy's list of
    /// `{expression, message}`.
    pub async fn install(
        client: &Client,
        namespace: &str,
        resource: &str,
        validations: serde_json::Value,
    ) -> Self {
        let name = format!("{resource}-{namespace}");
        let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": [resource]
                }]},
                "validations": validations
            }
        }))
        .expect("a policy");
        let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": namespace
                }}}
            }
        }))
        .expect("a binding");
        let params = PostParams::default();
        Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .create(&params, &policy)
            .await
            .expect("the policy is created");
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .create(&params, &binding)
            .await
            .expect("the binding is created");
        Self { name }
    }

    /// Waits until the API server refuses a dry-run create of `object`, which the policy
    /// refuses once the API server has taken it up (a second or two).
    pub async fn wait_until_it_refuses<K>(&self, api: &Api<K>, object: &K)
    where
        K: Resource + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        eventually(
            "the admission policy to take effect",
            Duration::from_secs(30),
            || async { api.create(&dry_run(), object).await.err().map(|_| ()) },
        )
        .await;
    }
}

impl Drop for NamespacePolicy {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up_from_drop(|client| async move {
            let params = DeleteParams::default();
            let bindings = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone());
            let _ = bindings.delete(&name, &params).await;
            let policies = Api::<ValidatingAdmissionPolicy>::all(client);
            let _ = policies.delete(&name, &params).await;
        });
    }
}
