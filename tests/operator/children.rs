//! The operator against a real API server: children, updates, garbage collection, and
//! the generated pod admitted by the real PodSecurity admission.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Pod, ResourceQuota, Service, ServiceAccount},
    networking::v1::NetworkPolicy,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use plugin_operator::api::{Plugin, PluginSpec};
use plugin_operator::policy::BrokerPolicy;
use plugin_operator_test_support::cluster::{
    NamespacedObject, Operator, TestNamespace, admit_pod, assert_pod_security_refuses, client,
    eventually, http_get, install_crd, pod_from_template, together, wait_for_object,
};
use serde_json::json;

use crate::{OPERATOR, namespace_with_crd, operator_in_namespace};

const WAIT: Duration = Duration::from_secs(30);

fn weather_spec() -> PluginSpec {
    serde_json::from_value(json!({
        "image": "registry.example/weather:1",
        "port": 8080,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
        "permissions": {
            "chatApi": [{"scope": "messages:read"}, {"scope": "messages:write", "channels": ["C123"]}],
            "database": {"access": "ReadWrite"},
            "network": {"egress": [{"cidr": "203.0.113.0/24", "ports": [443]}]}
        },
        "rateLimits": [{"scope": "messages:write", "perMinute": 60, "burst": 10}]
    }))
    .unwrap()
}

async fn create_plugin(client: &Client, namespace: &str, name: &str, spec: PluginSpec) -> Plugin {
    Api::<Plugin>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &Plugin::new(name, spec))
        .await
        .expect("the Plugin is accepted")
}

async fn child<K>(client: &Client, namespace: &str, name: &str) -> Option<K>
where
    K: NamespacedObject,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

/// Waits until the child `name` of kind `K` exists.
async fn wait_for_child<K>(client: &Client, namespace: &str, name: &str) -> K
where
    K: NamespacedObject,
{
    wait_for_object(client, namespace, name, WAIT).await
}

#[tokio::test]
async fn creating_a_plugin_produces_every_child_owned_by_it() {
    let _cluster = together().await;
    let (client, ns, operator) = operator_in_namespace("op-children").await;
    eventually(
        "the operator's /readyz to answer 200 once its caches are synced",
        WAIT,
        || http_get(&operator.admin, "/readyz"),
    )
    .await;
    let plugin = create_plugin(&client, &ns.name, "weather", weather_spec()).await;
    let uid = plugin.uid().unwrap();

    let deployment: Deployment = wait_for_child(&client, &ns.name, "plugin-weather").await;
    let service: Service = wait_for_child(&client, &ns.name, "plugin-weather").await;
    let account: ServiceAccount = wait_for_child(&client, &ns.name, "plugin-weather").await;
    let policy: NetworkPolicy = wait_for_child(&client, &ns.name, "plugin-weather").await;
    let config: ConfigMap = wait_for_child(&client, &ns.name, "plugin-weather-broker-policy").await;

    for owners in [
        deployment.owner_references(),
        service.owner_references(),
        account.owner_references(),
        policy.owner_references(),
        config.owner_references(),
    ] {
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].uid, uid);
        assert_eq!(owners[0].controller, Some(true));
    }
    for managed in [
        deployment.managed_fields(),
        service.managed_fields(),
        config.managed_fields(),
    ] {
        assert!(
            managed
                .iter()
                .any(|m| m.manager.as_deref() == Some("plugin-operator")
                    && m.operation.as_deref() == Some("Apply")),
            "children are written by server-side apply under the plugin-operator field manager"
        );
    }

    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let broker = &pod.init_containers.unwrap()[0];
    assert_eq!(broker.restart_policy.as_deref(), Some("Always"));
    assert_eq!(account.automount_service_account_token, Some(false));
    assert_eq!(
        service.spec.unwrap().ports.unwrap()[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("inbound".into()))
    );
    let stored: BrokerPolicy = serde_json::from_str(&config.data.unwrap()["policy.json"]).unwrap();
    assert_eq!(stored.plugin_id, format!("{}/weather", ns.name));
    assert!(
        stored
            .grants
            .iter()
            .any(|g| g.scope == "messages:write" && g.channels == ["C123"])
    );
    let egress = policy.spec.unwrap().egress.unwrap();
    assert!(
        egress
            .iter()
            .any(|rule| rule.to.iter().flatten().any(|peer| peer
                .ip_block
                .as_ref()
                .is_some_and(|b| b.cidr == "203.0.113.0/24")))
    );

    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let status = eventually("a status at generation 1", WAIT, || async {
        let status = plugins.get("weather").await.ok()?.status?;
        (status.observed_generation == Some(1)).then_some(status)
    })
    .await;
    let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        vec!["Ready", "Progressing", "Degraded", "Reconciling", "Stalled"]
    );
    assert_eq!(
        status.endpoint,
        Some(format!("http://plugin-weather.{}.svc:80", ns.name))
    );
}

#[tokio::test]
async fn user_spec_is_stored_without_defaults_written_back() {
    let _cluster = together().await;
    let (client, ns, _operator) = operator_in_namespace("op-nodefaults").await;
    let minimal: PluginSpec =
        serde_json::from_value(json!({"image": "registry.example/x:1", "port": 8080})).unwrap();
    create_plugin(&client, &ns.name, "minimal", minimal.clone()).await;
    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let plugin = eventually("the status", WAIT, || async {
        plugins
            .get("minimal")
            .await
            .ok()
            .filter(|p| p.status.is_some())
    })
    .await;
    assert_eq!(
        plugin.spec, minimal,
        "the spec is exactly what the user wrote"
    );
    assert_eq!(
        plugin.metadata.generation,
        Some(1),
        "the operator never touched the spec"
    );
}

