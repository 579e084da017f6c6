//! The API-server side of the test support: a client for the real API server named by
//! KUBECONFIG, throwaway namespaces, waiting, the CRD, operator processes, pods,
//! admission policies bound to one namespace, the API server's own count of writes, and
//! the tools cluster/lib.sh builds. Used by tests/operator, tests/e2e, tests/chart,
//! tests/cluster and the convergence benchmarks (bench/convergence).

mod admission;
mod crd;
mod namespace;
mod operator;
mod plugin_policy;
mod pods;
mod tools;
mod writes;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube::Client;

pub use admission::{NamespacePolicy, admit_pod, assert_pod_security_refuses, dry_run};
pub use crd::{
    CRD_FIELD_MANAGER, OPEN_TEST_POLICY, TEST_POLICY_LABEL, TEST_SCOPE_CATALOG, install_crd,
};
pub use namespace::{TestNamespace, alone, clean_up_from_drop, together};
pub use operator::{Operator, http_get, test_image};
pub use plugin_policy::{ShippedAdmission, TestCatalog, TestPolicy};
pub use pods::{
    kubectl, kubectl_with_input, pod_from_template, restricted_container_security,
    wait_pod_finished, wait_pod_ready,
};
pub use tools::{
    api_server_endpoints, helm_binary, lib_sh, prometheus_operator_crds, prometheus_tools,
};
pub use writes::{PLUGIN_KINDS, apiserver_writes, resource_versions};

/// A client for the cluster named by KUBECONFIG. Fails loudly when KUBECONFIG is unset or
/// names no file: these tests need a real cluster and never skip silently.
pub async fn client() -> Client {
    let path = std::env::var("KUBECONFIG").unwrap_or_default();
    assert!(
        !path.is_empty(),
        "KUBECONFIG is not set. These tests run against the local cluster: \
         run `make cluster-up` (add NODE=1 for the node and end-to-end tests) and \
         `export KUBECONFIG=$PWD/build/cluster/kubeconfig` (or run `make test`)"
    );
    assert!(
        Path::new(&path).exists(),
        "KUBECONFIG={path} does not exist; is the cluster up (`make cluster-up`)?"
    );
    Client::try_default()
        .await
        .unwrap_or_else(|e| panic!("cannot build a client from KUBECONFIG={path}: {e}"))
}

/// Polls `check` every 200 ms until it returns Some, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A kind of namespaced object the typed API can get and list: Deployment, Service,
/// ConfigMap, Plugin and the like.
pub trait NamespacedObject:
    kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> NamespacedObject for K where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

/// Waits up to `timeout` until the object `name` of kind `K` exists in `namespace`.
pub async fn wait_for_object<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> K
where
    K: NamespacedObject,
{
    let api = kube::Api::<K>::namespaced(client.clone(), namespace);
    let what = format!("{} {namespace}/{name}", K::kind(&()));
    eventually(&what, timeout, || async {
        api.get_opt(name).await.ok().flatten()
    })
    .await
}

/// Panics with `what` and the command's output unless it exited successfully.
pub fn assert_success(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Eight hex digits, different on every call: for names of namespaces and releases.
pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos() ^ u128::from(std::process::id()));
    format!("{:08x}", hasher.finish() as u32)
}

/// A path in the repository, for reading committed files and running its scripts.
pub fn repo_path(relative: &str) -> PathBuf {
    // This crate is tests/support: the repository is two folders up.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/support sits two folders below the repository root")
        .join(relative)
}
