//! Claims 1 and 8: plugin pods are admitted and run under restricted Pod Security; a
//! deleted Plugin leaves nothing behind.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};

use crate::support::{NamespacedObject, Scene, eventually, sample_spec};

#[tokio::test]
async fn plugin_pods_are_admitted_and_run_in_a_restricted_namespace() {
    let scene = Scene::new("e2e-admit").await;
    let plugin = scene.create_ready("hello", sample_spec()).await;
    let status = plugin.status.unwrap();
    assert_eq!((status.replicas, status.ready_replicas), (Some(1), Some(1)));
    let pod = scene.pod("hello").await;
    let statuses = pod.status.unwrap();
    let broker = &statuses.init_container_statuses.unwrap()[0];
    assert_eq!(broker.name, "broker");
    assert!(broker.ready, "the broker sidecar runs and is ready");
    assert!(
        statuses
            .container_statuses
            .unwrap()
            .iter()
            .all(|c| c.ready && c.name == "plugin")
    );
}

#[tokio::test]
async fn deleting_a_running_plugin_removes_every_child_and_pod() {
    let scene = Scene::new("e2e-delete").await;
    scene.create_ready("hello", sample_spec()).await;
    scene
        .plugins()
        .delete("hello", &DeleteParams::foreground())
        .await
        .unwrap();
    let (client, ns) = (&scene.client, scene.ns.name.as_str());
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=plugin-operator");
    let every = ListParams::default();
    eventually(
        "the Deployment, its pods and every child to be gone",
        Duration::from_secs(90),
        || async {
            let left = count::<Deployment>(client, ns, &managed).await?
                + count::<Pod>(client, ns, &every).await?
                + count::<ConfigMap>(client, ns, &managed).await?
                + count::<Service>(client, ns, &managed).await?
                + count::<NetworkPolicy>(client, ns, &managed).await?
                + count::<ServiceAccount>(client, ns, &managed).await?;
            (left == 0).then_some(())
        },
    )
    .await;
}

/// How many objects of kind `K` in `namespace` match `params`; None when the list fails.
async fn count<K>(client: &Client, namespace: &str, params: &ListParams) -> Option<usize>
where
    K: NamespacedObject,
{
    let list = Api::<K>::namespaced(client.clone(), namespace)
        .list(params)
        .await
        .ok()?;
    Some(list.items.len())
}
