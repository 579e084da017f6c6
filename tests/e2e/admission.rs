//! Claims 1 and 8: plugin pods are admitted and run under restricted Pod Security; a
//! deleted Plugin leaves nothing behind.

use std::time::Duration;

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Pod};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

use crate::support::{SAMPLE_PLUGIN_IMAGE, Scene, eventually};

#[tokio::test]
async fn plugin_pods_are_admitted_and_run_in_a_restricted_namespace() {
    let scene = Scene::new("e2e-admit").await;
    let plugin = scene
        .create_ready("hello", json!({"image": SAMPLE_PLUGIN_IMAGE, "port": 8080}))
        .await;
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
    scene
        .create_ready("hello", json!({"image": SAMPLE_PLUGIN_IMAGE, "port": 8080}))
        .await;
    scene
        .plugins()
        .delete("hello", &DeleteParams::foreground())
        .await
        .unwrap();
    let (client, ns) = (scene.client.clone(), scene.ns.name.clone());
    eventually(
        "the Deployment, its pods and every child to be gone",
        Duration::from_secs(90),
        || {
            let (client, ns) = (client.clone(), ns.clone());
            async move {
                let managed =
                    ListParams::default().labels("app.kubernetes.io/managed-by=plugin-operator");
                let deployments = Api::<Deployment>::namespaced(client.clone(), &ns)
                    .list(&managed)
                    .await
                    .ok()?;
                let pods = Api::<Pod>::namespaced(client.clone(), &ns)
                    .list(&Default::default())
                    .await
                    .ok()?;
                let configmaps =
                    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), &ns)
                        .list(&managed)
                        .await
                        .ok()?;
                let services =
                    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &ns)
                        .list(&managed)
                        .await
                        .ok()?;
                let policies = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(
                    client.clone(),
                    &ns,
                )
                .list(&managed)
                .await
                .ok()?;
                let accounts =
                    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client, &ns)
                        .list(&managed)
                        .await
                        .ok()?;
                let empty = deployments.items.is_empty()
                    && pods.items.is_empty()
                    && configmaps.items.is_empty()
                    && services.items.is_empty()
                    && policies.items.is_empty()
                    && accounts.items.is_empty();
                empty.then_some(())
            }
        },
    )
    .await;
}
