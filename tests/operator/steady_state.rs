//! With 50 unchanged Plugins, and 5 more held by their PluginPolicy, the operator sends
//! the API server no writes at all, even while it reconciles each of them again: counted
//! by the operator, by the API server's own metrics, and by the resourceVersions of the
//! children. This test has the cluster to itself so no other test writes to it meanwhile.
//! The operator has a monitoring peer without labels (`podSelector: {}` in each
//! NetworkPolicy's extra ingress rule), so a rule the API server could normalize is
//! compared too.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, Patch, PatchParams, PostParams};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator_test_support::cluster::{
    TestPolicy, alone, apiserver_writes, eventually, resource_versions,
};
use serde_json::json;

use crate::operator_in_namespace_with;

const PLUGINS: usize = 50;
/// Plugins that ask for a scope their PluginPolicy does not allow.
const HELD: usize = 5;

#[tokio::test]
async fn unchanged_plugins_cause_no_writes_in_steady_state() {
    let _cluster = alone().await;
    let (client, ns, operator) =
        operator_in_namespace_with("op-steady", &["--monitoring-namespace", "monitoring"]).await;
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let _policy = TestPolicy::apply(
        &client,
        &ns.name,
        json!({"chatApi": [{"scope": "messages:read"}]}),
    )
    .await;
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
    let mut asks_more = spec.clone();
    asks_more.permissions.as_mut().unwrap().chat_api =
        serde_json::from_value(json!([{"scope": "messages:read"}, {"scope": "users:read"}]))
            .unwrap();
    for index in 0..HELD {
        plugins
            .create(
                &PostParams::default(),
                &Plugin::new(&format!("held-{index}"), asks_more.clone()),
            )
            .await
            .unwrap();
    }
    eventually(
        "every Plugin to report Unschedulable or PermissionsDenied at its generation",
        Duration::from_secs(120),
        || async {
            let list = plugins.list(&Default::default()).await.ok()?;
            let settled_with = |reason: &str| {
                list.items
                    .iter()
                    .filter(|p| {
                        p.status.as_ref().is_some_and(|s| {
                            s.observed_generation == Some(1)
                                && s.conditions
                                    .iter()
                                    .any(|c| c.type_ == "Degraded" && c.reason == reason)
                        })
                    })
                    .count()
            };
            (settled_with("Unschedulable") == PLUGINS && settled_with("PermissionsDenied") == HELD)
                .then_some(())
        },
    )
    .await;
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), &ns.name)
        .get("plugin-steady-0")
        .await
        .unwrap();
    let ingress = policy.spec.unwrap().ingress.unwrap();
    assert_eq!(ingress.len(), 2, "the monitoring peer's rule: {ingress:?}");
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
    let versions_before = resource_versions(&client, &ns.name).await.unwrap();
    let server_before = apiserver_writes(&client)
        .await
        .expect("the API server serves /metrics");
    let operator_before = operator.metric("plugin_operator_api_writes_total").await;
    let reads_before = operator.metric("plugin_operator_child_reads_total").await;
    let reconciles_before = operator.metric("plugin_operator_reconciles_total").await;
    // Make the operator look at every Plugin again without changing any spec: an
    // annotation is a watch event, but not a new generation.
    let touch = json!({"metadata": {"annotations": {"test.plugins.chat.dev/touched": "yes"}}});
    let names = (0..PLUGINS)
        .map(|i| format!("steady-{i}"))
        .chain((0..HELD).map(|i| format!("held-{i}")));
    for name in names {
        plugins
            .patch(&name, &PatchParams::default(), &Patch::Merge(&touch))
            .await
            .unwrap();
    }
    eventually(
        "the operator to reconcile the touched Plugins",
        Duration::from_secs(30),
        || async {
            let now = operator.metric("plugin_operator_reconciles_total").await;
            (now >= reconciles_before + (PLUGINS + HELD) as f64).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let server_after = apiserver_writes(&client)
        .await
        .expect("the API server serves /metrics");
    let operator_after = operator.metric("plugin_operator_api_writes_total").await;
    let reads_after = operator.metric("plugin_operator_child_reads_total").await;

    assert!(
        operator_before >= (PLUGINS * 6) as f64,
        "the operator did write the children first"
    );
    assert!(reconciles_before >= PLUGINS as f64);
    assert_eq!(
        operator_after, operator_before,
        "the operator counted writes during 30 s of steady state"
    );
    // The caches keep each child's content digest: children seen clean are not read.
    assert_eq!(
        reads_after, reads_before,
        "the operator read children it had seen clean"
    );
    let versions_after = resource_versions(&client, &ns.name).await.unwrap();
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
        (PLUGINS + HELD) as u64,
        "the API server saw writes to plugin kinds besides the test's own annotations"
    );
}
