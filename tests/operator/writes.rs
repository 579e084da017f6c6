//! Converging many Plugins at once writes each child once: a reconcile woken by one
//! child's watch event before another child's watch has shown the previous write must
//! not write that child again.

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams, PostParams};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator_test_support::cluster::{eventually, together};
use serde_json::json;

use crate::operator_in_namespace;

const PLUGINS: usize = 100;

fn ready(plugin: &Plugin) -> bool {
    plugin.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

#[tokio::test]
async fn converging_many_plugins_writes_each_child_once() {
    let _cluster = together().await;
    let (client, ns, operator) = operator_in_namespace("op-writes").await;
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let spec: PluginSpec = serde_json::from_value(json!({
        "image": "registry.example/weather:1", "port": 8080, "paused": true
    }))
    .unwrap();
    futures::stream::iter(0..PLUGINS)
        .for_each_concurrent(16, |index| {
            let (plugins, spec) = (plugins.clone(), spec.clone());
            async move {
                let plugin = Plugin::new(&format!("writes-{index}"), spec);
                plugins
                    .create(&PostParams::default(), &plugin)
                    .await
                    .expect("the Plugin is created");
            }
        })
        .await;
    eventually(
        "every Plugin to be Ready",
        Duration::from_secs(180),
        || async {
            let list = plugins.list(&ListParams::default()).await.ok()?;
            (list.items.iter().filter(|p| ready(p)).count() == PLUGINS).then_some(())
        },
    )
    .await;
    // Let trailing reconciles (woken by the last status writes) run out.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut counts = vec![];
    for kind in [
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "NetworkPolicy",
    ] {
        let metric = format!("plugin_operator_api_writes_total{{kind=\"{kind}\"}}");
        counts.push((kind, operator.metric(&metric).await as usize));
    }
    let off: Vec<_> = counts.iter().filter(|(_, n)| *n != PLUGINS).collect();
    assert!(
        off.is_empty(),
        "each child kind should be written {PLUGINS} times for {PLUGINS} Plugins: {counts:?}"
    );
}
