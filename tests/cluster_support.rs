//! Shared helpers for the tests against the local cluster (tests/cluster_*.rs).
//! Included with `#[path]` by each cluster test; compiled alone it holds no tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

/// A client for the cluster named by KUBECONFIG. Fails loudly when KUBECONFIG is unset:
/// these tests need a real cluster (`make cluster-up`, then
/// `export KUBECONFIG=$PWD/build/cluster/kubeconfig`) and never skip silently.
pub async fn client() -> Client {
    let path = std::env::var("KUBECONFIG").unwrap_or_default();
    assert!(
        !path.is_empty(),
        "KUBECONFIG is not set. These tests run against the local cluster: \
         run `make cluster-up` (add NODE=1 for tests/cluster_node.rs) and \
         `export KUBECONFIG=$PWD/build/cluster/kubeconfig`"
    );
    assert!(
        std::path::Path::new(&path).exists(),
        "KUBECONFIG={path} does not exist; is the cluster up (`make cluster-up`)?"
    );
    Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("cannot build a client from KUBECONFIG={path}: {e}"))
}

/// A throwaway namespace, deleted (without waiting) when dropped.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `<prefix>-<random>` with the given labels.
    pub async fn create(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Self {
        let name = format!("{prefix}-{}", random_suffix());
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        // The namespace's default ServiceAccount must exist before pods are admitted.
        let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(client.clone(), &name);
        wait_until(
            Duration::from_secs(30),
            "default ServiceAccount",
            || async { sa.get_opt("default").await.ok().flatten().is_some() },
        )
        .await;
        TestNamespace {
            name,
            client: client.clone(),
        }
    }

    /// A restricted namespace: `pod-security.kubernetes.io/enforce=restricted`.
    pub async fn restricted(client: &Client, prefix: &str) -> Self {
        Self::create(
            client,
            prefix,
            &[
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "latest"),
            ],
        )
        .await
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // The test's client is bound to the test's runtime, which this drop blocks, so
        // delete with a fresh client on a fresh runtime in its own thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    if let Ok(client) = Client::try_default().await {
                        let _ = Api::<Namespace>::all(client)
                            .delete(&name, &DeleteParams::background())
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:08x}", h.finish() as u32)
}

/// Polls `check` every 250 ms until it returns true; panics after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A container securityContext that Pod Security "restricted" admits.
pub fn restricted_container_security() -> serde_json::Value {
    serde_json::json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// Waits until the pod reaches a terminal phase (Succeeded or Failed) and returns it.
pub async fn wait_pod_finished(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    let mut last = None;
    let start = Instant::now();
    loop {
        if let Ok(p) = pods.get(name).await {
            let phase = p
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if phase == "Succeeded" || phase == "Failed" {
                return p;
            }
            last = Some(p);
        }
        if start.elapsed() > timeout {
            panic!(
                "pod {name} did not finish within {timeout:?}; last status: {:#?}",
                last.and_then(|p| p.status)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until the pod is Ready.
pub async fn wait_pod_ready(pods: &Api<Pod>, name: &str, timeout: Duration) -> Pod {
    let start = Instant::now();
    loop {
        if let Ok(p) = pods.get(name).await {
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .map(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                .unwrap_or(false);
            if ready {
                return p;
            }
            if start.elapsed() > timeout {
                panic!(
                    "pod {name} not Ready within {timeout:?}; status: {:#?}",
                    p.status
                );
            }
        } else if start.elapsed() > timeout {
            panic!("pod {name} not found within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
