//! Throwaway namespaces, and the lock that gives one test the cluster to itself.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, Resource};
use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::crd::TEST_POLICY_LABEL;
use super::{eventually, random_suffix};

/// A namespace of its own for one test, `<prefix>-<random>`, deleted (without waiting)
/// when dropped.
pub struct TestNamespace {
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates the namespace with `labels` and waits for its default ServiceAccount, which
    /// must exist before pods are admitted. It is selected by the open test PluginPolicy
    /// unless `labels` gives [`TEST_POLICY_LABEL`]'s key another value.
    pub async fn new(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Self {
        let name = format!("{prefix}-{}", random_suffix());
        let mut labels: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
        labels
            .entry(TEST_POLICY_LABEL.0)
            .or_insert(TEST_POLICY_LABEL.1);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
        eventually(
            "default ServiceAccount",
            Duration::from_secs(30),
            || async { accounts.get_opt("default").await.ok().flatten().map(|_| ()) },
        )
        .await;
        Self {
            name,
            client: client.clone(),
        }
    }

    /// A restricted namespace: `pod-security.kubernetes.io/enforce=restricted`, latest.
    pub async fn restricted(client: &Client, prefix: &str) -> Self {
        Self::new(
            client,
            prefix,
            &[
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "latest"),
            ],
        )
        .await
    }

    /// The API of a namespaced kind in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        clean_up_from_drop(|client| async move {
            let _ = Api::<Namespace>::all(client)
                .delete(&name, &DeleteParams::background())
                .await;
        });
    }
}

/// The tests of one binary run side by side. A test that needs the cluster to itself
/// (it counts the API server's writes, or changes the CRD) holds [`alone`] for its whole
/// run; every other test of that binary holds [`together`].
static CLUSTER: RwLock<()> = RwLock::const_new(());

/// Waits until no other test of this binary runs, and keeps them out until dropped.
pub async fn alone() -> RwLockWriteGuard<'static, ()> {
    CLUSTER.write().await
}

/// Waits while a test that needs the cluster to itself runs.
pub async fn together() -> RwLockReadGuard<'static, ()> {
    CLUSTER.read().await
}

/// Runs `clean_up` with a fresh client and waits for it. Drop cannot await, and the
/// test's client is tied to the test's runtime, which the drop blocks: so a fresh client
/// on a fresh runtime in a thread of its own.
pub fn clean_up_from_drop<F, Fut>(clean_up: F)
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            if let Ok(client) = Client::try_default().await {
                clean_up(client).await;
            }
        });
    })
    .join();
}
