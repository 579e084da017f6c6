//! A child the API server refuses puts `ApplyFailed` on the Plugin: Ready False, Degraded
//! and Stalled True with the API server's message at the Plugin's generation (kstatus
//! reads Failed), and the Plugin recovers once the API server accepts the child.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator_test_support::cluster::{NamespacePolicy, Operator, eventually, together};
use serde_json::json;

use crate::{OPERATOR, namespace_with_crd};

const WAIT: Duration = Duration::from_secs(30);
const REFUSAL: &str = "services are refused in this namespace by a test policy";

fn condition(plugin: &Plugin, type_: &str) -> Option<(String, String, String, Option<i64>)> {
    let found = plugin
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        found.status.clone(),
        found.reason.clone(),
        found.message.clone(),
        found.observed_generation,
    ))
}

#[tokio::test]
async fn a_child_the_api_server_refuses_puts_apply_failed_on_the_plugin() {
    let _cluster = together().await;
    let (client, ns) = namespace_with_crd("op-apply-failed").await;
    let refusal = json!([{"expression": "false", "message": REFUSAL}]);
    let refuse_services = NamespacePolicy::install(&client, &ns.name, "services", refusal).await;
    let probe: Service = serde_json::from_value(json!({
        "metadata": {"name": "probe"}, "spec": {"ports": [{"port": 80}]}
    }))
    .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    refuse_services
        .wait_until_it_refuses(&services, &probe)
        .await;
    let operator = Operator::start(OPERATOR, &ns.name, &[]).await;
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let spec: PluginSpec = serde_json::from_value(json!({
        "image": "registry.example/weather:1", "port": 8080, "paused": true
    }))
    .unwrap();
    let created = plugins
        .create(&PostParams::default(), &Plugin::new("refused", spec))
        .await
        .unwrap();
    let generation = created.metadata.generation;

    let failed = eventually("Ready=False with reason ApplyFailed", WAIT, || async {
        let plugin = plugins.get("refused").await.ok()?;
        let ready = condition(&plugin, "Ready")?;
        (ready.1 == "ApplyFailed").then_some(plugin)
    })
    .await;
    let (status, _, message, observed) = condition(&failed, "Ready").unwrap();
    assert_eq!(status, "False");
    assert!(message.contains(REFUSAL), "{message}");
    assert!(message.contains("Service plugin-refused"), "{message}");
    assert_eq!(observed, generation);
    assert_eq!(
        failed.status.as_ref().unwrap().observed_generation,
        generation
    );
    let stalled = condition(&failed, "Stalled").unwrap();
    assert_eq!(
        (stalled.0.as_str(), stalled.1.as_str()),
        ("True", "ApplyFailed")
    );
    let reconciling = condition(&failed, "Reconciling").unwrap();
    assert_eq!(
        reconciling.0, "False",
        "kstatus reads Failed only without Reconciling"
    );

    // The metrics say the same: the Plugin is Degraded, and reconciles fail by reason.
    let degraded = format!(
        r#"plugin_operator_plugin_degraded{{namespace="{}",plugin="refused",reason="ApplyFailed"}}"#,
        ns.name
    );
    assert_eq!(operator.metric(&degraded).await, 1.0, "{degraded}");
    assert!(
        operator
            .metric(r#"plugin_operator_reconcile_errors_total{reason="ApplyFailed"}"#)
            .await
            >= 1.0
    );

    drop(refuse_services);
    eventually(
        "the Plugin to recover once Services are allowed",
        Duration::from_secs(90),
        || async {
            let plugin = plugins.get("refused").await.ok()?;
            let ready = condition(&plugin, "Ready")?;
            let stalled = condition(&plugin, "Stalled")?;
            (ready.0 == "True" && stalled.0 == "False").then_some(())
        },
    )
    .await;
    assert_eq!(
        operator.metric("plugin_operator_plugin_degraded").await,
        0.0,
        "no series once the Plugin recovered"
    );
}
