//! What the API server saw written: its own request counter, and the resourceVersions of
//! a namespace's objects. Shared by the steady-state test and the convergence benchmark.

use std::collections::BTreeMap;

use super::NamespacedObject;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, ListParams};
use plugin_operator::api::Plugin;

/// The resources of the kinds the operator writes: Plugins and their five children.
pub const PLUGIN_KINDS: [&str; 6] = [
    "plugins",
    "deployments",
    "services",
    "serviceaccounts",
    "configmaps",
    "networkpolicies",
];

/// Writes the API server counted (all clients, whole cluster) to [`PLUGIN_KINDS`], from
/// its own `/metrics`: APPLY, PATCH, POST and PUT. The operator never deletes, so
/// deletions (the namespace controller cleaning up) are left out, and so is Deployment
/// status (the deployment controller's).
pub async fn apiserver_writes(client: &Client) -> kube::Result<u64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await?;
    Ok(text
        .lines()
        .filter(|line| line.starts_with("apiserver_request_total{"))
        .filter(|line| {
            ["APPLY", "PATCH", "POST", "PUT"]
                .iter()
                .any(|v| line.contains(&format!("verb=\"{v}\"")))
        })
        .filter(|line| {
            PLUGIN_KINDS
                .iter()
                .any(|k| line.contains(&format!("resource=\"{k}\"")))
        })
        .filter(|line| {
            !(line.contains("resource=\"deployments\"") && line.contains("subresource=\"status\""))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}

/// `Kind/name` -> resourceVersion of every Plugin and child kind in `namespace`: compare
/// two of them to see which objects were written in between.
pub async fn resource_versions(
    client: &Client,
    namespace: &str,
) -> kube::Result<BTreeMap<String, String>> {
    async fn of<K>(
        client: &Client,
        namespace: &str,
        into: &mut BTreeMap<String, String>,
    ) -> kube::Result<()>
    where
        K: NamespacedObject,
    {
        let list = Api::<K>::namespaced(client.clone(), namespace)
            .list_metadata(&ListParams::default())
            .await?;
        for item in list.items {
            let key = format!(
                "{}/{}",
                K::kind(&()),
                item.metadata.name.unwrap_or_default()
            );
            into.insert(key, item.metadata.resource_version.unwrap_or_default());
        }
        Ok(())
    }
    let mut versions = BTreeMap::new();
    of::<Plugin>(client, namespace, &mut versions).await?;
    of::<ServiceAccount>(client, namespace, &mut versions).await?;
    of::<ConfigMap>(client, namespace, &mut versions).await?;
    of::<Deployment>(client, namespace, &mut versions).await?;
    of::<Service>(client, namespace, &mut versions).await?;
    of::<NetworkPolicy>(client, namespace, &mut versions).await?;
    Ok(versions)
}
