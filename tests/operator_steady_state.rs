//! With 50 unchanged Plugins the operator sends the API server no writes at all, even
//! while it reconciles each of them again: counted by the operator, by the API server's
//! own metrics, and by the resourceVersions of the children. This test has its own
//! binary so no other test writes to the cluster meanwhile.

mod harness;

use std::collections::BTreeMap;
use std::time::Duration;

use harness::{Operator, TestNamespace, client, eventually, install_crd};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use plugin_operator::api::{Plugin, PluginSpec};
use serde_json::json;

const PLUGINS: usize = 50;

/// Writes the API server counted for the kinds the operator manages, from its own
/// metrics. The operator never deletes; deletions (by the namespace controller
/// cleaning up earlier tests) and Deployment status (the deployment controller) are
/// left out.
async fn writes_to_plugin_kinds(client: &Client) -> u64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client
        .request_text(request)
        .await
        .expect("the API server serves /metrics");
    let kinds = [
        "plugins",
        "deployments",
        "services",
        "serviceaccounts",
        "configmaps",
        "networkpolicies",
    ];
    text.lines()
        .filter(|line| line.starts_with("apiserver_request_total{"))
        .filter(|line| {
            ["APPLY", "PATCH", "POST", "PUT"]
                .iter()
                .any(|v| line.contains(&format!("verb=\"{v}\"")))
        })
        .filter(|line| {
            kinds
                .iter()
                .any(|k| line.contains(&format!("resource=\"{k}\"")))
        })
        .filter(|line| {
            !(line.contains("resource=\"deployments\"") && line.contains("subresource=\"status\""))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `Kind/name` -> resourceVersion of everything of the plugin kinds in `namespace`.
async fn resource_versions(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    async fn of<K>(client: &Client, namespace: &str, into: &mut BTreeMap<String, String>)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let list = Api::<K>::namespaced(client.clone(), namespace)
            .list(&Default::default())
            .await
            .unwrap();
        for item in list.items {
            let key = format!("{}/{}", K::kind(&()), item.name_any());
            into.insert(key, item.resource_version().unwrap_or_default());
        }
    }
    let mut versions = BTreeMap::new();
    of::<Plugin>(client, namespace, &mut versions).await;
    of::<Deployment>(client, namespace, &mut versions).await;
    of::<Service>(client, namespace, &mut versions).await;
    of::<ServiceAccount>(client, namespace, &mut versions).await;
    of::<ConfigMap>(client, namespace, &mut versions).await;
    of::<NetworkPolicy>(client, namespace, &mut versions).await;
    versions
}

#[tokio::test]
async fn unchanged_plugins_cause_no_writes_in_steady_state() {
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::new(&client, "op-steady", &[]).await;
    let operator = Operator::start(&ns.name, &[]).await;
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    // Pods that can never be scheduled: a stable state with or without a node.
    let spec: PluginSpec = serde_json::from_value(json!({
        "image": "registry.example/steady:1",
        "port": 8080,
        "resources": {"requests": {"cpu": "8"}, "limits": {"cpu": "8"}},
        "permissions": {"chatApi": [{"scope": "messages:read"}]}
    }))
    .unwrap();
    for index in 0..PLUGINS {
        plugins
            .create(
                &PostParams::default(),
                &Plugin::new(&format!("steady-{index}"), spec.clone()),
            )
            .await
            .unwrap();
    }
    eventually(
        "every Plugin to report Unschedulable at its generation",
        Duration::from_secs(120),
        || {
            let plugins = plugins.clone();
            async move {
                let list = plugins.list(&Default::default()).await.ok()?;
                let settled = list.items.iter().filter(|p| {
                    p.status.as_ref().is_some_and(|s| {
                        s.observed_generation == Some(1)
                            && s.conditions
                                .iter()
                                .any(|c| c.type_ == "Degraded" && c.reason == "Unschedulable")
                    })
                });
                (settled.count() == PLUGINS).then_some(())
            }
        },
    )
    .await;
    // Let the last status writes and their watch events pass.
    let mut previous = operator.metric("plugin_operator_api_writes_total").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = operator.metric("plugin_operator_api_writes_total").await;
        if now == previous {
            break;
        }
        previous = now;
        assert!(
            std::time::Instant::now() < deadline,
            "the operator kept writing for a minute after settling"
        );
    }

    // Namespaces of earlier tests that are still being emptied make the garbage
    // collector and the namespace controller write to these kinds; let them finish.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    eventually(
        "other tests' namespaces to finish terminating",
        Duration::from_secs(180),
        || async {
            let list = namespaces.list(&Default::default()).await.ok()?;
            let terminating = list.items.iter().filter(|n| {
                n.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
            });
            (terminating.count() == 0).then_some(())
        },
    )
    .await;
    let versions_before = resource_versions(&client, &ns.name).await;
    let server_before = writes_to_plugin_kinds(&client).await;
    let operator_before = operator.metric("plugin_operator_api_writes_total").await;
    let reconciles_before = operator.metric("plugin_operator_reconciles_total").await;
    // Make the operator look at every Plugin again without changing any spec: an
    // annotation is a watch event, but not a new generation.
    let touch = json!({"metadata": {"annotations": {"test.plugins.chat.dev/touched": "yes"}}});
    for index in 0..PLUGINS {
        plugins
            .patch(
                &format!("steady-{index}"),
                &PatchParams::default(),
                &Patch::Merge(&touch),
            )
            .await
            .unwrap();
    }
    eventually(
        "the operator to reconcile the touched Plugins",
        Duration::from_secs(30),
        || async {
            let now = operator.metric("plugin_operator_reconciles_total").await;
            (now >= reconciles_before + PLUGINS as f64).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let server_after = writes_to_plugin_kinds(&client).await;
    let operator_after = operator.metric("plugin_operator_api_writes_total").await;

    assert!(
        operator_before >= (PLUGINS * 6) as f64,
        "the operator did write the children first"
    );
    assert!(reconciles_before >= PLUGINS as f64);
    assert_eq!(
        operator_after, operator_before,
        "the operator counted writes during 30 s of steady state"
    );
    let versions_after = resource_versions(&client, &ns.name).await;
    let changed: Vec<_> = versions_after
        .iter()
        .filter(|(key, version)| versions_before.get(*key) != Some(*version))
        .map(|(key, _)| key.clone())
        .filter(|key| !key.starts_with("Plugin/"))
        .collect();
    assert!(
        changed.is_empty(),
        "children changed during steady state: {changed:?}"
    );
    assert_eq!(
        server_after - server_before,
        PLUGINS as u64,
        "the API server saw writes to plugin kinds besides the test's own {PLUGINS} annotations"
    );
}
