//! A Plugin stored before a schema change, which no longer parses, does not stall the
//! watch: the operator reports it and goes on reconciling the others. This test changes
//! the CRD for a moment, so it has the cluster to itself.

use std::time::Duration;

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Event};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator_test_support::cluster::{CRD_FIELD_MANAGER, alone, eventually, install_crd};
use serde_json::json;

use crate::operator_in_namespace;

#[tokio::test]
async fn malformed_plugin_is_reported_and_does_not_stall_the_others() {
    let _cluster = alone().await;
    let (client, ns, _operator) = operator_in_namespace("op-malformed").await;

    // Store an object the current types cannot read, as an older schema would have allowed.
    let mut loose = serde_json::to_value(plugin_operator::api::crd()).unwrap();
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let loose: CustomResourceDefinition = serde_json::from_value(loose).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "plugins.plugins.chat.dev",
        &PatchParams::apply(CRD_FIELD_MANAGER).force(),
        &Patch::Apply(&loose),
    )
    .await
    .unwrap();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "plugins.chat.dev",
        "v1alpha1",
        "Plugin",
    ));
    let dynamic: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns.name, &resource);
    let mut broken: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "plugins.chat.dev/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": "broken"},
        "spec": {"image": 42, "port": "eighty"}
    }))
    .unwrap();
    broken.metadata.namespace = Some(ns.name.clone());
    let created = eventually(
        "the loosened schema to accept the malformed Plugin",
        Duration::from_secs(20),
        || async { dynamic.create(&PostParams::default(), &broken).await.ok() },
    )
    .await;
    install_crd(&client).await;

    let events: Api<Event> = Api::namespaced(client.clone(), &ns.name);
    let uid = created.metadata.uid.clone().unwrap();
    eventually(
        "a MalformedPlugin Event on the broken Plugin",
        Duration::from_secs(30),
        || async {
            let list = events.list(&Default::default()).await.ok()?;
            list.items.into_iter().find(|e| {
                e.reason.as_deref() == Some("MalformedPlugin")
                    && e.involved_object.uid.as_deref() == Some(uid.as_str())
            })
        },
    )
    .await;

    let spec: PluginSpec =
        serde_json::from_value(json!({"image": "registry.example/x:1", "port": 8080})).unwrap();
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    eventually(
        "the restored schema to accept a good Plugin",
        Duration::from_secs(20),
        || async {
            plugins
                .create(&PostParams::default(), &Plugin::new("good", spec.clone()))
                .await
                .ok()
        },
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    eventually(
        "the good Plugin to be reconciled",
        Duration::from_secs(30),
        || async { deployments.get_opt("plugin-good").await.ok()?.map(|_| ()) },
    )
    .await;
    assert!(
        deployments
            .get_opt("plugin-broken")
            .await
            .unwrap()
            .is_none(),
        "nothing is built from a malformed Plugin"
    );
}