#[tokio::test]
async fn changing_the_spec_updates_the_children_and_observed_generation() {
    let _cluster = together().await;
    let (client, ns, _operator) = operator_in_namespace("op-update").await;
    create_plugin(&client, &ns.name, "weather", weather_spec()).await;
    let _: Deployment = wait_for_child(&client, &ns.name, "plugin-weather").await;

    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let patch = json!({"spec": {"replicas": 2, "rateLimits": null, "permissions": {"chatApi": [{"scope": "users:read"}]}}});
    plugins
        .patch("weather", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    eventually("two replicas in the Deployment", WAIT, || async {
        let deployment: Deployment = child(&client, &ns.name, "plugin-weather").await?;
        (deployment.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    eventually("the new grant in the broker policy", WAIT, || async {
        let config: ConfigMap = child(&client, &ns.name, "plugin-weather-broker-policy").await?;
        let policy: BrokerPolicy = serde_json::from_str(&config.data?["policy.json"]).ok()?;
        let scopes: Vec<_> = policy.grants.iter().map(|g| g.scope.clone()).collect();
        (scopes.contains(&"users:read".to_string())
            && !scopes.contains(&"messages:write".to_string()))
        .then_some(())
    })
    .await;
    eventually(
        "observedGeneration 2 on the status and every condition",
        WAIT,
        || async {
            let status = plugins.get("weather").await.ok()?.status?;
            let all = status.observed_generation == Some(2)
                && status
                    .conditions
                    .iter()
                    .all(|c| c.observed_generation == Some(2));
            all.then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn deleting_the_plugin_leaves_no_child_behind() {
    let _cluster = together().await;
    let (client, ns, _operator) = operator_in_namespace("op-delete").await;
    create_plugin(&client, &ns.name, "weather", weather_spec()).await;
    let _: ConfigMap = wait_for_child(&client, &ns.name, "plugin-weather-broker-policy").await;
    let _: NetworkPolicy = wait_for_child(&client, &ns.name, "plugin-weather").await;

    Api::<Plugin>::namespaced(client.clone(), &ns.name)
        .delete("weather", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually(
        "every child to be garbage-collected",
        Duration::from_secs(60),
        || async {
            let gone = child::<Deployment>(&client, &ns.name, "plugin-weather")
                .await
                .is_none()
                && child::<Service>(&client, &ns.name, "plugin-weather")
                    .await
                    .is_none()
                && child::<ServiceAccount>(&client, &ns.name, "plugin-weather")
                    .await
                    .is_none()
                && child::<NetworkPolicy>(&client, &ns.name, "plugin-weather")
                    .await
                    .is_none()
                && child::<ConfigMap>(&client, &ns.name, "plugin-weather-broker-policy")
                    .await
                    .is_none();
            let pods = Api::<Pod>::namespaced(client.clone(), &ns.name)
                .list(&Default::default())
                .await
                .ok()?;
            (gone && pods.items.is_empty()).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn generated_pod_is_admitted_by_restricted_pod_security() {
    let _cluster = together().await;
    let client = client().await;
    install_crd(&client).await;
    let ns = TestNamespace::restricted(&client, "op-restricted").await;
    let _operator = Operator::start(OPERATOR, &ns.name, &[]).await;
    let mut spec = weather_spec();
    spec.paused = Some(true);
    create_plugin(&client, &ns.name, "weather", spec).await;
    let deployment: Deployment = wait_for_child(&client, &ns.name, "plugin-weather").await;
    let _: ServiceAccount = wait_for_child(&client, &ns.name, "plugin-weather").await;

    let mut pod = pod_from_template(deployment.spec.unwrap().template, "dry-run");
    if let Err(refusal) = admit_pod(&client, &ns.name, &pod).await {
        panic!("restricted PodSecurity refused the plugin pod: {refusal}");
    }

    // The same pod with one restricted field loosened is refused: the check has teeth.
    let spec = pod.spec.as_mut().unwrap();
    spec.containers[0]
        .security_context
        .as_mut()
        .unwrap()
        .allow_privilege_escalation = Some(true);
    assert_pod_security_refuses(&client, &ns.name, &pod, "a loosened pod").await;
}

#[tokio::test]
async fn pods_refused_by_a_quota_are_reported_on_the_plugin() {
    let _cluster = together().await;
    let (client, ns) = namespace_with_crd("op-quota").await;
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "tiny"},
        "spec": {"hard": {"limits.memory": "32Mi"}}
    }))
    .unwrap();
    Api::<ResourceQuota>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &quota)
        .await
        .unwrap();
    let _operator = Operator::start(OPERATOR, &ns.name, &[]).await;
    create_plugin(&client, &ns.name, "weather", weather_spec()).await;

    let plugins: Api<Plugin> = Api::namespaced(client.clone(), &ns.name);
    let degraded = eventually(
        "Degraded=True with reason QuotaExceeded",
        Duration::from_secs(60),
        || async {
            let status = plugins.get("weather").await.ok()?.status?;
            status.conditions.into_iter().find(|c| {
                c.type_ == "Degraded" && c.status == "True" && c.reason == "QuotaExceeded"
            })
        },
    )
    .await;
    assert!(
        degraded.message.contains("exceeded quota"),
        "{}",
        degraded.message
    );
    let ready = plugins
        .get("weather")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "QuotaExceeded")
    );
}
